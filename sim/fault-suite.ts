/**
 * The fault suite's shards: test/workflow/faults*.test.ts each run a range of seeds (vitest runs
 * files in parallel, one per core) and assert per invariant. A known break is listed here with the
 * change that fixes it; the lead flips it to an assertion of 0 once that change is merged.
 */

import { type Asl, synthWorkflow } from './asl';
import { INVARIANTS, type Invariant, runSchedules, type ShardResult } from './fault-schedules';
import { runScenario } from './workflow-sim';

/**
 * Total schedules across the shards in CI: 10,000, about 7 ms of CPU each; FAULT_SCHEDULES
 * overrides (200 for a quick look). Four shards, one per test file (test/workflow/faults*.test.ts),
 * so that vitest's workers share them out with the rest of the suite.
 */
export const TOTAL_SCHEDULES = Number(process.env.FAULT_SCHEDULES ?? 10_000);
export const SHARDS = 4;

/** Invariants today's main breaks, with the issue 13 item whose fix addresses each. */
export const KNOWN_BREAKS: Readonly<Partial<Record<Invariant, string>>> = {
  I1: 'issue 13 items 2 and 5 (guard: budget on every path; statemachine: truthful last resort): a watchdog thaw is reported as a Warning, or not at all',
  I2: 'issue 13 item 2 (guard: every wait, retry and request timeout after the freeze charged to the budget)',
  I3: 'issue 13 items 5 and 6 (statemachine: last resort not sent after the notifier published, input checked, nothing silent)',
};

const asls = new Map<string, Asl>();
export function aslFor(config: Record<string, unknown> = {}): Asl {
  const key = JSON.stringify(config);
  let asl = asls.get(key);
  if (!asl) {
    asl = synthWorkflow(config).asl;
    asls.set(key, asl);
  }
  return asl;
}

/** Seeds of shard i (0-based). */
export function shardRange(i: number): [number, number] {
  const size = Math.ceil(TOTAL_SCHEDULES / SHARDS);
  return [i * size + 1, Math.min(TOTAL_SCHEDULES, (i + 1) * size)];
}

export async function runShard(i: number): Promise<ShardResult> {
  const [from, to] = shardRange(i);
  // The simulated faults throw tens of errors per schedule, and no one reads their stack traces
  // (a broken schedule is replayed by its seed): not capturing them saves a tenth of the time.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return await runSchedules(from, to, aslFor, runScenario);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Broken schedules by kind: silent, duplicate, invalid; ended by the watchdog or by a late thaw. */
function kinds(list: readonly { detail: string }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const { detail } of list) {
    const kind =
      /^(silent|duplicate|invalid \S+)/.exec(detail)?.[1] ??
      /\((watchdog|thaw-command)\)|ended by the (watchdog)/.exec(detail)?.slice(1).find(Boolean) ??
      (/^labelled/.test(detail) ? 'label' : 'other');
    out[kind] = (out[kind] ?? 0) + 1;
  }
  return out;
}

/** The report the suite prints: per invariant, how many broke and the first seeds, each replayable. */
export function describeShard(i: number, r: ShardResult): string {
  const [from, to] = shardRange(i);
  return describeRange(from, to, r);
}

export function describeRange(from: number, to: number, r: ShardResult): string {
  const lines = [
    `fault schedules ${from}-${to}: ${r.runs} run in ${(r.ms / 1000).toFixed(1)} s (CPU ${(r.cpuMs / 1000).toFixed(1)} s); ${JSON.stringify(r.tally)}`,
  ];
  for (const inv of Object.keys(INVARIANTS) as Invariant[]) {
    const list = r.broken[inv];
    lines.push(
      `${inv} (${INVARIANTS[inv]}): ${list.length} broken${list.length ? ` by kind ${JSON.stringify(kinds(list))}` : ''}${KNOWN_BREAKS[inv] && list.length ? ` [known: ${KNOWN_BREAKS[inv]}]` : ''}`,
    );
    for (const b of list.slice(0, 5)) {
      lines.push(`  seed ${b.seed}: ${b.detail} (replay: npm run bench:workflow -- --seed ${b.seed})`);
    }
  }
  return lines.join('\n');
}
