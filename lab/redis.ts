import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { RespClient } from './ack-writer';
import { sleep } from './exec';

/** redis-server from Debian (redis-server). */
export function redisAvailable(): boolean {
  return existsSync('/usr/bin/redis-server');
}

/**
 * How the server persists: `rdb` is the Debian package's default (no append-only file, Redis 7's
 * save points 3600 1 / 300 100 / 60 10000); `aof` adds the append-only file with its default
 * appendfsync everysec and no save points.
 */
export type RedisPersistence = 'rdb' | 'aof';

export interface RedisProps {
  /** Working directory (dump.rdb, appendonlydir): on the volume under test or a restored copy. */
  readonly dir: string;
  readonly port: number;
  /** On unfrozen storage. */
  readonly logFile: string;
  readonly persistence: RedisPersistence;
}

function persistenceArgs(p: RedisPersistence): string[] {
  return p === 'rdb'
    ? ['--appendonly', 'no', '--save', '3600 1 300 100 60 10000']
    : ['--appendonly', 'yes', '--appendfsync', 'everysec', '--save', ''];
}

/** One redis-server on 127.0.0.1 only. */
export class RedisServer {
  private process?: ChildProcess;

  constructor(readonly props: RedisProps) {}

  /** Start and wait for PONG (a server still loading answers LOADING); throws with the log's tail. */
  async start(timeoutMs = 60_000): Promise<void> {
    await fs.writeFile(this.props.logFile, '');
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(this.props.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.props.dir,
        '--logfile',
        this.props.logFile,
        '--daemonize',
        'no',
        ...persistenceArgs(this.props.persistence),
      ],
      { stdio: 'ignore', detached: true },
    );
    this.process = child;
    let exited: number | null | undefined;
    child.on('exit', (code) => {
      exited = code;
    });
    const until = Date.now() + timeoutMs;
    while (Date.now() < until && exited === undefined) {
      const client = await RespClient.connect(this.props.port).catch(() => undefined);
      if (client) {
        const pong = await client.command('PING').catch(() => '');
        client.close();
        if (pong === 'PONG') return;
      }
      await sleep(100);
    }
    const log = await fs.readFile(this.props.logFile, 'utf8').catch(() => '');
    await this.stop();
    throw new Error(
      `redis-server on ${this.props.dir} ${exited !== undefined ? `exited (${exited})` : `did not answer in ${timeoutMs} ms`}: ${log.slice(-600)}`,
    );
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  /** SIGKILL: the server under test is thrown away with its run, a check server with its copy. */
  async stop(): Promise<void> {
    const child = this.process;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await Promise.race([gone, sleep(10_000)]);
  }
}

/** What loading a copy's persistence files showed, from Redis 7's log. */
export function parseRedisLoad(log: string): { loaded: string; truncated: boolean; failed: boolean } {
  const truncated = /short read while loading the AOF|AOF loaded anyway because aof-load-truncated/i.test(
    log,
  );
  const failed = /Bad file format|Fatal error|Unrecoverable error|Wrong signature/i.test(log);
  const loaded = /DB loaded from (append only file|incr file|base file)/.test(log)
    ? 'aof'
    : /DB loaded from disk/.test(log)
      ? 'rdb'
      : 'nothing';
  return { loaded, truncated, failed };
}

export interface RedisCopyCheck {
  readonly started: boolean;
  /** aof, rdb, or nothing (an empty data set). */
  readonly loaded: string;
  /** The append-only file ended in a partial command that the load cut off. */
  readonly truncated: boolean;
  readonly length?: number;
  readonly detail: string;
}

/** Start redis-server on a restored copy's directory with the original's persistence; LLEN `key`. */
export async function checkRedisCopy(props: RedisProps, key: string): Promise<RedisCopyCheck> {
  const server = new RedisServer(props);
  try {
    await server.start();
  } catch (err) {
    const log = await fs.readFile(props.logFile, 'utf8').catch(() => '');
    return { started: false, ...parseRedisLoad(log), detail: (err as Error).message };
  }
  try {
    const log = await fs.readFile(props.logFile, 'utf8');
    const client = await RespClient.connect(props.port);
    try {
      const length = Number(await client.command('LLEN', key));
      return { started: true, ...parseRedisLoad(log), length, detail: '' };
    } finally {
      client.close();
    }
  } finally {
    await server.stop();
  }
}
