/**
 * Copies of the recovery points this app makes, to other Regions and accounts (config
 * `copyDestinations` and `copyRegions`).
 *
 * 1. "Backup Job State Change" COMPLETED for our vault (through the queue, lambda/shared/deferred-queue.ts):
 *    StartCopyJob once per destination, with an idempotency token derived from the job and the
 *    destination, so a repeated delivery starts nothing new. StartCopyJob takes no tags; AWS Backup
 *    copies the source recovery point's tags to the copy ("Copying tags onto backups"), so the copy
 *    waits (up to LABEL_WAIT_MINUTES) until the consistency label on the source AMI is final.
 * 2. "Copy Job State Change" for a copy of ours: COMPLETED writes the source's current label on the
 *    destination AMI with ec2:CreateTags in the destination Region (a copy to another Region is
 *    another AMI; a label that changed after the copy started, e.g. a VSS fall-back, is carried
 *    over). A copy into another account cannot be tagged from here: it carries the tags the source
 *    had when the copy started. FAILED, PARTIAL or ABORTED is one Major notification.
 *
 * Fakes in the tests return what the AWS Backup API reference and its EventBridge examples show for
 * EC2: the recovery point ARN is the AMI's (`arn:aws:ec2:<region>::image/ami-...`), and a failed copy
 * event carries `destinationRecoveryPointArn: {}`.
 */

import { createHash } from 'node:crypto';
import {
  type BackupClient,
  type BackupJob,
  type CopyJob,
  DescribeBackupJobCommand,
  DescribeCopyJobCommand,
  ListBackupJobsCommand,
  ListCopyJobsCommand,
  StartCopyJobCommand,
} from '@aws-sdk/client-backup';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { isRetryableAwsError } from '../shared/deferred-queue';
import { runIdFor } from '../discovery/window';
import { ownTags, parseImageArn, readImageTags, writeImageTags } from '../shared/image-tags';
import { BACKUP_JOB_DETAIL_TYPE, type Notification } from '../shared/notification';
import {
  buildCopyFailedNotification,
  buildCopyNotStartedNotification,
  buildCopyRecoveredNotification,
  type CopyContext,
} from '../shared/notifications/protection';
import type { Notifier } from '../shared/notifier';
import { NAME_TAG, RECOVERY_POINT_TAGS } from '../shared/tags';
import type { CopySettings } from './settings';

export const COPY_JOB_DETAIL_TYPE = 'Copy Job State Change';
/** The input of the hourly rule: AWS Backup delivers its events best-effort, so a sweep catches up. */
export const COPY_SWEEP = { kind: 'ec2-consistent-backup/copy-sweep' } as const;
/** How far back the sweep looks: a day of backups, with the hour between two sweeps as margin. */
export const SWEEP_LOOKBACK_HOURS = 26;
/** Copy job states after which it changes no more (CopyJobState in the API reference, plus ABORTED). */
export const FINAL_COPY_STATES = ['COMPLETED', 'FAILED', 'PARTIAL', 'ABORTED'] as const;

/** What this function reads of an EventBridge event from AWS Backup (devguide, "Monitoring AWS Backup events using Amazon EventBridge"). */
export interface BackupEvent {
  readonly 'detail-type'?: string;
  readonly account?: string;
  readonly region?: string;
  readonly time?: string;
  readonly resources?: readonly string[];
  readonly detail?: {
    readonly backupJobId?: string;
    readonly copyJobId?: string;
    readonly state?: string;
    readonly statusMessage?: string;
    readonly backupVaultName?: string;
    readonly resourceArn?: string;
    readonly resourceType?: string;
    readonly iamRoleArn?: string;
    readonly completionDate?: string;
    readonly sourceBackupVaultArn?: string;
    readonly destinationBackupVaultArn?: string;
    /** A string once completed; `{}` in the FAILED example. */
    readonly destinationRecoveryPointArn?: unknown;
  };
}

export interface CopyDeps {
  readonly backup: Pick<BackupClient, 'send'>;
  /** EC2 in this Region (the source AMIs). */
  readonly ec2: Pick<EC2Client, 'send'>;
  /** EC2 in a destination Region of this account, to label the copy. */
  readonly ec2In: (region: string) => Pick<EC2Client, 'send'>;
  readonly notifier: Pick<Notifier, 'notifyProblem' | 'countCopy' | 'clearProblem'>;
  readonly settings: CopySettings;
  readonly clock?: () => Date;
}

export type StartResult =
  | { readonly action: 'ignored'; readonly reason: string }
  | { readonly action: 'waiting'; readonly reason: string }
  | {
      readonly action: 'started';
      readonly label: string;
      readonly started: readonly { readonly vaultArn: string; readonly copyJobId: string }[];
      readonly notStarted: readonly { readonly vaultArn: string; readonly error: string }[];
    };

/** Thrown when StartCopyJob failed in a way worth another delivery, naming the destinations it concerns. */
export class CopiesNotStartedError extends Error {
  override readonly name = 'CopiesNotStartedError';
  constructor(
    readonly destinations: readonly string[],
    readonly cause: unknown,
  ) {
    super(
      `Copies to ${destinations.join(', ')} not started: ${cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)}`,
    );
  }
}

/** The same backup job and destination always give the same token: a repeat starts nothing new. */
export function copyIdempotencyToken(backupJobId: string, vaultArn: string): string {
  const h = createHash('sha256').update(`${backupJobId}|${vaultArn}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function instanceIdOf(arn: string | undefined): string | undefined {
  return /:instance\/(i-[0-9a-f]{8,17})$/.exec(arn ?? '')?.[1];
}

function runIdOf(window: string | undefined): string | undefined {
  const ms = window ? Date.parse(window) : Number.NaN;
  return Number.isNaN(ms) ? undefined : runIdFor(new Date(ms));
}

function accountOf(arn: string): string {
  return arn.split(':')[4] ?? '';
}

function errorText(err: unknown): { name: string; message: string } {
  return err instanceof Error
    ? { name: err.name, message: err.message }
    : { name: 'Error', message: String(err) };
}

/** Step 1: a backup job of ours completed; copy its recovery point to every destination. */
export async function startCopies(event: BackupEvent, deps: CopyDeps): Promise<StartResult> {
  const now = (deps.clock ?? (() => new Date()))();
  const { settings } = deps;
  const jobId = event.detail?.backupJobId;
  if (event['detail-type'] !== BACKUP_JOB_DETAIL_TYPE || !jobId) {
    return { action: 'ignored', reason: `not a backup job event: ${JSON.stringify(event['detail-type'])}` };
  }
  if (event.detail?.state !== 'COMPLETED') {
    return { action: 'ignored', reason: `backup job ${jobId} is ${event.detail?.state}, not COMPLETED` };
  }
  const job = await deps.backup.send(new DescribeBackupJobCommand({ BackupJobId: jobId }));
  // The role and the vault are the app's own: a job started by anyone else is not copied here.
  if (job.IamRoleArn !== settings.backupRoleArn || job.BackupVaultName !== settings.sourceVaultName) {
    return {
      action: 'ignored',
      reason: `backup job ${jobId} (role ${job.IamRoleArn}, vault ${job.BackupVaultName}) was not started by ec2-consistent-backup`,
    };
  }
  const image = parseImageArn(job.RecoveryPointArn);
  if (job.State !== 'COMPLETED' || !image) {
    return {
      action: 'ignored',
      reason: `backup job ${jobId} is ${job.State} with recovery point ${JSON.stringify(job.RecoveryPointArn)}: no EC2 image to copy`,
    };
  }
  const tags = await readImageTags(deps.ec2, image.imageId);
  if (!tags) return { action: 'ignored', reason: `recovery point ${job.RecoveryPointArn} no longer exists` };
  const label = tags[RECOVERY_POINT_TAGS.consistency] ?? 'none';
  const eventTime = Date.parse(event.time ?? '');
  const completedAt = job.CompletionDate?.getTime() ?? (Number.isNaN(eventTime) ? now.getTime() : eventTime);
  const waitedMinutes = (now.getTime() - completedAt) / 60_000;
  if ((label === 'pending' || label === 'none') && waitedMinutes < settings.labelWaitMinutes) {
    return {
      action: 'waiting',
      reason: `the label of ${job.RecoveryPointArn} is ${label} ${Math.floor(waitedMinutes)} min after the job completed; copies carry the label the source has when they start`,
    };
  }

  const context: Omit<CopyContext, 'destinationVaultArn'> = {
    accountId: event.account ?? job.AccountId ?? '',
    region: event.region ?? image.region,
    instanceId: tags[RECOVERY_POINT_TAGS.instance] ?? instanceIdOf(job.ResourceArn) ?? 'unknown',
    instanceName: tags[NAME_TAG],
    window: tags[RECOVERY_POINT_TAGS.window],
    runId: runIdOf(tags[RECOVERY_POINT_TAGS.window]),
    backupJobId: jobId,
    sourceRecoveryPointArn: job.RecoveryPointArn as string,
    consistency: label,
  };
  const started: { vaultArn: string; copyJobId: string }[] = [];
  const notStarted: { vaultArn: string; error: string }[] = [];
  const retry: string[] = [];
  let retryCause: unknown;
  for (const destination of settings.destinations) {
    try {
      const out = await deps.backup.send(
        new StartCopyJobCommand({
          RecoveryPointArn: job.RecoveryPointArn,
          SourceBackupVaultName: settings.sourceVaultName,
          DestinationBackupVaultArn: destination.vaultArn,
          IamRoleArn: settings.backupRoleArn,
          IdempotencyToken: copyIdempotencyToken(jobId, destination.vaultArn),
          Lifecycle: { DeleteAfterDays: destination.retentionDays },
        }),
      );
      started.push({ vaultArn: destination.vaultArn, copyJobId: out.CopyJobId ?? 'unknown' });
      if (context.runId) {
        await deps.notifier.countCopy(
          context.runId,
          'copiesStarted',
          `copy-start:${jobId}:${destination.vaultArn}`,
        );
      }
    } catch (err) {
      if (isRetryableAwsError(err)) {
        retry.push(destination.vaultArn);
        retryCause = err;
        continue;
      }
      const error = errorText(err);
      notStarted.push({ vaultArn: destination.vaultArn, error: `${error.name}: ${error.message}` });
      await reportNotStarted({ ...context, destinationVaultArn: destination.vaultArn }, error, deps, now);
    }
  }
  // Another delivery retries only these; the idempotency token makes the others no-ops.
  if (retry.length > 0) throw new CopiesNotStartedError(retry, retryCause);
  return { action: 'started', label, started, notStarted };
}

async function reportNotStarted(
  c: CopyContext,
  error: { name: string; message: string },
  deps: Pick<CopyDeps, 'notifier'>,
  now: Date,
): Promise<Notification | undefined> {
  const notification = buildCopyNotStartedNotification(c, error, now);
  const eventId = `copy-start:${c.backupJobId}:${c.destinationVaultArn}`;
  const sent = await deps.notifier.notifyProblem(notification, c.instanceName, eventId, now);
  if (c.runId) await deps.notifier.countCopy(c.runId, 'copiesFailed', eventId);
  return sent ? notification : undefined;
}

/**
 * The last delivery of a backup job event failed: every destination the error concerns gets a
 * copy-not-started notification, so the message does not reach the dead-letter queue unreported.
 */
export async function reportLastAttempt(body: unknown, err: unknown, deps: CopyDeps): Promise<void> {
  const event = body as BackupEvent;
  const now = (deps.clock ?? (() => new Date()))();
  const destinations =
    err instanceof CopiesNotStartedError
      ? err.destinations
      : deps.settings.destinations.map((d) => d.vaultArn);
  const cause = err instanceof CopiesNotStartedError ? err.cause : err;
  for (const vaultArn of destinations) {
    await reportNotStarted(
      {
        accountId: event.account ?? '',
        region: event.region ?? '',
        instanceId: instanceIdOf(event.detail?.resourceArn) ?? 'unknown',
        backupJobId: event.detail?.backupJobId ?? event.detail?.copyJobId,
        sourceRecoveryPointArn: event.resources?.[0] ?? 'unknown',
        destinationVaultArn: vaultArn,
      },
      errorText(cause),
      deps,
      now,
    );
  }
}

export type CopyEventResult =
  | { readonly action: 'ignored'; readonly reason: string }
  | {
      readonly action: 'handled';
      readonly state: string;
      /** written: the label was put on the copy; carried: another account's copy keeps what it was copied with. */
      readonly label: 'written' | 'carried' | 'source-gone';
      readonly notifications: readonly Notification[];
    };

/** Step 2: a copy job of ours ended. */
export async function handleCopyJobEvent(event: BackupEvent, deps: CopyDeps): Promise<CopyEventResult> {
  const now = (deps.clock ?? (() => new Date()))();
  const copyJobId = event.detail?.copyJobId;
  const state = event.detail?.state ?? '';
  if (event['detail-type'] !== COPY_JOB_DETAIL_TYPE || !copyJobId) {
    return { action: 'ignored', reason: `not a copy job event: ${JSON.stringify(event['detail-type'])}` };
  }
  if (!(FINAL_COPY_STATES as readonly string[]).includes(state)) {
    return { action: 'ignored', reason: `copy job ${copyJobId} is ${state}, not final` };
  }
  const { CopyJob: job } = await deps.backup.send(new DescribeCopyJobCommand({ CopyJobId: copyJobId }));
  if (
    !job ||
    job.IamRoleArn !== deps.settings.backupRoleArn ||
    !job.SourceBackupVaultArn?.endsWith(`:backup-vault:${deps.settings.sourceVaultName}`)
  ) {
    return { action: 'ignored', reason: `copy job ${copyJobId} was not started by ec2-consistent-backup` };
  }
  const source = parseImageArn(job.SourceRecoveryPointArn);
  const tags = (source && (await readImageTags(deps.ec2, source.imageId))) || {};
  const accountId = event.account ?? job.AccountId ?? '';
  const context: CopyContext = {
    accountId,
    region: event.region ?? source?.region ?? '',
    instanceId: tags[RECOVERY_POINT_TAGS.instance] ?? instanceIdOf(job.ResourceArn) ?? 'unknown',
    instanceName: tags[NAME_TAG],
    window: tags[RECOVERY_POINT_TAGS.window],
    runId: runIdOf(tags[RECOVERY_POINT_TAGS.window]),
    sourceRecoveryPointArn: job.SourceRecoveryPointArn ?? 'unknown',
    destinationVaultArn:
      job.DestinationBackupVaultArn ?? event.detail?.destinationBackupVaultArn ?? 'unknown',
    copyJobId,
    copyJobState: job.State ?? state,
    destinationRecoveryPointArn: job.DestinationRecoveryPointArn,
    consistency: tags[RECOVERY_POINT_TAGS.consistency],
  };
  const notifications: Notification[] = [];
  if ((job.State ?? state) !== 'COMPLETED') {
    const notification = buildCopyFailedNotification(context, cleanMessage(job, event), now);
    const eventId = `copy:${copyJobId}:${context.copyJobState}`;
    if (await deps.notifier.notifyProblem(notification, context.instanceName, eventId, now)) {
      notifications.push(notification);
    }
    if (context.runId) await deps.notifier.countCopy(context.runId, 'copiesFailed', eventId);
    return { action: 'handled', state: context.copyJobState ?? state, label: 'carried', notifications };
  }

  let label: 'written' | 'carried' | 'source-gone' = 'carried';
  const destination = parseImageArn(job.DestinationRecoveryPointArn);
  if (!source || Object.keys(tags).length === 0) label = 'source-gone';
  else if (destination && accountOf(context.destinationVaultArn) === accountId) {
    const { [RECOVERY_POINT_TAGS.verified]: _notTested, ...label_ } = ownTags(tags);
    await writeImageTags(deps.ec2In(destination.region), destination.imageId, label_);
    label = 'written';
  }
  if (context.runId)
    await deps.notifier.countCopy(context.runId, 'copiesCompleted', `copy:${copyJobId}:COMPLETED`);
  const clear = await deps.notifier.clearProblem(context.instanceId, 'copy', (problem) =>
    buildCopyRecoveredNotification(problem, context, now),
  );
  if (clear) notifications.push(clear);
  return { action: 'handled', state: 'COMPLETED', label, notifications };
}

/** AWS Backup wraps some status messages in literal quotes (see the EventBridge examples). */
function cleanMessage(job: CopyJob, event: BackupEvent): string | undefined {
  const raw = job.StatusMessage ?? event.detail?.statusMessage;
  const trimmed = raw
    ?.trim()
    .replace(/^"(.*)"$/s, '$1')
    .trim();
  return trimmed || undefined;
}

export interface SweepResult {
  readonly completedJobs: number;
  readonly copiesSeen: number;
  /** Backup jobs that had no copy to some destination, and what startCopies did with each. */
  readonly restarted: readonly { readonly backupJobId: string; readonly action: string }[];
  readonly failedCopiesReported: number;
}

/**
 * The hourly catch-up for events EventBridge did not deliver ("AWS Backup emits events to
 * EventBridge in a best-effort manner", AWS Backup guide): every backup job of ours that completed
 * in the last SWEEP_LOOKBACK_HOURS and lacks a copy to some destination goes through startCopies
 * again (the idempotency token keeps copies that exist), and every failed copy of ours in that time
 * through handleCopyJobEvent (its notification and count happen once). A completed copy whose event
 * was lost keeps the label it was copied with.
 */
export async function sweepCopies(deps: CopyDeps): Promise<SweepResult> {
  const now = (deps.clock ?? (() => new Date()))();
  const since = new Date(now.getTime() - SWEEP_LOOKBACK_HOURS * 3_600_000);
  const ours = (role?: string) => role === deps.settings.backupRoleArn;
  const jobs: BackupJob[] = [];
  let next: string | undefined;
  do {
    const page: { BackupJobs?: BackupJob[]; NextToken?: string } = await deps.backup.send(
      new ListBackupJobsCommand({
        ByBackupVaultName: deps.settings.sourceVaultName,
        ByState: 'COMPLETED',
        ByCompleteAfter: since,
        NextToken: next,
      }),
    );
    jobs.push(...(page.BackupJobs ?? []).filter((j) => ours(j.IamRoleArn)));
    next = page.NextToken;
  } while (next);
  const copied = new Set<string>();
  const failed: CopyJob[] = [];
  next = undefined;
  do {
    // Copies are created after their backup job completed: the same lookback covers them.
    const page: { CopyJobs?: CopyJob[]; NextToken?: string } = await deps.backup.send(
      new ListCopyJobsCommand({ ByCreatedAfter: since, NextToken: next }),
    );
    for (const c of page.CopyJobs ?? []) {
      if (!ours(c.IamRoleArn)) continue;
      copied.add(`${c.SourceRecoveryPointArn}|${c.DestinationBackupVaultArn}`);
      if (c.State === 'FAILED' || c.State === 'PARTIAL') failed.push(c);
    }
    next = page.NextToken;
  } while (next);

  const restarted: { backupJobId: string; action: string }[] = [];
  for (const job of jobs) {
    const missing = deps.settings.destinations.some(
      (d) => !copied.has(`${job.RecoveryPointArn}|${d.vaultArn}`),
    );
    if (!missing || !job.BackupJobId) continue;
    const result = await startCopies(
      {
        'detail-type': BACKUP_JOB_DETAIL_TYPE,
        account: job.AccountId,
        time: job.CompletionDate?.toISOString(),
        resources: job.RecoveryPointArn ? [job.RecoveryPointArn] : [],
        detail: { backupJobId: job.BackupJobId, state: 'COMPLETED', resourceArn: job.ResourceArn },
      },
      deps,
    );
    restarted.push({ backupJobId: job.BackupJobId, action: result.action });
  }
  let reported = 0;
  for (const c of failed) {
    const r = await handleCopyJobEvent(
      {
        'detail-type': COPY_JOB_DETAIL_TYPE,
        account: c.AccountId,
        detail: {
          copyJobId: c.CopyJobId,
          state: c.State,
          destinationBackupVaultArn: c.DestinationBackupVaultArn,
        },
      },
      deps,
    );
    if (r.action === 'handled' && r.notifications.length > 0) reported++;
  }
  return { completedJobs: jobs.length, copiesSeen: copied.size, restarted, failedCopiesReported: reported };
}
