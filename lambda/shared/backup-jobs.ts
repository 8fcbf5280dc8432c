/**
 * Is a backup job of this instance still active? AWS Backup runs one job per resource at a time, so
 * the freeze (freeze-filesystems) and the unfrozen starts (start-backup) ask before they act, and
 * skip the window rather than freeze for a job AWS Backup would refuse or queue.
 */

import { type BackupClient, type BackupJobState, ListBackupJobsCommand } from '@aws-sdk/client-backup';
import { type Clock, callWithin, isTransient, MUTATING_CALL_MS, systemClock, toMs } from './calls';
import type { ActiveJobsResult } from './workflow-results';

/** Job states in which AWS Backup refuses or queues another job for the same resource. */
export const ACTIVE_JOB_STATES: readonly BackupJobState[] = ['CREATED', 'PENDING', 'RUNNING', 'ABORTING'];
/** Job states that end a job without a recovery point. */
export const FAILED_JOB_STATES: readonly string[] = ['FAILED', 'ABORTED', 'EXPIRED'];
/** ByCreatedAfter and "ours" comparisons allow this much clock difference with AWS Backup. */
export const JOB_LOOKUP_SKEW_MS = 10_000;

/**
 * A job this execution may have created itself (an earlier invocation of the same step whose answer
 * was lost): in our vault, under our role, created after the execution's backup could first start.
 * StartBackupJob with the execution's idempotency token returns that job, so it is not "another
 * active job".
 */
export interface OwnJob {
  readonly backupVaultName: string;
  readonly iamRoleArn: string;
  /** The earliest moment this execution could have started a job (its startAt, or its start). */
  readonly notBeforeMs: number;
}

export async function activeJobs(
  backup: Pick<BackupClient, 'send'>,
  instanceArn: string,
  clock: Clock = systemClock,
  own?: OwnJob,
): Promise<ActiveJobsResult> {
  // Before the freeze: one more try after a transient error (the clients make one attempt each).
  const list = async (state: BackupJobState) => {
    const ask = () =>
      callWithin(clock, MUTATING_CALL_MS, (s) =>
        backup.send(
          new ListBackupJobsCommand({ ByResourceArn: instanceArn, ByState: state, MaxResults: 20 }),
          { abortSignal: s },
        ),
      );
    try {
      return await ask();
    } catch (err) {
      if (!isTransient(err)) throw err;
      await clock.sleep(300);
      return ask();
    }
  };
  const pages = await Promise.all(ACTIVE_JOB_STATES.map(list));
  const ours = (j: { BackupVaultName?: string; IamRoleArn?: string; CreationDate?: unknown }) =>
    own !== undefined &&
    j.BackupVaultName === own.backupVaultName &&
    j.IamRoleArn === own.iamRoleArn &&
    (toMs(j.CreationDate) ?? -Infinity) >= own.notBeforeMs - JOB_LOOKUP_SKEW_MS;
  const jobIds = pages.flatMap((p) =>
    (p.BackupJobs ?? []).filter((j) => !ours(j)).map((j) => j.BackupJobId ?? '(unknown id)'),
  );
  return { active: jobIds.length > 0, jobIds };
}
