/** The shared waits of the freeze path: a command's end, the active-job check, the poll schedules. */
import { BackupClient, DescribeBackupJobCommand, ListBackupJobsCommand } from '@aws-sdk/client-backup';
import { DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { activeJobs } from '../../../lambda/shared/backup-jobs';
import { pollDelayMs } from '../../../lambda/shared/calls';
import { COMMAND_POLL, waitForCommand } from '../../../lambda/shared/command-wait';
import { JOB_CHECK_MS, SNAPSHOT_POLL, waitForSnapshots } from '../../../lambda/start-backup/snapshots';
import { fakeClock, FROZEN_AT, freezeResult, half, sdkError, T0 } from '../freeze-path';

const ssm = mockClient(SSMClient);
const backup = mockClient(BackupClient);
const ec2 = mockClient(EC2Client);
afterEach(() => {
  ssm.reset();
  backup.reset();
  ec2.reset();
});

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
