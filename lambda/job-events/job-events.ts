/**
 * Final outcome of the backup jobs this app started, from AWS Backup's "Backup Job State Change"
 * events: the recovery point gets its final consistency label, a Windows job that fell back from
 * VSS is relabelled crash and reported, a failed job or one that completed with issues is reported,
 * and a job that proves the
 * instance healthy clears its open problems. Jobs without a stored verdict are someone else's.
 */

import type { ConsistencyVerdict } from '../shared/consistency';
import { BACKUP_JOB_DETAIL_TYPE, FINAL_JOB_STATES, type Notification } from '../shared/notification';
import {
  buildCompletedWithIssuesNotification,
  buildJobNotification,
  buildVssFallbackNotification,
} from '../shared/notifications/backup-job';
import { type Notifier, provesRecovery, type StoredJob } from '../shared/notifier';

const DETAIL_TYPE = BACKUP_JOB_DETAIL_TYPE;
const FINAL_STATES = FINAL_JOB_STATES;
export type FinalState = (typeof FINAL_JOB_STATES)[number];
/**
 * Whether a completed job of a Windows instance fell back from VSS, and why; undefined when it did
 * not (or the instance is not Windows). AWS Backup reports a real VSS backup through
 * DescribeBackupJob's `BackupType`, "WindowsVSS" (API reference, DescribeBackupJob: "If BackupType is
 * empty, then the backup type was a regular backup"); anything else at completion is a regular,
 * crash-consistent backup, whatever the status message says. The message only adds detail.
 */
export function vssFallbackReason(
  platform: string | undefined,
  backupType: string | undefined,
  statusMessage: string | undefined,
): string | undefined {
  if (platform !== 'windows' || backupType === 'WindowsVSS') return undefined;
  const type = backupType ? `BackupType is ${backupType}` : 'BackupType is empty (a regular backup)';
  return `${type}, not WindowsVSS${statusMessage ? `; AWS Backup: ${statusMessage}` : ''}`;
}

/** The parts of the EventBridge event this handler reads (AWS Backup developer guide examples). */
export interface BackupJobStateChangeEvent {
  readonly 'detail-type'?: string;
  readonly source?: string;
  readonly account?: string;
  readonly region?: string;
  readonly time?: string;
  readonly resources?: readonly string[];
  readonly detail?: {
    readonly backupJobId?: string;
    readonly state?: string;
    readonly statusMessage?: string;
    readonly backupVaultName?: string;
    readonly resourceArn?: string;
    readonly resourceType?: string;
  };
}

export type JobEventResult =
  | { readonly action: 'ignored'; readonly reason: string }
  | {
      readonly action: 'handled';
      readonly state: FinalState;
      readonly job: StoredJob;
      readonly finalVerdict: ConsistencyVerdict;
      readonly labelled?: string;
      readonly notifications: readonly Notification[];
    };

export interface JobEventDeps {
  readonly notifier: Notifier;
  /** Writes the final label on the recovery point (lambda/shared/recovery-point.ts tagRecoveryPoint). */
  readonly labelRecoveryPoint: (recoveryPointArn: string, verdict: ConsistencyVerdict) => Promise<unknown>;
  /**
   * DescribeBackupJob's BackupType of a job, asked for Windows jobs only; a failure gives the event
   * back. Without it a Windows job's type is unknown, which never counts as VSS.
   */
  readonly backupTypeOf?: (backupJobId: string) => Promise<string | undefined>;
  readonly clock?: () => Date;
}

/** AWS Backup wraps some status messages in literal quotes. */
export function cleanStatusMessage(message: string | undefined): string | undefined {
  const trimmed = message
    ?.trim()
    .replace(/^"(.*)"$/s, '$1')
    .trim();
  return trimmed ? trimmed : undefined;
}

export async function handleJobEvent(
  event: BackupJobStateChangeEvent,
  deps: JobEventDeps,
): Promise<JobEventResult> {
  const clock = deps.clock ?? (() => new Date());
  if (event['detail-type'] !== DETAIL_TYPE) {
    return {
      action: 'ignored',
      reason: `detail-type ${JSON.stringify(event['detail-type'])} is not ${DETAIL_TYPE}`,
    };
  }
  const jobId = event.detail?.backupJobId;
  const state = event.detail?.state as FinalState | undefined;
  if (!jobId) return { action: 'ignored', reason: 'the event has no detail.backupJobId' };
  if (!state || !FINAL_STATES.includes(state)) {
    return {
      action: 'ignored',
      reason: `state ${JSON.stringify(state)} is not final (${FINAL_STATES.join(', ')})`,
    };
  }
  const job = await deps.notifier.getJob(jobId);
  if (!job)
    return { action: 'ignored', reason: `backup job ${jobId} was not started by ec2-consistent-backup` };
  if (!(await deps.notifier.claimFinalState(jobId, state))) {
    return { action: 'ignored', reason: `the final state of backup job ${jobId} was already handled` };
  }

  try {
    return await finalize(event, job, state, deps, clock());
  } catch (err) {
    await deps.notifier.releaseFinalState(jobId);
    throw err;
  }
}

async function finalize(
  event: BackupJobStateChangeEvent,
  job: StoredJob,
  state: FinalState,
  deps: JobEventDeps,
  now: Date,
): Promise<JobEventResult> {
  const statusMessage = cleanStatusMessage(event.detail?.statusMessage);
  const eventId = `job:${job.backupJobId}:${state}`;
  const notifications: Notification[] = [];

  if (state !== 'COMPLETED') {
    const notification = buildJobNotification(job, state, statusMessage, now);
    if (await deps.notifier.notifyProblem(notification, job.instanceName, eventId, now)) {
      notifications.push(notification);
    }
    return { action: 'handled', state, job, finalVerdict: job.verdict, notifications };
  }

  const fallback =
    job.platform === 'windows'
      ? vssFallbackReason(job.platform, await deps.backupTypeOf?.(job.backupJobId), statusMessage)
      : undefined;
  const vssFellBack = fallback !== undefined;
  const finalVerdict: ConsistencyVerdict = vssFellBack
    ? {
        consistency: 'crash',
        reason: `Windows VSS fell back to a regular backup: ${fallback}`,
        freezeMs: job.verdict.freezeMs,
      }
    : job.verdict;

  const recoveryPointArn = job.recoveryPointArn ?? event.resources?.[0];
  if (recoveryPointArn) await deps.labelRecoveryPoint(recoveryPointArn, finalVerdict);

  if (vssFellBack) {
    const notification = buildVssFallbackNotification({ ...job, recoveryPointArn }, fallback, now);
    if (await deps.notifier.notifyProblem(notification, job.instanceName, eventId, now)) {
      notifications.push(notification);
    }
  } else if (statusMessage !== undefined) {
    const notification = buildCompletedWithIssuesNotification(
      { ...job, recoveryPointArn },
      statusMessage,
      now,
    );
    if (await deps.notifier.notifyProblem(notification, job.instanceName, eventId, now)) {
      notifications.push(notification);
    }
  } else if (provesRecovery(job, finalVerdict.consistency)) {
    notifications.push(...(await deps.notifier.clearProblems({ ...job, recoveryPointArn })));
  }
  return { action: 'handled', state, job, finalVerdict, labelled: recoveryPointArn, notifications };
}
