/**
 * The one place that decides what a workflow run achieved: which outcome to report, which
 * consistency label the recovery point gets, and why. Pure: it takes the facts the state machine
 * gathered (every step's result or caught error) and a clock reading, and never throws on
 * malformed facts, because a verdict must exist for every run.
 */

import type { Consistency, ConsistencyVerdict } from './consistency';
import type { FreezeFailurePolicy } from './options';
import type { OutcomeKind } from './outcome';

import type {
  ActiveJobsResult,
  CommandResult,
  SnapshotWaitResult,
  SnapshotWaitStatus,
  StepError,
} from './workflow-results';

export type { ActiveJobsResult, CommandResult, SnapshotWaitResult, SnapshotWaitStatus, StepError };

/** The freeze document's stdout (ssm-documents/README.md), only the fields the verdict reads. */
export interface FreezeOutput {
  readonly status: 'frozen' | 'nothing-to-freeze' | 'error';
  readonly frozenAtMs?: number;
  readonly frozenAt?: string;
  readonly targets: readonly string[];
  readonly hooksConfigured: boolean;
  readonly failedHooks: readonly string[];
  readonly watchdogDeadline?: string;
  readonly errorMessage?: string;
  /** Attached volumes the document found no block device for, `vol-id (reason)`: nothing on them was frozen. */
  readonly unmapped: readonly string[];
  /** Data filesystems skipped for a reason that is neither `protected` nor the Exclude tag. */
  readonly unfrozen: readonly string[];
  /** Data filesystems the instance's Exclude tag removed. */
  readonly excluded: readonly string[];
}

/** The thaw document's stdout, only the fields the verdict reads. */
export interface ThawOutput {
  readonly status: 'thawed' | 'error';
  readonly freezeMs?: number;
  readonly thawedAtMs?: number;
  readonly watchdogFired: boolean;
  readonly failed: readonly string[];
  /** `false` when a post-thaw hook failed or was refused; undefined when the output omits it. */
  readonly postThawHooksOk?: boolean;
  /** The post-thaw hooks that did not exit 0, `name (exit n[, timed out]: last output line)`. */
  readonly failedPostThawHooks: readonly string[];
  /** The thaw's warnings about post-thaw hooks (e.g. hooks refused as insecure). */
  readonly hookWarnings: readonly string[];
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/**
 * The documents print exactly one JSON object, but an agent or a hook can add noise: take the last
 * line that parses as a JSON object rather than trusting the whole text.
 */
export function lastJsonObject(stdout: unknown): Record<string, unknown> | undefined {
  if (typeof stdout !== 'string') return undefined;
  const whole = stdout.trim();
  const candidates = [whole, ...whole.split('\n').reverse()];
  for (const candidate of candidates) {
    const text = candidate.trim();
    if (!text.startsWith('{')) continue;
    try {
      const parsed = record(JSON.parse(text));
      if (parsed) return parsed;
    } catch {
      // Not this line; keep looking.
    }
  }
  return undefined;
}

/** Read the freeze document's stdout; undefined when it is not the documented contract. */
export function parseFreezeOutput(stdout: unknown): FreezeOutput | undefined {
  const o = lastJsonObject(stdout);
  if (!o || o.action !== 'freeze') return undefined;
  const status = o.status;
  if (status !== 'frozen' && status !== 'nothing-to-freeze' && status !== 'error') return undefined;
  const frozenAt = str(o.frozenAt);
  const frozenAtMs = num(o.frozenAtMs) ?? (frozenAt ? Date.parse(frozenAt) : undefined);
  if (status === 'frozen' && (frozenAtMs === undefined || Number.isNaN(frozenAtMs))) return undefined;
  const targets = Array.isArray(o.targets)
    ? o.targets.map((t) => str(record(t)?.mountpoint)).filter((m): m is string => m !== undefined)
    : [];
  const hooks = Array.isArray(o.hooks) ? o.hooks.map(record).filter((h) => h !== undefined) : [];
  const failedHooks = hooks
    .filter((h) => num(h.exitCode) !== 0)
    .map((h) => `${str(h.phase) ?? 'hook'} ${str(h.name) ?? '?'} (exit ${String(h.exitCode)})`);
  const skipped = Array.isArray(o.skipped) ? o.skipped.map(record).filter((e) => e !== undefined) : [];
  const skippedText = (e: Record<string, unknown>): string => {
    const vols = Array.isArray(e.volumeIds) ? e.volumeIds.filter((v) => typeof v === 'string') : [];
    return `${str(e.mountpoint) ?? '?'}${vols.length ? ` on ${vols.join(', ')}` : ''} (${str(e.reason) ?? 'no reason given'})`;
  };
  // Protected filesystems (/, /var, ...) are never frozen by design and documented as crash-consistent.
  const notProtected = skipped.filter((e) => !str(e.reason)?.startsWith('protected'));
  const isExcluded = (e: Record<string, unknown>) => str(e.reason)?.startsWith('excluded') === true;
  return {
    status,
    unmapped: Array.isArray(o.unmapped)
      ? o.unmapped
          .map(record)
          .filter((e) => e !== undefined)
          .map((e) => `${str(e.volumeId) ?? '?'} (${str(e.reason) ?? 'no reason given'})`)
      : [],
    unfrozen: notProtected.filter((e) => !isExcluded(e)).map(skippedText),
    excluded: notProtected.filter(isExcluded).map(skippedText),
    frozenAtMs: frozenAtMs !== undefined && !Number.isNaN(frozenAtMs) ? frozenAtMs : undefined,
    frozenAt,
    targets,
    hooksConfigured: o.hooksConfigured === true,
    failedHooks,
    watchdogDeadline: str(record(o.watchdog)?.deadline),
    errorMessage: str(record(o.error)?.message) ?? str(record(o.error)?.code),
  };
}

/** Read the thaw document's stdout; undefined when it is not the documented contract. */
export function parseThawOutput(stdout: unknown): ThawOutput | undefined {
  const o = lastJsonObject(stdout);
  if (!o || o.action !== 'thaw') return undefined;
  if (o.status !== 'thawed' && o.status !== 'error') return undefined;
  const hooks = Array.isArray(o.hooks) ? o.hooks.map(record).filter((h) => h !== undefined) : [];
  const failedPostThawHooks = hooks
    .filter((h) => num(h.exitCode) !== 0)
    .map((h) => {
      const lines = (str(h.output) ?? '').trim().split('\n');
      const last = lines[lines.length - 1]?.trim().slice(0, 200) ?? '';
      const timedOut = h.timedOut === true ? ', timed out' : '';
      return `${str(h.name) ?? '(hooks not run)'} (exit ${String(h.exitCode)}${timedOut}${last ? `: ${last}` : ''})`;
    });
  const warnings = Array.isArray(o.warnings) ? o.warnings.filter((w) => typeof w === 'string') : [];
  return {
    status: o.status,
    postThawHooksOk: typeof o.postThawHooksOk === 'boolean' ? o.postThawHooksOk : undefined,
    failedPostThawHooks,
    hookWarnings: warnings.filter((w) => w.includes('post-thaw')),
    freezeMs: num(o.freezeMs),
    thawedAtMs: num(o.thawedAtMs),
    watchdogFired: o.watchdogFired === true,
    failed: Array.isArray(o.failed) ? o.failed.filter((f): f is string => typeof f === 'string') : [],
  };
}

/** Everything the state machine knows when it reaches Record Outcome. Every field may be missing. */
export interface WorkflowFacts {
  readonly platform?: unknown;
  readonly instanceState?: unknown;
  readonly options?: { readonly onFreezeFailure?: unknown };
  readonly activeJobs?: unknown;
  readonly activeJobsError?: unknown;
  readonly vssInstall?: unknown;
  readonly vssInstallError?: unknown;
  readonly freezeCommand?: unknown;
  readonly freeze?: unknown;
  readonly freezeError?: unknown;
  readonly backupJob?: unknown;
  readonly backupError?: unknown;
  readonly snapshots?: unknown;
  readonly snapshotsError?: unknown;
  /** ThawStepResult (or `{ result: CommandResult }`, as the thaw Parallel of earlier definitions stored it). */
  readonly thaw?: unknown;
  readonly thawError?: unknown;
  readonly retriedThaw?: unknown;
  readonly retriedThawError?: unknown;
  /** UnfrozenBackupResult: stopped instances, Windows, and the start after the thaw. */
  readonly unfrozenBackup?: unknown;
  readonly unfrozenBackupError?: unknown;
}

export interface VerdictSettings {
  readonly freezeBudgetSeconds: number;
  readonly watchdogSeconds: number;
  /** The instance's freeze-failure policy when the input does not carry a valid one. */
  readonly defaultOnFreezeFailure: FreezeFailurePolicy;
}

/** `none`: no backup job was started in this window. */
export type ExecutionConsistency = Consistency | 'none';

/** The decision, and the execution output (plus identifiers record-outcome adds). */
export interface Decision {
  readonly outcome: OutcomeKind;
  readonly consistency: ExecutionConsistency;
  readonly reason: string;
  readonly freezeMs: number;
  /** Present whenever a backup job was started. */
  readonly verdict?: ConsistencyVerdict;
  readonly backupJobId?: string;
  readonly recoveryPointArn?: string;
  readonly warnings: readonly string[];
  readonly error?: { readonly error: string; readonly cause: string };
  readonly watchdogThawBy?: string;
  /** backup-job-failed: the job state that ended it, and AWS Backup's status message. */
  readonly backupJobState?: string;
  readonly backupJobStatusMessage?: string;
  /** True when the run failed: the execution ends in a Fail state after the outcome is recorded. */
  readonly failed: boolean;
}

function stepError(value: unknown): { error: string; cause: string } | undefined {
  const o = record(value);
  if (!o) return undefined;
  const error = str(o.Error) ?? 'UnknownError';
  const cause = typeof o.Cause === 'string' ? o.Cause : JSON.stringify(o.Cause ?? '');
  return { error, cause: cause.slice(0, 1000) };
}

function describe(err: { error: string; cause: string }): string {
  const cause = err.cause.length > 200 ? `${err.cause.slice(0, 200)}…` : err.cause;
  return cause ? `${err.error}: ${cause}` : err.error;
}

function commandResult(value: unknown): CommandResult | undefined {
  const o = record(value);
  if (!o || typeof o.succeeded !== 'boolean') return undefined;
  return {
    succeeded: o.succeeded,
    status: str(o.status) ?? 'Unknown',
    commandId: str(o.commandId) ?? '',
    stdout: typeof o.stdout === 'string' ? o.stdout : '',
    stderr: typeof o.stderr === 'string' ? o.stderr : '',
    detail: str(o.detail) ?? '',
  };
}

function snapshotResult(value: unknown): SnapshotWaitResult | undefined {
  const o = record(value);
  const statuses: SnapshotWaitStatus[] = [
    'started',
    'job-failed',
    'budget-exceeded',
    'start-failed',
    'not-frozen',
    'freeze-output-invalid',
  ];
  if (!o || !statuses.includes(o.status as SnapshotWaitStatus)) return undefined;
  return {
    status: o.status as SnapshotWaitStatus,
    snapshots: Array.isArray(o.snapshots) ? (o.snapshots as SnapshotWaitResult['snapshots']) : [],
    missingVolumeIds: Array.isArray(o.missingVolumeIds) ? (o.missingVolumeIds as string[]) : [],
    jobState: str(o.jobState),
    jobStatusMessage: str(o.jobStatusMessage),
    waitedMs: num(o.waitedMs) ?? 0,
    answeredBy: o.answeredBy === 'poller' ? 'poller' : 'start-backup',
  };
}

/**
 * The step results of the workflow (lambda/shared/workflow-results.ts) in the terms the verdict
 * reasons in: the freeze command, the job, the errors, the thaw command that decides. A thaw counts
 * only when confirmed (the instance reported it thawed); an unconfirmed last attempt is the thaw's
 * error. State written by earlier definitions (the freeze as a bare CommandResult, the thaw under
 * `result`) passes through unchanged.
 */
export function stepFacts(facts: WorkflowFacts): WorkflowFacts {
  const out: Record<string, unknown> = { ...facts };
  const freeze = record(facts.freeze);
  if (freeze && typeof freeze.outcome === 'string') {
    out.freeze = freeze.command;
    if (freeze.outcome === 'active-job') out.activeJobs = freeze.activeJobs;
    if (freeze.activeJobsError !== undefined) out.activeJobsError = freeze.activeJobsError;
    if (freeze.outcome === 'not-sent' && freeze.command === undefined && facts.freezeError === undefined) {
      out.freezeError = { Error: 'FreezeNotSent', Cause: str(freeze.detail) ?? 'the freeze was not sent' };
    }
  }
  const unfrozen = record(facts.unfrozenBackup);
  const wait = record(facts.snapshots);
  const waitJob = record(wait?.backupJob);
  const unfrozenJob = record(unfrozen?.backupJob);
  const job = waitJob ?? unfrozenJob;
  if (job && str(job.backupJobId)) {
    out.backupJob = { BackupJobId: job.backupJobId, CreationDate: job.creationDate };
  }
  if (unfrozen?.activeJobs !== undefined && record(unfrozen.activeJobs)?.active === true) {
    out.activeJobs = unfrozen.activeJobs;
  }
  if (unfrozen?.activeJobsError !== undefined) out.activeJobsError = unfrozen.activeJobsError;
  const backupError = unfrozenJob
    ? undefined
    : (unfrozen?.backupError ?? facts.unfrozenBackupError ?? (waitJob ? undefined : wait?.backupError));
  if (backupError !== undefined && out.backupError === undefined) out.backupError = backupError;

  const attempts = [
    { step: record(facts.retriedThaw), error: facts.retriedThawError },
    { step: record(facts.thaw), error: facts.thawError },
  ];
  if (attempts.some((a) => a.step && typeof a.step.confirmed === 'boolean') || facts.retriedThawError) {
    const confirmed = attempts.find((a) => a.step?.confirmed === true);
    const last = attempts.find((a) => a.step !== undefined || a.error !== undefined);
    out.thaw = (confirmed ?? last)?.step?.command;
    out.thawError = confirmed
      ? undefined
      : (last?.error ??
        (last?.step
          ? { Error: 'ThawNotConfirmed', Cause: str(last.step.detail) ?? 'the thaw was not confirmed' }
          : undefined));
    if (out.thaw === undefined) delete out.thaw;
    if (out.thawError === undefined) delete out.thawError;
  }
  return out as WorkflowFacts;
}

/** The freeze command's failure in words, or undefined when it froze (or found nothing to freeze). */
function freezeFailure(facts: WorkflowFacts): { freeze?: FreezeOutput; failure?: string } {
  const caught = stepError(facts.freezeError);
  if (caught) return { failure: `the freeze step failed (${describe(caught)})` };
  const command = commandResult(facts.freeze);
  if (!command) return { failure: 'the freeze step returned no result' };
  const output = parseFreezeOutput(command.stdout);
  if (!command.succeeded) {
    const why = output?.errorMessage ?? command.detail ?? command.status;
    return { freeze: output, failure: `the freeze command ended ${command.status}${why ? ` (${why})` : ''}` };
  }
  if (!output) return { failure: 'the freeze command succeeded but its output is not the documented JSON' };
  if (output.status === 'error') {
    return {
      freeze: output,
      failure: `the freeze document reported an error (${output.errorMessage ?? 'no message'})`,
    };
  }
  return { freeze: output };
}

function backupJob(value: unknown): { backupJobId?: string; recoveryPointArn?: string } | undefined {
  const o = record(value);
  if (!o) return undefined;
  const backupJobId = str(o.BackupJobId);
  if (!backupJobId) return undefined;
  return { backupJobId, recoveryPointArn: str(o.RecoveryPointArn) };
}

/**
 * The label of a run whose snapshots all started while frozen. It describes the recovery point as a
 * whole, so it is only as good as its weakest data filesystem:
 * - a volume the document could not map to a device, or a data filesystem skipped as unsupported,
 *   was not frozen although it may hold data written during the backup: `crash`, with a warning,
 *   because calling the whole recovery point filesystem- or application-consistent would overclaim;
 * - a filesystem the instance's own Exclude tag removed keeps the label (the operator declared its
 *   content needs no consistency, as protected filesystems like / and /var are by design), and the
 *   reason names it, without a warning each window for a deliberate setting;
 * - `application` needs hooks that all succeeded before the freeze and a thaw that reports
 *   `postThawHooksOk` not false: a false means a lock-holding hook's session ended before the thaw,
 *   so the application's quiesce did not last until the snapshots started.
 */
function frozenVerdict(
  freeze: FreezeOutput | undefined,
  thaw: ThawOutput | undefined,
  targets: string,
  freezeMs: number,
  warnings: string[],
): ConsistencyVerdict {
  const preFreezeFailed = (freeze?.failedHooks.length ?? 0) > 0;
  if (freeze && preFreezeFailed) {
    warnings.push(
      `Pre-freeze hooks failed: ${freeze.failedHooks.join('; ')}; labelled filesystem-consistent.`,
    );
  }
  let postThaw: string | undefined;
  if (thaw?.postThawHooksOk === false) {
    const what = thaw.failedPostThawHooks.length
      ? `post-thaw hook ${thaw.failedPostThawHooks.join('; ')}`
      : thaw.hookWarnings.length
        ? thaw.hookWarnings.join('; ')
        : 'the thaw reported postThawHooksOk false without naming a hook';
    postThaw = `the application's quiesce did not last until the thaw (${what})`;
    warnings.push(
      `The application's quiesce did not last until the thaw (${what}); labelled at most filesystem-consistent.`,
    );
  }
  const excluded = freeze?.excluded.length
    ? `; not frozen, by the Exclude tag: ${freeze.excluded.join('; ')}`
    : '';
  const notFrozen = [...(freeze?.unmapped ?? []), ...(freeze?.unfrozen ?? [])];
  if (notFrozen.length > 0) {
    warnings.push(
      `Data on ${notFrozen.join('; ')} was not frozen: backed up crash-consistent although ${targets} were frozen.`,
    );
    return {
      consistency: 'crash',
      reason: `not frozen: ${notFrozen.join('; ')}; only ${targets} were frozen until every snapshot started${excluded}`,
      freezeMs,
    };
  }
  const hooksOk = freeze?.hooksConfigured === true && !preFreezeFailed && postThaw === undefined;
  if (hooksOk) {
    return {
      consistency: 'application',
      reason: `application hooks ran and ${targets} were frozen until every snapshot started${excluded}`,
      freezeMs,
    };
  }
  const why = preFreezeFailed
    ? '; a pre-freeze hook failed'
    : postThaw
      ? `; ${postThaw}`
      : '; no application hooks configured';
  return {
    consistency: 'filesystem',
    reason: `${targets} were frozen until every snapshot started${why}${excluded}`,
    freezeMs,
  };
}

/**
 * When the on-instance watchdog thawed (or was due to thaw) this freeze, in ms: the earliest of the
 * deadline the freeze reported, frozenAt + watchdogSeconds, and the thaw's own time when it says
 * the watchdog fired. Undefined when the freeze time is unknown.
 */
function watchdogThawedAtMs(
  freeze: FreezeOutput | undefined,
  thaw: ThawOutput | undefined,
  settings: VerdictSettings,
): number | undefined {
  const candidates: number[] = [];
  const deadline = freeze?.watchdogDeadline ? Date.parse(freeze.watchdogDeadline) : Number.NaN;
  if (!Number.isNaN(deadline)) candidates.push(deadline);
  if (freeze?.frozenAtMs !== undefined) candidates.push(freeze.frozenAtMs + settings.watchdogSeconds * 1000);
  if (thaw?.watchdogFired && thaw.thawedAtMs !== undefined) candidates.push(thaw.thawedAtMs);
  return candidates.length ? Math.min(...candidates) : undefined;
}

/**
 * The snapshots start-backup's wait counted but first saw (or that started) at or after the watchdog thawed:
 * `snap-id of vol-id (seen at ..., watchdog at ...)`. A snapshot counts as taken while frozen only
 * if it was seen before the thaw that ended the freeze could have happened.
 */
function lateSnapshots(
  wait: SnapshotWaitResult,
  freeze: FreezeOutput | undefined,
  thaw: ThawOutput | undefined,
  settings: VerdictSettings,
): string[] {
  const watchdogAt = watchdogThawedAtMs(freeze, thaw, settings);
  if (watchdogAt === undefined) return [];
  return wait.snapshots
    .map((snap) => {
      const started = Date.parse(snap.startTime);
      const seen = Math.max(
        typeof snap.seenAtMs === 'number' && Number.isFinite(snap.seenAtMs) ? snap.seenAtMs : -Infinity,
        Number.isNaN(started) ? -Infinity : started,
      );
      return { snap, seen };
    })
    .filter(({ seen }) => seen >= watchdogAt)
    .map(
      ({ snap, seen }) =>
        `${snap.snapshotId} of ${snap.volumeId} (seen at ${new Date(seen).toISOString()}, watchdog at ${new Date(watchdogAt).toISOString()})`,
    );
}

/** Decide the outcome and the consistency label of one run from its facts. */
export function decideVerdict(stepState: WorkflowFacts, settings: VerdictSettings, nowMs: number): Decision {
  const facts = stepFacts(stepState);
  const warnings: string[] = [];
  const activeError = stepError(facts.activeJobsError);
  if (activeError) {
    warnings.push(`Could not check for an active backup job (${describe(activeError)}); went ahead.`);
  }
  const active = record(facts.activeJobs) as ActiveJobsResult | undefined;
  if (active?.active === true) {
    const ids = Array.isArray(active.jobIds) ? active.jobIds.join(', ') : '';
    return {
      outcome: 'skipped-active-job',
      consistency: 'none',
      reason: `Skipped this window: backup job ${ids || '(id unknown)'} for this instance is still active, and AWS Backup runs one job per resource at a time.`,
      freezeMs: 0,
      warnings,
      failed: false,
    };
  }

  const job = backupJob(facts.backupJob);
  const backupError = stepError(facts.backupError);
  const startFailed = (consistency: string): Decision => ({
    outcome: 'backup-start-failed',
    consistency: 'none',
    reason: `No backup this window: StartBackupJob failed (${backupError ? describe(backupError) : 'no job id returned'}) after a ${consistency} attempt.`,
    freezeMs: 0,
    warnings,
    error: backupError ?? { error: 'BackupJobNotStarted', cause: 'StartBackupJob returned no BackupJobId' },
    failed: true,
  });
  const backedUp = (verdict: ConsistencyVerdict): Decision => ({
    outcome: 'backed-up',
    consistency: verdict.consistency,
    reason: verdict.reason,
    freezeMs: verdict.freezeMs,
    verdict,
    backupJobId: job?.backupJobId,
    recoveryPointArn: job?.recoveryPointArn,
    warnings,
    failed: false,
  });

  if (facts.instanceState === 'stopped') {
    if (!job) return startFailed('stopped-instance');
    return backedUp({ consistency: 'filesystem', reason: 'instance stopped', freezeMs: 0 });
  }

  if (facts.platform === 'windows') {
    const installError = stepError(facts.vssInstallError);
    const install = commandResult(facts.vssInstall);
    if (installError) warnings.push(`Installing AwsVssComponents failed (${describe(installError)}).`);
    else if (install && !install.succeeded) {
      warnings.push(`Installing AwsVssComponents ended ${install.status} (${install.detail}).`);
    }
    if (!job) return startFailed('Windows VSS');
    return backedUp({
      consistency: 'application',
      reason: 'VSS requested; confirmed at job completion',
      freezeMs: 0,
    });
  }

  const policy: FreezeFailurePolicy =
    facts.options?.onFreezeFailure === 'skip' || facts.options?.onFreezeFailure === 'crash-consistent'
      ? facts.options.onFreezeFailure
      : settings.defaultOnFreezeFailure;
  const { freeze, failure } = freezeFailure(facts);
  // The thaw Parallel stores its branch's result under `result`.
  const thawCommand = commandResult(record(facts.thaw)?.result ?? facts.thaw);
  const thawOutput = thawCommand ? parseThawOutput(thawCommand.stdout) : undefined;
  const thawError = stepError(facts.thawError);
  const thawSent = facts.thaw !== undefined || facts.thawError !== undefined;

  const frozenAtMs = freeze?.status === 'frozen' ? freeze.frozenAtMs : undefined;
  let freezeMs = 0;
  if (frozenAtMs !== undefined) {
    if (thawOutput?.freezeMs !== undefined) freezeMs = thawOutput.freezeMs;
    else if (thawOutput?.thawedAtMs !== undefined) freezeMs = thawOutput.thawedAtMs - frozenAtMs;
    else freezeMs = nowMs - frozenAtMs;
    freezeMs = Math.max(0, Math.round(freezeMs));
  }
  if (thawOutput?.watchdogFired) {
    warnings.push('The on-instance watchdog thawed before the thaw command arrived.');
  }

  let decision: Decision;
  if (failure !== undefined) {
    if (policy === 'skip') {
      decision = {
        outcome: 'skipped-freeze-failed',
        consistency: 'none',
        reason: `No backup this window: ${failure}, and the freeze-failure policy is skip.`,
        freezeMs: 0,
        warnings,
        error: stepError(facts.freezeError) ?? { error: 'FreezeFailed', cause: failure },
        failed: true,
      };
    } else if (!job) {
      decision = startFailed('crash-consistent');
    } else {
      warnings.push(`Backed up crash-consistent: ${failure}.`);
      decision = backedUp({
        consistency: 'crash',
        reason: `${failure}; backed up crash-consistent per the freeze-failure policy`,
        freezeMs: 0,
      });
    }
  } else if (!job) {
    decision = startFailed('frozen');
  } else if (freeze?.status === 'nothing-to-freeze') {
    // On Xen instances without device names an unmapped data volume looks like "nothing to freeze":
    // name it, so the cause is not mistaken for a root-only instance.
    const unmapped = freeze.unmapped.length ? `; not mapped to a device: ${freeze.unmapped.join('; ')}` : '';
    warnings.push(
      `No data filesystem to freeze on the attached volumes${unmapped}: backed up crash-consistent.`,
    );
    decision = backedUp({
      consistency: 'crash',
      reason: `no data filesystem to freeze on the attached volumes (the root filesystem is never frozen)${unmapped}`,
      freezeMs: 0,
    });
  } else {
    const snapshotsError = stepError(facts.snapshotsError);
    const wait = snapshotResult(facts.snapshots);
    const targets = freeze?.targets.length ? freeze.targets.join(', ') : 'the data filesystems';
    if (wait?.status === 'job-failed') {
      // No recovery point will exist: this is a failed backup, not a crash-consistent one. The
      // verdict stays (crash: the point in time was never fixed while frozen) so the notifier stores
      // the job and job-events can match its final state to this run.
      const state = wait.jobState ?? 'FAILED';
      const why = `backup job ${job.backupJobId} ended ${state} while the filesystems were frozen, so there is no recovery point for this window${wait.jobStatusMessage ? ` (AWS Backup: ${wait.jobStatusMessage})` : ''}`;
      decision = {
        outcome: 'backup-job-failed',
        consistency: 'none',
        reason: `No backup this window: ${why}.`,
        freezeMs,
        verdict: { consistency: 'crash', reason: why, freezeMs },
        backupJobId: job.backupJobId,
        recoveryPointArn: job.recoveryPointArn,
        backupJobState: state,
        ...(wait.jobStatusMessage ? { backupJobStatusMessage: wait.jobStatusMessage } : {}),
        warnings,
        error: { error: 'BackupJobFailed', cause: why },
        failed: true,
      };
    } else if (wait?.status === 'started' && lateSnapshots(wait, freeze, thawOutput, settings).length > 0) {
      // The watchdog had thawed before start-backup saw these: nothing says they started while frozen.
      const late = lateSnapshots(wait, freeze, thawOutput, settings);
      const why = `snapshot${late.length > 1 ? 's' : ''} ${late.join('; ')} ${late.length > 1 ? 'were' : 'was'} first seen after the on-instance watchdog thawed the filesystems, so not counted as taken while frozen`;
      warnings.push(`Backed up crash-consistent: ${why}.`);
      decision = backedUp({ consistency: 'crash', reason: why, freezeMs });
    } else if (wait?.status === 'started') {
      decision = backedUp(frozenVerdict(freeze, thawOutput, targets, freezeMs, warnings));
    } else if (
      (!wait && !snapshotsError && backupError) ||
      // start-backup's answer (it names who answered): no job within the budget.
      (wait?.status === 'budget-exceeded' &&
        record(facts.snapshots)?.answeredBy !== undefined &&
        !record(record(facts.snapshots)?.backupJob))
    ) {
      // StartBackupJob gave no job within the freeze budget (start-backup gave up so the thaw came
      // first); the job that exists was started, or found, after the thaw.
      const startError = stepError(record(facts.snapshots)?.backupError) ?? backupError;
      const why = `StartBackupJob gave no job within the freeze budget of ${settings.freezeBudgetSeconds} s (${startError ? describe(startError) : 'no answer'}), so the filesystems were thawed first and job ${job.backupJobId} ran without a freeze`;
      warnings.push(`Backed up crash-consistent: ${why}.`);
      decision = backedUp({ consistency: 'crash', reason: why, freezeMs });
    } else {
      let why: string;
      if (snapshotsError)
        why = `could not confirm that the snapshots started while frozen (${describe(snapshotsError)})`;
      else if (!wait) why = 'the snapshot wait returned no result';
      else if (wait.status === 'budget-exceeded') {
        why = `snapshots of ${wait.missingVolumeIds.join(', ') || 'some volumes'} had not started within the freeze budget of ${settings.freezeBudgetSeconds} s, so the filesystems were thawed first`;
      } else why = `the freeze time could not be established (${wait.status})`;
      warnings.push(`Backed up crash-consistent: ${why}.`);
      decision = backedUp({ consistency: 'crash', reason: why, freezeMs });
    }
  }

  // A failed thaw outranks everything: it is the one failure that leaves an instance frozen.
  const thawFailed = thawError !== undefined || (thawCommand !== undefined && !thawCommand.succeeded);
  if (
    !thawFailed &&
    !thawOutput?.watchdogFired &&
    thawOutput?.freezeMs !== undefined &&
    thawOutput.freezeMs > settings.freezeBudgetSeconds * 1000
  ) {
    // Thawed by this execution, but later than the budget allows (a late or failed first thaw, a
    // delivery delayed by SSM): the one promise the freeze makes was broken, so it is Critical.
    const cause = `the filesystems were frozen for ${(thawOutput.freezeMs / 1000).toFixed(1)} s, over the freeze budget of ${settings.freezeBudgetSeconds} s, before the thaw command thawed them`;
    return {
      ...decision,
      outcome: 'thaw-failed',
      reason: `${decision.reason}. The thaw came late: ${cause}.`,
      error: { error: 'ThawedAfterBudget', cause },
      ...(freeze?.watchdogDeadline ? { watchdogThawBy: freeze.watchdogDeadline } : {}),
      failed: true,
    };
  }
  if (!thawFailed && thawOutput?.watchdogFired) {
    // The thaw arrived, but the watchdog had already ended the freeze: it was held past the budget
    // until the watchdog's deadline. Critical, naming the watchdog, never a Warning.
    const watchdogThawBy =
      freeze?.watchdogDeadline ??
      (frozenAtMs !== undefined
        ? new Date(frozenAtMs + settings.watchdogSeconds * 1000).toISOString()
        : thawOutput.thawedAtMs !== undefined
          ? new Date(thawOutput.thawedAtMs).toISOString()
          : `${settings.watchdogSeconds} s after the freeze began`);
    const cause = `the on-instance watchdog thawed the filesystems (by ${watchdogThawBy}) before the thaw command arrived, so the freeze lasted beyond its budget of ${settings.freezeBudgetSeconds} s`;
    return {
      ...decision,
      outcome: 'thaw-failed',
      reason: `${decision.reason}. Thawed by the watchdog: ${cause}.`,
      error: { error: 'ThawedByWatchdog', cause },
      watchdogThawBy,
      failed: true,
    };
  }
  if (thawFailed || (!thawSent && failure === undefined && frozenAtMs !== undefined)) {
    const watchdogThawBy =
      freeze?.watchdogDeadline ??
      new Date((frozenAtMs ?? nowMs) + settings.watchdogSeconds * 1000).toISOString();
    const error =
      thawError ??
      (thawCommand
        ? { error: 'ThawCommandFailed', cause: `${thawCommand.status}: ${thawCommand.detail}` }
        : { error: 'ThawNotSent', cause: 'the workflow reached its end without sending the thaw' });
    return {
      ...decision,
      outcome: 'thaw-failed',
      reason: `${decision.reason}. The thaw failed (${describe(error)}); the on-instance watchdog thaws by ${watchdogThawBy}.`,
      error,
      watchdogThawBy,
      failed: true,
    };
  }
  return decision;
}
