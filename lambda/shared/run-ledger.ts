/**
 * How a run's outcomes are counted in the notifier's table without a hot item.
 *
 * Every outcome of a run used to add to the one `RUN#<runId>` / `RUN` item inside a
 * TransactWriteItems. DynamoDB cancels a transaction that touches an item another ongoing
 * transaction holds (CancellationReasons code `TransactionConflict`), and the SDK does not retry
 * that, so when a wave of executions ended together most of its outcomes failed to record.
 *
 * Now the counters live in `RUN_COUNTER_SHARDS` shard items next to the run item, `RUN#<runId>` /
 * `COUNT#<nn>`; each outcome adds to one shard, picked at random, in the transaction that marks
 * the execution as counted. Two outcomes contend only when they pick the same shard at the same
 * moment, and then the loser retries on another shard (Notifier.transact). The run item keeps what
 * discovery reports and the summary's bookkeeping (pending, deadline, summarySentAt); outcomes only
 * read it, and write it once to create it when discovery has not reported yet.
 *
 * Whoever needs the totals reads the run's item collection (one consistent Query on `RUN#<runId>`:
 * the run item and at most RUN_COUNTER_SHARDS shards) and sums it with viewRun. The run item's own
 * counters are summed too, so a run counted before the shards existed still adds up.
 */

import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { RunCounts } from './notifications/run-summary';
import type { ExclusionReason } from './outcome';

type Item = Record<string, AttributeValue>;

/**
 * Shards per run. With k outcomes committing at once, a transaction meets another on its shard with
 * probability about (k - 1) / 32; a conflict costs a retry on another shard, not a lost outcome.
 * Summing costs one Query of at most 33 small items (about 3 KB).
 */
export const RUN_COUNTER_SHARDS = 32;

/** The counters an outcome or a copy adds to. */
export const RUN_COUNTERS = [
  'completed',
  'application',
  'filesystem',
  'fellBack',
  'skipped',
  'failed',
  'copiesStarted',
  'copiesCompleted',
  'copiesFailed',
] as const;
export type RunCounter = (typeof RUN_COUNTERS)[number];

export const runPk = (runId: string): string => `RUN#${runId}`;

/**
 * The execution's outcome mark, `EXEC#<executionArn>` / `OUTCOME`: written with the count BEFORE
 * the outcome is notified, so on its own it is a claim, not proof of a publish. `notifiedAt` is
 * written once SNS took the notification (or none was due), with its severity in
 * `notifiedSeverity` (`nothing` when none was due). The state machine's last resort
 * (lib/workflow/last-resort.ts) and lambda/execution-events read them.
 */
export const EXECUTION_NOTIFIED = {
  at: 'notifiedAt',
  severity: 'notifiedSeverity',
  nothing: 'nothing',
} as const;
export const executionMarkPk = (executionArn: string): string => `EXEC#${executionArn}`;
export const EXECUTION_MARK_SK = 'OUTCOME';
export const executionMarkKey = (executionArn: string): Item => ({
  pk: { S: executionMarkPk(executionArn) },
  sk: { S: EXECUTION_MARK_SK },
});
export const RUN_SK = 'RUN';
export const SHARD_SK_PREFIX = 'COUNT#';
export const shardSk = (shard: number): string => `${SHARD_SK_PREFIX}${String(shard).padStart(2, '0')}`;

/** A run as its item collection shows it: the run item and the counters summed over every item. */
export interface RunView {
  /** The `RUN` item; undefined until discovery or the first outcome created it. */
  readonly run?: Item;
  readonly totals: Readonly<Record<RunCounter, number>>;
  /** The counters some item holds (a summary reports copies only when any were counted). */
  readonly present: ReadonlySet<RunCounter>;
  /** The latest outcome report on any shard (ISO 8601), which keeps the summary's deadline away. */
  readonly lastReportAt?: string;
}

const str = (item: Item | undefined, key: string): string | undefined => item?.[key]?.S;
const num = (item: Item | undefined, key: string): number | undefined =>
  item?.[key]?.N !== undefined ? Number(item[key].N) : undefined;

/** Sums the items of a run's collection (`pk = RUN#<runId>`), whatever order they come in. */
export function viewRun(items: readonly Item[]): RunView {
  const totals = Object.fromEntries(RUN_COUNTERS.map((c) => [c, 0])) as Record<RunCounter, number>;
  const present = new Set<RunCounter>();
  let run: Item | undefined;
  let lastReportAt: string | undefined;
  for (const item of items) {
    const sk = str(item, 'sk');
    if (sk === RUN_SK) run = item;
    else if (!sk?.startsWith(SHARD_SK_PREFIX)) continue;
    for (const counter of RUN_COUNTERS) {
      const value = num(item, counter);
      if (value === undefined) continue;
      totals[counter] += value;
      present.add(counter);
    }
    const reported = str(item, 'lastReportAt');
    if (reported && (!lastReportAt || reported > lastReportAt)) lastReportAt = reported;
  }
  return { run, totals, present, ...(lastReportAt ? { lastReportAt } : {}) };
}

/** Discovery reported its last invocation and every execution it started has reported since. */
export function runFinished(view: RunView): boolean {
  const expected = num(view.run, 'expected');
  return (
    str(view.run, 'discoveryRecordedAt') !== undefined &&
    expected !== undefined &&
    view.totals.completed >= expected
  );
}

/** What the run summary says, from the run's collection. */
export function runCounts(runId: string, view: RunView): RunCounts {
  const item = view.run;
  let excluded: Partial<Record<ExclusionReason, number>> = {};
  const rawExcluded = str(item, 'excluded');
  if (rawExcluded) {
    try {
      excluded = JSON.parse(rawExcluded) as Partial<Record<ExclusionReason, number>>;
    } catch {
      excluded = {};
    }
  }
  const t = view.totals;
  return {
    runId,
    window: str(item, 'window') ?? 'unknown',
    accountId: str(item, 'accountId') ?? '',
    region: str(item, 'region') ?? '',
    discovered: num(item, 'discovered'),
    excluded,
    started: num(item, 'expected'),
    finished: t.completed,
    application: t.application,
    filesystem: t.filesystem,
    fellBack: t.fellBack,
    skipped: t.skipped,
    failed: t.failed,
    ...((['copiesStarted', 'copiesCompleted', 'copiesFailed'] as const).some((c) => view.present.has(c))
      ? { copies: { started: t.copiesStarted, completed: t.copiesCompleted, failed: t.copiesFailed } }
      : {}),
  };
}
