import {
  BackupClient,
  DescribeBackupJobCommand,
  ListBackupJobsCommand,
  StartBackupJobCommand,
} from '@aws-sdk/client-backup';
import { DescribeSnapshotsCommand, EC2Client, type SnapshotState } from '@aws-sdk/client-ec2';
import {
  GetCommandInvocationCommand,
  ListCommandsCommand,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import {
  activeJobs,
  BackupStartOverBudget,
  budgetStartMs,
  CallTimedOut,
  COMMAND_POLL,
  type Clock,
  FREEZE_LOOKUPS,
  FREEZE_RESULT_MARGIN_SECONDS,
  freeze,
  freezeNotAfter,
  isAmbiguous,
  isTransient,
  MUTATING_CALL_MS,
  JOB_CHECK_MS,
  parseProbeRequest,
  ProbeInputError,
  POLL_CALL_MS,
  pollDelayMs,
  SNAPSHOT_POLL,
  startBackupJob,
  waitForCommand,
  waitForSnapshots,
} from '../../../lambda/backup-probe/probe';
import { MAX_FREEZE_VOLUMES } from '../../../lambda/shared/outcome';

const ssm = mockClient(SSMClient);
const backup = mockClient(BackupClient);
const ec2 = mockClient(EC2Client);
afterEach(() => {
  ssm.reset();
  backup.reset();
  ec2.reset();
});

const T0 = Date.parse('2026-11-22T02:00:00Z');
function fakeClock(start = T0): Clock & { t: number; sleeps: number[]; abandoned: number[] } {
  const c = {
    t: start,
    sleeps: [] as number[],
    /** The limits of the calls that were abandoned (the timer won). */
    abandoned: [] as number[],
    now: () => c.t,
    sleep: async (ms: number) => {
      c.sleeps.push(ms);
      c.t += ms;
    },
    // A mocked call answers within microtasks; the timer fires only after them (setImmediate), and
    // then charges its whole limit to the clock: a hung call costs exactly its limit.
    timer: (ms: number) => {
      let cancelled = false;
      const done = new Promise<void>((resolve) => {
        setImmediate(() => {
          if (cancelled) return;
          c.abandoned.push(ms);
          c.t += ms;
          resolve();
        });
      });
      return {
        done,
        cancel: () => {
          cancelled = true;
        },
      };
    },
  };
  return c;
}
/** A call that never answers (a hung connection). */
const hang = () => new Promise<never>(() => undefined);
const half = () => 0.5;
const sdkError = (name: string, status = 400) =>
  Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });

const FROZEN_AT = T0 + 1000;
const freezeResult = (status = 'frozen') => ({
  succeeded: true,
  status: 'Success',
  commandId: 'c1',
  detail: '',
  stderr: '',
  stdout: `agent noise\n${JSON.stringify({ schemaVersion: 1, action: 'freeze', status, frozenAtMs: FROZEN_AT, targets: [] })}\n`,
});
const VOLS = ['vol-0aaaaaaaaaaaaaaa1', 'vol-0aaaaaaaaaaaaaaa2'];

describe('activeJobs', () => {
  it('asks for each active state and reports the job ids it finds', async () => {
    backup.on(ListBackupJobsCommand).resolves({ BackupJobs: [] });
    backup
      .on(ListBackupJobsCommand, { ByState: 'RUNNING' })
      .resolves({ BackupJobs: [{ BackupJobId: 'j-1' }] });
    const r = await activeJobs(
      new BackupClient({}),
      'arn:aws:ec2:eu-west-1:111122223333:instance/i-0123456789abcdef0',
    );
    expect(r).toEqual({ active: true, jobIds: ['j-1'] });
    const states = backup.commandCalls(ListBackupJobsCommand).map((c) => c.args[0].input.ByState);
    expect(states.sort()).toEqual(['ABORTING', 'CREATED', 'PENDING', 'RUNNING']);
  });

  it('reports no active job', async () => {
    backup.on(ListBackupJobsCommand).resolves({});
    expect(await activeJobs(new BackupClient({}), 'arn:aws:ec2:eu-west-1:1:instance/i-1')).toEqual({
      active: false,
      jobIds: [],
    });
  });
});

describe('waitForCommand', () => {
  const request = {
    command: { Command: { CommandId: 'c1' } },
    instanceId: 'i-0123456789abcdef0',
    timeoutSeconds: 30,
  };

  it('absorbs InvocationDoesNotExist and throttling, then returns the final output', async () => {
    ssm
      .on(GetCommandInvocationCommand)
      .rejectsOnce(sdkError('InvocationDoesNotExist'))
      .rejectsOnce(sdkError('ThrottlingException'))
      .resolvesOnce({ Status: 'InProgress' })
      .resolves({ Status: 'Success', StandardOutputContent: '{"x":1}', ResponseCode: 0 });
    const clock = fakeClock();
    const r = await waitForCommand(new SSMClient({}), clock, request, half);
    expect(r).toMatchObject({ succeeded: true, status: 'Success', stdout: '{"x":1}', commandId: 'c1' });
    expect(ssm.commandCalls(GetCommandInvocationCommand)).toHaveLength(4);
    expect(clock.t - T0).toBeLessThan(3000);
  });

  it('reports a failed command with its details and the end of stderr', async () => {
    ssm.on(GetCommandInvocationCommand).resolves({
      Status: 'Failed',
      StatusDetails: 'Failed',
      ResponseCode: 3,
      StandardErrorContent: 'line1\nhook 10-db exited 3\n',
    });
    const r = await waitForCommand(new SSMClient({}), fakeClock(), request, half);
    expect(r.succeeded).toBe(false);
    expect(r.detail).toMatch(/exit code 3.*hook 10-db exited 3/);
  });

  it('gives up at its deadline with WaitTimedOut', async () => {
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'InProgress' });
    const clock = fakeClock();
    const r = await waitForCommand(new SSMClient({}), clock, { ...request, timeoutSeconds: 5 }, half);
    expect(r).toMatchObject({ succeeded: false, status: 'WaitTimedOut' });
    expect(clock.t - T0).toBeGreaterThanOrEqual(5000);
    expect(clock.t - T0).toBeLessThan(6000);
  });

  it('returns NoCommandId without calling SSM when SendCommand gave no id', async () => {
    const r = await waitForCommand(new SSMClient({}), fakeClock(), { ...request, command: {} }, half);
    expect(r).toMatchObject({ succeeded: false, status: 'NoCommandId' });
    expect(ssm.commandCalls(GetCommandInvocationCommand)).toHaveLength(0);
  });

  it('throws a permanent error so the state machine catches it', async () => {
    ssm.on(GetCommandInvocationCommand).rejects(sdkError('AccessDeniedException'));
    await expect(waitForCommand(new SSMClient({}), fakeClock(), request, half)).rejects.toThrow(
      'AccessDeniedException',
    );
  });
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

describe('poll schedules', () => {
  it('polls snapshots every 250 ms for the first 5 s, then every second, each within ±20 %', () => {
    expect(SNAPSHOT_POLL).toEqual({ fastMs: 250, fastForMs: 5000, slowMs: 1000, jitter: 0.2 });
    expect(pollDelayMs(SNAPSHOT_POLL, 0, half)).toBe(250);
    expect(pollDelayMs(SNAPSHOT_POLL, 4999, half)).toBe(250);
    expect(pollDelayMs(SNAPSHOT_POLL, 5000, half)).toBe(1000);
    expect(pollDelayMs(SNAPSHOT_POLL, 0, () => 0)).toBe(200);
    expect(pollDelayMs(SNAPSHOT_POLL, 0, () => 0.999999)).toBe(300);
    expect(pollDelayMs(SNAPSHOT_POLL, 60_000, () => 0)).toBe(800);
    expect(pollDelayMs(SNAPSHOT_POLL, 60_000, () => 0.999999)).toBe(1200);
    // After a throttle the wait never returns to the fast schedule.
    expect(pollDelayMs(SNAPSHOT_POLL, 0, half, true)).toBe(1000);
  });

  it('polls commands every 200 ms for the first 2 s, then every 400 ms', () => {
    expect(pollDelayMs(COMMAND_POLL, 0, half)).toBe(200);
    expect(pollDelayMs(COMMAND_POLL, 1999, half)).toBe(200);
    expect(pollDelayMs(COMMAND_POLL, 2000, half)).toBe(400);
  });

  it('a waiting command is polled at the fast schedule first, InvocationDoesNotExist included', async () => {
    ssm
      .on(GetCommandInvocationCommand)
      .rejectsOnce(sdkError('InvocationDoesNotExist'))
      .resolves({ Status: 'InProgress' });
    const clock = fakeClock();
    await waitForCommand(
      new SSMClient({}),
      clock,
      { command: { Command: { CommandId: 'c1' } }, instanceId: 'i-0123456789abcdef0', timeoutSeconds: 3 },
      half,
    );
    expect(clock.sleeps.slice(0, 10)).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 200]);
    expect(clock.sleeps.slice(10, 12)).toEqual([400, 400]);
  });

  it('waits for snapshots on the schedule, asks for the job at most once a second, and slows down for good after a throttle', async () => {
    let snapshotCalls = 0;
    ec2.on(DescribeSnapshotsCommand).callsFake(() => {
      snapshotCalls += 1;
      if (snapshotCalls === 30) throw sdkError('RequestLimitExceeded');
      return { Snapshots: [] };
    });
    backup.on(DescribeBackupJobCommand).resolves({ State: 'RUNNING' });
    const clock = fakeClock(FROZEN_AT);
    const r = await waitForSnapshots(
      { ec2: new EC2Client({}), backup: new BackupClient({}) },
      clock,
      {
        volumeIds: ['vol-0123456789abcdef0'],
        freeze: freezeResult(),
        backupJob: { BackupJobId: 'job-1' },
        freezeBudgetSeconds: 60,
        thawMarginSeconds: 3,
      },
      half,
    );
    expect(r.status).toBe('budget-exceeded');
    // 5 s of 250 ms polls, then 1 s polls.
    expect(clock.sleeps.slice(0, 20)).toEqual(Array(20).fill(250));
    expect(clock.sleeps.slice(20, 29)).toEqual(Array(9).fill(1000));
    // The 30th poll was throttled: a backoff, then 1 s polls only.
    expect(clock.sleeps[29]).toBeGreaterThan(1000);
    expect(clock.sleeps.slice(30, -1).every((ms) => ms === 1000)).toBe(true);
    // DescribeBackupJob: once at the start, then no more than once per JOB_CHECK_MS.
    const jobCalls = backup.commandCalls(DescribeBackupJobCommand).length;
    expect(jobCalls).toBeLessThanOrEqual(Math.ceil(r.waitedMs / JOB_CHECK_MS) + 1);
    expect(jobCalls).toBeLessThan(snapshotCalls - 10);
  });
});

describe('waitForSnapshots', () => {
  const clients = () => ({ ec2: new EC2Client({}), backup: new BackupClient({}) });
  const request = {
    volumeIds: VOLS,
    freeze: freezeResult(),
    backupJob: { BackupJobId: 'job-1' },
    freezeBudgetSeconds: 30,
    thawMarginSeconds: 3,
  };
  const snap = (
    volumeId: string,
    startMs: number,
    State: SnapshotState = 'pending',
    SnapshotId = `snap-${startMs}`,
  ) => ({
    VolumeId: volumeId,
    SnapshotId,
    StartTime: new Date(startMs),
    State,
  });

  it('returns started once every volume has a snapshot that started at or after the freeze', async () => {
    let calls = 0;
    ec2.on(DescribeSnapshotsCommand).callsFake(() => {
      calls += 1;
      const old = [snap(VOLS[0], FROZEN_AT - 60_000, 'completed'), snap(VOLS[1], FROZEN_AT - 1, 'completed')];
      return {
        Snapshots: calls < 3 ? old : [...old, snap(VOLS[0], FROZEN_AT + 2000), snap(VOLS[1], FROZEN_AT)],
      };
    });
    backup.on(DescribeBackupJobCommand).resolves({ State: 'RUNNING' });
    const clock = fakeClock(FROZEN_AT + 500);
    const r = await waitForSnapshots(clients(), clock, request, half);
    expect(r.status).toBe('started');
    expect(r.snapshots.map((s) => s.volumeId).sort()).toEqual(VOLS);
    expect(r.missingVolumeIds).toEqual([]);
    expect(clock.sleeps.every((ms) => ms <= 1000)).toBe(true);
    const filters = ec2.commandCalls(DescribeSnapshotsCommand)[0].args[0].input;
    expect(filters).toMatchObject({ OwnerIds: ['self'], Filters: [{ Name: 'volume-id', Values: VOLS }] });
  });

  it('does not count a snapshot in error', async () => {
    ec2
      .on(DescribeSnapshotsCommand)
      .resolves({ Snapshots: [snap(VOLS[0], FROZEN_AT + 10), snap(VOLS[1], FROZEN_AT + 10, 'error')] });
    backup.on(DescribeBackupJobCommand).resolves({ State: 'RUNNING' });
    const r = await waitForSnapshots(clients(), fakeClock(FROZEN_AT), request, half);
    expect(r).toMatchObject({ status: 'budget-exceeded', missingVolumeIds: [VOLS[1]] });
  });

  it('stops at frozenAt + budget − margin with budget-exceeded', async () => {
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    backup.on(DescribeBackupJobCommand).resolves({ State: 'RUNNING' });
    const clock = fakeClock(FROZEN_AT + 400);
    const r = await waitForSnapshots(clients(), clock, request, half);
    expect(r.status).toBe('budget-exceeded');
    expect(clock.t).toBe(FROZEN_AT + 27_000);
  });

  it('returns job-failed as soon as the job fails', async () => {
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    backup.on(DescribeBackupJobCommand).resolvesOnce({ State: 'RUNNING' }).resolves({ State: 'FAILED' });
    const r = await waitForSnapshots(clients(), fakeClock(FROZEN_AT), request, half);
    expect(r).toMatchObject({ status: 'job-failed', jobState: 'FAILED' });
  });

  it('keeps polling through throttling, and throws a permanent error', async () => {
    ec2
      .on(DescribeSnapshotsCommand)
      .rejectsOnce(sdkError('RequestLimitExceeded'))
      .resolves({ Snapshots: VOLS.map((v) => snap(v, FROZEN_AT + 5)) });
    expect((await waitForSnapshots(clients(), fakeClock(FROZEN_AT), request, half)).status).toBe('started');
    ec2.reset();
    ec2.on(DescribeSnapshotsCommand).rejects(sdkError('UnauthorizedOperation'));
    await expect(waitForSnapshots(clients(), fakeClock(FROZEN_AT), request, half)).rejects.toThrow(
      'UnauthorizedOperation',
    );
  });

  it('does not wait when nothing was frozen or the freeze output is unreadable', async () => {
    const a = await waitForSnapshots(
      clients(),
      fakeClock(),
      { ...request, freeze: freezeResult('nothing-to-freeze') },
      half,
    );
    expect(a.status).toBe('not-frozen');
    const b = await waitForSnapshots(
      clients(),
      fakeClock(),
      { ...request, freeze: { stdout: 'Segmentation fault' } },
      half,
    );
    expect(b.status).toBe('freeze-output-invalid');
    expect(ec2.commandCalls(DescribeSnapshotsCommand)).toHaveLength(0);
  });
});

// Issue 13 item 2: the freeze budget holds on every path after the freeze.
describe('the freeze budget holds whatever a call does', () => {
  const waitRequest = {
    volumeIds: VOLS,
    freeze: freezeResult(),
    backupJob: { BackupJobId: 'job-1' },
    freezeBudgetSeconds: 30,
    thawMarginSeconds: 3,
  };
  const clients = () => ({ ec2: new EC2Client({}), backup: new BackupClient({}) });

  it('a hung DescribeSnapshots cannot hold the filesystems beyond frozenAt + budget − margin', async () => {
    ec2.on(DescribeSnapshotsCommand).callsFake(hang);
    backup.on(DescribeBackupJobCommand).callsFake(hang);
    const clock = fakeClock(FROZEN_AT + 400);
    const r = await waitForSnapshots(clients(), clock, waitRequest, half);
    expect(r.status).toBe('budget-exceeded');
    expect(clock.t).toBeLessThanOrEqual(FROZEN_AT + 27_000);
    expect(clock.abandoned.every((ms) => ms <= POLL_CALL_MS)).toBe(true);
  });

  it('a hung DescribeBackupJob is abandoned too, and the next poll finds the snapshots', async () => {
    let polls = 0;
    ec2.on(DescribeSnapshotsCommand).callsFake(() => {
      polls += 1;
      return {
        Snapshots:
          polls < 2
            ? []
            : VOLS.map((v, i) => ({
                VolumeId: v,
                SnapshotId: `snap-${i}`,
                StartTime: new Date(FROZEN_AT + 900),
                State: 'pending',
              })),
      };
    });
    backup.on(DescribeBackupJobCommand).callsFake(hang);
    const clock = fakeClock(FROZEN_AT + 400);
    const r = await waitForSnapshots(clients(), clock, waitRequest, half);
    expect(r.status).toBe('started');
    expect(clock.abandoned).toEqual([POLL_CALL_MS]);
    // Each snapshot says when the probe first saw it (item 8: the verdict compares it with the watchdog).
    expect(r.snapshots.map((x) => x.seenAtMs)).toEqual([clock.t, clock.t]);
  });

  it('an instance clock ahead of AWS cannot stretch the budget: it counts from the earlier of frozenAt and the wait start', async () => {
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    backup.on(DescribeBackupJobCommand).resolves({ State: 'RUNNING' });
    // The instance says it froze at FROZEN_AT; the wait starts (AWS clock) 60 s before that.
    const clock = fakeClock(FROZEN_AT - 60_000);
    const r = await waitForSnapshots(clients(), clock, waitRequest, half);
    expect(r.status).toBe('budget-exceeded');
    expect(clock.t).toBe(FROZEN_AT - 60_000 + 27_000);
    expect(budgetStartMs(FROZEN_AT, FROZEN_AT + 5)).toBe(FROZEN_AT);
  });

  describe('startBackupJob while frozen', () => {
    const request = {
      instanceArn: 'arn:aws:ec2:eu-west-1:111122223333:instance/i-0123456789abcdef0',
      backupVaultName: 'ec2-consistent-backup',
      iamRoleArn: 'arn:aws:iam::111122223333:role/ConsistentBackupRole',
      idempotencyToken: 'i-0123456789abcdef0-20261122T0200Z',
      recoveryPointTags: { 'ConsistentBackup:Consistency': 'pending' },
      lifecycle: { DeleteAfterDays: 35 },
      startWindowMinutes: 60,
      windowsVss: false,
      freeze: freezeResult(),
      freezeBudgetSeconds: 30,
      thawMarginSeconds: 3,
    };
    const tokens = () =>
      backup.commandCalls(StartBackupJobCommand).map((c) => c.args[0].input.IdempotencyToken);

    it('returns the job StartBackupJob created, with the documented input', async () => {
      // StartBackupJob's response for EC2 (API reference, StartBackupJob response elements):
      // BackupJobId, CreationDate, IsParent; no RecoveryPointArn.
      backup
        .on(StartBackupJobCommand)
        .resolves({ BackupJobId: 'job-1', CreationDate: new Date(FROZEN_AT + 600), IsParent: false });
      const r = await startBackupJob(new BackupClient({}), fakeClock(FROZEN_AT + 500), request, half);
      expect(r).toEqual({
        BackupJobId: 'job-1',
        CreationDate: new Date(FROZEN_AT + 600).toISOString(),
        IsParent: false,
        foundBy: 'StartBackupJob',
        attempts: 1,
      });
      expect(backup.commandCalls(StartBackupJobCommand)[0].args[0].input).toEqual({
        BackupVaultName: 'ec2-consistent-backup',
        ResourceArn: request.instanceArn,
        IamRoleArn: request.iamRoleArn,
        IdempotencyToken: request.idempotencyToken,
        StartWindowMinutes: 60,
        RecoveryPointTags: { 'ConsistentBackup:Consistency': 'pending' },
        Lifecycle: { DeleteAfterDays: 35 },
      });
    });

    it('an ambiguous failure is resolved by finding the job it created, not reported as "not started"', async () => {
      backup.on(StartBackupJobCommand).rejects(sdkError('ServiceUnavailableException', 503));
      // ListBackupJobs' BackupJob fields (API reference, BackupJob): the job the first attempt created.
      backup.on(ListBackupJobsCommand).resolves({
        BackupJobs: [
          {
            BackupJobId: 'job-created',
            CreationDate: new Date(FROZEN_AT + 700),
            IamRoleArn: request.iamRoleArn,
            State: 'CREATED',
          },
        ],
      });
      const clock = fakeClock(FROZEN_AT + 500);
      const r = await startBackupJob(new BackupClient({}), clock, request, half);
      expect(r).toMatchObject({ BackupJobId: 'job-created', foundBy: 'ListBackupJobs' });
      expect(backup.commandCalls(StartBackupJobCommand)).toHaveLength(1);
      expect(backup.commandCalls(ListBackupJobsCommand)[0].args[0].input).toMatchObject({
        ByResourceArn: request.instanceArn,
        ByBackupVaultName: request.backupVaultName,
        ByCreatedAfter: new Date(FROZEN_AT + 500 - 10_000),
      });
    });

    it('retries only while budget remains, each attempt with the same IdempotencyToken, and a retry finds the job', async () => {
      backup
        .on(StartBackupJobCommand)
        .rejectsOnce(sdkError('ThrottlingException'))
        .callsFakeOnce(hang)
        .resolves({ BackupJobId: 'job-1', CreationDate: new Date(FROZEN_AT + 9000) });
      // The look-up after the hung attempt finds nothing yet.
      backup.on(ListBackupJobsCommand).resolves({ BackupJobs: [] });
      const clock = fakeClock(FROZEN_AT + 500);
      const r = await startBackupJob(new BackupClient({}), clock, request, half);
      expect(r).toMatchObject({ BackupJobId: 'job-1', foundBy: 'StartBackupJob', attempts: 3 });
      expect(tokens()).toEqual(Array(3).fill(request.idempotencyToken));
      expect(clock.abandoned).toEqual([MUTATING_CALL_MS]);
      expect(clock.t).toBeLessThan(FROZEN_AT + 27_000);
    });

    it('a StartBackupJob that always hangs cannot exceed the budget: BackupStartOverBudget at frozenAt + budget − margin', async () => {
      backup.on(StartBackupJobCommand).callsFake(hang);
      backup.on(ListBackupJobsCommand).callsFake(hang);
      const clock = fakeClock(FROZEN_AT + 500);
      const err = await startBackupJob(new BackupClient({}), clock, request, half).catch((e) => e);
      expect(err).toBeInstanceOf(BackupStartOverBudget);
      expect(err.name).toBe('BackupStartOverBudget');
      expect(err.message).toMatch(/freeze budget \(30 s less a 3 s thaw margin\).*some ambiguous/);
      expect(clock.t).toBeLessThanOrEqual(FROZEN_AT + 27_000);
      const calls = backup.commandCalls(StartBackupJobCommand).length;
      expect(calls).toBeGreaterThan(1);
      expect(tokens()).toEqual(Array(calls).fill(request.idempotencyToken));
    });

    it('a rejected request (4xx) ends at once with its own error, which the state machine catches', async () => {
      backup.on(StartBackupJobCommand).rejects(sdkError('InvalidParameterValueException'));
      await expect(
        startBackupJob(new BackupClient({}), fakeClock(FROZEN_AT + 500), request, half),
      ).rejects.toThrow('InvalidParameterValueException');
      expect(backup.commandCalls(StartBackupJobCommand)).toHaveLength(1);
      expect(backup.commandCalls(ListBackupJobsCommand)).toHaveLength(0);
    });

    it('asks for VSS only on Windows, and validates its input naming the value', () => {
      const event = { action: 'startBackupJob', ...request };
      expect(parseProbeRequest(event)).toMatchObject({ action: 'startBackupJob', windowsVss: false });
      expect(() => parseProbeRequest({ ...event, iamRoleArn: 'role' })).toThrow(
        'Invalid iamRoleArn: got "role"',
      );
      expect(() => parseProbeRequest({ ...event, startWindowMinutes: 30 })).toThrow('allowed: at least 60');
      expect(() => parseProbeRequest({ ...event, recoveryPointTags: { a: 1 } })).toThrow(
        'Invalid recoveryPointTags',
      );
    });
  });
});

describe('parseProbeRequest', () => {
  it('names the bad value and what is allowed', () => {
    expect(() => parseProbeRequest({ action: 'thaw' })).toThrow(
      'Invalid action: got "thaw"; allowed: activeJobs, freeze, waitForCommand, waitForSnapshots, startBackupJob.',
    );
    expect(() => parseProbeRequest({ action: 'waitForSnapshots', volumeIds: ['vol-xyz'] })).toThrow(
      /Invalid volumeIds: got \["vol-xyz"\]/,
    );
    expect(() => parseProbeRequest({ action: 'activeJobs', instanceArn: 'i-1' })).toThrow(ProbeInputError);
    expect(() =>
      parseProbeRequest({
        action: 'freeze',
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
      action: 'freeze',
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
    expect(parseProbeRequest(event(undefined))).toMatchObject({ volumeDevices: '' });
    expect(parseProbeRequest(event([]))).toMatchObject({ volumeDevices: '' });
    expect(
      parseProbeRequest(event(['vol-0aaaaaaaaaaaaaaa2=/dev/sdf', 'vol-0aaaaaaaaaaaaaaa1=/dev/xvda'])),
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
      expect(() => parseProbeRequest(event(bad)), JSON.stringify(bad)).toThrow(
        `Invalid volumeDevices: got ${JSON.stringify(bad)}; allowed: a list of vol-id=/dev/name`,
      );
    }
  });

  it('takes as many volume ids as the freeze document does, and no more', () => {
    const freezeEvent = (n: number) => ({
      action: 'freeze',
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
    expect(parseProbeRequest(freezeEvent(MAX_FREEZE_VOLUMES))).toMatchObject({ action: 'freeze' });
    expect(() => parseProbeRequest(freezeEvent(MAX_FREEZE_VOLUMES + 1))).toThrow(
      `allowed: 1 to ${MAX_FREEZE_VOLUMES} ids`,
    );
  });

  it('classifies throttling and 5xx as transient, access errors as permanent', () => {
    expect(isTransient(sdkError('ThrottlingException'))).toBe(true);
    expect(isTransient(sdkError('Whatever', 503))).toBe(true);
    expect(isTransient(sdkError('AccessDeniedException', 400))).toBe(false);
  });
});
