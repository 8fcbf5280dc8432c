import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { PackagedApp } from '../lambda/shared/apps';
import { AckWriter, LineClient, RespClient } from './ack-writer';
import { Agent } from './agent';
import { checkCopy } from './copy-check';
import type { LabDocuments } from './documents';
import { run, sleep } from './exec';
import { backup } from './experiment';
import { cleanupRunDir, createPool, createRunDir, createStateTmpfs } from './host';
import { LabInstance } from './instance';
import { checkMariaDbCopy, MariaDbServer, mariadbAvailable, sysbenchAvailable } from './mariadb';
import { checkPgCopy, PG_BINDIR, PgServer, postgresAvailable } from './postgres';
import { checkRedisCopy, type RedisPersistence, RedisServer, redisAvailable } from './redis';
import { realExecutor, SimSsm } from './sim/ssm';
import { percentile, table } from './stats';
import type { LabFsType } from './volume';

/**
 * The per-application consistency bench (`npm run bench:consistency`): each application under write
 * load on a real loop-mounted ext4 or xfs volume, backed up in three modes by the real Freeze and
 * Thaw documents, each copy started by the application itself.
 *
 * - no-freeze: the snapshot alone (crash-consistent);
 * - freeze: the Freeze document with no hooks installed (filesystem-consistent);
 * - freeze+hook: the packaged hook installed by the AppHooks document with the instance's Apps tag
 *   value, exactly as the workflow does before a freeze, then the same Freeze.
 *
 * Alongside each application's load, one session writes 1, 2, 3, ... and records when each write was
 * acknowledged (AckWriter); a copy that lacks a write acknowledged before the snapshot's instant lost
 * an acknowledged write.
 */

export type AppWorkload = 'postgresql' | 'mysql' | 'redis' | 'redis-aof';
export const APP_WORKLOADS: readonly AppWorkload[] = ['postgresql', 'mysql', 'redis', 'redis-aof'];
export type AppMode = 'no-freeze' | 'freeze' | 'freeze+hook';
export const APP_MODES: readonly AppMode[] = ['no-freeze', 'freeze', 'freeze+hook'];

/** The Apps tag value each workload's instance carries. */
export const WORKLOAD_APP: Readonly<Record<AppWorkload, PackagedApp>> = {
  postgresql: 'postgresql',
  mysql: 'mysql',
  redis: 'redis',
  'redis-aof': 'redis',
};

/** What each workload is, in the table's words. */
export const WORKLOAD_LOAD: Readonly<Record<AppWorkload, string>> = {
  postgresql: 'PostgreSQL 15, pgbench -c 2 -R 100',
  mysql:
    'MariaDB 10.11, sysbench oltp_write_only 2 threads --rate=50; acked writes go to an InnoDB and a MyISAM table',
  redis: 'Redis 7, Debian default persistence (RDB save points, no AOF)',
  'redis-aof': 'Redis 7, appendonly yes, appendfsync everysec',
};

/** Why a workload cannot run here, or undefined. */
export function workloadUnavailable(w: AppWorkload): string | undefined {
  if (w === 'postgresql')
    return postgresAvailable() ? undefined : 'PostgreSQL 15 is not installed (apt-get install postgresql)';
  if (w === 'mysql') {
    if (!mariadbAvailable())
      return 'MariaDB is not installed (apt-get install mariadb-server mariadb-client)';
    if (!sysbenchAvailable()) return 'sysbench is not installed (apt-get install sysbench)';
    return undefined;
  }
  return redisAvailable() ? undefined : 'redis-server is not installed (apt-get install redis-server)';
}

export interface AppBenchOptions {
  readonly workloads: readonly AppWorkload[];
  /** Backups per mode per filesystem per workload. */
  readonly n: number;
  readonly fstypes: readonly LabFsType[];
  /** StartBackupJob to the snapshot's point in time, as AWS Backup takes. */
  readonly startLatencyMs: number;
  /** Pause between backups, so the workload moves on. */
  readonly intervalMs: number;
  readonly documents: LabDocuments;
  readonly log: (line: string) => void;
}

/** One backup of one application, its copy checked. */
export interface AppSample {
  readonly workload: AppWorkload;
  readonly fstype: LabFsType;
  readonly mode: AppMode;
  /** The copy's filesystem journal needed replaying (or fsck found problems): not clean as taken. */
  readonly fsReplay: boolean;
  /** The application started on the copy. */
  readonly started: boolean;
  /** The application ran recovery on the copy: crash recovery (PostgreSQL, InnoDB) or a truncated AOF (Redis). */
  readonly recovery: boolean;
  /** Bytes of redo replayed (PostgreSQL, InnoDB); 0 for Redis. */
  readonly redoBytes: number;
  /** MariaDB found a MyISAM table not closed properly and repaired it; undefined for the others. */
  readonly repaired?: boolean;
  /** Where Redis loaded its data from (aof, rdb, nothing); undefined for the SQL servers. */
  readonly loaded?: string;
  /** Writes acknowledged before the snapshot's instant. */
  readonly acked: number;
  /** Of those, how many the copy lacks (MariaDB: in its InnoDB table). */
  readonly missing: number;
  /** MariaDB: of those, how many its MyISAM table lacks. */
  readonly missingMyisam?: number;
  /** The freeze window from the thaw's report; undefined without a freeze. */
  readonly freezeMs?: number;
  /** The packaged pre-freeze hook's run time, from the freeze's report (freeze+hook only). */
  readonly hookMs?: number;
  readonly detail: string;
}

const ACKS_TABLE = 'ecb_acks';
const ACKS_KEY = 'ecb:acks';
const FS_INDEX: Readonly<Record<LabFsType, number>> = { ext4: 0, xfs: 1 };
const PORT_BASE: Readonly<Record<AppWorkload, number>> = {
  postgresql: 55_510,
  mysql: 0,
  redis: 56_510,
  'redis-aof': 56_520,
};

/** One application on one instance: its server and load, the acknowledged-write recorder, its copy check. */
interface AppUnderTest {
  readonly writer: AckWriter;
  /** Its settings files under the instance's apps/ directory (what an operator writes, never a hook). */
  readonly settings: Record<string, string>;
  /** Start the application on a mounted copy and report what it did and how many acked writes it has. */
  check(
    root: string,
    label: string,
  ): Promise<{
    started: boolean;
    recovery: boolean;
    redoBytes: number;
    loaded?: string;
    repaired?: boolean;
    count: number;
    /** MariaDB: the acknowledged writes in the MyISAM table. */
    countMyisam?: number;
    detail: string;
  }>;
  stop(): Promise<void>;
}

function detachedKill(child: ChildProcess | undefined): void {
  try {
    if (child?.pid) process.kill(-child.pid, 'SIGTERM');
  } catch {
    // Already gone.
  }
}

async function recordPid(runDir: string, name: string, pid: number | undefined): Promise<void> {
  if (!pid) return;
  await fs.mkdir(path.join(runDir, 'pids'), { recursive: true });
  await fs.writeFile(path.join(runDir, 'pids', `${name}.pid`), `${pid}\n`);
}

async function startPostgres(inst: LabInstance, runDir: string, fstype: LabFsType): Promise<AppUnderTest> {
  const socketDir = path.join(inst.dir, 'pgsock');
  const port = PORT_BASE.postgresql + FS_INDEX[fstype] * 2;
  const server = new PgServer({
    dataDir: path.join(inst.volumes[0].mountpoint, 'pgdata'),
    socketDir,
    port,
    logFile: path.join(inst.dir, 'postgresql.log'),
  });
  await server.init();
  await server.start();
  await server.pgbenchInit(5);
  await server.sql(`CREATE TABLE ${ACKS_TABLE} (n bigint PRIMARY KEY)`);
  const load = server.pgbenchLoad(7200, 2, 100);
  await recordPid(runDir, `${inst.instanceId}-pgbench`, load.pid);
  const client = new LineClient('runuser', [
    '-u',
    'postgres',
    '--',
    path.join(PG_BINDIR, 'psql'),
    '-X',
    '-A',
    '-t',
    '-q',
    '-h',
    socketDir,
    '-p',
    String(port),
    '-d',
    'postgres',
  ]);
  await recordPid(runDir, `${inst.instanceId}-psql`, client.pid);
  const writer = new AckWriter(async (n) => {
    const got = await client.request(`INSERT INTO ${ACKS_TABLE} VALUES (${n}) RETURNING n;`);
    if (got.trim() !== String(n)) throw new Error(`psql answered ${JSON.stringify(got)} to write ${n}`);
  }, 5);
  writer.start();
  return {
    writer,
    settings: {
      'postgresql.conf': `PG_HOST=${socketDir}\nPG_PORT=${port}\nPG_BINDIR=${PG_BINDIR}\n`,
    },
    async check(root, label) {
      const c = await checkPgCopy(
        path.join(root, 'pgdata'),
        path.join(runDir, 'checksock'),
        port + 1,
        path.join(runDir, `check-${label}.log`),
        `SELECT count(*) FROM ${ACKS_TABLE}`,
      );
      return {
        started: c.started,
        recovery: c.recovery,
        redoBytes: c.redoBytes,
        count: Number(c.extra ?? 0),
        detail: c.started ? (c.invariantHolds ? '' : `pgbench invariant broken: ${c.detail}`) : c.detail,
      };
    },
    async stop() {
      await writer.stop();
      client.close();
      detachedKill(load);
      await server.stop('fast');
    },
  };
}

async function startMariaDb(inst: LabInstance, runDir: string): Promise<AppUnderTest> {
  const socket = path.join(inst.dir, 'mysql.sock');
  const server = new MariaDbServer({
    dataDir: path.join(inst.volumes[0].mountpoint, 'mysql'),
    socket,
    pidFile: path.join(inst.dir, 'mysql.pid'),
    logFile: path.join(inst.dir, 'mysql.err'),
  });
  await server.init();
  await server.start();
  await recordPid(runDir, `${inst.instanceId}-mariadbd`, server.pid);
  await server.sysbenchPrepare();
  // The same writes into an InnoDB table and a MyISAM one: what FLUSH TABLES WITH READ LOCK changes
  // is the state of tables that are not crash-safe.
  await server.sql(
    `CREATE DATABASE ecb; CREATE TABLE ecb.${ACKS_TABLE} (n bigint PRIMARY KEY) ENGINE=InnoDB; CREATE TABLE ecb.${ACKS_TABLE}_myisam (n bigint PRIMARY KEY) ENGINE=MyISAM`,
  );
  const load = server.sysbenchLoad(7200, 2, 50);
  await recordPid(runDir, `${inst.instanceId}-sysbench`, load.pid);
  const client = new LineClient('mariadb', [...server.clientArgs(), '--unbuffered']);
  await recordPid(runDir, `${inst.instanceId}-mariadb`, client.pid);
  const writer = new AckWriter(async (n) => {
    const got = await client.request(
      `INSERT INTO ecb.${ACKS_TABLE} VALUES (${n}); INSERT INTO ecb.${ACKS_TABLE}_myisam VALUES (${n}); SELECT ${n};`,
    );
    if (got.trim() !== String(n)) throw new Error(`mariadb answered ${JSON.stringify(got)} to write ${n}`);
  }, 5);
  writer.start();
  return {
    writer,
    settings: {
      'mysql.cnf': `[client]\nsocket=${socket}\nuser=root\n`,
    },
    async check(root, label) {
      const c = await checkMariaDbCopy(
        {
          dataDir: path.join(root, 'mysql'),
          socket: path.join(runDir, `check-${label}.sock`),
          pidFile: path.join(runDir, `check-${label}.pid`),
          logFile: path.join(runDir, `check-${label}.err`),
        },
        `SELECT (SELECT count(*) FROM ecb.${ACKS_TABLE}), (SELECT count(*) FROM ecb.${ACKS_TABLE}_myisam)`,
      );
      const [count, countMyisam] = String(c.extra ?? '')
        .split(/\s+/)
        .map(Number);
      return {
        countMyisam: Number.isFinite(countMyisam) ? countMyisam : 0,
        started: c.started,
        recovery: c.recovery,
        redoBytes: c.redoBytes,
        repaired: c.crashedTables.length > 0,
        count: Number.isFinite(count) ? count : 0,
        detail: c.started ? (Number.isFinite(count) ? '' : String(c.extra)) : c.detail,
      };
    },
    async stop() {
      await writer.stop();
      client.close();
      detachedKill(load);
      await server.stop();
    },
  };
}

async function startRedis(
  inst: LabInstance,
  runDir: string,
  fstype: LabFsType,
  workload: 'redis' | 'redis-aof',
): Promise<AppUnderTest> {
  const persistence: RedisPersistence = workload === 'redis' ? 'rdb' : 'aof';
  const port = PORT_BASE[workload] + FS_INDEX[fstype] * 2;
  const dir = path.join(inst.volumes[0].mountpoint, 'redis');
  await fs.mkdir(dir);
  const server = new RedisServer({ dir, port, logFile: path.join(inst.dir, 'redis.log'), persistence });
  await server.start();
  await recordPid(runDir, `${inst.instanceId}-redis`, server.pid);
  const client = await RespClient.connect(port);
  const writer = new AckWriter(async (n) => {
    const got = await client.command('RPUSH', ACKS_KEY, String(n));
    if (got !== String(n)) throw new Error(`redis answered ${JSON.stringify(got)} to write ${n}`);
  }, 2);
  writer.start();
  return {
    writer,
    settings: { 'redis.conf': `REDIS_PORT=${port}\n` },
    async check(root, label) {
      const c = await checkRedisCopy(
        {
          dir: path.join(root, 'redis'),
          port: port + 1,
          logFile: path.join(runDir, `check-${label}.log`),
          persistence,
        },
        ACKS_KEY,
      );
      return {
        started: c.started,
        recovery: c.truncated,
        redoBytes: 0,
        loaded: c.loaded,
        count: c.length ?? 0,
        detail: c.detail,
      };
    },
    async stop() {
      await writer.stop(1000);
      client.close();
      await server.stop();
    },
  };
}

function startApp(
  workload: AppWorkload,
  inst: LabInstance,
  runDir: string,
  fstype: LabFsType,
): Promise<AppUnderTest> {
  if (workload === 'postgresql') return startPostgres(inst, runDir, fstype);
  if (workload === 'mysql') return startMariaDb(inst, runDir);
  return startRedis(inst, runDir, fstype, workload);
}

/**
 * Install (or remove) the packaged hooks through the AppHooks document, as the workflow does before
 * each freeze of an instance with an Apps tag: `apps` empty removes them.
 */
export async function installAppHooks(ssm: SimSsm, inst: LabInstance, apps: string): Promise<string[]> {
  const inv = await ssm.runAndWait('AppHooks', inst.instanceId, { Apps: [apps] });
  const out = JSON.parse(String(inv.StandardOutputContent ?? '{}').trim() || '{}') as {
    status?: string;
    error?: { message?: string };
  };
  if (inv.Status !== 'Success' || out.status !== 'installed')
    throw new Error(
      `AppHooks Apps=${JSON.stringify(apps)} on ${inst.name} failed: ${out.error?.message ?? String(inv.StandardErrorContent).slice(-300)}`,
    );
  const installed = [];
  for (const phase of ['pre-freeze.d', 'post-thaw.d'])
    for (const f of await fs.readdir(path.join(inst.configDir, phase))) installed.push(`${phase}/${f}`);
  return installed;
}

async function writeSettings(inst: LabInstance, settings: Record<string, string>): Promise<void> {
  const dir = path.join(inst.configDir, 'apps');
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  for (const [file, text] of Object.entries(settings))
    await fs.writeFile(path.join(dir, file), text, { mode: 0o600 });
}

async function runWorkload(
  workload: AppWorkload,
  fstype: LabFsType,
  env: {
    runDir: string;
    stateRoot: string;
    pool: Awaited<ReturnType<typeof createPool>>;
    ssm: SimSsm;
    agent: Agent;
    instances: Map<string, LabInstance>;
  },
  opts: AppBenchOptions,
): Promise<AppSample[]> {
  const inst = new LabInstance({
    runDir: env.runDir,
    pool: env.pool,
    stateRoot: env.stateRoot,
    name: `${workload}-${fstype}`,
    volumes: [fstype],
  });
  env.instances.set(inst.instanceId, inst);
  await inst.create();
  const app = await startApp(workload, inst, env.runDir, fstype);
  const samples: AppSample[] = [];
  try {
    await writeSettings(inst, app.settings);
    // A server set up seconds ago: its directories reach the disk now, as a long-running one's have.
    await run('sync', ['-f', inst.volumes[0].mountpoint]);
    await sleep(3000);
    const hookName = `50-ecb-${WORKLOAD_APP[workload]}`;
    for (const mode of APP_MODES) {
      const installed = await installAppHooks(
        env.ssm,
        inst,
        mode === 'freeze+hook' ? WORKLOAD_APP[workload] : '',
      );
      const expected = mode === 'freeze+hook' ? [`post-thaw.d/${hookName}`, `pre-freeze.d/${hookName}`] : [];
      if (installed.sort().join() !== expected.join())
        throw new Error(
          `after AppHooks ${inst.name} has hooks ${installed.join(', ') || 'none'}, expected ${expected.join(', ') || 'none'}`,
        );
      for (let i = 0; i < opts.n; i++) {
        const label = `${workload}-${fstype}-${mode.replace('+', '-')}-${i}`;
        const taken = await backup(env.agent, inst, mode, label, opts.startLatencyMs);
        if (app.writer.error) throw new Error(`${workload} writer failed: ${app.writer.error}`);
        const acked = app.writer.ackedBefore(taken.snapshotAtMs);
        const hook = taken.hooks?.find((h) => h.name === hookName);
        if (mode === 'freeze+hook' && hook?.exitCode !== 0)
          throw new Error(
            `${inst.name}: the packaged hook did not run or failed: ${JSON.stringify(taken.hooks)}`,
          );
        const c = await checkCopy(taken.copies[0], fstype, path.join(env.runDir, 'check'), (root) =>
          app.check(root, label),
        );
        await fs.rm(taken.copies[0], { force: true });
        const found = c.inspected;
        const sample: AppSample = {
          workload,
          fstype,
          mode,
          fsReplay: !c.clean,
          started: found?.started ?? false,
          recovery: found?.recovery ?? false,
          redoBytes: found?.redoBytes ?? 0,
          loaded: found?.loaded,
          repaired: found?.repaired,
          acked,
          missing: found?.started ? Math.max(0, acked - found.count) : acked,
          missingMyisam:
            workload === 'mysql'
              ? found?.started
                ? Math.max(0, acked - (found.countMyisam ?? 0))
                : acked
              : undefined,
          freezeMs: taken.freezeMs,
          hookMs: hook?.ms,
          detail: [c.fsckDetail, c.mountError, found?.detail].filter(Boolean).join('; '),
        };
        samples.push(sample);
        opts.log(
          `${workload} ${fstype} ${mode} #${i + 1}: fs ${sample.fsReplay ? 'replay' : 'clean'}, started=${sample.started} recovery=${sample.recovery}${sample.redoBytes ? ` redo=${sample.redoBytes}B` : ''}${sample.loaded ? ` loaded=${sample.loaded}` : ''}${sample.repaired ? ' MyISAM-repaired' : ''} acked=${acked} missing=${sample.missing}${sample.missingMyisam !== undefined ? ` missing-myisam=${sample.missingMyisam}` : ''} freeze=${sample.freezeMs ?? '-'}ms hook=${sample.hookMs ?? '-'}ms ${sample.detail.slice(0, 160)}`,
        );
        await sleep(opts.intervalMs);
      }
    }
  } finally {
    await app.stop();
  }
  return samples;
}

/** Run the bench on real loop-mounted filesystems; cleans up everything it created, also on error. */
export async function runAppBench(opts: AppBenchOptions): Promise<AppSample[]> {
  const runDir = await createRunDir();
  const instances = new Map<string, LabInstance>();
  const ssm = new SimSsm(instances, realExecutor(instances));
  ssm.registerDocument(['AppHooks'], opts.documents.appHooks);
  const agent = new Agent(ssm, opts.documents);
  const samples: AppSample[] = [];
  try {
    const pool = await createPool(runDir);
    const stateRoot = await createStateTmpfs(runDir);
    for (const workload of opts.workloads)
      for (const fstype of opts.fstypes)
        samples.push(
          ...(await runWorkload(workload, fstype, { runDir, stateRoot, pool, ssm, agent, instances }, opts)),
        );
  } finally {
    for (const i of instances.values()) i.stopWorkloads();
    await cleanupRunDir(runDir);
  }
  return samples;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** The bench's table: one row per application, filesystem and mode. */
export function summarizeApps(samples: readonly AppSample[]): string {
  const keys = [...new Set(samples.map((s) => `${s.workload}|${s.fstype}|${s.mode}`))];
  const rows = keys.map((key) => {
    const [workload, fstype, mode] = key.split('|');
    const g = samples.filter((s) => `${s.workload}|${s.fstype}|${s.mode}` === key);
    const n = g.length;
    const count = (f: (s: AppSample) => boolean) => `${g.filter(f).length}/${n}`;
    const recovered = g.filter((s) => s.recovery);
    const loadedFrom = [...new Set(g.map((s) => s.loaded ?? '?'))]
      .map((l) => `${l} ${g.filter((s) => s.loaded === l).length}`)
      .join(', ');
    const redo = `redo p50 ${mb(
      percentile(
        recovered.map((s) => s.redoBytes),
        50,
      ) ?? 0,
    )} max ${mb(Math.max(0, ...recovered.map((s) => s.redoBytes)))}`;
    const recovery =
      workload === 'redis'
        ? `loaded ${loadedFrom}`
        : workload === 'redis-aof'
          ? `loaded ${loadedFrom}; truncated AOF ${count((s) => s.recovery)}`
          : workload === 'mysql'
            ? `InnoDB ${count((s) => s.recovery)}, ${redo}; MyISAM repaired ${count((s) => s.repaired === true)}`
            : `${count((s) => s.recovery)}, ${redo}`;
    const lostCell = (missing: (s: AppSample) => number) => {
      const lost = g.filter((s) => missing(s) > 0);
      return lost.length
        ? `${lost.length}/${n} (max ${Math.max(...lost.map(missing))} of ${Math.max(...g.map((s) => s.acked))})`
        : `0/${n}`;
    };
    const lostAll =
      workload === 'mysql'
        ? `InnoDB ${lostCell((s) => s.missing)}; MyISAM ${lostCell((s) => s.missingMyisam ?? 0)}`
        : lostCell((s) => s.missing);
    const freezes = g.map((s) => s.freezeMs).filter((v): v is number => v !== undefined);
    const hooks = g.map((s) => s.hookMs).filter((v): v is number => v !== undefined);
    return [
      workload,
      fstype,
      mode,
      String(n),
      count((s) => s.fsReplay),
      count((s) => s.started),
      recovery,
      lostAll,
      freezes.length ? `${percentile(freezes, 50)} / ${percentile(freezes, 99)}` : '-',
      hooks.length ? String(percentile(hooks, 50)) : '-',
    ];
  });
  return table(
    [
      'app',
      'fs',
      'mode',
      'n',
      'fs journal replay',
      'copy starts',
      'app recovery on the copy',
      'copies missing acked writes',
      'freeze p50/p99 ms',
      'hook p50 ms',
    ],
    rows,
  );
}
