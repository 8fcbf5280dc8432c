/**
 * THE metric catalogue of ec2-consistent-backup: every custom metric, its unit, its dimensions and
 * their allowed values, and the one-line emitters the functions call. lib/monitoring.ts builds its
 * alarms and dashboard from these same definitions, and docs/operating.md's table is checked
 * against them by a test, so a name exists once.
 *
 * Emitted through Powertools Metrics as CloudWatch embedded metric format (EMF) log lines: one
 * namespace, Powertools' `service` dimension (POWERTOOLS_SERVICE_NAME, set on every function by
 * lib/lambda-function.ts), and at most two more dimensions per metric, each with a small closed set
 * of values (a value outside the set is counted as `other`), so the number of metrics stays fixed
 * however large the fleet: no instance id, run id or execution name is ever a dimension.
 * Each emission is its own single-metric EMF object, written at once: nothing to flush at the end
 * of an invocation, and nothing lost when a handler throws after emitting.
 */

import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Consistency } from './consistency';
import type { Notification, Severity } from './notification';
import type { ExclusionReason, OutcomeKind, WorkflowOutcome } from './outcome';
import type { SnapshotWaitResult } from './workflow-results';

export const METRICS_NAMESPACE = 'Ec2ConsistentBackup';
/** Powertools' default dimension on every metric: the value of POWERTOOLS_SERVICE_NAME. */
export const SERVICE_NAME = 'ec2-consistent-backup';

export const LABELS = ['application', 'filesystem', 'crash', 'none'] as const satisfies readonly (
  | Consistency
  | 'none'
)[];
export const FAILURE_CLASSES = [
  'skipped-active-job',
  'skipped-freeze-failed',
  'backup-start-failed',
  'backup-job-failed',
  'thaw-failed',
] as const satisfies readonly Exclude<OutcomeKind, 'backed-up'>[];
export const EXCLUSION_REASONS = [
  'ssm-offline',
  'ssm-not-managed',
  'no-ebs-volumes',
  'invalid-tag',
  'unsupported-state',
  'unsupported-platform',
  'too-many-volumes',
  'stagger-limit',
] as const satisfies readonly ExclusionReason[];
export const SEVERITY_VALUES = [
  'Critical',
  'Major',
  'Minor',
  'Warning',
  'OK',
  'Clear',
] as const satisfies readonly Severity[];

// A reason, outcome or severity added to its type but not here fails the type check.
type Missing<All, Listed> = [Exclude<All, Listed>] extends [never] ? true : Exclude<All, Listed>;
const complete: [
  Missing<Exclude<OutcomeKind, 'backed-up'>, (typeof FAILURE_CLASSES)[number]>,
  Missing<ExclusionReason, (typeof EXCLUSION_REASONS)[number]>,
  Missing<Severity, (typeof SEVERITY_VALUES)[number]>,
] = [true, true, true];
void complete;

export interface MetricDefinition {
  readonly name: string;
  readonly unit: 'Count' | 'Milliseconds';
  /** Dimension names besides `service`, each with its allowed values (undefined: the code's own bounded set). */
  readonly dimensions: Readonly<Record<string, readonly string[] | undefined>>;
  /** When it is emitted, and by what (docs/operating.md). */
  readonly when: string;
}

export const METRIC_CATALOGUE = {
  instancesByLabel: {
    name: 'InstancesByLabel',
    unit: 'Count',
    dimensions: { Label: LABELS },
    when: 'once per execution, when its outcome is first recorded (the notifier, called by record-outcome): the consistency its backup achieved, `none` when no backup was made',
  },
  freezeDuration: {
    name: 'FreezeDuration',
    unit: 'Milliseconds',
    dimensions: {},
    when: 'once per execution that froze filesystems, with its outcome: how long the data filesystems stayed frozen',
  },
  snapshotStartLatency: {
    name: 'SnapshotStartLatency',
    unit: 'Milliseconds',
    dimensions: {},
    when: "once per frozen backup whose snapshots all started while frozen: from the job's CreationDate to the last snapshot's StartTime, from the Snapshot Wait answer (emitSnapshotWait, for start-backup in mode frozen and the snapshot poller)",
  },
  failures: {
    name: 'Failures',
    unit: 'Count',
    dimensions: { FailureClass: FAILURE_CLASSES },
    when: 'once per execution that made no backup, with its outcome: the outcome kind (skipped, freeze failed under skip, StartBackupJob failed, job failed, thaw failed)',
  },
  exclusions: {
    name: 'Exclusions',
    unit: 'Count',
    dimensions: { Reason: EXCLUSION_REASONS },
    when: 'once per instance and run that discovery leaves out, when its notification is first published',
  },
  throttledCalls: {
    name: 'ThrottledCalls',
    unit: 'Count',
    dimensions: { Service: undefined, Operation: undefined },
    when: "every AWS API attempt refused by throttling (the SDK's own classification), retried or not, from every client a handler passes to countThrottles",
  },
  notifications: {
    name: 'Notifications',
    unit: 'Count',
    dimensions: { Severity: SEVERITY_VALUES },
    when: 'every notification published to the topic by the notifier',
  },
  runSummaries: {
    name: 'RunSummaries',
    unit: 'Count',
    dimensions: {},
    when: "every run summary published (a run's executions all reported, or its deadline passed)",
  },
} as const satisfies Record<string, MetricDefinition>;

export type MetricKey = keyof typeof METRIC_CATALOGUE;

// ---------------------------------------------------------------------------------------------
// Emitting.

let shared: Metrics | undefined;
/** The one Metrics instance, created on first use so that importing the catalogue costs nothing. */
function metrics(): Metrics {
  shared ??= new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE_NAME });
  return shared;
}

/** Lets a test (or a tool) write the EMF lines elsewhere; undefined restores the default. */
export function useMetrics(instance: Metrics | undefined): void {
  shared = instance;
}

function allowed(values: readonly string[] | undefined, value: string): string {
  // A bounded set: anything unexpected is one `other`, never a new metric per value.
  if (values) return values.includes(value) ? value : 'other';
  return /^[A-Za-z0-9]{1,64}$/.test(value) ? value : 'other';
}

function emit(key: MetricKey, value: number, dimensions: Record<string, string> = {}): void {
  const definition: MetricDefinition = METRIC_CATALOGUE[key];
  const single = metrics().singleMetric();
  for (const [name, values] of Object.entries(definition.dimensions)) {
    single.addDimension(name, allowed(values, dimensions[name] ?? ''));
  }
  single.addMetric(
    definition.name,
    definition.unit === 'Milliseconds' ? MetricUnit.Milliseconds : MetricUnit.Count,
    value,
  );
}

/** The outcome of one execution: its label, its freeze time when it froze, its failure class. */
export function emitOutcome(outcome: WorkflowOutcome): void {
  emit('instancesByLabel', 1, { Label: outcome.verdict?.consistency ?? 'none' });
  if (outcome.verdict && outcome.verdict.freezeMs > 0) emit('freezeDuration', outcome.verdict.freezeMs);
  if (outcome.outcome !== 'backed-up') emit('failures', 1, { FailureClass: outcome.outcome });
}

export function emitExclusion(reason: ExclusionReason): void {
  emit('exclusions', 1, { Reason: reason });
}

/** A published notification; a run summary also counts as one. */
export function emitPublished(notification: Pick<Notification, 'severity' | 'eventType'>): void {
  emit('notifications', 1, { Severity: notification.severity });
  if (notification.eventType === 'run-summary') emit('runSummaries', 1);
}

/** StartBackupJob to the last volume's snapshot start, in milliseconds. */
export function emitSnapshotStartLatency(ms: number): void {
  emit('snapshotStartLatency', Math.max(0, Math.round(ms)));
}

/**
 * The snapshot-start latency a Snapshot Wait result shows: from the job's CreationDate (what
 * StartBackupJob answered) to the latest StartTime of the volumes' snapshots. Undefined unless every
 * snapshot started (`started`) and both times are known: a wait that ran out of budget has no "last
 * snapshot start" to measure, and its cost already shows as a crash label.
 */
export function snapshotStartLatencyMs(result: SnapshotWaitResult): number | undefined {
  if (result.status !== 'started' || result.snapshots.length === 0) return undefined;
  const created = Date.parse(result.backupJob?.creationDate ?? '');
  const last = Math.max(...result.snapshots.map((s) => Date.parse(s.startTime)));
  if (!Number.isFinite(created) || !Number.isFinite(last)) return undefined;
  return Math.max(0, last - created);
}

/**
 * What a function that answers the Snapshot Wait (start-backup in mode `frozen`, or the shared
 * snapshot poller) calls with its answer: emits SnapshotStartLatency when the result has one.
 */
export function emitSnapshotWait(result: SnapshotWaitResult): void {
  const ms = snapshotStartLatencyMs(result);
  if (ms !== undefined) emitSnapshotStartLatency(ms);
}

export function emitThrottled(service: string, operation: string): void {
  emit('throttledCalls', 1, { Service: service, Operation: operation });
}
