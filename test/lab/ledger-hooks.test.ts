import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { run, sleep } from '../../lab/exec';
import { checkLedger } from '../../lab/ledger';

const REPO = path.join(__dirname, '..', '..');
const WRITER = path.join(REPO, 'lab', 'workloads', 'ledger-writer.mjs');
const HOOKS = path.join(REPO, 'lab', 'hooks', 'ledger');

let child: ChildProcess | undefined;
let dir = '';

afterEach(async () => {
  child?.kill('SIGKILL');
  child = undefined;
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

async function size(file: string): Promise<number> {
  return (await fs.stat(file).catch(() => ({ size: 0 }))).size;
}

/** Whether `file` grows beyond `from` bytes within `withinMs`, polling. */
async function grows(file: string, from: number, withinMs: number): Promise<boolean> {
  const end = Date.now() + withinMs;
  while (Date.now() < end) {
    if ((await size(file)) > from) return true;
    await sleep(20);
  }
  return (await size(file)) > from;
}

async function setup(maxPauseMs = 60_000) {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ecb-ledger-'));
  const ledger = path.join(dir, 'ledger.log');
  const ack = path.join(dir, 'ledger.ack');
  const pidfile = path.join(dir, 'ledger.pid');
  child = spawn(
    process.execPath,
    [WRITER, '--file', ledger, '--ack', ack, '--max-pause-ms', String(maxPauseMs)],
    { stdio: 'ignore' },
  );
  await fs.writeFile(pidfile, `${child.pid}\n`);
  // Hooks find their settings next to their directories, as installed under /etc/ec2-consistent-backup.
  for (const d of ['pre-freeze.d', 'post-thaw.d'])
    await fs.mkdir(path.join(dir, 'etc', d), { recursive: true });
  await fs.copyFile(
    path.join(HOOKS, 'pre-freeze.d', '10-ledger'),
    path.join(dir, 'etc', 'pre-freeze.d', '10-ledger'),
  );
  await fs.copyFile(
    path.join(HOOKS, 'post-thaw.d', '90-ledger'),
    path.join(dir, 'etc', 'post-thaw.d', '90-ledger'),
  );
  await fs.writeFile(
    path.join(dir, 'etc', 'ledger.conf'),
    `LEDGER_PIDFILE=${pidfile}\nLEDGER_ACKFILE=${ack}\nLEDGER_ACK_TIMEOUT_MS=5000\n`,
  );
  // The writer is a fresh Node process: under load it may take a while to start. Hooks signal it, so
  // they may only run once it is writing (and has its signal handlers).
  expect(await grows(ledger, 0, 30_000), 'the ledger writer started writing').toBe(true);
  return {
    ledger,
    ack,
    pre: path.join(dir, 'etc', 'pre-freeze.d', '10-ledger'),
    post: path.join(dir, 'etc', 'post-thaw.d', '90-ledger'),
  };
}

describe('ledger workload and its hooks', () => {
  it('pre-freeze leaves the file at a transaction boundary and paused; post-thaw resumes it', async () => {
    const { ledger, ack, pre, post } = await setup();
    const r = await run(pre, []);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ledger paused/);
    expect(existsSync(ack)).toBe(true);
    const paused = await fs.readFile(ledger);
    expect(checkLedger(paused).holds).toBe(true);
    expect(checkLedger(paused).transfers).toBeGreaterThan(0);
    await sleep(300);
    expect((await fs.stat(ledger)).size).toBe(paused.length);

    const t = await run(post, []);
    expect(t.code).toBe(0);
    expect(await grows(ledger, paused.length, 10_000)).toBe(true);
    expect(existsSync(ack)).toBe(false);
  });

  it('without the hooks the file usually ends inside a transfer (4 KiB blocks ignore records)', async () => {
    const { ledger } = await setup();
    let torn = 0;
    for (let i = 0; i < 5; i++) {
      await sleep(120);
      if (!checkLedger(await fs.readFile(ledger)).holds) torn++;
    }
    // A 4096-byte block ends exactly on a record boundary only by coincidence.
    expect(torn).toBeGreaterThanOrEqual(3);
  });

  it('resumes by itself after --max-pause-ms when the post-thaw hook never comes', async () => {
    const { ledger, pre } = await setup(400);
    expect((await run(pre, [])).code).toBe(0);
    const paused = await size(ledger);
    // No post-thaw hook runs: the writer resumes when its pause runs out.
    expect(await grows(ledger, paused, 10_000)).toBe(true);
  });

  it('pre-freeze fails, naming the pid, when the application does not acknowledge', async () => {
    const { pre } = await setup();
    // A stopped process cannot acknowledge.
    child?.kill('SIGSTOP');
    const conf = path.join(dir, 'etc', 'ledger.conf');
    await fs.appendFile(conf, 'LEDGER_ACK_TIMEOUT_MS=300\n');
    const r = await run(pre, []);
    child?.kill('SIGCONT');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`ledger \\(pid ${child?.pid}\\) did not acknowledge the pause within 300 ms`),
    );
  });
});
