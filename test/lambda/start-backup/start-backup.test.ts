/** Start Backup Job while frozen: StartBackupJob and the snapshot wait, both inside the freeze budget. */
import {
  BackupClient,
  DescribeBackupJobCommand,
  ListBackupJobsCommand,
  StartBackupJobCommand,
} from '@aws-sdk/client-backup';
import { DescribeSnapshotsCommand, EC2Client, type SnapshotState } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { MUTATING_CALL_MS, POLL_CALL_MS } from '../../../lambda/shared/calls';
import { budgetStartMs } from '../../../lambda/shared/workflow-results';
import { waitForSnapshots } from '../../../lambda/start-backup/snapshots';
import { BackupStartOverBudget, startBackupJob } from '../../../lambda/start-backup/start-job';
import {
  parseStartBackupStepRequest,
  startFrozenBackup,
  startUnfrozenBackup,
} from '../../../lambda/start-backup/step';
import { fakeClock, FROZEN_AT, freezeResult, half, hang, sdkError, VOLS } from '../freeze-path';

const ssm = mockClient(SSMClient);
const backup = mockClient(BackupClient);
const ec2 = mockClient(EC2Client);
afterEach(() => {
  ssm.reset();
  backup.reset();
  ec2.reset();
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
      const event = { mode: 'frozen', volumeIds: VOLS, ...request, freeze: { command: freezeResult() } };
      expect(parseStartBackupStepRequest(event)).toMatchObject({
        mode: 'frozen',
        job: { windowsVss: false },
      });
      expect(
        parseStartBackupStepRequest({ ...event, mode: 'windows-vss', startAt: '2026-11-22T02:00:00Z' }),
      ).toMatchObject({ mode: 'windows-vss', job: { windowsVss: true } });
      expect(() => parseStartBackupStepRequest({ ...event, iamRoleArn: 'role' })).toThrow(
        'Invalid iamRoleArn: got "role"',
      );
      expect(() => parseStartBackupStepRequest({ ...event, startWindowMinutes: 30 })).toThrow(
        'allowed: at least 60',
      );
      expect(() => parseStartBackupStepRequest({ ...event, recoveryPointTags: { a: 1 } })).toThrow(
        'Invalid recoveryPointTags',
      );
    });
  });
});

describe('the Start Backup Job step', () => {
  const job = {
    instanceArn: 'arn:aws:ec2:eu-west-1:111122223333:instance/i-0123456789abcdef0',
    backupVaultName: 'ec2-consistent-backup',
    iamRoleArn: 'arn:aws:iam::111122223333:role/ConsistentBackupRole',
    idempotencyToken: 'i-0123456789abcdef0-20261122T0200Z',
    recoveryPointTags: { 'ConsistentBackup:Consistency': 'pending' },
    startWindowMinutes: 60,
    freezeBudgetSeconds: 30,
    thawMarginSeconds: 3,
  };
  const frozen = {
    outcome: 'frozen',
    budgetSeconds: 28,
    frozenAtMs: FROZEN_AT,
    frozenAtAwsMs: FROZEN_AT,
    command: freezeResult(),
  };
  const clients = () => ({ ec2: new EC2Client({}), backup: new BackupClient({}) });

  it('frozen: starts the job and waits for the snapshots, answering with the job it started', async () => {
    backup
      .on(StartBackupJobCommand)
      .resolves({ BackupJobId: 'job-1', CreationDate: new Date(FROZEN_AT + 100) });
    backup.on(DescribeBackupJobCommand).resolves({ State: 'RUNNING' });
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: VOLS.map((v, i) => ({
        VolumeId: v,
        SnapshotId: `snap-${i}`,
        StartTime: new Date(FROZEN_AT + 500),
        State: 'pending',
      })),
    });
    const r = await startFrozenBackup(
      clients(),
      fakeClock(FROZEN_AT + 200),
      parseStartBackupStepRequest({ mode: 'frozen', ...job, volumeIds: VOLS, freeze: frozen }) as never,
      half,
    );
    expect(r).toMatchObject({
      status: 'started',
      answeredBy: 'start-backup',
      backupJob: { backupJobId: 'job-1' },
      missingVolumeIds: [],
    });
  });

  it('frozen: no job within the budget is budget-exceeded with no job and the error, so the thaw comes first', async () => {
    backup.on(StartBackupJobCommand).callsFake(hang);
    backup.on(ListBackupJobsCommand).resolves({ BackupJobs: [] });
    const clock = fakeClock(FROZEN_AT + 200);
    const r = await startFrozenBackup(
      clients(),
      clock,
      parseStartBackupStepRequest({ mode: 'frozen', ...job, volumeIds: VOLS, freeze: frozen }) as never,
      half,
    );
    expect(r).toMatchObject({ status: 'budget-exceeded', backupError: { Error: 'BackupStartOverBudget' } });
    expect(r.backupJob).toBeUndefined();
    expect(clock.t).toBeLessThanOrEqual(FROZEN_AT + (30 - 3) * 1000);
  });

  it('frozen: a freeze result that is not a freeze is answered at once, without a job', async () => {
    const step = (freeze: unknown) =>
      startFrozenBackup(
        clients(),
        fakeClock(),
        parseStartBackupStepRequest({ mode: 'frozen', ...job, volumeIds: VOLS, freeze }) as never,
      );
    expect((await step({ ...frozen, outcome: 'not-frozen' })).status).toBe('not-frozen');
    expect((await step({ ...frozen, frozenAtMs: 'x' })).status).toBe('freeze-output-invalid');
    expect(backup.commandCalls(StartBackupJobCommand)).toHaveLength(0);
  });

  it('unfrozen: a job of this execution (our vault and role, since startAt) is not "another active job"', async () => {
    const startAt = '2026-11-22T02:00:00Z';
    backup.on(ListBackupJobsCommand).resolves({ BackupJobs: [] });
    backup.on(ListBackupJobsCommand, { ByState: 'RUNNING' }).resolves({
      BackupJobs: [
        {
          BackupJobId: 'job-ours',
          BackupVaultName: job.backupVaultName,
          IamRoleArn: job.iamRoleArn,
          CreationDate: new Date(Date.parse(startAt) + 5000),
        },
      ],
    });
    backup.on(StartBackupJobCommand).resolves({ BackupJobId: 'job-ours' });
    const request = parseStartBackupStepRequest({ mode: 'unfrozen', ...job, startAt });
    const r = await startUnfrozenBackup(new BackupClient({}), fakeClock(), request as never);
    expect(r).toMatchObject({ started: true, backupJob: { backupJobId: 'job-ours' }, windowsVss: false });
    // Another plan's job, older than this window, is one: the window is skipped.
    backup.on(ListBackupJobsCommand, { ByState: 'RUNNING' }).resolves({
      BackupJobs: [{ BackupJobId: 'job-other', BackupVaultName: 'Default', CreationDate: new Date(0) }],
    });
    const skipped = await startUnfrozenBackup(new BackupClient({}), fakeClock(), request as never);
    expect(skipped).toMatchObject({ started: false, activeJobs: { active: true, jobIds: ['job-other'] } });
  });
});
