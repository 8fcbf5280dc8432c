/**
 * The fault suite's shards: test/workflow/faults*.test.ts each run a range of seeds (vitest runs
 * files in parallel, one per core) and assert per invariant. A known break is listed here with the
 * change that fixes it and a ceiling per shard; it becomes an assertion of 0 once the suite shows 0.
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

/**
 * Invariants today's main still breaks in a few schedules, with what is left to fix. Measured over
 * the 10,000 CI schedules on 2026-12-02 (per shard of 2,500): I1 at most 1 (a thaw that arrives
 * after the watchdog in seed 2424), I2 at most 5 (thaw-command freezes a fraction of a second over
 * the budget plus delivery, e.g. seed 106), I3 at most 8 (duplicates where the notifier published but
 * could not confirm, job-events and the last resort both publishing; a job failure nobody reports).
 */
export const KNOWN_BREAKS: Readonly<Partial<Record<Invariant, string>>> = {
  I1: 'issue 13 item 5: a thaw that reaches the instance after its watchdog (seed 2424)',
  I2: 'issue 13 item 2: a thaw-command freeze slightly over the budget plus delivery (seed 106)',
  I3: 'issue 13 items 5 and 6: a publish the notifier could not confirm, job-events with the last resort, a job failure unreported',
};

/**
 * The most breaks per shard a known break may show: a ceiling, so a regression fails the suite and a
 * fix (fewer, down to 0) passes; at 0 over the full suite the invariant leaves KNOWN_BREAKS.
 */
export const KNOWN_BREAK_CEILING: Readonly<Partial<Record<Invariant, number>>> = { I1: 2, I2: 8, I3: 12 };

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
