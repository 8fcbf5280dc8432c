import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { mustRun, run, sleep } from './exec';

export const PG_BINDIR = process.env.ECB_PG_BINDIR ?? '/usr/lib/postgresql/15/bin';
const PG_USER = 'postgres';

export function postgresAvailable(): boolean {
  return existsSync(path.join(PG_BINDIR, 'postgres')) && existsSync(path.join(PG_BINDIR, 'pgbench'));
}

function asPostgres(bin: string, args: readonly string[], timeoutMs = 60_000) {
  return run('runuser', ['-u', PG_USER, '--', path.join(PG_BINDIR, bin), ...args], { timeoutMs });
}

async function mustAsPostgres(bin: string, args: readonly string[], timeoutMs = 60_000) {
  const r = await asPostgres(bin, args, timeoutMs);
  if (r.code !== 0)
    throw new Error(
      `${bin} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`,
    );
  return r;
}

export interface PgServerProps {
  /** Data directory (on the lab volume for the server under test, on a restored copy for a check). */
  readonly dataDir: string;
  /** Unix socket directory, on unfrozen storage. */
  readonly socketDir: string;
  readonly port: number;
  readonly logFile: string;
}

/** One postmaster on a unix socket only (listen_addresses=''), so lab servers never touch the network. */
export class PgServer {
  constructor(readonly props: PgServerProps) {}

  async init(): Promise<void> {
    await fs.mkdir(this.props.dataDir, { recursive: true });
    await mustRun('chown', [PG_USER, this.props.dataDir]);
    await mustAsPostgres('initdb', [
      '-D',
      this.props.dataDir,
      '-A',
      'trust',
      '-U',
      PG_USER,
      '--no-instructions',
    ]);
  }

  async start(): Promise<void> {
    await fs.mkdir(this.props.socketDir, { recursive: true });
    await mustRun('chown', [PG_USER, this.props.socketDir]);
    await fs.writeFile(this.props.logFile, '');
    await mustRun('chown', [PG_USER, this.props.logFile]);
    const opts = `-p ${this.props.port} -k ${this.props.socketDir} -c listen_addresses=''`;
    await mustAsPostgres(
      'pg_ctl',
      ['-D', this.props.dataDir, '-o', opts, '-l', this.props.logFile, '-w', '-t', '120', 'start'],
      130_000,
    );
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await asPostgres('pg_ctl', ['-D', this.props.dataDir, '-m', mode, '-w', '-t', '60', 'stop'], 70_000);
  }

  async sql(query: string): Promise<string> {
    const r = await mustAsPostgres('psql', [
      '-X',
      '-A',
      '-t',
      '-q',
      '-h',
      this.props.socketDir,
      '-p',
      String(this.props.port),
      '-d',
      'postgres',
      '-c',
      query,
    ]);
    return r.stdout.trim();
  }

  /** pgbench's own data set; scale 5 is 500k accounts, about 75 MB. */
  async pgbenchInit(scale = 5): Promise<void> {
    await mustAsPostgres(
      'pgbench',
      [
        '-i',
        '-q',
        '-s',
        String(scale),
        '-h',
        this.props.socketDir,
        '-p',
        String(this.props.port),
        'postgres',
      ],
      300_000,
    );
  }

  /**
   * Start a pgbench load in the background; the caller records the pid for cleanup. `rate` caps it
   * at that many transactions per second (pgbench -R), so the load shares a small machine.
   */
  pgbenchLoad(seconds: number, clients = 2, rate?: number): ChildProcess {
    return spawn(
      'runuser',
      [
        '-u',
        PG_USER,
        '--',
        path.join(PG_BINDIR, 'pgbench'),
        '-n',
        '-c',
        String(clients),
        '-T',
        String(seconds),
        ...(rate === undefined ? [] : ['-R', String(rate)]),
        '-h',
        this.props.socketDir,
        '-p',
        String(this.props.port),
        'postgres',
      ],
      { stdio: 'ignore', detached: true },
    );
  }
}

/** What starting PostgreSQL on a restored copy showed. */
export interface PgCopyCheck {
  readonly started: boolean;
  /** The log said the server had not been shut down and ran crash recovery. */
  readonly recovery: boolean;
  /** Bytes of WAL replayed (redo done LSN minus redo starts LSN), 0 when no redo ran. */
  readonly redoBytes: number;
  /** How long the redo took, from the "redo done ... elapsed" line. */
  readonly redoMs: number;
  /** pgbench's invariant: accounts, tellers, branches and history all sum to the same total. */
  readonly invariantHolds: boolean;
  /** The answer to the caller's extra query, when one was given and the server started. */
  readonly extra?: string;
  readonly detail: string;
}

function lsn(text: string): number {
  const [hi, lo] = text.split('/');
  return Number.parseInt(hi, 16) * 2 ** 32 + Number.parseInt(lo, 16);
}

/** Read crash recovery facts out of a PostgreSQL 15 startup log. */
export function parseRecoveryLog(log: string): { recovery: boolean; redoBytes: number; redoMs: number } {
  const recovery =
    /database system was not properly shut down; automatic recovery in progress|database system was interrupted/.test(
      log,
    );
  const start = /redo starts at ([0-9A-F]+\/[0-9A-F]+)/.exec(log);
  const done = /redo done at ([0-9A-F]+\/[0-9A-F]+)/.exec(log);
  const redoBytes = start && done ? Math.max(0, lsn(done[1]) - lsn(start[1])) : 0;
  const elapsed = /redo done at [^\n]*elapsed: ([0-9.]+) s/.exec(log);
  return { recovery, redoBytes, redoMs: elapsed ? Math.round(Number(elapsed[1]) * 1000) : 0 };
}

/**
 * Start a postmaster on a restored copy's data directory and report recovery and the pgbench
 * invariant. The copy carries the original's postmaster.pid, naming a process that is alive on this
 * host (a restored volume on a new instance would name a dead one); it is removed so the check server
 * starts, exactly as PostgreSQL would ignore a stale one.
 */
export async function checkPgCopy(
  dataDir: string,
  socketDir: string,
  port: number,
  logFile: string,
  extraQuery?: string,
): Promise<PgCopyCheck> {
  await fs.rm(path.join(dataDir, 'postmaster.pid'), { force: true });
  const server = new PgServer({ dataDir, socketDir, port, logFile });
  try {
    await server.start();
  } catch (err) {
    const log = await fs.readFile(logFile, 'utf8').catch(() => '');
    return {
      started: false,
      recovery: false,
      redoBytes: 0,
      redoMs: 0,
      invariantHolds: false,
      detail: `${(err as Error).message}\n${log.slice(-500)}`,
    };
  }
  try {
    const log = await fs.readFile(logFile, 'utf8');
    const { recovery, redoBytes, redoMs } = parseRecoveryLog(log);
    const sums = await server.sql(
      'select (select coalesce(sum(abalance),0) from pgbench_accounts), (select coalesce(sum(tbalance),0) from pgbench_tellers), (select coalesce(sum(bbalance),0) from pgbench_branches), (select coalesce(sum(delta),0) from pgbench_history)',
    );
    const values = sums.split('|');
    const invariantHolds = values.length === 4 && values.every((v) => v === values[0]);
    const extra = extraQuery === undefined ? undefined : await server.sql(extraQuery);
    return { started: true, recovery, redoBytes, redoMs, invariantHolds, extra, detail: `sums ${sums}` };
  } finally {
    await server.stop('immediate');
  }
}

export async function waitForFile(file: string, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (existsSync(file)) return true;
    await sleep(20);
  }
  return false;
}
