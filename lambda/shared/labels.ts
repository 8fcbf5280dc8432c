/**
 * How the final consistency label reaches the recovery point: what record-outcome, job-events and
 * the label-writer function share.
 *
 * The label needs two facts that arrive in either order: the verdict (record-outcome stores it with
 * the job, lambda/shared/notifier.ts `JOB#<id>`) and the recovery point, which for EC2 exists only
 * once the job has completed. StartBackupJob returns no RecoveryPointArn for EC2 ("This field is
 * only returned for Amazon EFS and Advanced DynamoDB resources", AWS Backup API reference,
 * StartBackupJob, response elements); DescribeBackupJob returns it for the completed job. So each
 * side, when its fact lands, puts a label request for the job on one queue, and the label-writer
 * (lambda/label-writer) reads both facts afresh and writes the label when both are there: whichever
 * request comes second writes it, and a request that comes too early does nothing. The label is
 * always derived from what is stored, never carried in a message, so a late or repeated request can
 * never write a stale label. An hourly sweep puts requests for recovery points still `pending` after
 * their job completed, because AWS Backup's events are best effort.
 */

import type { Consistency, ConsistencyVerdict } from './consistency';

/** Environment variable holding the URL of the label queue (lib/labels.ts sets it). */
export const LABEL_ENV = { queueUrl: 'LABEL_QUEUE_URL' } as const;

/** Who asked: the verdict was recorded, the job ended (its event), or the sweep found it pending. */
export type LabelCause = 'verdict-recorded' | 'job-ended' | 'sweep';
export const LABEL_CAUSES: readonly LabelCause[] = ['verdict-recorded', 'job-ended', 'sweep'];

/** One message of the label queue: label the recovery point of this backup job, if it can be yet. */
export interface LabelRequest {
  readonly kind: 'label';
  readonly backupJobId: string;
  readonly cause: LabelCause;
}

/** The message the hourly sweep rule puts on the queue. */
export const LABEL_SWEEP = { kind: 'label-sweep' } as const;

export type LabelMessage = LabelRequest | typeof LABEL_SWEEP;

export class InvalidLabelMessageError extends Error {
  override readonly name = 'InvalidLabelMessageError';
}

/** A parsed queue body, or a named error that names the value and what is allowed. */
export function parseLabelMessage(body: unknown): LabelMessage {
  const o = body as Record<string, unknown> | null;
  if (o && typeof o === 'object' && o.kind === LABEL_SWEEP.kind) return LABEL_SWEEP;
  if (
    o &&
    typeof o === 'object' &&
    o.kind === 'label' &&
    typeof o.backupJobId === 'string' &&
    /^[\w-]{1,100}$/.test(o.backupJobId) &&
    LABEL_CAUSES.includes(o.cause as LabelCause)
  ) {
    return { kind: 'label', backupJobId: o.backupJobId, cause: o.cause as LabelCause };
  }
  throw new InvalidLabelMessageError(
    `Invalid label message ${JSON.stringify(body)?.slice(0, 300)}: allowed: {"kind":"label","backupJobId":"<id>","cause":"${LABEL_CAUSES.join('|')}"} or ${JSON.stringify(LABEL_SWEEP)}.`,
  );
}

/** Puts a label request on the queue. Handlers get one from sqsLabelRequester; tests and fakes pass their own. */
export type RequestLabel = (request: LabelRequest) => Promise<void>;

/** AWS Backup wraps some status messages in literal quotes. */
export function cleanStatusMessage(message: string | undefined): string | undefined {
  const trimmed = message
    ?.trim()
    .replace(/^"(.*)"$/s, '$1')
    .trim();
  return trimmed ? trimmed : undefined;
}

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

/**
 * The label a completed job's recovery point carries: the recorded verdict, or crash when a Windows
 * job fell back from VSS (vssFallbackReason). job-events (for its notifications) and the
 * label-writer (for the tags) both decide it here, so they cannot disagree.
 */
export function finalVerdict(
  job: { readonly platform: 'linux' | 'windows'; readonly verdict: ConsistencyVerdict },
  backupType: string | undefined,
  statusMessage: string | undefined,
): ConsistencyVerdict {
  const fallback = vssFallbackReason(job.platform, backupType, cleanStatusMessage(statusMessage));
  if (fallback === undefined) return job.verdict;
  return {
    consistency: 'crash' satisfies Consistency,
    reason: `Windows VSS fell back to a regular backup: ${fallback}`,
    freezeMs: job.verdict.freezeMs,
  };
}
