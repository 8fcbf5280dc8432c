/**
 * The per-instance message for one workflow outcome (record-outcome publishes it): a thaw that
 * failed, a backup that did not start or was skipped, a backup that fell back to crash-consistent or
 * came with warnings. A job that failed while frozen is the backup-job message, under the same id.
 */

import type { ConsistencyVerdict } from '../consistency';
import type { AdditionalInfo, Notification } from '../notification';
import type { WorkflowOutcome } from '../outcome';
import {
  assemble,
  backupJobLink,
  describeInstance,
  executionLink,
  instanceNode,
  partitionOf,
} from './assemble';
import { buildJobNotification } from './backup-job';

function consistencyText(verdict: ConsistencyVerdict | undefined): string {
  if (!verdict) return 'no recovery point was made this window';
  return `${verdict.consistency}-consistent (${verdict.reason}; frozen ${verdict.freezeMs} ms)`;
}

function errorText(error: WorkflowOutcome['error']): string {
  return error ? `${error.error}: ${error.cause}` : 'no error detail was reported';
}

function outcomeInfo(o: WorkflowOutcome): AdditionalInfo {
  return {
    instance_id: o.instanceId,
    instance_name: o.instanceName,
    platform: o.platform,
    run_id: o.runId,
    window: o.window,
    execution_arn: o.executionArn,
    console_link: executionLink(o.region, o.executionArn),
    backup_job_id: o.backupJobId,
    backup_job_link: o.backupJobId
      ? backupJobLink(o.region, o.backupJobId, partitionOf(o.executionArn))
      : undefined,
    recovery_point_arn: o.recoveryPointArn,
    consistency: o.verdict?.consistency ?? 'none',
    consistency_reason: o.verdict?.reason,
    freeze_ms: o.verdict?.freezeMs,
    watchdog_thaw_by: o.watchdogThawBy,
    warnings: o.warnings.length > 0 ? o.warnings.join(' | ') : undefined,
    error: o.error?.error,
    cause: o.error?.cause,
  };
}

/**
 * The notification for one workflow outcome, or undefined when there is nothing to report per
 * instance (an application- or filesystem-consistent backup is only counted in the run summary).
 */
export function buildOutcomeNotification(o: WorkflowOutcome, now: Date): Notification | undefined {
  const who = describeInstance(o.instanceId, o.instanceName);
  const base = {
    accountId: o.accountId,
    region: o.region,
    node: instanceNode(o.instanceId, o.instanceName),
    instanceId: o.instanceId,
    info: outcomeInfo(o),
    now,
  };
  const backup = consistencyText(o.verdict);
  switch (o.outcome) {
    case 'thaw-failed': {
      const by = o.watchdogThawBy ?? 'the end of its configured watchdog period';
      return assemble({
        ...base,
        eventType: 'thaw-failed',
        severity: 'Critical',
        problemClass: 'thaw',
        // The risk first: a long Name tag may cut the subject's end.
        subject: `Thaw failed, filesystems may be frozen: ${who}`,
        happened: `The thaw of the data filesystems on ${who} failed after retries (${errorText(o.error)}). Execution ${o.executionArn}.`,
        means: `Writes to a frozen filesystem block: applications on this instance may hang until it is thawed. The on-instance watchdog thaws by itself by ${by}. The backup of this window is ${backup}.`,
        todo: `Now: check whether writes to the data filesystems of ${o.instanceId} hang (probe in the background: a write to a frozen filesystem blocks). If the watchdog time has passed and writes still hang, run "fsfreeze -u <mountpoint>" as root for each data filesystem, or send the thaw document again through SSM Run Command. Then find out why the thaw command failed (SSM agent health, the instance's console output) before the next window.`,
      });
    }
    case 'backup-start-failed':
      return assemble({
        ...base,
        eventType: 'backup-start-failed',
        severity: 'Major',
        problemClass: 'backup',
        subject: `Backup not started for ${who}`,
        happened: `AWS Backup StartBackupJob failed after retries for ${who} in window ${o.window} (${errorText(o.error)}). The filesystems were thawed.`,
        means:
          'This instance has no new recovery point for this window; its latest backup is older than the schedule promises.',
        todo: 'Read the error: throttling or a quota (concurrent backup jobs) clears by itself at the next window; an AccessDenied or a missing vault or KMS grant needs the backup role or vault fixed. Start an on-demand backup if the gap matters.',
      });
    case 'skipped-freeze-failed':
      return assemble({
        ...base,
        eventType: 'skipped-freeze-failed',
        severity: 'Major',
        problemClass: 'backup',
        subject: `Backup skipped for ${who}: freeze failed`,
        happened: `The freeze failed on ${who} (${errorText(o.error)}) and its OnFreezeFailure policy is "skip", so no backup was started in window ${o.window}.`,
        means: 'This instance has no new recovery point for this window. Nothing was left frozen.',
        todo: 'Read the error and the freeze command output in the execution. Fix the failing pre-freeze hook or filesystem, or set the ConsistentBackup:OnFreezeFailure tag to crash-consistent if a crash-consistent backup is acceptable for this instance.',
      });
    case 'skipped-active-job':
      return assemble({
        ...base,
        eventType: 'skipped-active-job',
        severity: 'Warning',
        problemClass: 'window',
        subject: `Backup window skipped for ${who}: a job is still running`,
        happened: `Another AWS Backup job for ${who} was still active at window ${o.window}, so this window was skipped without freezing.`,
        means: 'No new recovery point for this window; the running job will produce one when it completes.',
        todo: 'If this repeats, the backups take longer than the schedule interval: look at the running job in the AWS Backup console and widen the schedule, or check why jobs are slow.',
      });
    case 'backup-job-failed':
      // The same notification job-events builds for this job state: published under the same
      // event id (outcomeEventId), so whichever of the two comes first is the only alert.
      return buildJobNotification(
        {
          accountId: o.accountId,
          region: o.region,
          instanceId: o.instanceId,
          instanceName: o.instanceName,
          platform: o.platform,
          executionArn: o.executionArn,
          runId: o.runId,
          window: o.window,
          backupJobId: o.backupJobId ?? 'unknown',
          recoveryPointArn: o.recoveryPointArn,
          verdict: o.verdict ?? { consistency: 'crash', reason: 'the backup job failed', freezeMs: 0 },
        },
        jobFailureState(o.backupJobState),
        o.backupJobStatusMessage,
        now,
      );
    case 'backed-up': {
      if (o.verdict && o.verdict.consistency !== 'crash') {
        if (o.warnings.length === 0) return undefined;
        return assemble({
          ...base,
          eventType: 'backup-warnings',
          severity: 'Warning',
          problemClass: 'consistency',
          subject: `Backup of ${who} is ${o.verdict.consistency}-consistent, with warnings`,
          happened: `The backup of ${who} in window ${o.window} is ${backup}, but: ${o.warnings.join('; ')}`,
          means:
            o.verdict.consistency === 'filesystem'
              ? 'The filesystems were frozen, so the recovery point is filesystem-consistent, but not application-consistent: applications were not quiesced by their hooks.'
              : 'The recovery point has the consistency stated, but something on the way did not work as configured and may fail outright next time.',
          todo: 'Read the warnings; fix the failing hook or step on the instance before the next window.',
        });
      }
      // A warning that only restates the reason would say the same thing twice in the ticket.
      const reason = (o.verdict?.reason ?? 'no verdict was recorded').replace(/\.+$/, '');
      const extra = o.warnings.filter((w) => !w.includes(reason)).map((w) => w.replace(/\.+$/, ''));
      const warnings = extra.length > 0 ? ` Warnings: ${extra.join('; ')}.` : '';
      return assemble({
        ...base,
        eventType: 'crash-consistent-fallback',
        severity: 'Warning',
        problemClass: 'consistency',
        subject: `Backup of ${who} is only crash-consistent`,
        happened: `The backup of ${who} in window ${o.window} was made without a consistent freeze: ${reason}.${warnings}`,
        means:
          'The recovery point exists but restoring it is like recovering from a power cut: databases run crash recovery and recent writes may be lost. It is tagged ConsistentBackup:Consistency=crash.',
        todo: 'Read the reason: a failed pre-freeze hook, a freeze that failed or exceeded the freeze budget, or an unmapped volume. Fix it before the next window; keep an older application-consistent recovery point until then.',
      });
    }
  }
}

function jobFailureState(state: string | undefined): 'FAILED' | 'EXPIRED' | 'ABORTED' {
  return state === 'EXPIRED' || state === 'ABORTED' ? state : 'FAILED';
}

/**
 * The de-duplication id of an outcome's notification. A job that failed while frozen shares
 * job-events' id for that job state (`job:<id>:<state>`), so record-outcome and job-events together
 * publish it once; every other outcome is one event per execution.
 */
export function outcomeEventId(o: WorkflowOutcome): string {
  if (o.outcome === 'backup-job-failed' && o.backupJobId) {
    return `job:${o.backupJobId}:${jobFailureState(o.backupJobState)}`;
  }
  return o.executionArn;
}
