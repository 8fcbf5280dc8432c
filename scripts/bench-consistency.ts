/**
 * The consistency experiment: backups under write load, taken with no freeze, a freeze without hooks,
 * and a freeze with hooks, on ext4 and xfs, each copy fsck'd, mounted and checked by the application.
 *
 *   npm run bench:consistency -- [--n 10] [--pg-n 5] [--fs ext4,xfs] [--start-latency-ms 1000]
 *                                [--interval-ms 1500] [--json results.json] [--assert]
 *
 * Needs root, loop devices, xfsprogs and (for the PostgreSQL rows) postgresql-15. --assert exits 1
 * unless every freeze+hooks copy is clean with its invariant holding.
 */
import '../sim/local-node';
import * as fs from 'node:fs/promises';
import { ArgError, intArg, parseArgs } from '../lab/args';
import { loadDocuments } from '../lab/documents';
import { runExperiment, summarize } from '../lab/experiment';
import { cleanupActive, detectCapabilities } from '../lab/host';
import { postgresAvailable } from '../lab/postgres';
import type { LabFsType } from '../lab/volume';

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2), {
    n: 'value',
    'pg-n': 'value',
    fs: 'value',
    'start-latency-ms': 'value',
    'interval-ms': 'value',
    json: 'value',
    assert: 'flag',
  });
  const n = intArg(args, 'n', 10, 1, 1000);
  const fsList = String(args.get('fs') ?? 'ext4,xfs').split(',');
  for (const f of fsList)
    if (f !== 'ext4' && f !== 'xfs')
      throw new ArgError(`--fs ${f}: allowed are ext4 and xfs, comma separated`);
  const caps = await detectCapabilities();
  if (!caps.real) {
    console.error(
      `no real filesystems here (${caps.reason}): the consistency experiment needs them and cannot be simulated`,
    );
    return 2;
  }
  // The experiment compares filesystems, so one that is missing is left out rather than stood in for.
  const unavailable = fsList.filter((f) => !caps.filesystems.includes(f as LabFsType));
  if (unavailable.length > 0) {
    if (args.get('fs') !== undefined)
      throw new ArgError(
        `--fs ${unavailable.join(',')}: not available here (${caps.substitutes}); available: ${caps.filesystems.join(', ')}`,
      );
    console.error(`leaving out ${unavailable.join(', ')}: ${caps.substitutes}`);
  }
  const fstypes = fsList.filter((f) => caps.filesystems.includes(f as LabFsType)) as LabFsType[];
  let pgN = intArg(args, 'pg-n', 5, 0, 1000);
  if (pgN > 0 && !postgresAvailable()) {
    console.error(
      'PostgreSQL 15 is not installed (apt-get install postgresql): skipping the PostgreSQL rows',
    );
    pgN = 0;
  }
  const opts = {
    n,
    pgN,
    fstypes,
    startLatencyMs: intArg(args, 'start-latency-ms', 1000, 0, 60_000),
    intervalMs: intArg(args, 'interval-ms', 1500, 0, 600_000),
    documents: loadDocuments(),
    log: (line: string) => console.error(line),
  };
  console.error(
    `consistency experiment: N=${n} ledger and N=${pgN} PostgreSQL backups per mode per filesystem (${opts.fstypes.join(', ')}), snapshot start latency ${opts.startLatencyMs} ms`,
  );
  const started = Date.now();
  const { samples } = await runExperiment(opts);
  console.log(summarize(samples));
  console.log(
    `\nN=${n} (ledger), N=${pgN} (PostgreSQL) per row; ${Math.round((Date.now() - started) / 1000)} s in all.`,
  );
  if (typeof args.get('json') === 'string')
    await fs.writeFile(String(args.get('json')), `${JSON.stringify(samples, null, 2)}\n`);
  if (args.get('assert')) {
    const bad = samples.filter(
      (s) => s.mode === 'freeze+hooks' && (!s.clean || (s.ledger ? !s.ledger.holds : !s.pg?.invariantHolds)),
    );
    if (bad.length > 0) {
      console.error(`${bad.length} freeze+hooks copies were not clean with the invariant holding:`);
      for (const b of bad) console.error(`  ${b.workload} ${b.fstype}: ${b.detail}`);
      return 1;
    }
  }
  return 0;
}

let exiting = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (exiting) return;
    exiting = true;
    console.error(`${signal}: cleaning up`);
    cleanupActive().finally(() => process.exit(130));
  });
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(err instanceof ArgError ? err.message : `${err.name}: ${err.message}`);
    process.exit(err instanceof ArgError ? 2 : 1);
  },
);
