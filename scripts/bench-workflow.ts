/**
 * npm run bench:workflow [-- --faults N] [-- --update-docs]
 *
 * Executes the synthesized state machine locally (aws-local-stepfunctions) against the simulated AWS
 * of sim/workflow-sim.ts for each named scenario, and prints the state transitions (every state
 * entered, Parallel branches included) and the simulated freeze window. With --faults N it also runs
 * N generated fault schedules and reports how many broke a promise. With --update-docs it rewrites
 * the table in docs/workflow.md between its workflow-bench markers, with the date it was measured
 * (--update-readme, the flag's old name, does the same).
 */

import '../sim/local-node';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Asl, synthWorkflow } from '../sim/asl';
import { generate, violations } from '../sim/fault-schedules';
import { SCENARIOS } from '../sim/workflow-scenarios';
import { runScenario } from '../sim/workflow-sim';

const args = process.argv.slice(2);
const faultsArg = args.indexOf('--faults');
const faultRuns = faultsArg >= 0 ? Number(args[faultsArg + 1]) : 0;
if (faultsArg >= 0 && (!Number.isInteger(faultRuns) || faultRuns < 1)) {
  console.error(
    `Invalid --faults: got ${JSON.stringify(args[faultsArg + 1])}; allowed: a whole number of at least 1.`,
  );
  process.exit(2);
}

async function main(): Promise<void> {
  const asls = new Map<string, Asl>();
  const aslFor = (config: Record<string, unknown> = {}) => {
    const key = JSON.stringify(config);
    if (!asls.has(key)) asls.set(key, synthWorkflow(config).asl);
    return asls.get(key) as Asl;
  };

  const rows: string[][] = [];
  for (const [name, { scenario, config }] of Object.entries(SCENARIOS)) {
    const r = await runScenario(aslFor(config), scenario);
    const window =
      r.frozenAt !== undefined && r.thawedAt !== undefined
        ? `${((r.thawedAt - r.frozenAt) / 1000).toFixed(2)} s`
        : '-';
    const verdict = r.recordOutput ?? r.output;
    rows.push([
      name,
      String(r.transitions),
      window,
      r.watchdogFired ? 'yes' : 'no',
      verdict?.consistency ?? (r.publishes.length ? 'crash (last resort)' : '?'),
      r.outcomes[0]?.outcome ?? (r.publishes.length ? 'direct SNS message' : '?'),
      r.status,
    ]);
  }
  const header = [
    'scenario',
    'transitions',
    'freeze window',
    'watchdog thawed',
    'label',
    'outcome',
    'execution',
  ];
  const table = [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
  console.log(table);

  if (faultRuns > 0) {
    const started = Date.now();
    let broken = 0;
    for (let seed = 1; seed <= faultRuns; seed += 1) {
      const { scenario, config } = generate(seed);
      const rep = await runScenario(aslFor(config), scenario, seed);
      const v = violations(rep, scenario);
      if (v.length) {
        broken += 1;
        console.log(`seed ${seed}: ${v.join('; ')}`);
      }
    }
    console.log(
      `\nfault schedules run: ${faultRuns}, broken: ${broken}, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }

  if (args.includes('--update-docs') || args.includes('--update-readme')) {
    const doc = path.join(__dirname, '..', 'docs', 'workflow.md');
    const text = fs.readFileSync(doc, 'utf8');
    const re = /<!-- workflow-bench:start -->[\s\S]*<!-- workflow-bench:end -->/;
    if (!re.test(text)) throw new Error('bench-workflow: docs/workflow.md has no workflow-bench markers');
    const measured = `Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench:workflow\` (seed 1).`;
    fs.writeFileSync(
      doc,
      text.replace(re, `<!-- workflow-bench:start -->\n${measured}\n\n${table}\n<!-- workflow-bench:end -->`),
    );
    console.log('docs/workflow.md updated');
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
