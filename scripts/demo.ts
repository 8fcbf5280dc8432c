/**
 * The whole system on this machine, no AWS account: `npm run demo`.
 *
 *   npm run demo -- [--instances 4] [--start-latency-ms 2000] [--simulate]
 *   npm run demo -- --cleanup        # undo what a run killed with SIGKILL left behind
 *
 * As root with loop devices and the ext4 tools it builds real volumes under write load (xfs where
 * xfsprogs is installed, ext4 in its place otherwise, said in one line) and runs the real freeze and
 * thaw documents on them; otherwise it says so, first and last, and runs with simulated filesystems.
 * docs/local-tools.md has the cases.
 */
import '../sim/local-node';
import { ArgError, intArg, parseArgs } from '../lab/args';
import { demoKinds, demoTable, formatNotifications, runDemo } from '../lab/demo';
import { cleanupActive, cleanupAll, detectCapabilities } from '../lab/host';

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2), {
    instances: 'value',
    'start-latency-ms': 'value',
    simulate: 'flag',
    cleanup: 'flag',
    json: 'flag',
  });
  if (args.get('cleanup')) {
    const log = await cleanupAll();
    console.log(log.length ? log.join('\n') : 'nothing to clean up');
    return 0;
  }
  if (args.get('simulate')) process.env.ECB_LAB_SIMULATE = '1';
  const capabilities = await detectCapabilities();
  // Said once here and once at the end: the rows in between do not repeat it.
  const simulatedNote = `simulated filesystems: no real freeze is possible here (${capabilities.reason})`;
  if (!capabilities.real) console.log(`${simulatedNote}; directories stand in for the volumes`);
  else if (capabilities.substitutes) console.log(capabilities.substitutes);
  // One of each kind: the PostgreSQL server chosen by its Apps tag is the fourth where it can run.
  const instances = intArg(args, 'instances', demoKinds(capabilities).length, 1, 12);
  const result = await runDemo({
    instances,
    startLatencyMs: intArg(args, 'start-latency-ms', 2000, 0, 60_000),
    capabilities,
    out: (line) => console.log(line),
  });
  console.log(`\n${demoTable(result.rows, result.simulated)}`);
  console.log(`\nNotifications that would have gone to SNS (${result.notifications.length}):`);
  console.log(formatNotifications(result.notifications) || '(none)');
  if (result.simulated) console.log(`\n${simulatedNote}: the labels above are what the workflow decided`);
  if (args.get('json')) console.log(JSON.stringify(result.rows));
  const unexpected = result.rows.filter((r) => r.consistency !== r.expected);
  for (const r of unexpected) console.error(`unexpected: ${r.name} is ${r.consistency}: ${r.reason}`);
  return unexpected.length === 0 ? 0 : 1;
}

let exiting = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (exiting) return;
    exiting = true;
    console.error(`\n${signal}: thawing, stopping workloads, unmounting and removing what this run created`);
    cleanupActive()
      .catch((err: Error) => console.error(`cleanup failed: ${err.message}; run npm run demo -- --cleanup`))
      .finally(() => process.exit(130));
  });
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(err instanceof ArgError ? err.message : `${err.name}: ${err.message}`);
    process.exit(err instanceof ArgError ? 2 : 1);
  },
);
