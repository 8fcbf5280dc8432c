import type { ConsistencyVerdict } from './consistency';

/**
 * What happened to one instance in one window, as the workflow's record-outcome step and
 * discovery report it. The notifier (lambda/shared/notifier.ts, with the builders in
 * lambda/shared/notifications/) turns outcomes into notifications with severities, de-duplication
 * and Clear; nothing else decides severities.
 */
export type OutcomeKind =
  /** A backup job was started; `verdict` says how consistent it is. */
  | 'backed-up'
  /** Another backup job for this instance was still active: this window was skipped. */
  | 'skipped-active-job'
  /** The freeze failed and the policy is `skip`: no backup this window. */
  | 'skipped-freeze-failed'
  /** StartBackupJob failed (after retries): no backup this window. */
  | 'backup-start-failed'
  /** The thaw failed after retries; the on-instance watchdog is the backstop. */
  | 'thaw-failed'
  /**
   * The backup job ended FAILED, ABORTED or EXPIRED while the filesystems were frozen, so there is
   * no recovery point. Reported as the job failure it is (the same notification and event id
   * job-events uses for that job state), not as a crash-consistent fallback: one alert, whichever
   * of the two arrives first.
   */
  | 'backup-job-failed';

export interface WorkflowOutcome {
  readonly schemaVersion: 1;
  readonly outcome: OutcomeKind;
  readonly runId: string;
  readonly window: string;
  readonly accountId: string;
  readonly region: string;
  readonly executionArn: string;
  readonly instanceId: string;
  readonly instanceName?: string;
  readonly platform: 'linux' | 'windows';
  /** Present whenever a backup job was started. */
  readonly verdict?: ConsistencyVerdict;
  readonly backupJobId?: string;
  readonly recoveryPointArn?: string;
  /** The job state that ended the job early (backup-job-failed), e.g. FAILED. */
  readonly backupJobState?: string;
  /** AWS Backup's status message for that state, when DescribeBackupJob gave one. */
  readonly backupJobStatusMessage?: string;
  /** ISO-8601: when the on-instance watchdog thaws by itself (thaw-failed). */
  readonly watchdogThawBy?: string;
  /** Things that degraded without failing, e.g. the freeze budget ran out. */
  readonly warnings: readonly string[];
  /** The error that caused a failing outcome, as Step Functions reported it. */
  readonly error?: { readonly error: string; readonly cause: string };
}

/**
 * The most volume ids the Freeze document accepts (its VolumeIds allowedPattern; lib/documents.ts
 * refuses to render a pattern that disagrees). A Linux instance with more cannot be frozen.
 */
export const MAX_FREEZE_VOLUMES = 40;

/** Why discovery left an instance out of a window. */
export type ExclusionReason =
  | 'ssm-offline'
  | 'ssm-not-managed'
  | 'no-ebs-volumes'
  | 'invalid-tag'
  | 'unsupported-state'
  | 'unsupported-platform'
  /** A running Linux instance with more than MAX_FREEZE_VOLUMES attached volumes. */
  | 'too-many-volumes'
  /** Its group's wave would start later than the workflow's longest allowed stagger. */
  | 'stagger-limit';

export interface ExcludedInstance {
  readonly instanceId: string;
  readonly instanceName?: string;
  readonly reason: ExclusionReason;
  /** A sentence an operator can act on, naming the bad value where there is one. */
  readonly detail: string;
}

/** Discovery's counts for one run, the start of the run summary. */
export interface DiscoverySummary {
  readonly runId: string;
  readonly window: string;
  readonly accountId: string;
  readonly region: string;
  readonly discovered: number;
  readonly excluded: Readonly<Partial<Record<ExclusionReason, number>>>;
  readonly started: number;
  readonly alreadyRunning: number;
  /**
   * Instances handed to a later discovery invocation; more than 0 means this report is not the
   * run's last, so the notifier must not finish the run on it. Absent counts as 0.
   * (Added by the notifications part; discovery's DiscoveryReport already sets it.)
   */
  readonly handedOver?: number;
}

/** Where outcomes go. Implemented by the notifier; tests pass a recording fake or the real one on mocked clients. */
export interface OutcomeSink {
  recordOutcome(outcome: WorkflowOutcome): Promise<void>;
  recordDiscovery(summary: DiscoverySummary, excluded: readonly ExcludedInstance[]): Promise<void>;
}
