/**
 * Writes the final consistency label onto the AMI of each completed backup job, at a bounded pace,
 * and sweeps for recovery points still labelled `pending` after their job completed.
 *
 * Every request is handled from what AWS and the state table hold at that moment (see
 * lambda/shared/labels.ts): DescribeBackupJob gives the state, the recovery point (for EC2 the AMI,
 * `arn:aws:ec2:<region>::image/ami-...`, returned once the job has one) and the status message that
 * tells a Windows VSS fall-back; the stored job gives the verdict. The label is written only when
 * both are there, so the request that arrives first does nothing and the second writes the one
 * final label.
 *
 * Pace: EC2 CreateTags has a bucket of 100 and refills 10 per second per account and Region,
 * shared with everything else in the account (docs QUOTAS, "Request throttling for the Amazon EC2
 * API"). Each function instance spaces its CreateTags calls by `intervalMs`, and the queue's event
 * source runs at most `maxConcurrency` instances (lib/labels.ts), so the labels take at most
 * maxConcurrency x 1000 / intervalMs calls per second.
 */

import {
  type BackupClient,
  type BackupJob,
  DescribeBackupJobCommand,
  type DescribeBackupJobCommandOutput,
  ListBackupJobsCommand,
  type ListBackupJobsCommandOutput,
} from '@aws-sdk/client-backup';
import { DescribeImagesCommand, type DescribeImagesCommandOutput, type EC2Client } from '@aws-sdk/client-ec2';
import type { ConsistencyVerdict } from '../shared/consistency';
import { parseImageArn } from '../shared/image-tags';
import { finalVerdict, type LabelRequest } from '../shared/labels';
import type { StoredJob } from '../shared/notifier';
import { tagRecoveryPoint } from '../shared/recovery-point';
import { RECOVERY_POINT_TAGS } from '../shared/tags';

/** A job completed less than this long ago may still have its event or its verdict on the way. */
export const SWEEP_SETTLE_MINUTES = 15;
/** How far back the sweep looks: below the stored job's 7-day TTL, so the verdict is still there. */
export const SWEEP_HORIZON_DAYS = 6;

export interface LabelWriterDeps {
  readonly backup: Pick<BackupClient, 'send'>;
  readonly ec2: Pick<EC2Client, 'send'>;
  /** The stored verdicts (Notifier.getJob). */
  readonly jobs: { getJob(backupJobId: string): Promise<StoredJob | undefined> };
  /** Resolves when the next CreateTags may be sent (intervalPacer). */
  readonly pace: () => Promise<void>;
}

export type LabelResult =
  | {
      readonly action: 'labelled';
      readonly backupJobId: string;
      readonly imageId: string;
      readonly verdict: ConsistencyVerdict;
    }
  | { readonly action: 'skipped'; readonly backupJobId: string; readonly reason: string };

function errorName(err: unknown): string {
  return (err as { name?: string } | undefined)?.name ?? '';
}

/** The verdict a recovery point gets when its workflow recorded none (found only by the sweep). */
export function unrecordedVerdict(backupJobId: string): ConsistencyVerdict {
  return {
    consistency: 'crash',
    reason: `no verdict was recorded for backup job ${backupJobId} (its workflow did not record an outcome): only the crash consistency of the snapshots is known`,
    freezeMs: 0,
  };
}

export async function writeLabel(request: LabelRequest, deps: LabelWriterDeps): Promise<LabelResult> {
  const { backupJobId } = request;
  const skipped = (reason: string): LabelResult => ({ action: 'skipped', backupJobId, reason });
  let job: DescribeBackupJobCommandOutput;
  try {
    job = await deps.backup.send(new DescribeBackupJobCommand({ BackupJobId: backupJobId }));
  } catch (err) {
    if (errorName(err) === 'ResourceNotFoundException') return skipped('AWS Backup has no such job');
    throw err;
  }
  if (job.State !== 'COMPLETED') {
    return skipped(
      `the job is ${job.State ?? 'in no state'}: ${['CREATED', 'PENDING', 'RUNNING'].includes(job.State ?? '') ? 'its completion asks again' : 'it left no recovery point'}`,
    );
  }
  const image = parseImageArn(job.RecoveryPointArn);
  if (!image) {
    return skipped(`recovery point ${JSON.stringify(job.RecoveryPointArn)} is not an EC2 image`);
  }
  const stored = await deps.jobs.getJob(backupJobId);
  let verdict: ConsistencyVerdict;
  if (stored) verdict = finalVerdict(stored, job.BackupType, job.StatusMessage);
  else if (request.cause === 'sweep') verdict = unrecordedVerdict(backupJobId);
  else return skipped('no verdict recorded yet: record-outcome asks again when it records one');

  await deps.pace();
  try {
    await tagRecoveryPoint({ ec2: deps.ec2 }, job.RecoveryPointArn as string, verdict);
  } catch (err) {
    // Deleted by its retention (or by hand) before its label landed: nothing left to label.
    if (errorName(err).startsWith('InvalidAMIID')) return skipped(`image ${image.imageId} no longer exists`);
    throw err;
  }
  return { action: 'labelled', backupJobId, imageId: image.imageId, verdict };
}

export interface SweepDeps {
  readonly backup: Pick<BackupClient, 'send'>;
  readonly ec2: Pick<EC2Client, 'send'>;
  /** The vault every job of this app writes to. */
  readonly vaultName: string;
  /** Puts the requests on the label queue (lambda/shared/label-queue.ts sendLabelRequests). */
  readonly send: (requests: readonly LabelRequest[]) => Promise<number>;
  readonly clock?: () => Date;
}

export interface SweepResult {
  readonly pendingImages: number;
  readonly completedJobs: number;
  readonly requested: readonly string[];
}

/**
 * Finds the completed jobs whose AMI still carries `pending` and asks for their label. Quota-cheap:
 * one DescribeImages of this account's images by the label tag (EC2's non-mutating bucket, 100 /
 * 20 per second), which is usually empty and then ends the sweep; only when something is pending,
 * ListBackupJobs of this vault's completed jobs since the oldest pending image, 1,000 per page.
 */
export async function sweepPendingLabels(deps: SweepDeps): Promise<SweepResult> {
  const now = (deps.clock ?? (() => new Date()))();
  const pending = new Map<string, Date | undefined>();
  let token: string | undefined;
  do {
    const page: DescribeImagesCommandOutput = await deps.ec2.send(
      new DescribeImagesCommand({
        Owners: ['self'],
        Filters: [{ Name: `tag:${RECOVERY_POINT_TAGS.consistency}`, Values: ['pending'] }],
        MaxResults: 1000,
        NextToken: token,
      }),
    );
    for (const image of page.Images ?? []) {
      if (image.ImageId) {
        pending.set(image.ImageId, image.CreationDate ? new Date(image.CreationDate) : undefined);
      }
    }
    token = page.NextToken;
  } while (token);
  if (pending.size === 0) return { pendingImages: 0, completedJobs: 0, requested: [] };

  const horizon = now.getTime() - SWEEP_HORIZON_DAYS * 86_400_000;
  const created = [...pending.values()].map((d) => d?.getTime() ?? horizon);
  const after = new Date(Math.max(horizon, Math.min(...created)));
  const before = new Date(now.getTime() - SWEEP_SETTLE_MINUTES * 60_000);
  if (after >= before) return { pendingImages: pending.size, completedJobs: 0, requested: [] };

  const jobs: BackupJob[] = [];
  token = undefined;
  do {
    const page: ListBackupJobsCommandOutput = await deps.backup.send(
      new ListBackupJobsCommand({
        ByBackupVaultName: deps.vaultName,
        ByState: 'COMPLETED',
        ByCompleteAfter: after,
        ByCompleteBefore: before,
        MaxResults: 1000,
        NextToken: token,
      }),
    );
    jobs.push(...(page.BackupJobs ?? []));
    token = page.NextToken;
  } while (token);

  const requests: LabelRequest[] = [];
  for (const job of jobs) {
    const image = parseImageArn(job.RecoveryPointArn);
    if (job.BackupJobId && image && pending.has(image.imageId)) {
      requests.push({ kind: 'label', backupJobId: job.BackupJobId, cause: 'sweep' });
    }
  }
  if (requests.length > 0) await deps.send(requests);
  return {
    pendingImages: pending.size,
    completedJobs: jobs.length,
    requested: requests.map((r) => r.backupJobId),
  };
}

/**
 * Spaces calls by at least `intervalMs`: each call resolves no earlier than `intervalMs` after the
 * previous one did. Kept at module scope by the handler, so the spacing holds across the
 * invocations one function instance serves.
 */
export function intervalPacer(
  intervalMs: number,
  clock: () => number = Date.now,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): () => Promise<void> {
  let next = Number.NEGATIVE_INFINITY;
  let chain: Promise<void> = Promise.resolve();
  return () => {
    chain = chain.then(async () => {
      const wait = next - clock();
      if (wait > 0) await sleep(wait);
      next = clock() + intervalMs;
    });
    return chain;
  };
}
