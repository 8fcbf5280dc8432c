import { BackupClient, ListBackupJobsCommand } from '@aws-sdk/client-backup';
import { GetCommandInvocationCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { freezeStep, parseFreezeStepRequest } from '../../../lambda/freeze-filesystems/step';
import { fakeClock, T0, VOLS } from '../freeze-path';

const ssm = mockClient(SSMClient);
const backup = mockClient(BackupClient);
afterEach(() => {
  ssm.reset();
  backup.reset();
});

const request = parseFreezeStepRequest({
  documentName: 'Ecb-Freeze',
  instanceId: 'i-0123456789abcdef0',
  instanceArn: 'arn:aws:ec2:eu-west-1:111122223333:instance/i-0123456789abcdef0',
  executionId: 'i-0123456789abcdef0-20261122T0200Z',
  volumeIds: VOLS,
  notAfter: '2026-11-22T02:15:00Z',
  watchdogSeconds: 90,
  hookTimeoutSeconds: 30,
  include: '',
  exclude: '',
  timeoutSeconds: 180,
  freezeBudgetSeconds: 60,
  thawMarginSeconds: 3,
  input: { volumeDevices: ['vol-0aaaaaaaaaaaaaaa1=/dev/sdf'] },
});
const clients = () => ({ ssm: new SSMClient({}), backup: new BackupClient({}) });
const stdout = (o: Record<string, unknown>) => JSON.stringify({ schemaVersion: 1, action: 'freeze', ...o });

describe('the Freeze Filesystems step', () => {
  it('reads the optional device names from the execution input it is given whole', () => {
    expect(request.volumeDevices).toBe('vol-0aaaaaaaaaaaaaaa1=/dev/sdf');
  });

  it('frozen: the freeze time on both clocks, the watchdog deadline, and the budget left for the next task', async () => {
    const clock = fakeClock();
    backup.on(ListBackupJobsCommand).resolves({ BackupJobs: [] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c1' } });
    // The instance froze 300 ms after the send; its clock runs 2 s ahead of AWS's.
    ssm.on(GetCommandInvocationCommand).callsFake(() => ({
      Status: 'Success',
      StandardOutputContent: stdout({
        status: 'frozen',
        frozenAtMs: clock.t + 2000,
        targets: [{ mountpoint: '/data' }],
        watchdog: { deadline: '2026-11-22T02:01:30Z' },
      }),
    }));
    const r = await freezeStep(clients(), clock, request);
    expect(r).toMatchObject({
      outcome: 'frozen',
      commandId: 'c1',
      watchdogDeadline: '2026-11-22T02:01:30Z',
      sentAtMs: T0,
    });
    // The conservative freeze time is when the result was seen, not the instance's later clock.
    expect(r.frozenAtAwsMs).toBe(clock.t);
    expect(r.frozenAtMs).toBe((r.frozenAtAwsMs as number) + 2000);
    // 60 s budget less the 3 s thaw margin, counted from the conservative freeze time, + 1 s.
    expect(r.budgetSeconds).toBe(58);
    expect(r.notAfter).toBe(new Date(T0 + 150_000).toISOString());
  });

  it('active-job: another job of the instance is active, so nothing is sent', async () => {
    backup.on(ListBackupJobsCommand).resolves({ BackupJobs: [] });
    backup
      .on(ListBackupJobsCommand, { ByState: 'RUNNING' })
      .resolves({ BackupJobs: [{ BackupJobId: 'j-1' }] });
    const r = await freezeStep(clients(), fakeClock(), request);
    expect(r).toMatchObject({ outcome: 'active-job', activeJobs: { active: true, jobIds: ['j-1'] } });
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
  });

  it('not-sent: past the input notAfter (the blast-radius slot), nothing is checked or sent', async () => {
    const r = await freezeStep(clients(), fakeClock(Date.parse('2026-11-22T02:16:00Z')), request);
    expect(r.outcome).toBe('not-sent');
    expect(r.detail).toMatch(/past the input's notAfter/);
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
    expect(backup.commandCalls(ListBackupJobsCommand)).toHaveLength(0);
  });

  it('a failed active-job check does not skip the window: the freeze goes ahead and the error is kept', async () => {
    backup
      .on(ListBackupJobsCommand)
      .rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException' }));
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c1' } });
    ssm.on(GetCommandInvocationCommand).resolves({
      Status: 'Success',
      StandardOutputContent: stdout({ status: 'nothing-to-freeze', targets: [] }),
    });
    const r = await freezeStep(clients(), fakeClock(), request);
    expect(r).toMatchObject({
      outcome: 'not-frozen',
      nothingToFreeze: true,
      activeJobsError: { Error: 'AccessDeniedException' },
    });
  });

  it('not-frozen: a freeze that failed on the instance is no freeze, and says why', async () => {
    backup.on(ListBackupJobsCommand).resolves({ BackupJobs: [] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c1' } });
    ssm.on(GetCommandInvocationCommand).resolves({
      Status: 'Failed',
      StatusDetails: 'Failed',
      ResponseCode: 1,
      StandardOutputContent: stdout({ status: 'error', error: { code: 'HOOK_FAILED', message: 'hook x' } }),
    });
    const r = await freezeStep(clients(), fakeClock(), request);
    expect(r).toMatchObject({ outcome: 'not-frozen', nothingToFreeze: false, commandId: 'c1' });
    expect(r.detail).toMatch(/ended Failed: hook x/);
  });
});
