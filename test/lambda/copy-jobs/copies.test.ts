import { BackupClient } from '@aws-sdk/client-backup';
import { EC2Client } from '@aws-sdk/client-ec2';
import type { SQSEvent } from 'aws-lambda';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type BackupEvent,
  CopiesNotStartedError,
  type CopyDeps,
  copyIdempotencyToken,
  handleCopyJobEvent,
  reportLastAttempt,
  startCopies,
  sweepCopies,
} from '../../../lambda/copy-jobs/copies';
import { readCopySettings } from '../../../lambda/copy-jobs/settings';
import { processQueue } from '../../../lambda/shared/deferred-queue';
import { expectValidPublish, harness, outcome, summary } from '../notifications/fixtures';
import { ACCOUNT, BACKUP_ROLE, FakeCopyAws, OTHER_ACCOUNT, REGION, VAULT, VAULT_ARN } from './fake-aws';

const INSTANCE = 'i-0123456789abcdef0';
const AMI = 'ami-0aaaaaaaaaaaaaaa1';
const JOB = 'A827233A-D405-4A86-A440-759FA94F34DD';
const SAME_ACCOUNT_DR = `arn:aws:backup:eu-central-1:${ACCOUNT}:backup-vault:Ec2ConsistentBackup-copy`;
const OTHER_ACCOUNT_DR = `arn:aws:backup:us-east-1:${OTHER_ACCOUNT}:backup-vault:central`;
const COMPLETED_AT = new Date('2026-11-22T02:40:00Z');
const LABEL = {
  'ConsistentBackup:Consistency': 'application',
  'ConsistentBackup:Reason': 'frozen 2 filesystems after 1 pre-freeze hook',
  'ConsistentBackup:FreezeMs': '2140',
  'ConsistentBackup:Execution': `${INSTANCE}-20261122T0200Z`,
  'ConsistentBackup:Window': '2026-11-22T02:00:00Z',
  'ConsistentBackup:Instance': INSTANCE,
  Name: 'db-01',
  ConsistentBackup: 'enabled',
};

/** The COMPLETED example of the AWS Backup guide's EventBridge page, for an EC2 job of ours. */
function backupCompleted(jobId = JOB): BackupEvent {
  return {
    'detail-type': 'Backup Job State Change',
    account: ACCOUNT,
    region: REGION,
    time: COMPLETED_AT.toISOString(),
    resources: [`arn:aws:ec2:${REGION}::image/${AMI}`],
    detail: {
      backupJobId: jobId,
      state: 'COMPLETED',
      backupVaultName: VAULT,
      resourceArn: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${INSTANCE}`,
      resourceType: 'EC2',
      iamRoleArn: BACKUP_ROLE,
      completionDate: COMPLETED_AT.toISOString(),
    },
  };
}

/**
 * The Copy Job State Change examples (AWS Backup guide, "Monitoring AWS Backup events using Amazon
 * EventBridge"): a FAILED one carries `destinationRecoveryPointArn: {}`, a COMPLETED one the copy's
 * ARN (for EC2 the AMI in the destination Region), which the fake AWS assigned when it finished it.
 */
function copyEvent(
  copyJobId: string,
  state: string,
  destinationVaultArn: string,
  statusMessage?: string,
  aws?: FakeCopyAws,
): BackupEvent {
  const destination = state === 'COMPLETED' ? aws?.copyJob(copyJobId).DestinationRecoveryPointArn : {};
  return {
    'detail-type': 'Copy Job State Change',
    account: ACCOUNT,
    region: REGION,
    time: '2026-11-22T03:10:00Z',
    resources: [`arn:aws:ec2:${REGION}::image/${AMI}`],
    detail: {
      copyJobId,
      state,
      resourceArn: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${INSTANCE}`,
      resourceType: 'EC2',
      iamRoleArn: BACKUP_ROLE,
      sourceBackupVaultArn: VAULT_ARN,
      destinationBackupVaultArn: destinationVaultArn,
      ...(destination ? { destinationRecoveryPointArn: destination } : {}),
      ...(statusMessage ? { statusMessage } : {}),
    },
  };
}

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
});

function setup(label: Record<string, string> = LABEL, start = new Date('2026-11-22T02:45:00Z')) {
  const h = harness(start);
  const aws = new FakeCopyAws();
  const { backup, ec2 } = aws.install();
  cleanup.push(() => {
    backup.restore();
    ec2.restore();
    h.snsMock.restore();
    h.dynamodbMock.restore();
  });
  aws.clock = h.now;
  aws.images.set(`${REGION}/${AMI}`, { region: REGION, imageId: AMI, tags: { ...label } });
  aws.jobs.set(JOB, { backupJobId: JOB, instanceId: INSTANCE, imageId: AMI, completedAt: COMPLETED_AT });
  const settings = readCopySettings({
    SOURCE_VAULT_NAME: VAULT,
    BACKUP_ROLE_ARN: BACKUP_ROLE,
    COPY_DESTINATIONS: JSON.stringify([
      { vaultArn: SAME_ACCOUNT_DR, retentionDays: 90 },
      { vaultArn: OTHER_ACCOUNT_DR, retentionDays: 365 },
    ]),
    LABEL_WAIT_MINUTES: '30',
    MAX_RECEIVES: '50',
  });
  const deps: CopyDeps = {
    backup: new BackupClient({ region: REGION }),
    ec2: new EC2Client({ region: REGION }),
    ec2In: (region) => aws.ec2In(region),
    notifier: h.notifier,
    settings,
    clock: h.now,
  };
  return { h, aws, deps };
}

/** The run's copy counters, summed over its counter shards as the run summary sums them. */
async function counters(h: ReturnType<typeof harness>) {
  const { totals } = await h.notifier.readRun('run-20261122T0200Z');
  return { started: totals.copiesStarted, completed: totals.copiesCompleted, failed: totals.copiesFailed };
}

describe('copy-jobs: starting copies when a backup job of ours completes', () => {
  it('starts one copy per destination with its retention and an idempotency token, once however often the event comes', async () => {
    const { h, aws, deps } = setup();
    const first = await startCopies(backupCompleted(), deps);
    const again = await startCopies(backupCompleted(), deps);

    expect(first).toMatchObject({ action: 'started', label: 'application', notStarted: [] });
    expect(aws.startCalls).toHaveLength(4);
    expect(aws.startCalls[0]).toEqual({
      RecoveryPointArn: `arn:aws:ec2:${REGION}::image/${AMI}`,
      SourceBackupVaultName: VAULT,
      DestinationBackupVaultArn: SAME_ACCOUNT_DR,
      IamRoleArn: BACKUP_ROLE,
      IdempotencyToken: copyIdempotencyToken(JOB, SAME_ACCOUNT_DR),
      Lifecycle: { DeleteAfterDays: 90 },
    });
    expect(aws.startCalls[1].Lifecycle).toEqual({ DeleteAfterDays: 365 });
    // The token makes AWS Backup answer the repeat with the same jobs: nothing new started.
    expect(again).toEqual(first);
    expect(aws.copyJobs.size).toBe(2);
    expect(await counters(h)).toEqual({ started: 2, completed: 0, failed: 0 });
    expect(h.published).toHaveLength(0);
  });

  it('waits for the final label on the source, then copies anyway once the wait is over', async () => {
    const { h, aws, deps } = setup({ ...LABEL, 'ConsistentBackup:Consistency': 'pending' });
    const early = await startCopies(backupCompleted(), deps);
    expect(early.action).toBe('waiting');
    expect(early).toMatchObject({ reason: expect.stringMatching(/label .* is pending 5 min after/) });
    expect(aws.startCalls).toHaveLength(0);

    h.advance(10);
    aws.images.get(`${REGION}/${AMI}`)!.tags['ConsistentBackup:Consistency'] = 'filesystem';
    expect(await startCopies(backupCompleted(), deps)).toMatchObject({
      action: 'started',
      label: 'filesystem',
    });

    const late = setup(
      { ...LABEL, 'ConsistentBackup:Consistency': 'pending' },
      new Date('2026-11-22T03:11:00Z'),
    );
    expect(await startCopies(backupCompleted(), late.deps)).toMatchObject({
      action: 'started',
      label: 'pending',
    });
  });

  it('leaves jobs of anyone else alone: another role or another vault', async () => {
    const { aws, deps } = setup();
    aws.jobs.set('OTHER', {
      backupJobId: 'OTHER',
      instanceId: INSTANCE,
      imageId: AMI,
      completedAt: COMPLETED_AT,
      role: `arn:aws:iam::${ACCOUNT}:role/service-role/AWSBackupDefaultServiceRole`,
    });
    expect(await startCopies(backupCompleted('OTHER'), deps)).toMatchObject({
      action: 'ignored',
      reason: expect.stringMatching(/not started by ec2-consistent-backup/),
    });
    expect(
      await startCopies({ ...backupCompleted(), detail: { state: 'FAILED', backupJobId: JOB } }, deps),
    ).toMatchObject({
      action: 'ignored',
    });
    expect(aws.startCalls).toHaveLength(0);
  });

  it('reports a copy AWS Backup refused once, as a Major copy-not-started, and still starts the others', async () => {
    const { h, aws, deps } = setup();
    aws.startErrors.set(OTHER_ACCOUNT_DR, [
      Object.assign(new Error('Insufficient privileges to perform this action.'), {
        name: 'AccessDeniedException',
      }),
      Object.assign(new Error('Insufficient privileges to perform this action.'), {
        name: 'AccessDeniedException',
      }),
    ]);
    const result = await startCopies(backupCompleted(), deps);
    await startCopies(backupCompleted(), deps);

    expect(result).toMatchObject({
      action: 'started',
      started: [{ vaultArn: SAME_ACCOUNT_DR }],
      notStarted: [{ vaultArn: OTHER_ACCOUNT_DR, error: expect.stringMatching(/^AccessDeniedException/) }],
    });
    expect(h.published).toHaveLength(1);
    const n = expectValidPublish(h.published[0]);
    expect(n).toMatchObject({ eventType: 'copy-not-started', severity: 'Major', instanceId: INSTANCE });
    expect(n.event.resource).toBe('copy');
    expect(n.event.message_key).toBe(`ec2-consistent-backup:${ACCOUNT}:${REGION}:${INSTANCE}:copy`);
    expect(n.event.description).toMatch(/central in 444455556666\/us-east-1|vault arn:aws:backup:us-east-1/);
    expect(n.event.additional_info).toMatchObject({
      destination_vault_arn: OTHER_ACCOUNT_DR,
      error: 'AccessDeniedException',
      run_id: 'run-20261122T0200Z',
    });
    expect(await counters(h)).toEqual({ started: 1, completed: 0, failed: 1 });
  });

  it('retries only the destinations that were throttled, and reports them on the last delivery', async () => {
    const { h, aws, deps } = setup();
    const throttled = () =>
      Object.assign(new Error('Rate exceeded'), {
        name: 'ThrottlingException',
        $retryable: { throttling: true },
      });
    aws.startErrors.set(SAME_ACCOUNT_DR, [throttled(), throttled(), throttled()]);
    const record = (attempt: number) => ({
      messageId: `m-${attempt}`,
      receiptHandle: 'r',
      body: JSON.stringify(backupCompleted()),
      attributes: { ApproximateReceiveCount: String(attempt) },
    });
    const handle = (body: unknown) =>
      startCopies(body as BackupEvent, deps).then(() => ({ kind: 'done' as const }));
    const options = {
      maxReceives: 2,
      onLastAttemptError: (body: unknown, err: unknown) => reportLastAttempt(body, err, deps),
    };

    const first = await processQueue({ Records: [record(1)] } as unknown as SQSEvent, handle, options);
    expect(first.batchItemFailures).toEqual([{ itemIdentifier: 'm-1' }]);
    expect(h.published).toHaveLength(0);
    await expect(startCopies(backupCompleted(), deps)).rejects.toThrow(CopiesNotStartedError);

    const last = await processQueue({ Records: [record(2)] } as unknown as SQSEvent, handle, options);
    expect(last.batchItemFailures).toEqual([]);
    const reported = h.published.map(expectValidPublish);
    expect(reported).toHaveLength(1);
    expect(reported[0].event.additional_info).toMatchObject({
      destination_vault_arn: SAME_ACCOUNT_DR,
      error: 'ThrottlingException',
    });
    // The other destination was started on the first delivery and only confirmed (same token) after.
    expect(aws.copyJobs.size).toBe(1);
  });
});

describe('copy-jobs: when a copy job of ours ends', () => {
  async function started(setupResult: ReturnType<typeof setup>) {
    const result = await startCopies(backupCompleted(), setupResult.deps);
    if (result.action !== 'started') throw new Error(`not started: ${JSON.stringify(result)}`);
    return Object.fromEntries(result.started.map((s) => [s.vaultArn, s.copyJobId]));
  }

  it('writes the final label on the copy in its Region, even when the label changed after the copy started', async () => {
    const s = setup();
    const ids = await started(s);
    // Job events relabelled the source after the copy started (e.g. VSS fell back): the copy must follow.
    s.aws.images.get(`${REGION}/${AMI}`)!.tags['ConsistentBackup:Consistency'] = 'crash';
    s.aws.images.get(`${REGION}/${AMI}`)!.tags['ConsistentBackup:Verified'] = 'verified 2026-11-20T05:12Z';
    s.aws.finishCopy(ids[SAME_ACCOUNT_DR], 'COMPLETED');

    const result = await handleCopyJobEvent(
      copyEvent(ids[SAME_ACCOUNT_DR], 'COMPLETED', SAME_ACCOUNT_DR, undefined, s.aws),
      s.deps,
    );

    expect(result).toMatchObject({ action: 'handled', state: 'COMPLETED', label: 'written' });
    expect(s.aws.createTags).toHaveLength(1);
    expect(s.aws.createTags[0].region).toBe('eu-central-1');
    const written = Object.fromEntries(s.aws.createTags[0].input.Tags!.map((t) => [t.Key, t.Value]));
    expect(written['ConsistentBackup:Consistency']).toBe('crash');
    expect(written['ConsistentBackup:Window']).toBe('2026-11-22T02:00:00Z');
    // Only this app's tags, and not the source's restore-test result: the copy itself was not tested.
    expect(Object.keys(written).every((k) => k.startsWith('ConsistentBackup:'))).toBe(true);
    expect(written['ConsistentBackup:Verified']).toBeUndefined();
    const copy = [...s.aws.images.values()].find((i) => i.region === 'eu-central-1');
    expect(copy?.tags['ConsistentBackup:Consistency']).toBe('crash');
    expect(await counters(s.h)).toEqual({ started: 2, completed: 1, failed: 0 });
  });

  it('cannot tag a copy in another account: it keeps the tags it was copied with', async () => {
    const s = setup();
    const ids = await started(s);
    s.aws.finishCopy(ids[OTHER_ACCOUNT_DR], 'COMPLETED');
    const result = await handleCopyJobEvent(
      copyEvent(ids[OTHER_ACCOUNT_DR], 'COMPLETED', OTHER_ACCOUNT_DR, undefined, s.aws),
      s.deps,
    );
    expect(result).toMatchObject({ label: 'carried' });
    expect(s.aws.createTags).toHaveLength(0);
  });

  it('turns a failed copy into one Major copy-failed, and the next completed copy clears it', async () => {
    const s = setup();
    const ids = await started(s);
    const id = ids[OTHER_ACCOUNT_DR];
    s.aws.finishCopy(id, 'FAILED', '"Access denied exception while trying to list tags"');
    const event = copyEvent(
      id,
      'FAILED',
      OTHER_ACCOUNT_DR,
      'Access denied exception while trying to list tags',
    );

    const first = await handleCopyJobEvent(event, s.deps);
    const repeat = await handleCopyJobEvent(event, s.deps);

    expect(first).toMatchObject({ action: 'handled', state: 'FAILED' });
    expect(repeat).toMatchObject({ action: 'handled', notifications: [] });
    expect(s.h.published).toHaveLength(1);
    const n = expectValidPublish(s.h.published[0]);
    expect(n).toMatchObject({ eventType: 'copy-failed', severity: 'Major' });
    expect(n.subject).toMatch(/Backup copy FAILED for i-0123456789abcdef0 \(db-01\)/);
    expect(n.event.description).toContain(
      'AWS Backup says: Access denied exception while trying to list tags',
    );
    expect(n.event.additional_info).toMatchObject({
      copy_job_id: id,
      copy_job_state: 'FAILED',
      consistency: 'application',
      console_link: expect.stringContaining(`#/jobs/copy/details/${id}`),
    });
    expect(n.event.additional_info.destination_recovery_point_arn).toBeUndefined();
    expect(await counters(s.h)).toEqual({ started: 2, completed: 0, failed: 1 });

    s.aws.finishCopy(ids[SAME_ACCOUNT_DR], 'COMPLETED');
    const ok = await handleCopyJobEvent(
      copyEvent(ids[SAME_ACCOUNT_DR], 'COMPLETED', SAME_ACCOUNT_DR, undefined, s.aws),
      s.deps,
    );
    expect(ok.action === 'handled' && ok.notifications.map((x) => x.eventType)).toEqual(['problem-cleared']);
    const clear = expectValidPublish(s.h.published[1]);
    expect(clear).toMatchObject({
      severity: 'Clear',
      event: { resource: 'copy', resolution_state: 'Closing' },
    });
    expect(clear.event.message_key).toBe(n.event.message_key);
  });

  it('ignores copy jobs it did not start', async () => {
    const s = setup();
    const ids = await started(s);
    const job = s.aws.copyJobs.get(ids[SAME_ACCOUNT_DR])!;
    job.input = { ...job.input, IamRoleArn: `arn:aws:iam::${ACCOUNT}:role/someone-else` };
    expect(
      await handleCopyJobEvent(
        copyEvent(ids[SAME_ACCOUNT_DR], 'COMPLETED', SAME_ACCOUNT_DR, undefined, s.aws),
        s.deps,
      ),
    ).toMatchObject({
      action: 'ignored',
    });
    expect(
      await handleCopyJobEvent(copyEvent(ids[SAME_ACCOUNT_DR], 'RUNNING', SAME_ACCOUNT_DR), s.deps),
    ).toMatchObject({
      action: 'ignored',
      reason: expect.stringMatching(/not final/),
    });
  });

  it('counts copies in the run summary', async () => {
    const s = setup();
    const ids = await started(s);
    s.aws.finishCopy(ids[SAME_ACCOUNT_DR], 'COMPLETED');
    await handleCopyJobEvent(
      copyEvent(ids[SAME_ACCOUNT_DR], 'COMPLETED', SAME_ACCOUNT_DR, undefined, s.aws),
      s.deps,
    );
    await s.h.notifier.recordDiscovery(summary({ discovered: 1, started: 1 }), []);
    await s.h.notifier.recordOutcome(
      outcome({
        outcome: 'backed-up',
        instanceId: INSTANCE,
        verdict: { consistency: 'application', reason: 'frozen', freezeMs: 2140 },
      }),
    );
    const run = s.h.published.map(expectValidPublish).find((n) => n.eventType === 'run-summary');
    expect(run?.event.description).toContain('Copies so far: started 2, completed 1, failed 0.');
    expect(run?.event.additional_info).toMatchObject({
      copies_started: '2',
      copies_completed: '1',
      copies_failed: '0',
    });
    expect(run?.severity).toBe('OK');
  });
});

describe('copy-jobs: the hourly sweep for events EventBridge did not deliver', () => {
  it('starts the copies of a completed job whose event never came, once', async () => {
    const s = setup();
    const first = await sweepCopies(s.deps);
    expect(first).toMatchObject({ completedJobs: 1, restarted: [{ backupJobId: JOB, action: 'started' }] });
    expect(s.aws.copyJobs.size).toBe(2);
    s.h.advance(60);
    const second = await sweepCopies(s.deps);
    expect(second).toMatchObject({ completedJobs: 1, copiesSeen: 2, restarted: [] });
    expect(await counters(s.h)).toEqual({ started: 2, completed: 0, failed: 0 });
  });

  it('reports a failed copy whose event never came, once over many sweeps', async () => {
    const s = setup();
    const result = await startCopies(backupCompleted(), s.deps);
    if (result.action !== 'started') throw new Error('not started');
    s.aws.finishCopy(
      result.started[1].copyJobId,
      'FAILED',
      'Access denied exception while trying to list tags',
    );
    expect((await sweepCopies(s.deps)).failedCopiesReported).toBe(1);
    expect((await sweepCopies(s.deps)).failedCopiesReported).toBe(0);
    expect(s.h.published.map((p) => expectValidPublish(p).eventType)).toEqual(['copy-failed']);
    expect((await counters(s.h)).failed).toBe(1);
  });

  it('leaves backup jobs of anyone else alone', async () => {
    const s = setup();
    s.aws.jobs.set(JOB, {
      backupJobId: JOB,
      instanceId: INSTANCE,
      imageId: AMI,
      completedAt: COMPLETED_AT,
      role: `arn:aws:iam::${ACCOUNT}:role/service-role/AWSBackupDefaultServiceRole`,
    });
    expect(await sweepCopies(s.deps)).toMatchObject({ completedJobs: 0, restarted: [] });
    expect(s.aws.startCalls).toHaveLength(0);
  });
});

describe('copy-jobs settings', () => {
  it('names the variable, the value and what is allowed', () => {
    expect(() =>
      readCopySettings({ SOURCE_VAULT_NAME: VAULT, BACKUP_ROLE_ARN: BACKUP_ROLE, COPY_DESTINATIONS: '[]' }),
    ).toThrow(/COPY_DESTINATIONS is "\[\]"; allowed: a non-empty JSON array/);
    expect(() => readCopySettings({ SOURCE_VAULT_NAME: 'x' })).toThrow(/SOURCE_VAULT_NAME is "x"/);
  });
});
