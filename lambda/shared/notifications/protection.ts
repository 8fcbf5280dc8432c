/**
 * The protection family of the one notification schema (lambda/shared/notification.ts registers
 * the event types, severities and problem classes): copies to another Region or account
 * (lambda/copy-jobs) and restore verification (lambda/restore-validation).
 *
 * Problem classes: `copy` and `verification`, one open alert per instance each. They close on
 * their own success (the next completed copy, the next verified restore), never on a backup's.
 */

import { type AdditionalInfo as Info, type Notification, oneLine } from '../notification';
import { assemble, consoleHost, describeInstance, instanceNode, partitionOf } from './assemble';
import type { OpenProblem } from './clear';

/** AWS Backup console page of a copy job. */
export function copyJobLink(region: string, copyJobId: string, partition = 'aws'): string {
  return `https://${consoleHost(region, partition)}/backup/home?region=${region}#/jobs/copy/details/${copyJobId}`;
}

/** AWS Backup console page of a restore job. */
export function restoreJobLink(region: string, restoreJobId: string, partition = 'aws'): string {
  return `https://${consoleHost(region, partition)}/backup/home?region=${region}#/jobs/restore/details/${restoreJobId}`;
}

/** One copy of one recovery point to one destination vault. */
export interface CopyContext {
  readonly accountId: string;
  readonly region: string;
  readonly instanceId: string;
  readonly instanceName?: string;
  readonly window?: string;
  readonly runId?: string;
  readonly backupJobId?: string;
  readonly sourceRecoveryPointArn: string;
  readonly destinationVaultArn: string;
  readonly copyJobId?: string;
  readonly copyJobState?: string;
  readonly destinationRecoveryPointArn?: string;
  /** The consistency label of the source recovery point when the copy was handled. */
  readonly consistency?: string;
}

function copyInfo(c: CopyContext, error?: string, cause?: string): Info {
  const partition = partitionOf(c.destinationVaultArn);
  return {
    instance_id: c.instanceId,
    instance_name: c.instanceName,
    run_id: c.runId,
    window: c.window,
    backup_job_id: c.backupJobId,
    recovery_point_arn: c.sourceRecoveryPointArn,
    consistency: c.consistency,
    copy_job_id: c.copyJobId,
    copy_job_state: c.copyJobState,
    destination_vault_arn: c.destinationVaultArn,
    destination_recovery_point_arn: c.destinationRecoveryPointArn,
    console_link: c.copyJobId ? copyJobLink(c.region, c.copyJobId, partition) : undefined,
    error,
    cause,
  };
}

/** `arn:...:backup:eu-central-1:444455556666:backup-vault:dr` -> `dr in 444455556666/eu-central-1`. */
function vaultText(vaultArn: string): string {
  const parts = vaultArn.split(':');
  return parts.length >= 7 ? `${parts.slice(6).join(':')} in ${parts[4]}/${parts[3]}` : vaultArn;
}

function base(c: CopyContext, now: Date) {
  return {
    accountId: c.accountId,
    region: c.region,
    node: instanceNode(c.instanceId, c.instanceName),
    instanceId: c.instanceId,
    now,
  };
}

/** A copy job this app started ended FAILED, PARTIAL or ABORTED. */
export function buildCopyFailedNotification(
  c: CopyContext,
  statusMessage: string | undefined,
  now: Date,
): Notification {
  const who = describeInstance(c.instanceId, c.instanceName);
  const state = c.copyJobState ?? 'FAILED';
  const says = statusMessage ? ` AWS Backup says: ${oneLine(statusMessage)}` : '';
  return assemble({
    ...base(c, now),
    eventType: 'copy-failed',
    severity: 'Major',
    problemClass: 'copy',
    subject: `Backup copy ${state} for ${who} to ${vaultText(c.destinationVaultArn)}`,
    happened: `Copy job ${c.copyJobId ?? 'unknown'} of recovery point ${c.sourceRecoveryPointArn} (${who}${c.window ? `, window ${c.window}` : ''}) to vault ${c.destinationVaultArn} ended ${state}.${says}`,
    means:
      'The recovery point exists in this Region, but not in the destination: if this Region or account is lost, the newest copy there is older than this window.',
    todo: 'Open the copy job (console_link). An access denied names what to fix: the destination vault access policy must allow backup:CopyIntoBackupVault from this account, the destination KMS key policy must let this account use it, and for another account the EBS volumes must be encrypted with a customer managed key shared with it. A vault lock in the destination rejects retentions outside its range. Copy the recovery point again by hand once fixed (aws backup start-copy-job), or wait for the next window.',
    info: copyInfo(c, statusMessage ? `Copy job ${state}` : undefined, statusMessage),
  });
}

/** StartCopyJob itself failed: no copy job exists for this destination. */
export function buildCopyNotStartedNotification(
  c: CopyContext,
  error: { readonly name: string; readonly message: string },
  now: Date,
): Notification {
  const who = describeInstance(c.instanceId, c.instanceName);
  return assemble({
    ...base(c, now),
    eventType: 'copy-not-started',
    severity: 'Major',
    problemClass: 'copy',
    subject: `Backup copy not started for ${who} to ${vaultText(c.destinationVaultArn)}`,
    happened: `StartCopyJob for recovery point ${c.sourceRecoveryPointArn} (${who}${c.window ? `, window ${c.window}` : ''}) to vault ${c.destinationVaultArn} failed: ${error.name}: ${oneLine(error.message)}`,
    means:
      'No copy of this window exists in the destination: if this Region or account is lost, the newest copy there is older than this window.',
    todo: 'AccessDeniedException: the backup role needs backup:CopyIntoBackupVault on the destination (redeploy), the destination vault access policy must allow this account, and an ARN with a typo names a vault that does not exist (fix copyDestinations). InvalidParameterValueException: check the destination retention against its vault lock. Start the copy by hand once fixed, or wait for the next window.',
    info: copyInfo(c, error.name, error.message),
  });
}

/** Closes an open copy problem: a later copy of the instance completed. */
export function buildCopyRecoveredNotification(
  problem: OpenProblem,
  c: CopyContext,
  now: Date,
): Notification {
  const who = describeInstance(problem.instanceId, problem.instanceName ?? c.instanceName);
  return assemble({
    ...base({ ...c, instanceName: problem.instanceName ?? c.instanceName }, now),
    accountId: problem.accountId || c.accountId,
    region: problem.region || c.region,
    eventType: 'problem-cleared',
    severity: 'Clear',
    problemClass: 'copy',
    subject: `Recovered: ${who} is copied to ${vaultText(c.destinationVaultArn)} again`,
    happened: `Copy job ${c.copyJobId ?? 'unknown'} of ${c.sourceRecoveryPointArn} to ${c.destinationVaultArn} completed.`,
    means: `The earlier "${problem.eventType}" problem no longer affects this instance's copies.`,
    todo: 'Nothing. The alert closes with this event.',
    info: { ...copyInfo(c), cleared_event_type: problem.eventType, cleared_by: c.copyJobId },
  });
}

export type VerificationResult = 'verified' | 'failed' | 'inconclusive';

/** One restore test of one recovery point, as lambda/restore-validation saw it. */
export interface VerificationContext {
  readonly accountId: string;
  readonly region: string;
  /** The protected (original) instance. */
  readonly instanceId: string;
  readonly instanceName?: string;
  readonly restoreJobId: string;
  readonly restoredInstanceId?: string;
  readonly recoveryPointArn: string;
  readonly consistency?: string;
  readonly result: VerificationResult;
  /** One line: what was found. */
  readonly summary: string;
  /** The on-instance check's findings (filesystems, hooks), or the reason it could not run. */
  readonly detail: string;
}

function verificationInfo(v: VerificationContext): Info {
  return {
    instance_id: v.instanceId,
    instance_name: v.instanceName,
    recovery_point_arn: v.recoveryPointArn,
    consistency: v.consistency,
    restore_job_id: v.restoreJobId,
    restored_instance_id: v.restoredInstanceId,
    verification_result: v.result,
    verification_detail: v.detail,
    console_link: restoreJobLink(v.region, v.restoreJobId, partitionOf(v.recoveryPointArn)),
  };
}

function verificationBase(v: VerificationContext, now: Date) {
  return {
    accountId: v.accountId,
    region: v.region,
    node: instanceNode(v.instanceId, v.instanceName),
    instanceId: v.instanceId,
    info: verificationInfo(v),
    now,
  };
}

/** The restored copy of a recovery point did not pass: its data may not be usable. */
export function buildVerificationFailedNotification(v: VerificationContext, now: Date): Notification {
  const who = describeInstance(v.instanceId, v.instanceName);
  const label = v.consistency ? ` (labelled ${v.consistency})` : '';
  return assemble({
    ...verificationBase(v, now),
    eventType: 'restore-verification-failed',
    severity: 'Major',
    problemClass: 'verification',
    subject: `Restore verification failed for ${who}: ${v.summary}`,
    happened: `AWS Backup restore test ${v.restoreJobId} restored recovery point ${v.recoveryPointArn}${label} of ${who} as ${v.restoredInstanceId ?? 'a test instance'}, and the check failed: ${v.summary}. Details: ${v.detail}`,
    means:
      'Restoring this recovery point does not give usable data as checked: a filesystem that does not mount read-only or has fsck errors, or an application that does not start on it. Older recovery points may be fine; newer ones may share the cause.',
    todo: 'Read the details (which filesystem or hook failed, and its output). A filesystem error in an application- or filesystem-consistent backup points at the storage or the freeze; a hook failure at the application or its verify hook. Keep this recovery point for analysis, restore the previous one by hand and check it, and fix the cause before relying on new backups. The recovery point is tagged ConsistentBackup:Verified with the result.',
  });
}

/** The restore test ran but the check could not give a verdict (no SSM, a timeout, an unmount that failed). */
export function buildVerificationInconclusiveNotification(v: VerificationContext, now: Date): Notification {
  const who = describeInstance(v.instanceId, v.instanceName);
  return assemble({
    ...verificationBase(v, now),
    eventType: 'restore-verification-inconclusive',
    severity: 'Warning',
    problemClass: 'verification',
    subject: `Restore verification could not run for ${who}: ${v.summary}`,
    happened: `AWS Backup restore test ${v.restoreJobId} of recovery point ${v.recoveryPointArn} (${who}) did not get a verdict: ${v.summary}. Details: ${v.detail}`,
    means:
      'Nothing is known about whether this recovery point restores usable data: the check itself did not run to the end. The restore job is reported TIMED_OUT or FAILED to AWS Backup accordingly.',
    todo: 'A test instance that never came Online in Systems Manager needs an instance profile with AmazonSSMManagedInstanceCore (restoreTestInstanceRoles, so the restore may pass it) and a path to SSM from restoreTestSubnetId (VPC endpoints for ssm, ssmmessages, ec2messages). A restore job that failed names its cause (subnet, security group, instance type, KMS). A check that timed out needs a longer restoreTestValidationHours or smaller data volumes.',
  });
}

/** Closes an open verification problem: a later restore test of the instance verified. */
export function buildVerificationRecoveredNotification(
  problem: OpenProblem,
  v: VerificationContext,
  now: Date,
): Notification {
  const who = describeInstance(problem.instanceId, problem.instanceName ?? v.instanceName);
  return assemble({
    ...verificationBase({ ...v, instanceName: problem.instanceName ?? v.instanceName }, now),
    accountId: problem.accountId || v.accountId,
    region: problem.region || v.region,
    eventType: 'problem-cleared',
    severity: 'Clear',
    problemClass: 'verification',
    subject: `Recovered: a restore of ${who} verified again`,
    happened: `Restore test ${v.restoreJobId} of ${v.recoveryPointArn} verified: ${v.summary}.`,
    means: `The earlier "${problem.eventType}" problem no longer holds for this instance's newest tested recovery point.`,
    todo: 'Nothing. The alert closes with this event.',
    info: { ...verificationInfo(v), cleared_event_type: problem.eventType, cleared_by: v.restoreJobId },
  });
}
