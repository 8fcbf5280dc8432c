/** Runs the generated fault schedules (sim/fault-schedules.ts) against the synthesized definition. */

import { describe, expect, it } from 'vitest';
import { type Asl, synthWorkflow } from '../../sim/asl';
import { generate, SCHEDULES, violations } from '../../sim/fault-schedules';
import { runScenario } from '../../sim/workflow-sim';

describe('fault injection over the synthesized workflow', () => {
  it(`keeps its promises under ${SCHEDULES} generated fault schedules`, async () => {
    const asls = new Map<string, Asl>();
    const failures: string[] = [];
    const tally = {
      runs: 0,
      frozen: 0,
      thawFailed: 0,
      crash: 0,
      consistent: 0,
      none: 0,
      lastResort: 0,
      jobFailedWhileFrozen: 0,
      faultsInjected: 0,
    };
    for (let seed = 1; seed <= SCHEDULES; seed += 1) {
      const { scenario, config } = generate(seed);
      const key = JSON.stringify(config);
      if (!asls.has(key)) asls.set(key, synthWorkflow(config).asl);
      const rep = await runScenario(asls.get(key) as Asl, scenario, seed);
      tally.runs += 1;
      tally.faultsInjected += rep.calls.filter((c) => c.fault).length;
      if (rep.frozenAt !== undefined) tally.frozen += 1;
      if (rep.outcomes[0]?.outcome === 'thaw-failed') tally.thawFailed += 1;
      if (rep.publishes.length) tally.lastResort += 1;
      if (rep.outcomes[0]?.outcome === 'backup-job-failed') tally.jobFailedWhileFrozen += 1;
      const c = rep.recordOutput?.consistency;
      if (c === 'crash') tally.crash += 1;
      else if (c === 'application' || c === 'filesystem') tally.consistent += 1;
      else if (c === 'none') tally.none += 1;
      for (const v of violations(rep, scenario)) failures.push(`seed ${seed}: ${v}`);
    }
    console.log(`fault schedules: ${JSON.stringify(tally)}`);
    expect(failures).toEqual([]);
    // The generator must really exercise the paths, or the properties prove nothing.
    expect(tally.frozen).toBeGreaterThan(SCHEDULES / 4);
    expect(tally.thawFailed).toBeGreaterThan(0);
    expect(tally.crash).toBeGreaterThan(0);
    expect(tally.consistent).toBeGreaterThan(0);
    expect(tally.lastResort).toBeGreaterThan(0);
    expect(tally.jobFailedWhileFrozen).toBeGreaterThan(0);
    expect(tally.faultsInjected).toBeGreaterThan(SCHEDULES);
  }, 300_000);
});
