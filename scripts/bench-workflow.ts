/**
 * npm run bench:workflow [-- --faults N] [-- --seed S] [-- --update-docs]
 *
 * Executes the synthesized state machine locally (aws-local-stepfunctions) against the simulated AWS
 * of sim/workflow-sim.ts for each named scenario, and prints the state transitions (every state
 * entered, Parallel branches included) and the simulated freeze window. With --faults N it also runs
 * N generated fault schedules (sim/fault-schedules.ts, on sim/asl-interpreter.ts) and lists the
 * broken ones by instance-side invariant, each with its seed; --seed S replays one schedule and
 * prints its instance timeline, calls and published messages. With --update-docs it rewrites the
 * table in docs/workflow.md between its workflow-bench markers, with the date it was measured
 * (--update-readme, the flag's old name, does the same).
 */

import '../sim/local-node';
import '../sim/quiet-metrics';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Asl, synthWorkflow } from '../sim/asl';
import { generate, runSchedules, violations } from '../sim/fault-schedules';
import { describeRange } from '../sim/fault-suite';
import { SCENARIOS } from '../sim/workflow-scenarios';
import { runScenario } from '../sim/workflow-sim';

const args = process.argv.slice(2);
const faultsArg = args.indexOf('--faults');
const faultRuns = faultsArg >= 0 ? Number(args[faultsArg + 1]) : 0;
const seedArg = args.indexOf('--seed');
const replaySeed = seedArg >= 0 ? Number(args[seedArg + 1]) : undefined;
if (replaySeed !== undefined && (!Number.isInteger(replaySeed) || replaySeed < 1)) {
  console.error(
    `Invalid --seed: got ${JSON.stringify(args[seedArg + 1])}; allowed: a whole number of at least 1.`,
  );
  process.exit(2);
}
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

  if (replaySeed !== undefined) {
    const { scenario, config, summary } = generate(replaySeed);
    const rep = await runScenario(aslFor(config), scenario, replaySeed, { engine: 'interpreter' });
    const at = (t: number) => `+${t - rep.startedAt} ms`;
    console.log(`seed ${replaySeed}: ${summary}`);
    console.log(`execution ${rep.status}${rep.error ? ` (${rep.error})` : ''}`);
    console.log(`states: ${rep.statesEntered.join(' > ')}`);
    console.log(
      `calls: ${rep.calls.map((c) => `${c.op}${c.fault ? `[${c.fault}]` : ''}@${at(c.at)}`).join(', ')}`,
    );
    for (const c of rep.sim.instance.commands) {
      console.log(
        `command ${c.id} ${c.doc} sent ${at(c.sentAt)} arrives ${c.arriveAt === undefined ? 'never' : at(c.arriveAt)} ran ${c.startedAt === undefined ? '-' : at(c.startedAt)} ${c.status ?? ''} ${c.stdout.slice(0, 160)}`,
      );
    }
    for (const e of rep.episodes) {
      console.log(
        `frozen ${at(e.frozenFrom)} until ${e.frozenUntil === undefined ? 'never' : at(e.frozenUntil)} by ${e.thawedBy} ${e.thawCommandId ?? ''}`,
      );
    }
    for (const m of rep.sns)
      console.log(
        `SNS ${at(m.at)} via ${m.via}: ${m.message?.severity} ${m.message?.eventType} ${m.message?.subject}`,
      );
    console.log(
      `label: ${rep.recordOutput?.consistency ?? rep.outcomes[0]?.verdict?.consistency ?? '-'}; snapshots ${rep.snapshotStarts.map(at).join(', ')}`,
    );
    const v = violations(rep, scenario);
    console.log(v.length ? v.map((b) => `${b.invariant}: ${b.detail}`).join('\n') : 'no invariant broken');
    return;
  }

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
    const r = await runSchedules(1, faultRuns, aslFor, runScenario);
    console.log(`\n${describeRange(1, faultRuns, r)}`);
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
