import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Agent, type FreezeResult } from './agent';
import { checkCopy } from './copy-check';
import type { LabDocuments } from './documents';
import { sleep } from './exec';
import { cleanupRunDir, createPool, createRunDir, createStateTmpfs } from './host';
import { installHook, LabInstance } from './instance';
import { checkLedger, type LedgerCheck } from './ledger';
import { checkPgCopy, PG_BINDIR, type PgCopyCheck, PgServer } from './postgres';
import { realExecutor, SimSsm } from './sim/ssm';
import { pct, percentile, table } from './stats';
import type { LabFsType, LabPool } from './volume';

export type Mode = 'no-freeze' | 'freeze' | 'freeze+hooks';
export const MODES: readonly Mode[] = ['no-freeze', 'freeze', 'freeze+hooks'];
export type Workload = 'ledger' | 'postgresql';

export interface ExperimentOptions {
  /** Backups per mode per filesystem type for the ledger; 0 skips the ledger. */
  readonly n: number;
  /** Backups per mode per filesystem type for PostgreSQL; 0 skips PostgreSQL. */
  readonly pgN: number;
  readonly fstypes: readonly LabFsType[];
  /** Time between StartBackupJob and the snapshot's point in time, as AWS Backup would take. */
  readonly startLatencyMs: number;
  /** Pause between backups so the workload moves on. */
  readonly intervalMs: number;
  readonly documents: LabDocuments;
  /** Progress lines. */
  readonly log: (line: string) => void;
}

/** One backup of one copy, checked. */
export interface Sample {
  readonly workload: Workload;
  readonly fstype: LabFsType;
  readonly mode: Mode;
  readonly clean: boolean;
  readonly needsReplay: boolean;
  /** Freeze window in ms from the thaw script's report; undefined when nothing was frozen. */
  readonly freezeMs?: number;
  readonly ledger?: LedgerCheck;
  readonly pg?: PgCopyCheck;
  readonly detail: string;
}

const BACKUP = { watchdogSeconds: 90, hookTimeoutSeconds: 30, budgetMs: 60_000 };
const PG_PORT_BASE = 55_400;
/** Each filesystem's PostgreSQL gets ports of its own, so experiments can run side by side. */
const PG_PORT_OFFSET: Readonly<Record<LabFsType, number>> = { ext4: 0, xfs: 1 };

/** What one backup of the experiment took and saw. */
export interface BackupTaken {
  readonly copies: string[];
  /** Freeze window in ms from the thaw's report; undefined when nothing was frozen. */
  readonly freezeMs?: number;
  /** Wall-clock ms just before the first copy began: every write acknowledged before it must be in the copy. */
  readonly snapshotAtMs: number;
  /** The freeze's pre-freeze hooks, as it reported them. */
  readonly hooks?: FreezeResult['hooks'];
}

/**
 * One backup as the workflow takes it: freeze (per mode), wait the snapshot start latency, take the
 * point-in-time copies, thaw. Returns the copy paths and the freeze window the thaw reported.
 * `freeze+hooks` and `freeze` send the same Freeze: which hooks run is what the instance has installed.
 */
export async function backup(
  agent: Agent,
  instance: LabInstance,
  mode: Mode | 'freeze+hook',
  id: string,
  latencyMs: number,
): Promise<BackupTaken> {
  const copies = instance.volumes.map((v) => ('image' in v ? v.copyPath(id) : `${v.mountpoint}.${id}`));
  if (mode === 'no-freeze') {
    await sleep(latencyMs);
    const snapshotAtMs = Date.now();
    for (const [i, v] of instance.volumes.entries()) await v.snapshot(copies[i]);
    return { copies, snapshotAtMs };
  }
  const executionId = `${instance.instanceId}-${id}`.replace(/[^A-Za-z0-9_.:-]/g, '-');
  const frozen = await agent.freeze(instance, executionId, BACKUP);
  if (frozen.status !== 'frozen') {
    await agent.thaw(instance, executionId, BACKUP.hookTimeoutSeconds);
    throw new Error(
      `freeze of ${instance.name} did not freeze: ${frozen.status} ${JSON.stringify(frozen.error ?? {})}`,
    );
  }
  let snapshotError: unknown;
  let snapshotAtMs = 0;
  try {
    await sleep(latencyMs);
    snapshotAtMs = Date.now();
    for (const [i, v] of instance.volumes.entries()) await v.snapshot(copies[i]);
  } catch (err) {
    snapshotError = err;
  }
  // The thaw runs whatever happened to the snapshot, as every post-freeze state of the workflow does.
  const thawed = await agent.thaw(instance, executionId, BACKUP.hookTimeoutSeconds);
  if (snapshotError) throw snapshotError;
  if (thawed.status !== 'thawed')
    throw new Error(`thaw of ${instance.name} failed: ${JSON.stringify(thawed.error ?? {})}`);
  return { copies, freezeMs: thawed.freezeMs, snapshotAtMs, hooks: frozen.hooks };
}

interface Env {
  readonly runDir: string;
  readonly pool: LabPool;
  readonly stateRoot: string;
  readonly agent: Agent;
  readonly instances: Map<string, LabInstance>;
}

async function ledgerRuns(env: Env, fstype: LabFsType, opts: ExperimentOptions): Promise<Sample[]> {
  const { runDir, agent, instances } = env;
  const inst = new LabInstance({
    runDir,
    pool: env.pool,
    stateRoot: env.stateRoot,
    name: `ledger-${fstype}`,
    volumes: [fstype],
  });
  instances.set(inst.instanceId, inst);
  await inst.create();
  await inst.startLedger(path.join(runDir, 'pids'), false);
  const pidfile = path.join(inst.stateDir, 'ledger.pid');
  const ack = path.join(inst.stateDir, 'ledger.ack');
  await sleep(2000);
  const samples: Sample[] = [];
  for (const mode of MODES) {
    if (mode === 'freeze+hooks') await inst.installLedgerHooks(pidfile, ack);
    else await inst.removeHooks();
    for (let i = 0; i < opts.n; i++) {
      const { copies, freezeMs } = await backup(agent, inst, mode, `${mode}-${i}`, opts.startLatencyMs);
      const c = await checkCopy(copies[0], fstype, path.join(runDir, 'check'), async (root) =>
        checkLedger(
          await fs.readFile(path.join(root, 'ledger.log')).catch(() => Buffer.from('missing ledger file\n')),
        ),
      );
      await fs.rm(copies[0], { force: true });
      samples.push({
        workload: 'ledger',
        fstype,
        mode,
        clean: c.clean,
        needsReplay: c.needsReplay,
        freezeMs,
        ledger: c.inspected,
        detail: [c.fsckDetail, c.mountError, ...(c.inspected?.problems ?? [])].filter(Boolean).join('; '),
      });
      opts.log(
        `ledger ${fstype} ${mode} #${i + 1}: clean=${c.clean} invariant=${c.inspected?.holds} freeze=${freezeMs ?? '-'}ms ${samples.at(-1)?.detail.slice(0, 120) ?? ''}`,
      );
      await sleep(opts.intervalMs);
    }
  }
  inst.stopWorkloads();
  return samples;
}

async function pgRuns(env: Env, fstype: LabFsType, opts: ExperimentOptions): Promise<Sample[]> {
  const { runDir, agent, instances } = env;
  const inst = new LabInstance({
    runDir,
    pool: env.pool,
    stateRoot: env.stateRoot,
    name: `postgresql-${fstype}`,
    volumes: [fstype],
  });
  instances.set(inst.instanceId, inst);
  await inst.create();
  const socketDir = path.join(inst.stateDir, 'pgsock');
  const port = PG_PORT_BASE + PG_PORT_OFFSET[fstype] * 2;
  const server = new PgServer({
    dataDir: path.join(inst.volumes[0].mountpoint, 'pgdata'),
    socketDir,
    port,
    logFile: path.join(inst.dir, 'postgresql.log'),
  });
  await server.init();
  await server.start();
  await server.pgbenchInit(5);
  const load = server.pgbenchLoad(3600);
  await fs.mkdir(path.join(runDir, 'pids'), { recursive: true });
  await fs.writeFile(path.join(runDir, 'pids', `${inst.instanceId}-pgbench.pid`), `${load.pid}\n`);
  await fs.writeFile(
    path.join(inst.configDir, 'postgresql.env'),
    `ECB_PG_HOST=${socketDir}\nECB_PG_PORT=${port}\nECB_PG_BINDIR=${PG_BINDIR}\n`,
  );
  const hooks = path.join(__dirname, '..', 'hooks', 'postgresql');
  await sleep(3000);
  const samples: Sample[] = [];
  try {
    for (const mode of MODES) {
      await inst.removeHooks();
      if (mode === 'freeze+hooks') {
        await installHook(
          path.join(hooks, 'pre-freeze.d', '20-postgresql'),
          path.join(inst.configDir, 'pre-freeze.d'),
        );
        await installHook(
          path.join(hooks, 'post-thaw.d', '80-postgresql'),
          path.join(inst.configDir, 'post-thaw.d'),
        );
      }
      for (let i = 0; i < opts.pgN; i++) {
        const { copies, freezeMs } = await backup(agent, inst, mode, `${mode}-${i}`, opts.startLatencyMs);
        const c = await checkCopy(copies[0], fstype, path.join(runDir, 'check'), (root) =>
          checkPgCopy(
            path.join(root, 'pgdata'),
            path.join(runDir, 'checksock'),
            port + 1,
            path.join(runDir, `check-${inst.name}-${mode}-${i}.log`),
          ),
        );
        await fs.rm(copies[0], { force: true });
        samples.push({
          workload: 'postgresql',
          fstype,
          mode,
          clean: c.clean,
          needsReplay: c.needsReplay,
          freezeMs,
          pg: c.inspected,
          detail: [c.fsckDetail, c.mountError, c.inspected?.detail].filter(Boolean).join('; '),
        });
        opts.log(
          `postgresql ${fstype} ${mode} #${i + 1}: clean=${c.clean} recovery=${c.inspected?.recovery} redo=${c.inspected?.redoBytes}B invariant=${c.inspected?.invariantHolds} freeze=${freezeMs ?? '-'}ms`,
        );
        // Let a few checkpoints' worth of WAL accumulate, as between real backups.
        await sleep(opts.intervalMs);
      }
    }
  } finally {
    try {
      if (load.pid) process.kill(-load.pid, 'SIGTERM');
    } catch {
      // pgbench already ended.
    }
    await server.stop('fast');
  }
  return samples;
}

/** Run the whole experiment on real loop-mounted filesystems; cleans up everything, also on error. */
export async function runExperiment(opts: ExperimentOptions): Promise<{ samples: Sample[]; runDir: string }> {
  const runDir = await createRunDir();
  const instances = new Map<string, LabInstance>();
  const ssm = new SimSsm(instances, realExecutor(instances));
  const agent = new Agent(ssm, opts.documents);
  const samples: Sample[] = [];
  try {
    const pool = await createPool(runDir);
    const stateRoot = await createStateTmpfs(runDir);
    const env: Env = { runDir, pool, stateRoot, agent, instances };
    for (const fstype of opts.fstypes) {
      if (opts.n > 0) samples.push(...(await ledgerRuns(env, fstype, opts)));
      if (opts.pgN > 0) samples.push(...(await pgRuns(env, fstype, opts)));
    }
  } finally {
    for (const i of instances.values()) i.stopWorkloads();
    await cleanupRunDir(runDir);
  }
  return { samples, runDir };
}

/** The experiment's table: one row per workload, filesystem and mode. */
export function summarize(samples: readonly Sample[]): string {
  const rows: string[][] = [];
  const keys = [...new Set(samples.map((s) => `${s.workload}|${s.fstype}|${s.mode}`))];
  for (const key of keys) {
    const [workload, fstype, mode] = key.split('|');
    const group = samples.filter((s) => `${s.workload}|${s.fstype}|${s.mode}` === key);
    const freezes = group.map((s) => s.freezeMs).filter((v): v is number => v !== undefined);
    const clean = group.filter((s) => s.clean).length;
    const invariant =
      workload === 'ledger'
        ? group.filter((s) => s.ledger?.holds).length
        : group.filter((s) => s.pg?.invariantHolds).length;
    const recovery =
      workload === 'postgresql' ? pct(group.filter((s) => s.pg?.recovery).length, group.length) : '-';
    const redo =
      workload === 'postgresql'
        ? `${(
            (percentile(
              group.map((s) => s.pg?.redoBytes ?? 0),
              50,
            ) ?? 0) / 1e6
          ).toFixed(1)} MB`
        : '-';
    rows.push([
      workload,
      fstype,
      mode,
      String(group.length),
      pct(clean, group.length),
      pct(invariant, group.length),
      recovery,
      redo,
      freezes.length ? `${percentile(freezes, 50)}` : '-',
      freezes.length ? `${percentile(freezes, 99)}` : '-',
    ]);
  }
  return table(
    [
      'workload',
      'fs',
      'mode',
      'N',
      'clean fs (no replay)',
      'invariant holds',
      'PG starts needing recovery',
      'PG redo p50',
      'freeze p50 ms',
      'freeze p99 ms',
    ],
    rows,
  );
}
