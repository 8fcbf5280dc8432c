/**
 * The tests every fault-suite shard runs: the schedules of its seed range, the paths they must
 * exercise, and one test per instance-side invariant. An invariant today's main breaks in a few schedules has
 * a ceiling test naming the change that fixes it (sim/fault-suite.ts KNOWN_BREAKS) and its first
 * seeds; it asserts at most its ceiling (KNOWN_BREAK_CEILING) per shard, and leaves KNOWN_BREAKS
 * once the full suite shows 0.
 */

import { beforeAll, expect, it } from 'vitest';
import { INVARIANTS, type Invariant, type ShardResult } from '../../sim/fault-schedules';
import {
  describeShard,
  KNOWN_BREAK_CEILING,
  KNOWN_BREAKS,
  runShard,
  shardRange,
} from '../../sim/fault-suite';

export function shardTests(i: number): void {
  const [from, to] = shardRange(i);
  let result: ShardResult;
  beforeAll(async () => {
    result = await runShard(i);
    console.log(describeShard(i, result));
  }, 900_000);

  it(`runs schedules ${from}-${to} through every kind of fault`, () => {
    const n = to - from + 1;
    expect(result.runs).toBe(n);
    const t = result.tally;
    // The generator must really exercise the paths, or the invariants prove nothing.
    expect(t.frozen ?? 0).toBeGreaterThan(n / 4);
    for (const path of [
      'thawedByCommand',
      'thawedByWatchdog',
      'lateDelivery',
      'neverDelivered',
      'effectBeforeError',
      'hang',
      'oddPayload',
      'consistentLabel',
      'crashLabel',
      'lastResort',
      'executionFailed',
    ]) {
      expect(t[path] ?? 0, path).toBeGreaterThan(0);
    }
    if (n >= 1000) {
      for (const path of ['agentDied', 'twoServicesDown', 'freezeRefusedOnInstance']) {
        expect(t[path] ?? 0, path).toBeGreaterThan(0);
      }
    }
  });

  for (const inv of Object.keys(INVARIANTS) as Invariant[]) {
    const known = KNOWN_BREAKS[inv];
    const check = () => {
      expect(result.broken[inv].map((b) => `seed ${b.seed}: ${b.detail}`).slice(0, 20)).toEqual([]);
    };
    const ceiling = KNOWN_BREAK_CEILING[inv] ?? 0;
    if (known)
      it(`${inv} ${INVARIANTS[inv]}: known break, at most ${ceiling} in this shard (${known})`, () => {
        expect(
          result.broken[inv].length,
          result.broken[inv].map((b) => `seed ${b.seed}: ${b.detail}`).join('\n'),
        ).toBeLessThanOrEqual(ceiling);
      });
    else it(`${inv} ${INVARIANTS[inv]}: 0 broken`, check);
  }
}
