import { type ChildProcess, spawn } from 'node:child_process';
import * as net from 'node:net';
import { sleep } from './exec';

/** One write the application acknowledged: its sequence number and when the reply arrived. */
export interface Ack {
  readonly n: number;
  readonly atMs: number;
}

/**
 * The consistency bench's committed-write workload: one session writing 1, 2, 3, ... one at a time,
 * each only after the previous one was acknowledged, recording the wall-clock time each
 * acknowledgement arrived (in memory, never on the volume under test). Every write recorded before a
 * snapshot's instant was acknowledged before it, so a copy that lacks it lost an acknowledged write.
 */
export class AckWriter {
  readonly acks: Ack[] = [];
  error?: string;
  private stopping = false;
  private loop?: Promise<void>;

  constructor(
    private readonly write: (n: number) => Promise<void>,
    /** Pause between writes, so the writer shares a small machine. */
    private readonly pauseMs = 2,
  ) {}

  start(): void {
    this.loop = (async () => {
      for (let n = 1; !this.stopping; n++) {
        try {
          await this.write(n);
        } catch (err) {
          if (!this.stopping) this.error = (err as Error).message;
          return;
        }
        this.acks.push({ n, atMs: Date.now() });
        if (this.pauseMs > 0) await sleep(this.pauseMs);
      }
    })();
  }

  /** The highest sequence number acknowledged before `ms` (writes are acknowledged in order); 0 if none. */
  ackedBefore(ms: number): number {
    let lo = 0;
    let hi = this.acks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.acks[mid].atMs < ms) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? 0 : this.acks[lo - 1].n;
  }

  /** Stop after the write in flight; a writer blocked on a server that is gone is abandoned. */
  async stop(timeoutMs = 5000): Promise<void> {
    this.stopping = true;
    await Promise.race([this.loop, sleep(timeoutMs)]);
  }
}

/**
 * A client program kept open on pipes (psql, mariadb): each request is one line of SQL whose answer
 * is exactly one line of output. Both clients print each result as its statement completes (psql
 * flushes per query; mariadb with --unbuffered), so an answer is the acknowledgement of a commit.
 */
export class LineClient {
  private readonly child: ChildProcess;
  private buffer = '';
  private waiting: { resolve: (line: string) => void; reject: (err: Error) => void }[] = [];
  private stderr = '';

  constructor(cmd: string, args: readonly string[]) {
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.child.stdout?.on('data', (d: Buffer) => {
      this.buffer += d.toString();
      for (let i = this.buffer.indexOf('\n'); i >= 0; i = this.buffer.indexOf('\n')) {
        const line = this.buffer.slice(0, i);
        this.buffer = this.buffer.slice(i + 1);
        this.waiting.shift()?.resolve(line);
      }
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-2000);
    });
    this.child.on('exit', (code) => {
      for (const w of this.waiting.splice(0))
        w.reject(new Error(`${cmd} exited (${code}): ${this.stderr.trim().slice(-300)}`));
    });
    this.child.stdin?.on('error', () => undefined);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  request(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.child.stdin?.write(`${line}\n`);
    });
  }

  close(): void {
    this.child.stdin?.end();
    try {
      if (this.child.pid) process.kill(-this.child.pid, 'SIGTERM');
    } catch {
      // Already gone.
    }
  }
}

/** The smallest RESP client: one command at a time over TCP, answering the reply's first line. */
export class RespClient {
  private readonly socket: net.Socket;
  private buffer = '';
  private waiting?: { resolve: (line: string) => void; reject: (err: Error) => void };
  private closed?: Error;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.buffer += d.toString();
      const i = this.buffer.indexOf('\r\n');
      if (i < 0) return;
      const line = this.buffer.slice(0, i);
      this.buffer = this.buffer.slice(i + 2);
      const w = this.waiting;
      this.waiting = undefined;
      w?.resolve(line);
    });
    const fail = (err: Error) => {
      this.closed = err;
      this.waiting?.reject(err);
      this.waiting = undefined;
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RespClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host }, () => resolve(new RespClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Send one command (integer and simple-string replies only); an error reply rejects. */
  command(...args: string[]): Promise<string> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      this.waiting = {
        resolve: (line) =>
          line.startsWith('-') ? reject(new Error(`redis: ${line.slice(1)}`)) : resolve(line.slice(1)),
        reject,
      };
      const parts = args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
      this.socket.write(`*${args.length}\r\n${parts}`);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
