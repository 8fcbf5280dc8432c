/**
 * The fault suite (sim/fault-schedules.ts), shard 1 of 4 (faults-2, -3 and -4 run the others), and the check that the fast
 * engine (sim/asl-interpreter.ts) runs the definition as aws-local-stepfunctions does.
 * FAULT_SCHEDULES=n sets the total; `npm run bench:workflow -- --seed S` replays one schedule.
 */

import { describe, expect, it } from 'vitest';
import { generate } from '../../sim/fault-schedules';
import { aslFor } from '../../sim/fault-suite';
import { SCENARIOS } from '../../sim/workflow-scenarios';
import { type RunReport, runScenario, type Scenario } from '../../sim/workflow-sim';
import { shardTests } from './fault-shard';

describe('fault schedules, shard 1 of 4, judged by what the instance experienced', () => {
  shardTests(0);
});

describe('the fast engine runs the definition as aws-local-stepfunctions does', () => {
  const effects = (r: RunReport) => ({
    status: r.status,
    states: r.statesEntered,
    output: r.output,
    calls: r.calls.map((c) => `${c.op}${c.fault ? `[${c.fault}]` : ''}@${c.at - r.startedAt}`),
    episodes: r.episodes,
    // aws-local-stepfunctions reads $$.State.EnteredTime from the fixed context it is given; the
    // interpreter gives each state its virtual entry time, as Step Functions does.
    sns: r.sns.map((m) =>
      m.message?.event ? { ...m.message, event: { ...m.message.event, time_of_event: '-' } } : m.message,
    ),
  });
  const compare = async (
    name: string,
    scenario: () => Scenario,
    config: Record<string, unknown>,
    seed: number,
  ) => {
    const asl = aslFor(config);
    const reference = await runScenario(asl, scenario(), seed);
    const fast = await runScenario(asl, scenario(), seed, { engine: 'interpreter-compat' });
    expect(effects(fast), name).toEqual(effects(reference));
  };

  it('on every named scenario', async () => {
    for (const [name, { scenario, config }] of Object.entries(SCENARIOS)) {
      await compare(name, () => scenario, config ?? {}, 1);
    }
  }, 300_000);

  it('on 60 fault schedules', async () => {
    for (let seed = 1; seed <= 60; seed += 1) {
      // A fresh fault plan for each engine: a plan draws its faults as the calls come.
      await compare(`seed ${seed}`, () => generate(seed).scenario, generate(seed).config, seed);
    }
  }, 300_000);
});
