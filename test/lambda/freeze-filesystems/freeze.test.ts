/** Sending the freeze: its parameters, its NotAfter, and no duplicate freeze from a retry (issue 13 item 3). */
import { BackupClient } from '@aws-sdk/client-backup';
import { EC2Client } from '@aws-sdk/client-ec2';
import {
  GetCommandInvocationCommand,
  ListCommandsCommand,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import {
  FREEZE_LOOKUPS,
  FREEZE_RESULT_MARGIN_SECONDS,
  freeze,
  freezeNotAfter,
} from '../../../lambda/freeze-filesystems/freeze';
import { parseFreezeStepRequest } from '../../../lambda/freeze-filesystems/step';
import {
  CallTimedOut,
  isAmbiguous,
  isTransient,
  MUTATING_CALL_MS,
  StepInputError,
} from '../../../lambda/shared/calls';
import { MAX_FREEZE_VOLUMES } from '../../../lambda/shared/outcome';
import { parseStartBackupStepRequest } from '../../../lambda/start-backup/step';
import { fakeClock, half, hang, sdkError, T0, VOLS } from '../freeze-path';

const ssm = mockClient(SSMClient);
const backup = mockClient(BackupClient);
const ec2 = mockClient(EC2Client);
afterEach(() => {
  ssm.reset();
  backup.reset();
  ec2.reset();
});

describe('freeze', () => {
  const request = {
    documentName: 'Ec2ConsistentBackup-Freeze',
    instanceId: 'i-0123456789abcdef0',
    executionId: 'i-0123456789abcdef0-20261122T0200Z',
    volumeIds: VOLS,
    volumeDevices: '',
    notAfter: '2026-11-22T02:15:00Z',
    watchdogSeconds: 90,
    hookTimeoutSeconds: 30,
    include: '/data',
    exclude: '',
    timeoutSeconds: 60,
  };

  it('sends the documented parameters, the volume ids joined with commas', async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c9' } });
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: '{}' });
    const r = await freeze(new SSMClient({}), fakeClock(), request, half);
    expect(r.commandId).toBe('c9');
    const input = ssm.commandCalls(SendCommandCommand)[0].args[0].input;
    expect(input.Parameters).toEqual({
      ExecutionId: ['i-0123456789abcdef0-20261122T0200Z'],
      VolumeIds: ['vol-0aaaaaaaaaaaaaaa1,vol-0aaaaaaaaaaaaaaa2'],
      // The request's timeoutSeconds is 60: this execution watches the command until T0 + 60 s.
      NotAfter: ['2026-11-22T02:00:30.000Z'],
      WatchdogSeconds: ['90'],
      HookTimeoutSeconds: ['30'],
      Include: ['/data'],
      Exclude: [''],
    });
    expect(input.InstanceIds).toEqual(['i-0123456789abcdef0']);
  });

  it('sends VolumeDevices when there are device names (Xen), and only then', async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c9' } });
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: '{}' });
    const devices = 'vol-0aaaaaaaaaaaaaaa1=/dev/sdf,vol-0aaaaaaaaaaaaaaa2=/dev/xvdg';
    await freeze(new SSMClient({}), fakeClock(), { ...request, volumeDevices: devices }, half);
    expect(ssm.commandCalls(SendCommandCommand)[0].args[0].input.Parameters).toMatchObject({
      VolumeIds: ['vol-0aaaaaaaaaaaaaaa1,vol-0aaaaaaaaaaaaaaa2'],
      VolumeDevices: [devices],
    });
    await freeze(new SSMClient({}), fakeClock(), request, half);
    expect(ssm.commandCalls(SendCommandCommand)[1].args[0].input.Parameters).not.toHaveProperty(
      'VolumeDevices',
    );
  });

  it('retries SendCommand only when it was throttled, without looking it up', async () => {
    ssm
      .on(SendCommandCommand)
      .rejectsOnce(sdkError('ThrottlingException'))
      .resolves({ Command: { CommandId: 'c1' } });
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success' });
    await freeze(new SSMClient({}), fakeClock(), request, half);
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(2);
    expect(ssm.commandCalls(ListCommandsCommand)).toHaveLength(0);
  });

  // Issue 13 item 1: the NotAfter is the moment this execution stops watching, not discovery's hour.
  it("sends a NotAfter of the send time + timeoutSeconds − 30 s, or discovery's when that is earlier", async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c9' } });
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: '{}' });
    const clock = fakeClock(T0 + 7_250);
    // An ungrouped instance: discovery's NotAfter is the window + 3,600 s.
    await freeze(
      new SSMClient({}),
      clock,
      { ...request, notAfter: '2026-11-22T03:00:00Z', timeoutSeconds: 180 },
      half,
    );
    const sent = (n: number) => ssm.commandCalls(SendCommandCommand)[n].args[0].input.Parameters?.NotAfter;
    expect(FREEZE_RESULT_MARGIN_SECONDS).toBe(30);
    expect(sent(0)).toEqual([new Date(T0 + 7_250 + 150_000).toISOString()]);
    // A blast-radius slot that ends sooner wins.
    await freeze(
      new SSMClient({}),
      fakeClock(T0 + 7_250),
      { ...request, notAfter: '2026-11-22T02:01:00Z', timeoutSeconds: 180 },
      half,
    );
    expect(sent(1)).toEqual(['2026-11-22T02:01:00.000Z']);
    expect(freezeNotAfter('2026-11-22T02:01:00Z', T0, 20)).toBe('2026-11-22T02:00:00.000Z');
  });
});

// Issue 13 item 3: SendCommand has no idempotency token; a retry must never freeze twice.
describe('freeze: no duplicate command from a retry', () => {
  const request = {
    documentName: 'Ec2ConsistentBackup-Freeze',
    instanceId: 'i-0123456789abcdef0',
    executionId: 'i-0123456789abcdef0-20261122T0200Z',
    volumeIds: VOLS,
    volumeDevices: '',
    notAfter: '2026-11-22T02:15:00Z',
    watchdogSeconds: 90,
    hookTimeoutSeconds: 30,
    include: '',
    exclude: '',
    timeoutSeconds: 60,
  };
  const listed = (executionId: string, CommandId = 'c-first') => ({
    Commands: [
      { CommandId: 'c-other', Parameters: { ExecutionId: ['some-other-execution'] } },
      {
        CommandId,
        Parameters: { ExecutionId: [executionId] },
        Comment: `ec2-consistent-backup freeze ${executionId}`,
      },
    ],
  });

  it('a 5xx after the command was created is resolved by ListCommands, and nothing is sent again', async () => {
    ssm.on(SendCommandCommand).rejects(sdkError('InternalServerError', 500));
    ssm.on(ListCommandsCommand).resolves(listed(request.executionId));
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: '{}' });
    const clock = fakeClock();
    const r = await freeze(new SSMClient({}), clock, request, half);
    expect(r).toMatchObject({ succeeded: true, commandId: 'c-first' });
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(1);
    const lookup = ssm.commandCalls(ListCommandsCommand)[0].args[0].input;
    expect(lookup).toMatchObject({
      InstanceId: request.instanceId,
      Filters: [
        { key: 'InvokedAfter', value: '2026-11-22T01:59:00Z' },
        { key: 'DocumentName', value: request.documentName },
      ],
    });
    expect(ssm.commandCalls(GetCommandInvocationCommand)[0].args[0].input.CommandId).toBe('c-first');
  });

  it('a hung SendCommand is abandoned after its limit and looked up, not sent blindly again', async () => {
    ssm.on(SendCommandCommand).callsFake(hang);
    ssm.on(ListCommandsCommand).resolves(listed(request.executionId));
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: '{}' });
    const clock = fakeClock();
    const r = await freeze(new SSMClient({}), clock, request, half);
    expect(r.commandId).toBe('c-first');
    expect(clock.abandoned).toEqual([MUTATING_CALL_MS]);
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(1);
  });

  it('an ambiguous failure that did not take effect is sent again once no command of this execution is listed', async () => {
    ssm
      .on(SendCommandCommand)
      .rejectsOnce(sdkError('TimeoutError'))
      .resolves({ Command: { CommandId: 'c-second' } });
    // Only another execution's freeze is listed, on every look-up.
    ssm.on(ListCommandsCommand).resolves(listed('some-other-execution', 'c-x'));
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: '{}' });
    const r = await freeze(new SSMClient({}), fakeClock(), request, half);
    expect(r.commandId).toBe('c-second');
    expect(ssm.commandCalls(ListCommandsCommand)).toHaveLength(FREEZE_LOOKUPS);
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(2);
  });

  it('never sends again when the look-up itself fails: the error goes to the state machine', async () => {
    ssm.on(SendCommandCommand).rejects(sdkError('InternalServerError', 500));
    ssm.on(ListCommandsCommand).rejects(sdkError('AccessDeniedException'));
    await expect(freeze(new SSMClient({}), fakeClock(), request, half)).rejects.toThrow(
      'InternalServerError',
    );
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(1);
  });

  it('a rejected request (4xx) is final: no look-up, no resend', async () => {
    ssm.on(SendCommandCommand).rejects(sdkError('InvalidInstanceId'));
    await expect(freeze(new SSMClient({}), fakeClock(), request, half)).rejects.toThrow('InvalidInstanceId');
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(1);
    expect(ssm.commandCalls(ListCommandsCommand)).toHaveLength(0);
  });

  it('classifies throttling as refused and 5xx, timeouts and network errors as ambiguous', () => {
    expect(isAmbiguous(sdkError('ThrottlingException'))).toBe(false);
    expect(isAmbiguous(sdkError('ThrottlingException', 500))).toBe(false);
    expect(isAmbiguous(sdkError('InternalServerError', 500))).toBe(true);
    expect(isAmbiguous(sdkError('TimeoutError', 0))).toBe(true);
    expect(isAmbiguous(Object.assign(new Error('socket hang up'), { name: 'ECONNRESET' }))).toBe(true);
    expect(isAmbiguous(new CallTimedOut('x'))).toBe(true);
    expect(isAmbiguous(sdkError('InvalidParameters'))).toBe(false);
  });
});

/** What the state machine adds to the freeze fields (lib/workflow.ts, Freeze Filesystems). */
const STEP = {
  instanceArn: 'arn:aws:ec2:eu-west-1:111122223333:instance/i-0123456789abcdef0',
  freezeBudgetSeconds: 60,
  thawMarginSeconds: 3,
};

describe('parseFreezeStepRequest', () => {
  it('names the bad value and what is allowed', () => {
    expect(() => parseStartBackupStepRequest({ mode: 'thaw' })).toThrow(
      'Invalid mode: got "thaw"; allowed: frozen, unfrozen, windows-vss.',
    );
    expect(() => parseFreezeStepRequest({ ...STEP, volumeIds: ['vol-xyz'] })).toThrow(
      /Invalid volumeIds: got \["vol-xyz"\]/,
    );
    expect(() => parseFreezeStepRequest({ ...STEP, instanceArn: 'i-1' })).toThrow(StepInputError);
    expect(() =>
      parseFreezeStepRequest({
        ...STEP,
        documentName: 'Doc',
        instanceId: 'i-0123456789abcdef0',
        executionId: 'x',
        volumeIds: VOLS,
        notAfter: '2026-11-22T02:15:00Z',
        watchdogSeconds: 90,
        hookTimeoutSeconds: 30,
        include: '/data;rm -rf /',
        exclude: '',
        timeoutSeconds: 60,
      }),
    ).toThrow(/Invalid include: got "\/data;rm -rf \/"/);
  });

  it('joins volumeDevices for the document, each a vol-id=/dev/name of a volume being frozen', () => {
    const event = (volumeDevices: unknown) => ({
      ...STEP,
      documentName: 'Doc',
      instanceId: 'i-0123456789abcdef0',
      executionId: 'x',
      volumeIds: VOLS,
      ...(volumeDevices === undefined ? {} : { volumeDevices }),
      notAfter: '2026-11-22T02:15:00Z',
      watchdogSeconds: 90,
      hookTimeoutSeconds: 30,
      include: '',
      exclude: '',
      timeoutSeconds: 60,
    });
    // Absent: input written before the field existed.
    expect(parseFreezeStepRequest(event(undefined))).toMatchObject({ volumeDevices: '' });
    expect(parseFreezeStepRequest(event([]))).toMatchObject({ volumeDevices: '' });
    expect(
      parseFreezeStepRequest(event(['vol-0aaaaaaaaaaaaaaa2=/dev/sdf', 'vol-0aaaaaaaaaaaaaaa1=/dev/xvda'])),
    ).toMatchObject({ volumeDevices: 'vol-0aaaaaaaaaaaaaaa2=/dev/sdf,vol-0aaaaaaaaaaaaaaa1=/dev/xvda' });
    for (const bad of [
      'vol-0aaaaaaaaaaaaaaa1=/dev/sdf',
      ['vol-0aaaaaaaaaaaaaaa1=sdf'],
      ['vol-0aaaaaaaaaaaaaaa1=/dev/sdf;reboot'],
      ['vol-0aaaaaaaaaaaaaaa1=/dev/sdf,vol-0aaaaaaaaaaaaaaa2=/dev/sdg'],
      ['vol-0bbbbbbbbbbbbbbb1=/dev/sdf'],
      ['vol-0aaaaaaaaaaaaaaa1=/dev/sdf', 'vol-0aaaaaaaaaaaaaaa1=/dev/xvdf'],
      [null],
    ]) {
      expect(() => parseFreezeStepRequest(event(bad)), JSON.stringify(bad)).toThrow(
        `Invalid volumeDevices: got ${JSON.stringify(bad)}; allowed: a list of vol-id=/dev/name`,
      );
    }
  });

  it('takes as many volume ids as the freeze document does, and no more', () => {
    const freezeEvent = (n: number) => ({
      ...STEP,
      documentName: 'Doc',
      instanceId: 'i-0123456789abcdef0',
      executionId: 'x',
      volumeIds: Array.from({ length: n }, (_, i) => `vol-${String(i).padStart(17, '0')}`),
      notAfter: '2026-11-22T02:15:00Z',
      watchdogSeconds: 90,
      hookTimeoutSeconds: 30,
      include: '',
      exclude: '',
      timeoutSeconds: 60,
    });
    expect(parseFreezeStepRequest(freezeEvent(MAX_FREEZE_VOLUMES))).toMatchObject({
      volumeIds: expect.any(Array),
    });
    expect(() => parseFreezeStepRequest(freezeEvent(MAX_FREEZE_VOLUMES + 1))).toThrow(
      `allowed: 1 to ${MAX_FREEZE_VOLUMES} ids`,
    );
  });

  it('classifies throttling and 5xx as transient, access errors as permanent', () => {
    expect(isTransient(sdkError('ThrottlingException'))).toBe(true);
    expect(isTransient(sdkError('Whatever', 503))).toBe(true);
    expect(isTransient(sdkError('AccessDeniedException', 400))).toBe(false);
  });
});
