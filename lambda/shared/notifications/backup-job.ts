/**
 * Messages about a backup job this app started, from its AWS Backup state change (job-events): it
 * failed, expired, was aborted or partial, completed with issues, or fell back from Windows VSS.
 */

import type { Consistency, ConsistencyVerdict } from '../consistency';
import type { AdditionalInfo, Notification } from '../notification';
import { assemble, backupJobLink, describeInstance, instanceNode, partitionOf } from './assemble';

/** What job-events knows about a backup job this app started (stored at recordOutcome). */
export interface JobContext {
  readonly accountId: string;
  readonly region: string;
  readonly instanceId: string;
  readonly instanceName?: string;
  readonly platform: 'linux' | 'windows';
  readonly executionArn: string;
  readonly runId: string;
  readonly window: string;
  readonly backupJobId: string;
  readonly recoveryPointArn?: string;
  readonly verdict: ConsistencyVerdict;
}

/** additional_info of a message about one backup job. */
export function jobInfo(
  job: JobContext,
  state: string,
  statusMessage: string | undefined,
  final: Consistency,
): AdditionalInfo {
  return {
    instance_id: job.instanceId,
    instance_name: job.instanceName,
    platform: job.platform,
    run_id: job.runId,
    window: job.window,
    execution_arn: job.executionArn,
    console_link: backupJobLink(job.region, job.backupJobId, partitionOf(job.executionArn)),
    backup_job_id: job.backupJobId,
    backup_job_state: state,
    recovery_point_arn: job.recoveryPointArn,
    consistency: final,
    consistency_reason: job.verdict.reason,
    freeze_ms: job.verdict.freezeMs,
    error: statusMessage ? `Backup job ${state}` : undefined,
    cause: statusMessage,
  };
}

/** A backup job this app started ended FAILED, EXPIRED or ABORTED (Major) or PARTIAL (Warning). */
export function buildJobNotification(
  job: JobContext,
  state: 'FAILED' | 'EXPIRED' | 'ABORTED' | 'PARTIAL',
  statusMessage: string | undefined,
  now: Date,
): Notification {
  const who = describeInstance(job.instanceId, job.instanceName);
  const status = statusMessage ? ` AWS Backup says: ${statusMessage}` : '';
  const partial = state === 'PARTIAL';
  return assemble({
    eventType: partial ? 'backup-job-partial' : 'backup-job-failed',
    severity: partial ? 'Warning' : 'Major',
    accountId: job.accountId,
    region: job.region,
    node: instanceNode(job.instanceId, job.instanceName),
    instanceId: job.instanceId,
    problemClass: 'backup',
    subject: `Backup job ${state} for ${who}`,
    happened: `Backup job ${job.backupJobId} for ${who} (window ${job.window}) ended ${state}.${status}`,
    means: partial
      ? 'A recovery point exists but does not cover every resource of the instance; restore may miss volumes.'
      : 'There is no recovery point for this window. The instance is not left frozen: the thaw never waits for the backup job.',
    todo:
      state === 'EXPIRED'
        ? 'The job did not start within its start window, usually because another job for the instance was running or the account hit its concurrent-job quota. Check the running jobs and the quota.'
        : 'Open the job in the AWS Backup console (console_link) for the full status message; fix permissions, KMS grants or snapshot limits it names; start an on-demand backup if the gap matters.',
    info: jobInfo(job, state, statusMessage, job.verdict.consistency),
    now,
  });
}

/**
 * A job completed with a status message that is not a VSS fall-back ("Completed with issues" in
 * the console): the recovery point exists, but AWS Backup says something went wrong.
 */
export function buildCompletedWithIssuesNotification(
  job: JobContext,
  statusMessage: string,
  now: Date,
): Notification {
  const who = describeInstance(job.instanceId, job.instanceName);
  return assemble({
    eventType: 'backup-job-completed-with-issues',
    severity: 'Warning',
    accountId: job.accountId,
    region: job.region,
    node: instanceNode(job.instanceId, job.instanceName),
    instanceId: job.instanceId,
    problemClass: 'backup',
    subject: `Backup job for ${who} completed with issues`,
    happened: `Backup job ${job.backupJobId} for ${who} (window ${job.window}) completed, and AWS Backup says: ${statusMessage}`,
    means: `The recovery point exists and is labelled ${job.verdict.consistency}, but AWS Backup reports a problem that may affect it.`,
    todo: 'Read the status message in the AWS Backup console (console_link); check the recovery point before relying on it.',
    info: jobInfo(job, 'COMPLETED', statusMessage, job.verdict.consistency),
    now,
  });
}

/** A Windows job completed, but AWS Backup fell back from VSS to a regular (crash-consistent) backup. */
export function buildVssFallbackNotification(
  job: JobContext,
  statusMessage: string,
  now: Date,
): Notification {
  const who = describeInstance(job.instanceId, job.instanceName);
  return assemble({
    eventType: 'vss-fallback',
    severity: 'Warning',
    accountId: job.accountId,
    region: job.region,
    node: instanceNode(job.instanceId, job.instanceName),
    instanceId: job.instanceId,
    problemClass: 'consistency',
    subject: `Windows VSS fell back on ${who}: backup is crash-consistent`,
    happened: `Backup job ${job.backupJobId} for ${who} completed with issues: ${statusMessage}`,
    means:
      'AWS Backup could not take a VSS snapshot and took a regular one instead: the recovery point is crash-consistent, and has been relabelled ConsistentBackup:Consistency=crash.',
    todo: 'Check that AwsVssComponents is installed and current, the instance profile allows ec2:CreateSnapshots and ssm:SendCommand for VSS, and the VSS writers are healthy ("vssadmin list writers"). Instance types too small for VSS are listed in the AWS Backup guide.',
    info: {
      ...jobInfo(job, 'COMPLETED', statusMessage, 'crash'),
      consistency_reason: `Windows VSS fell back to a regular backup: ${statusMessage}`,
    },
    now,
  });
}
