import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { mustRun, run, sleep } from './exec';

/** MariaDB from Debian (mariadb-server): the server, its installer and its client. */
export function mariadbAvailable(): boolean {
  return ['/usr/sbin/mariadbd', '/usr/bin/mariadb', '/usr/bin/mariadb-install-db'].every(existsSync);
}

/** sysbench from Debian: the MariaDB write load when it is installed. */
export function sysbenchAvailable(): boolean {
  return existsSync('/usr/bin/sysbench');
}

// Small enough for a 512 MiB lab volume and a shared machine.
const SMALL = ['--innodb-log-file-size=16M', '--innodb-buffer-pool-size=32M'];

export interface MariaDbProps {
  /** The datadir: on the volume under test, or on a restored copy. */
  readonly dataDir: string;
  /** Unix socket, pid file and error log: on unfrozen storage. */
  readonly socket: string;
  readonly pidFile: string;
  /** Ends in .err (mariadbd appends .err to a name without an extension). */
  readonly logFile: string;
}

/** One mariadbd on a unix socket only (skip-networking), run as root, with Debian's defaults otherwise. */
export class MariaDbServer {
  private process?: ChildProcess;

  constructor(readonly props: MariaDbProps) {}

  async init(): Promise<void> {
    await mustRun(
      'mariadb-install-db',
      [
        '--no-defaults',
        `--datadir=${this.props.dataDir}`,
        '--user=root',
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
      ],
      { timeoutMs: 120_000 },
    );
  }

  /** Start and wait until it answers; throws with the log's tail when it exits or never answers. */
  async start(timeoutMs = 120_000): Promise<void> {
    await fs.writeFile(this.props.logFile, '');
    const child = spawn(
      'mariadbd',
      [
        '--no-defaults',
        `--datadir=${this.props.dataDir}`,
        `--socket=${this.props.socket}`,
        '--skip-networking',
        '--user=root',
        `--pid-file=${this.props.pidFile}`,
        `--log-error=${this.props.logFile}`,
        ...SMALL,
      ],
      { stdio: 'ignore', detached: true },
    );
    this.process = child;
    let exited: number | null | undefined;
    child.on('exit', (code) => {
      exited = code;
    });
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (exited !== undefined) break;
      if (existsSync(this.props.socket) && (await this.sqlResult('SELECT 1')).code === 0) return;
      await sleep(200);
    }
    const log = await fs.readFile(this.props.logFile, 'utf8').catch(() => '');
    await this.stop(true);
    throw new Error(
      `mariadbd on ${this.props.dataDir} ${exited !== undefined ? `exited (${exited})` : `did not answer in ${timeoutMs} ms`}: ${log.slice(-600)}`,
    );
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  /** Client arguments for this server (root over the socket). */
  clientArgs(): string[] {
    return [`--socket=${this.props.socket}`, '--user=root', '--batch', '--skip-column-names'];
  }

  private sqlResult(query: string) {
    return run('mariadb', [...this.clientArgs(), '--connect-timeout=5', '-e', query], { timeoutMs: 60_000 });
  }

  async sql(query: string): Promise<string> {
    const r = await this.sqlResult(query);
    if (r.code !== 0) throw new Error(`mariadb -e ${JSON.stringify(query)} failed: ${r.stderr.trim()}`);
    return r.stdout.trim();
  }

  /** Stop: a clean shutdown, or SIGKILL (as a check server on a copy is thrown away). */
  async stop(kill = false): Promise<void> {
    const child = this.process;
    if (!child?.pid || child.exitCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (kill) child.kill('SIGKILL');
    else await this.sqlResult('SHUTDOWN');
    await Promise.race([gone, sleep(60_000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }

  /** sysbench's OLTP tables in database sbtest. */
  async sysbenchPrepare(tableSize = 10_000): Promise<void> {
    await this.sql('CREATE DATABASE IF NOT EXISTS sbtest');
    await mustRun('sysbench', ['oltp_write_only', ...this.sysbenchArgs(tableSize), 'prepare'], {
      timeoutMs: 300_000,
    });
  }

  private sysbenchArgs(tableSize: number): string[] {
    return [
      '--db-driver=mysql',
      `--mysql-socket=${this.props.socket}`,
      '--mysql-user=root',
      '--tables=1',
      `--table-size=${tableSize}`,
    ];
  }

  /** sysbench oltp_write_only in the background, capped at `rate` transactions per second. */
  sysbenchLoad(seconds: number, threads = 2, rate = 100, tableSize = 10_000): ChildProcess {
    return spawn(
      'sysbench',
      [
        'oltp_write_only',
        ...this.sysbenchArgs(tableSize),
        `--threads=${threads}`,
        `--rate=${rate}`,
        `--time=${seconds}`,
        // A statement stalled by a freeze or the read lock is waited for, not an error.
        '--mysql-ignore-errors=all',
        'run',
      ],
      { stdio: 'ignore', detached: true },
    );
  }
}

/** InnoDB's crash recovery, read from a MariaDB 10.11 error log. */
export function parseInnodbRecovery(log: string): {
  recovery: boolean;
  redoBytes: number;
  pages: number;
  /** MyISAM tables the server found not closed properly and repaired when it opened them. */
  crashedTables: string[];
} {
  const crashedTables = [...log.matchAll(/Table '([^']+)' is marked as crashed/g)].map((m) => m[1]);
  const start = /InnoDB: Starting crash recovery from checkpoint LSN=(\d+)/.exec(log);
  const end = /InnoDB: End of log at LSN=(\d+)/.exec(log);
  const pages = /InnoDB: To recover: (\d+) pages/.exec(log);
  return {
    recovery: start !== null,
    redoBytes: start && end ? Math.max(0, Number(end[1]) - Number(start[1])) : 0,
    pages: pages ? Number(pages[1]) : 0,
    crashedTables: [...new Set(crashedTables)],
  };
}

export interface MariaDbCopyCheck {
  readonly started: boolean;
  readonly recovery: boolean;
  readonly redoBytes: number;
  readonly pages: number;
  readonly crashedTables: readonly string[];
  readonly extra?: string;
  readonly detail: string;
}

/** Start mariadbd on a restored copy's datadir, read its recovery from the log, ask `query`, kill it. */
export async function checkMariaDbCopy(props: MariaDbProps, query: string): Promise<MariaDbCopyCheck> {
  const server = new MariaDbServer(props);
  try {
    await server.start();
  } catch (err) {
    return {
      started: false,
      recovery: false,
      redoBytes: 0,
      pages: 0,
      crashedTables: [],
      detail: (err as Error).message,
    };
  }
  try {
    const extra = await server.sql(query).catch((err: Error) => `error: ${err.message}`);
    // Read after the query: a MyISAM table is checked (and its crash logged) when first opened.
    const log = await fs.readFile(props.logFile, 'utf8');
    return { started: true, ...parseInnodbRecovery(log), extra, detail: '' };
  } finally {
    await server.stop(true);
  }
}
