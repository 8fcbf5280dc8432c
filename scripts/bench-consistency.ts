/**
 * The per-application consistency bench: PostgreSQL under pgbench, MariaDB under sysbench, Redis with
 * Debian's default persistence and with the append-only file, each under a recorder of acknowledged
 * writes, backed up with no freeze, a freeze only, and a freeze with the packaged hook installed by
 * the AppHooks document; on ext4 and xfs; every copy fsck'd, mounted and started by the application.
 *
 *   npm run bench:consistency -- [--n 10] [--apps postgresql,mysql,redis,redis-aof] [--fs ext4,xfs]
 *                                [--start-latency-ms 1000] [--interval-ms 1000] [--json out.json]
 *                                [--update-docs] [--ledger-n 0]
 *
 * --update-docs writes the table into docs/hooks.md (between its bench markers) with the date and
 * the command. --ledger-n N adds the older ledger experiment's rows (lab/experiment.ts).
 * Needs root, loop devices, xfsprogs, postgresql-15, mariadb-server, sysbench and redis-server.
 */
import '../sim/local-node';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import {
  APP_WORKLOADS,
  type AppWorkload,
  runAppBench,
  summarizeApps,
  WORKLOAD_LOAD,
  workloadUnavailable,
} from '../lab/app-bench';
import { ArgError, intArg, parseArgs } from '../lab/args';
import { loadDocuments } from '../lab/documents';
import { runExperiment, summarize } from '../lab/experiment';
import { cleanupActive, detectCapabilities } from '../lab/host';
import type { LabFsType } from '../lab/volume';

const DOCS = path.join(__dirname, '..', 'docs', 'hooks.md');
export const BEGIN = '<!-- bench:consistency begin -->';
export const END = '<!-- bench:consistency end -->';

/** docs/hooks.md with the measured section between the markers replaced. */
export function withTable(doc: string, section: string): string {
  const a = doc.indexOf(BEGIN);
  const b = doc.indexOf(END);
  if (a < 0 || b < a) throw new Error(`docs/hooks.md has no ${BEGIN} ... ${END} section`);
  return `${doc.slice(0, a + BEGIN.length)}\n${section.trim()}\n${doc.slice(b)}`;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const args = parseArgs(argv, {
    n: 'value',
    apps: 'value',
    fs: 'value',
    'start-latency-ms': 'value',
    'interval-ms': 'value',
    json: 'value',
    'update-docs': 'flag',
    'ledger-n': 'value',
  });
  const n = intArg(args, 'n', 10, 1, 1000);
  const ledgerN = intArg(args, 'ledger-n', 0, 0, 1000);
  const fsList = String(args.get('fs') ?? 'ext4,xfs').split(',');
  for (const f of fsList)
    if (f !== 'ext4' && f !== 'xfs')
      throw new ArgError(`--fs ${f}: allowed are ext4 and xfs, comma separated`);
  const appList = String(args.get('apps') ?? APP_WORKLOADS.join(',')).split(',');
  for (const a of appList)
    if (!(APP_WORKLOADS as readonly string[]).includes(a))
      throw new ArgError(`--apps ${a}: allowed are ${APP_WORKLOADS.join(', ')}, comma separated`);
  const caps = await detectCapabilities();
  if (!caps.real) {
    console.error(`no real filesystems here (${caps.reason}): the bench needs them and cannot be simulated`);
    return 2;
  }
  // The bench compares filesystems and applications: one that is missing is left out, never stood in for.
  const missingFs = fsList.filter((f) => !caps.filesystems.includes(f as LabFsType));
  if (missingFs.length > 0) {
    if (args.get('fs') !== undefined)
      throw new ArgError(`--fs ${missingFs.join(',')}: not available here (${caps.substitutes})`);
    console.error(`leaving out ${missingFs.join(', ')}: ${caps.substitutes}`);
  }
  const fstypes = fsList.filter((f) => caps.filesystems.includes(f as LabFsType)) as LabFsType[];
  const workloads: AppWorkload[] = [];
  for (const w of appList as AppWorkload[]) {
    const why = workloadUnavailable(w);
    if (why === undefined) workloads.push(w);
    else if (args.get('apps') !== undefined) throw new ArgError(`--apps ${w}: ${why}`);
    else console.error(`leaving out ${w}: ${why}`);
  }
  const startLatencyMs = intArg(args, 'start-latency-ms', 1000, 0, 60_000);
  const intervalMs = intArg(args, 'interval-ms', 1000, 0, 600_000);
  const documents = loadDocuments();
  const log = (line: string) => console.error(line);
  console.error(
    `consistency bench: n=${n} backups per mode per filesystem (${fstypes.join(', ')}) for ${workloads.join(', ')}; snapshot start latency ${startLatencyMs} ms`,
  );
  const started = Date.now();
  const samples = await runAppBench({ workloads, n, fstypes, startLatencyMs, intervalMs, documents, log });
  const appTable = summarizeApps(samples);
  const loads = workloads.map((w) => `- ${w}: ${WORKLOAD_LOAD[w]}`).join('\n');
  const seconds = Math.round((Date.now() - started) / 1000);
  console.log(appTable);
  console.log(`\nn=${n} per row; ${seconds} s in all.\n${loads}`);
  let ledgerTable = '';
  if (ledgerN > 0) {
    const { samples: ledger } = await runExperiment({
      n: ledgerN,
      pgN: 0,
      fstypes,
      startLatencyMs,
      intervalMs,
      documents,
      log,
    });
    ledgerTable = summarize(ledger);
    console.log(`\n${ledgerTable}`);
  }
  if (typeof args.get('json') === 'string')
    await fs.writeFile(String(args.get('json')), `${JSON.stringify(samples, null, 2)}\n`);
  if (args.get('update-docs')) {
    const command = `npm run bench:consistency -- ${argv.join(' ')}`.trim();
    const section = [
      `Measured ${new Date().toISOString().slice(0, 10)} with \`${command}\` (root, loop devices,`,
      `Debian 12; ${seconds} s), n=${n} backups per row, snapshot start latency ${startLatencyMs} ms:`,
      '',
      appTable,
      '',
      'Workloads (each with one more session writing 1, 2, 3, ... and recording each acknowledgement):',
      loads,
    ].join('\n');
    await fs.writeFile(DOCS, withTable(await fs.readFile(DOCS, 'utf8'), section));
    console.error(`wrote the table into ${path.relative(process.cwd(), DOCS)}`);
  }
  return 0;
}

if (require.main === module) {
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
}
