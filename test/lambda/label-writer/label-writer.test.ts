import * as os from 'node:os';
import { BackupClient, ListBackupJobsCommand, StartBackupJobCommand } from '@aws-sdk/client-backup';
import { CreateTagsCommand, DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import type { LabInstance } from '../../../lab/instance';
import { SimBackup, SimEc2 } from '../../../lab/sim/aws';
import { handleJobEvent } from '../../../lambda/job-events/job-events';
import {
  intervalPacer,
  type LabelWriterDeps,
  SWEEP_SETTLE_MINUTES,
  sweepPendingLabels,
  unrecordedVerdict,
  writeLabel,
} from '../../../lambda/label-writer/label-writer';
import type { ConsistencyVerdict } from '../../../lambda/shared/consistency';
import type { LabelRequest } from '../../../lambda/shared/labels';
import { ACCOUNT, harness, outcome, REGION } from '../notifications/fixtures';

const INSTANCE = 'i-0123456789abcdef0';
const PENDING = {
  'ConsistentBackup:Consistency': 'pending',
  'ConsistentBackup:Reason': 'backup started',
  'ConsistentBackup:FreezeMs': '0',
};
const FILESYSTEM: ConsistencyVerdict = {
  consistency: 'filesystem',
  reason: 'frozen while the snapshots started',
  freezeMs: 1450,
};

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
});

/**
 * The real label-writer and job-events logic against the lab's Backup and EC2 (lab/sim/aws.ts,
 * which answer as AWS does for EC2) and the real notifier over the in-memory table.
 */
function world() {
  const h = harness();
  cleanup.push(() => {
    h.snsMock.restore();
    h.dynamodbMock.restore();
  });
  const instance = {
    instanceId: INSTANCE,
    volumes: [{ volumeId: 'vol-0123456789abcdef0', snapshot: async () => undefined }],
  } as unknown as LabInstance;
  const ec2 = new SimEc2(new Map([[INSTANCE, instance]]), new Map());
  const backup = new SimBackup(new Map([[INSTANCE, instance]]), ec2, {
    startLatencyMs: 5,
    completionMs: 30,
    snapshotDir: os.tmpdir(),
  });
  const createTags: unknown[] = [];
  const countingEc2 = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      if (command.constructor.name === 'CreateTagsCommand') createTags.push(command.input);
      return ec2.send(command);
    },
  };
  const deps: LabelWriterDeps = {
    backup: backup as unknown as BackupClient,
    ec2: countingEc2 as unknown as EC2Client,
    jobs: h.notifier,
    pace: async () => undefined,
  };
  const requests: LabelRequest[] = [];
  /** The queue, delivering at once: every request goes to the label-writer. */
  const requestLabel = async (r: LabelRequest) => {
    requests.push(r);
    await writeLabel(r, deps);
  };
  const start = async () => {
    const out = await backup.send(
      new StartBackupJobCommand({
        BackupVaultName: 'ecb-vault',
        IamRoleArn: `arn:aws:iam::${ACCOUNT}:role/backup`,
        ResourceArn: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${INSTANCE}`,
        RecoveryPointTags: PENDING,
      }) as never,
    );
    return out as { BackupJobId: string };
  };
  const record = (backupJobId: string, verdict = FILESYSTEM) =>
    h.notifier.recordOutcome(outcome({ outcome: 'backed-up', instanceId: INSTANCE, backupJobId, verdict }));
  const completedEvent = (backupJobId: string) => ({
    'detail-type': 'Backup Job State Change',
    source: 'aws.backup',
    detail: { backupJobId, state: 'COMPLETED', resourceType: 'EC2' },
  });
  const imageOf = (backupJobId: string) =>
    String(backup.jobs.find((j) => j.BackupJobId === backupJobId)?.RecoveryPointArn ?? '').split('/')[1];
  return { h, ec2, backup, deps, requests, requestLabel, createTags, start, record, completedEvent, imageOf };
}

describe('the label lands, whichever comes first', () => {
  it('verdict first: the early request does nothing, the completion writes the final label once', async () => {
    const w = world();
    const { BackupJobId: id, ...rest } = await w.start();
    // What AWS returns for EC2: no RecoveryPointArn from StartBackupJob.
    expect(rest).not.toHaveProperty('RecoveryPointArn');

    await w.record(id);
    const early = await writeLabel({ kind: 'label', backupJobId: id, cause: 'verdict-recorded' }, w.deps);
    expect(early).toMatchObject({
      action: 'skipped',
      reason: expect.stringMatching(/its completion asks again/),
    });
    expect(w.createTags).toEqual([]);

    await w.backup.settled();
    const result = await handleJobEvent(w.completedEvent(id), {
      notifier: w.h.notifier,
      requestLabel: w.requestLabel,
      clock: w.h.now,
    });
    expect(result).toMatchObject({ action: 'handled', labelRequested: true });
    expect(w.createTags).toHaveLength(1);
    expect(w.ec2.imageTags.get(w.imageOf(id))).toEqual({
      'ConsistentBackup:Consistency': 'filesystem',
      'ConsistentBackup:Reason': 'frozen while the snapshots started',
      'ConsistentBackup:FreezeMs': '1450',
    });
  });

  it('job first: its event finds no verdict yet, and the verdict’s request writes the label', async () => {
    const w = world();
    const { BackupJobId: id } = await w.start();
    await w.backup.settled();
    expect(w.ec2.imageTags.get(w.imageOf(id))).toEqual(PENDING);

    const event = await handleJobEvent(w.completedEvent(id), {
      notifier: w.h.notifier,
      requestLabel: w.requestLabel,
      clock: w.h.now,
    });
    expect(event.action).toBe('ignored');
    expect(w.createTags).toEqual([]);
    // A request that arrives with no verdict stored writes nothing (pending is true until then).
    expect(await writeLabel({ kind: 'label', backupJobId: id, cause: 'job-ended' }, w.deps)).toMatchObject({
      action: 'skipped',
      reason: expect.stringMatching(/no verdict recorded yet/),
    });

    await w.record(id);
    await w.requestLabel({ kind: 'label', backupJobId: id, cause: 'verdict-recorded' });
    expect(w.createTags).toHaveLength(1);
    expect(w.ec2.imageTags.get(w.imageOf(id))?.['ConsistentBackup:Consistency']).toBe('filesystem');
  });

  it('a repeated request writes the same final label again, never a stale one', async () => {
    const w = world();
    const { BackupJobId: id } = await w.start();
    await w.record(id);
    await w.backup.settled();
    await w.requestLabel({ kind: 'label', backupJobId: id, cause: 'job-ended' });
    await w.requestLabel({ kind: 'label', backupJobId: id, cause: 'sweep' });
    expect(w.createTags).toHaveLength(2);
    expect(new Set(w.createTags.map((t) => JSON.stringify(t))).size).toBe(1);
  });

  it('leaves a failed job, an unknown job and a deleted image alone', async () => {
    const w = world();
    const missing = await writeLabel({ kind: 'label', backupJobId: 'NOPE', cause: 'job-ended' }, w.deps);
    expect(missing).toMatchObject({ action: 'skipped', reason: 'AWS Backup has no such job' });

    const backup = mockClient(BackupClient);
    const ec2 = mockClient(EC2Client);
    cleanup.push(() => {
      backup.restore();
      ec2.restore();
    });
    const deps = {
      ...w.deps,
      backup: new BackupClient({ region: REGION }),
      ec2: new EC2Client({ region: REGION }),
    };
    backup.onAnyCommand().resolves({ BackupJobId: 'f-1', State: 'FAILED', StatusMessage: 'Snapshot failed' });
    expect(await writeLabel({ kind: 'label', backupJobId: 'f-1', cause: 'job-ended' }, deps)).toMatchObject({
      action: 'skipped',
      reason: expect.stringMatching(/FAILED: it left no recovery point/),
    });

    await w.record('gone-1');
    backup.onAnyCommand().resolves({
      BackupJobId: 'gone-1',
      State: 'COMPLETED',
      RecoveryPointArn: `arn:aws:ec2:${REGION}::image/ami-0aaaaaaaaaaaaaaaa`,
    });
    ec2.on(CreateTagsCommand).rejects(Object.assign(new Error('gone'), { name: 'InvalidAMIID.NotFound' }));
    expect(
      await writeLabel({ kind: 'label', backupJobId: 'gone-1', cause: 'job-ended' }, deps),
    ).toMatchObject({
      action: 'skipped',
      reason: 'image ami-0aaaaaaaaaaaaaaaa no longer exists',
    });
    // Anything else is the queue's to retry.
    ec2
      .on(CreateTagsCommand)
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'RequestLimitExceeded' }));
    await expect(
      writeLabel({ kind: 'label', backupJobId: 'gone-1', cause: 'job-ended' }, deps),
    ).rejects.toThrow('Rate exceeded');
  });
});

describe('the sweep', () => {
  const NOW = new Date('2026-11-22T06:00:00Z');
  const image = (n: number) => `ami-0${String(n).repeat(16)}`;
  const arn = (n: number) => `arn:aws:ec2:${REGION}::image/${image(n)}`;

  function mocks() {
    const backup = mockClient(BackupClient);
    const ec2 = mockClient(EC2Client);
    cleanup.push(() => {
      backup.restore();
      ec2.restore();
    });
    const sent: LabelRequest[][] = [];
    const deps = {
      backup: new BackupClient({ region: REGION }),
      ec2: new EC2Client({ region: REGION }),
      vaultName: 'ecb-vault',
      send: async (requests: readonly LabelRequest[]) => {
        sent.push([...requests]);
        return requests.length;
      },
      clock: () => NOW,
    };
    return { backup, ec2, sent, deps };
  }

  it('finds a completed job whose AMI still reads pending and requests its label; the request labels it', async () => {
    const m = mocks();
    m.ec2.on(DescribeImagesCommand).resolves({
      Images: [
        { ImageId: image(1), CreationDate: '2026-11-22T02:00:05.000Z' },
        // Its job is still running: not completed, not requested.
        { ImageId: image(3), CreationDate: '2026-11-22T05:58:00.000Z' },
      ],
    });
    m.backup.on(ListBackupJobsCommand).resolves({
      BackupJobs: [
        { BackupJobId: 'job-1', State: 'COMPLETED', RecoveryPointArn: arn(1) },
        // Labelled already: its image is not among the pending ones.
        { BackupJobId: 'job-2', State: 'COMPLETED', RecoveryPointArn: arn(2) },
      ],
    });
    const result = await sweepPendingLabels(m.deps);
    expect(result).toEqual({ pendingImages: 2, completedJobs: 2, requested: ['job-1'] });
    expect(m.sent).toEqual([[{ kind: 'label', backupJobId: 'job-1', cause: 'sweep' }]]);
    // Quota-cheap: one filtered DescribeImages of this account's images, one page of this vault's completed jobs.
    expect(m.ec2.commandCalls(DescribeImagesCommand)[0].args[0].input).toMatchObject({
      Owners: ['self'],
      Filters: [{ Name: 'tag:ConsistentBackup:Consistency', Values: ['pending'] }],
      MaxResults: 1000,
    });
    expect(m.backup.commandCalls(ListBackupJobsCommand)[0].args[0].input).toMatchObject({
      ByBackupVaultName: 'ecb-vault',
      ByState: 'COMPLETED',
      ByCompleteAfter: new Date('2026-11-22T02:00:05.000Z'),
      ByCompleteBefore: new Date(NOW.getTime() - SWEEP_SETTLE_MINUTES * 60_000),
      MaxResults: 1000,
    });

    // The request, handled: with the stored verdict when there is one...
    const h = harness();
    cleanup.push(() => {
      h.snsMock.restore();
      h.dynamodbMock.restore();
    });
    m.backup.on(ListBackupJobsCommand).rejects(new Error('not called'));
    m.backup.onAnyCommand().resolves({ BackupJobId: 'job-1', State: 'COMPLETED', RecoveryPointArn: arn(1) });
    m.ec2.on(CreateTagsCommand).resolves({});
    const deps = { backup: m.deps.backup, ec2: m.deps.ec2, jobs: h.notifier, pace: async () => undefined };
    const unrecorded = await writeLabel(m.sent[0][0], deps);
    // ...and crash, the consistency every snapshot has, when the workflow recorded none.
    expect(unrecorded).toMatchObject({ action: 'labelled', verdict: unrecordedVerdict('job-1') });
    await h.notifier.recordOutcome(
      outcome({ outcome: 'backed-up', instanceId: INSTANCE, backupJobId: 'job-1', verdict: FILESYSTEM }),
    );
    expect(await writeLabel(m.sent[0][0], deps)).toMatchObject({ action: 'labelled', verdict: FILESYSTEM });
    // Only the sweep may label a job without a verdict: a verdict may still be on its way otherwise.
    const h2 = harness();
    cleanup.push(() => {
      h2.snsMock.restore();
      h2.dynamodbMock.restore();
    });
    expect(
      await writeLabel(
        { kind: 'label', backupJobId: 'job-1', cause: 'job-ended' },
        { ...deps, jobs: h2.notifier },
      ),
    ).toMatchObject({ action: 'skipped' });
  });

  it('costs one DescribeImages when nothing is pending, and pages through both lists when much is', async () => {
    const m = mocks();
    m.ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    expect(await sweepPendingLabels(m.deps)).toEqual({ pendingImages: 0, completedJobs: 0, requested: [] });
    expect(m.ec2.commandCalls(DescribeImagesCommand)).toHaveLength(1);
    expect(m.backup.commandCalls(ListBackupJobsCommand)).toHaveLength(0);

    m.ec2.reset();
    m.ec2
      .on(DescribeImagesCommand)
      .resolvesOnce({
        Images: [{ ImageId: image(1), CreationDate: '2026-11-22T01:00:00.000Z' }],
        NextToken: 't',
      })
      .resolves({ Images: [{ ImageId: image(2), CreationDate: '2026-11-22T02:00:00.000Z' }] });
    m.backup
      .on(ListBackupJobsCommand)
      .resolvesOnce({ BackupJobs: [{ BackupJobId: 'job-1', RecoveryPointArn: arn(1) }], NextToken: 'n' })
      .resolves({ BackupJobs: [{ BackupJobId: 'job-2', RecoveryPointArn: arn(2) }] });
    const result = await sweepPendingLabels(m.deps);
    expect(result.requested).toEqual(['job-1', 'job-2']);
    expect(m.backup.commandCalls(ListBackupJobsCommand)[1].args[0].input.NextToken).toBe('n');
  });

  it('never looks back further than the stored verdicts live', async () => {
    const m = mocks();
    m.ec2
      .on(DescribeImagesCommand)
      .resolves({ Images: [{ ImageId: image(1), CreationDate: '2026-10-01T00:00:00.000Z' }] });
    m.backup.on(ListBackupJobsCommand).resolves({ BackupJobs: [] });
    await sweepPendingLabels(m.deps);
    expect(m.backup.commandCalls(ListBackupJobsCommand)[0].args[0].input.ByCompleteAfter).toEqual(
      new Date(NOW.getTime() - 6 * 86_400_000),
    );
  });
});

describe('the pace', () => {
  it('spaces calls by the interval, also across calls made together', async () => {
    let now = 1_000;
    const slept: number[] = [];
    const pace = intervalPacer(
      500,
      () => now,
      async (ms) => {
        slept.push(ms);
        now += ms;
      },
    );
    const at: number[] = [];
    await Promise.all([1, 2, 3].map(() => pace().then(() => at.push(now))));
    expect(at).toEqual([1_000, 1_500, 2_000]);
    now += 200;
    await pace();
    expect(slept).toEqual([500, 500, 300]);
  });
});
