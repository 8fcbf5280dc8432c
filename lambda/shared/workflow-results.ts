/**
 * What each step of the per-instance workflow stores in the execution state: the contract between
 * the functions that answer the steps (send-freeze, start-backup, command-results, the poller), the
 * state machine's Choice states (lib/workflow/), and the verdict (lambda/shared/verdict.ts).
 *
 * Every result here is small, typed and always well-formed where the state machine reads it (a
 * Choice that met a missing field would be an uncatchable States.Runtime error), so each carries
 * the fields the definition reads even when their value is "nothing happened".
 */

/**
 * State transitions one execution makes on its success path: every state entered, from Check Input
 * to Backup Recorded. Discovery's admission plans with them; test/workflow/scenarios.test.ts
 * executes the synthesized definition and checks them.
 */
export const SUCCESS_TRANSITIONS = {
  /** Check Input, Wait For Start Time, Freeze Filesystems, Check Freeze Result, Start Backup Job,
   * Send Thaw Command, Wait For Thaw Command, Check Thaw Result, Record Outcome, Did The Backup
   * Fail, Backup Recorded. */
  linux: 11,
  /** Check Input, the path's Wait, the unfrozen Start Backup Job, Record Outcome, Did The Backup
   * Fail, Backup Recorded: stopped instances, and Windows without the VSS components install. */
  unfrozen: 6,
} as const;

/** Where the state machine stores each step's result (ResultPath), and each step's caught error. */
export const RESULT_PATHS = {
  freeze: '$.freeze',
  freezeError: '$.freezeError',
  snapshots: '$.snapshots',
  snapshotsError: '$.snapshotsError',
  thawCommand: '$.thawCommand',
  thaw: '$.thaw',
  thawError: '$.thawError',
  retriedThawCommand: '$.retriedThawCommand',
  retriedThaw: '$.retriedThaw',
  retriedThawError: '$.retriedThawError',
  unfrozenBackup: '$.unfrozenBackup',
  unfrozenBackupError: '$.unfrozenBackupError',
  outcome: '$.outcome',
} as const;

/** A Step Functions error as a Catch with a ResultPath stores it. */
export interface StepError {
  readonly Error?: string;
  readonly Cause?: string;
}

/** Is a backup job for this instance still active (AWS Backup runs one job per resource at a time)? */
export interface ActiveJobsResult {
  readonly active: boolean;
  readonly jobIds: readonly string[];
}

/** The end state of one Run Command invocation, always well-formed. */
export interface CommandResult {
  /** True only when the invocation ended with Status Success. */
  readonly succeeded: boolean;
  /** The SSM invocation status, or an orchestrator status: `NoCommandId`, `WaitTimedOut`. */
  readonly status: string;
  readonly commandId: string;
  /** The first 24,000 characters of the document's stdout (GetCommandInvocation's limit). */
  readonly stdout: string;
  /** The last 2,000 characters of stderr. */
  readonly stderr: string;
  /** A sentence saying what happened, for notifications. */
  readonly detail: string;
}

/**
 * `$.freeze`, from send-freeze (not sent, active job) or command-results (the freeze command ended).
 * - `frozen`: the document reported `frozen` → Start Backup Job.
 * - `not-frozen`: the command was sent and ended otherwise (error, nothing to freeze, failed,
 *   timed out, unreadable output) → the thaw (it may have frozen something before failing).
 * - `active-job`: another backup job of the instance is active; nothing was sent → Record Outcome.
 * - `not-sent`: nothing was sent (refused: too late for the instance's blast-radius slot, or input
 *   the function could not accept) → the freeze-failure policy, no thaw needed.
 */
export type FreezeOutcome = 'frozen' | 'not-frozen' | 'active-job' | 'not-sent';
export const FREEZE_OUTCOMES: readonly FreezeOutcome[] = ['frozen', 'not-frozen', 'active-job', 'not-sent'];

export interface FreezeStepResult {
  readonly outcome: FreezeOutcome;
  /**
   * Whole seconds (>= 1) left of the freeze budget when this result was built: the next task's
   * TimeoutSecondsPath. A backstop only; the poller answers at the exact deadline.
   */
  readonly budgetSeconds: number;
  /** A sentence: why this outcome (the refusal, the document's error, ...). */
  readonly detail: string;
  readonly activeJobs?: ActiveJobsResult;
  readonly commandId?: string;
  /** When SendCommand returned (AWS clock, as the sending function read it). */
  readonly sentAtMs?: number;
  /** The NotAfter sent to the document (ISO-8601 UTC). */
  readonly notAfter?: string;
  readonly command?: CommandResult;
  /** The freeze time as the instance's clock reported it. */
  readonly frozenAtMs?: number;
  /**
   * The conservative freeze time on the orchestrator's clock: min(instance frozenAt, the time the
   * result was observed). The budget deadline and the watchdog expiry are computed from this, so an
   * instance clock that runs ahead can never stretch a freeze beyond its budget.
   */
  readonly frozenAtAwsMs?: number;
  /** ISO-8601: the watchdog's deadline as the document reported it. */
  readonly watchdogDeadline?: string;
  /** True when the document said the freeze was a duplicate of this execution's active freeze. */
  readonly duplicate?: boolean;
  /**
   * `not-frozen` only: the command succeeded and found no data filesystem to freeze (the root
   * filesystem is never frozen). Not a freeze failure: the backup goes ahead crash-consistent
   * whatever the freeze-failure policy.
   */
  readonly nothingToFreeze?: boolean;
  /** The active-job check failed; the freeze went ahead (the verdict warns). */
  readonly activeJobsError?: StepError;
}

/** Why the snapshot wait ended. */
export type SnapshotWaitStatus =
  /** Every attached volume has a snapshot of this job that started while frozen: thaw now. */
  | 'started'
  /** The backup job failed before every snapshot started: thaw now. */
  | 'job-failed'
  /** The freeze budget ran out first: thaw; the backup continues crash-consistent (if it exists). */
  | 'budget-exceeded'
  /** StartBackupJob failed for good (an error that retrying cannot fix): no job. */
  | 'start-failed'
  /** The freeze result says nothing was frozen, so there was nothing to wait for. */
  | 'not-frozen'
  /** The freeze time could not be established: thaw now. */
  | 'freeze-output-invalid';
export const SNAPSHOT_WAIT_STATUSES: readonly SnapshotWaitStatus[] = [
  'started',
  'job-failed',
  'budget-exceeded',
  'start-failed',
  'not-frozen',
  'freeze-output-invalid',
];

/** The backup job a step started, as far as it is known. */
export interface BackupJobRef {
  readonly backupJobId: string;
  /** ISO-8601, from StartBackupJob's or ListBackupJobs' CreationDate. */
  readonly creationDate?: string;
}

export interface StartedSnapshot {
  readonly volumeId: string;
  readonly snapshotId: string;
  /** ISO-8601 StartTime: the snapshot's point in time. */
  readonly startTime: string;
  /**
   * The AMI whose CreateImage took the snapshot (from its Description), when the poller found it:
   * once the job completes, it must be the job's RecoveryPointArn image.
   */
  readonly imageId?: string;
  /** When the waiter first saw it listed (its clock): one first seen after the watchdog fired does not count. */
  readonly seenAtMs?: number;
}

/** `$.snapshots`, from the poller or, when no job could be started in time, from start-backup. */
export interface SnapshotWaitResult {
  readonly status: SnapshotWaitStatus;
  /** Snapshots counted as started while frozen, one per volume at most. */
  readonly snapshots: readonly StartedSnapshot[];
  readonly missingVolumeIds: readonly string[];
  readonly backupJob?: BackupJobRef;
  /** StartBackupJob's last error when no job exists (start-failed, or budget-exceeded before a job). */
  readonly backupError?: StepError;
  /** The backup job state last seen, when known. */
  readonly jobState?: string;
  /** AWS Backup's status message with a failed job state (job-failed). */
  readonly jobStatusMessage?: string;
  readonly waitedMs: number;
  readonly answeredBy: 'poller' | 'start-backup';
}

/** `$.thaw` / `$.retriedThaw`, from command-results when the thaw command ended. */
export interface ThawStepResult {
  /** The command succeeded and its stdout is a `thawed` result with nothing left frozen. */
  readonly confirmed: boolean;
  readonly command: CommandResult;
  /** 1 for the first thaw command, 2 for the retry. */
  readonly attempt: number;
  readonly detail: string;
  /**
   * The thaw document reported that the on-instance watchdog had ended the freeze before this thaw
   * arrived (its `watchdogFired`): the thaw may be confirmed, but the freeze outlived the orchestrator's
   * thaw, so the last resort must report it as a Critical (lib/workflow/last-resort.ts).
   */
  readonly watchdogFired: boolean;
}

/** `$.unfrozenBackup` (stopped instances, Windows, and the crash-consistent fallback), from start-backup. */
export interface UnfrozenBackupResult {
  readonly started: boolean;
  readonly backupJob?: BackupJobRef;
  /** Set when an active job made this window skip (stopped and Windows paths check first). */
  readonly activeJobs?: ActiveJobsResult;
  readonly backupError?: StepError;
  /** The active-job check failed; the job was started anyway (the verdict warns). */
  readonly activeJobsError?: StepError;
  readonly windowsVss: boolean;
}

/** The smallest and largest budgetSeconds a FreezeStepResult may carry (Step Functions needs >= 1). */
export function budgetSecondsLeft(deadlineMs: number, nowMs: number, backstopSeconds = 2): number {
  const left = Math.ceil((deadlineMs - nowMs) / 1000) + backstopSeconds;
  return Math.max(1, Math.min(left, 3600));
}

/**
 * The freeze time the budget counts from: the instance's frozenAt, but never later than `nowMs` (a
 * moment on this side's clock known to be after the freeze), so an instance clock that runs ahead
 * cannot stretch a freeze beyond its budget.
 */
export function budgetStartMs(frozenAtMs: number, nowMs: number): number {
  return Math.min(frozenAtMs, nowMs);
}
