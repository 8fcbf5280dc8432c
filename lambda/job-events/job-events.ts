/**
 * Final outcome of the backup jobs this app started, from AWS Backup's "Backup Job State Change"
 * events: a completed job's recovery point gets its final consistency label (a request on the label
 * queue, lambda/shared/labels.ts: the label-writer reads the recovery point from DescribeBackupJob
 * and writes it at a bounded pace), a Windows job that fell back from VSS is reported (and labelled
 * crash), a failed job or one that completed with issues is reported, and a job that proves the
 * instance healthy clears its open problems. Jobs without a stored verdict are someone else's, or
 * ours with the verdict not recorded yet: then record-outcome requests the label when it records.
 */

import type { ConsistencyVerdict } from '../shared/consistency';
import { cleanStatusMessage, finalVerdict, type RequestLabel, vssFallbackReason } from '../shared/labels';
import { BACKUP_JOB_DETAIL_TYPE, FINAL_JOB_STATES, type Notification } from '../shared/notification';
import {
  buildCompletedWithIssuesNotification,
  buildJobNotification,
  buildVssFallbackNotification,
} from '../shared/notifications/backup-job';
import { type Notifier, provesRecovery, type StoredJob } from '../shared/notifier';

export { cleanStatusMessage, vssFallbackReason } from '../shared/labels';

const DETAIL_TYPE = BACKUP_JOB_DETAIL_TYPE;
const FINAL_STATES = FINAL_JOB_STATES;
export type FinalState = (typeof FINAL_JOB_STATES)[number];

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
      /** True when the label of the completed job's recovery point was requested. */
      readonly labelRequested: boolean;
      readonly notifications: readonly Notification[];
    };

export interface JobEventDeps {
  readonly notifier: Notifier;
  /** Puts a label request on the label queue (lambda/shared/label-queue.ts sqsLabelRequester). */
  readonly requestLabel: RequestLabel;
  /**
   * DescribeBackupJob's BackupType of a job, asked for Windows jobs only; a failure gives the event
   * back. Without it a Windows job's type is unknown, which never counts as VSS.
   */
  readonly backupTypeOf?: (backupJobId: string) => Promise<string | undefined>;
  readonly clock?: () => Date;
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
  // This delivery holds the job's final state (claimFinalState), so an earlier claim of the same
  // event by job-events belongs to a delivery that is over: take it over rather than trust it.
  const claimant = `job-events:${eventId}`;
  const notifications: Notification[] = [];

  if (state !== 'COMPLETED') {
    const notification = buildJobNotification(job, state, statusMessage, now);
    if (await deps.notifier.notifyProblem(notification, job.instanceName, eventId, now, claimant)) {
      notifications.push(notification);
    }
    return { action: 'handled', state, job, finalVerdict: job.verdict, labelRequested: false, notifications };
  }

  const backupType = job.platform === 'windows' ? await deps.backupTypeOf?.(job.backupJobId) : undefined;
  const fallback = vssFallbackReason(job.platform, backupType, statusMessage);
  const verdict: ConsistencyVerdict = finalVerdict(job, backupType, statusMessage);

  // The label-writer reads the recovery point from DescribeBackupJob (this event's resources may
  // name it, but the event is best effort and the request must not depend on it).
  await deps.requestLabel({ kind: 'label', backupJobId: job.backupJobId, cause: 'job-ended' });
  const recoveryPointArn = job.recoveryPointArn ?? event.resources?.[0];

  if (fallback !== undefined) {
    const notification = buildVssFallbackNotification({ ...job, recoveryPointArn }, fallback, now);
    if (await deps.notifier.notifyProblem(notification, job.instanceName, eventId, now, claimant)) {
      notifications.push(notification);
    }
  } else if (statusMessage !== undefined) {
    const notification = buildCompletedWithIssuesNotification(
      { ...job, recoveryPointArn },
      statusMessage,
      now,
    );
    if (await deps.notifier.notifyProblem(notification, job.instanceName, eventId, now, claimant)) {
      notifications.push(notification);
    }
  } else if (provesRecovery(job, verdict.consistency)) {
    notifications.push(...(await deps.notifier.clearProblems({ ...job, recoveryPointArn })));
  }
  return { action: 'handled', state, job, finalVerdict: verdict, labelRequested: true, notifications };
}
