import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, sleep } from '../../lab/exec';
import {
  cleanupAll,
  cleanupRunDir,
  createPool,
  createRunDir,
  createStateTmpfs,
  labFilesystem,
} from '../../lab/host';
import { LabVolume } from '../../lab/volume';
import { capabilities, leftovers } from './lab-helpers';

const REPO = path.join(__dirname, '..', '..');

/** Whether a cp writing `copy` is running. */
async function copying(copy: string): Promise<boolean> {
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const args = (await fs.readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (args[0] === 'cp' && args.includes(copy)) return true;
  }
  return false;
}

/** A pid that is certainly not running: a child that has exited. */
async function deadPid(): Promise<number> {
  const c = spawn('true');
  await new Promise((r) => c.on('exit', r));
  return c.pid as number;
}

describe.skipIf(!capabilities.real)('npm run demo -- --cleanup', () => {
  it('undoes a run killed while frozen: thaws, unmounts, detaches, removes; twice is harmless', async () => {
    const dir = await createRunDir();
    await createStateTmpfs(dir);
    const pool = await createPool(dir, 2);
    const vol = new LabVolume({
      pool,
      poolDir: path.join(pool.mountpoint, 'i-1'),
      mountpoint: path.join(dir, 'instances', 'i-1', 'mnt', 'data0'),
      fstype: labFilesystem(capabilities, 'xfs'),
    });
    await vol.create();
    expect((await run('fsfreeze', ['-f', vol.mountpoint])).code).toBe(0);
    // As if the run had been killed with SIGKILL: its owner is gone.
    await fs.writeFile(path.join(dir, 'owner.pid'), `${await deadPid()}\n`);

    const log = await cleanupAll();
    expect(log).toContain(`thawed ${vol.mountpoint}`);
    expect(log).toContain(`removed ${dir}`);
    expect(await leftovers(dir)).toEqual([]);
    expect((await cleanupAll()).filter((l) => l.includes(dir))).toEqual([]);
  }, 60_000);

  it('undoes a run killed mid-snapshot on an ext4 pool: the frozen pool is thawed first', async () => {
    const dir = await createRunDir();
    const pool = await createPool(dir, 2, 'ext4');
    const vol = new LabVolume({
      pool,
      poolDir: path.join(pool.mountpoint, 'i-1'),
      mountpoint: path.join(dir, 'instances', 'i-1', 'mnt', 'data0'),
      fstype: 'ext4',
    });
    await vol.create();
    // As a run leaves it if it dies while LabPool.snapshot copies a frozen volume: both frozen.
    expect((await run('fsfreeze', ['-f', vol.mountpoint])).code).toBe(0);
    expect((await run('fsfreeze', ['-f', pool.mountpoint])).code).toBe(0);
    await fs.writeFile(path.join(dir, 'owner.pid'), `${await deadPid()}\n`);

    const log = await cleanupAll();
    expect(log.filter((l) => l.startsWith('thawed'))).toEqual([
      `thawed ${pool.mountpoint}`,
      `thawed ${vol.mountpoint}`,
    ]);
    expect(log).toContain(`removed ${dir}`);
    expect(await leftovers(dir)).toEqual([]);
  }, 60_000);

  it('an ext4 pool frozen for a snapshot thaws by itself when the snapshotting process is killed', async () => {
    // The snapshot's process: makes a pool and a volume with enough data that the copy takes a
    // moment, says where they are, and snapshots.
    const script = `
      const { createPool, createRunDir } = require('./lab/host');
      const { LabVolume } = require('./lab/volume');
      const { mustRun } = require('./lab/exec');
      (async () => {
        const dir = await createRunDir();
        const pool = await createPool(dir, 2, 'ext4');
        const vol = new LabVolume({ pool, poolDir: pool.mountpoint + '/i-1', mountpoint: dir + '/mnt', fstype: 'ext4' });
        await vol.create();
        await mustRun('dd', ['if=/dev/urandom', 'of=' + vol.mountpoint + '/data', 'bs=1M', 'count=300', 'conv=fsync']);
        const copy = vol.copyPath('killed');
        console.log(JSON.stringify({ dir, pool: pool.mountpoint, copy }));
        await vol.snapshot(copy);
      })();`;
    const child = spawn(path.join(REPO, 'node_modules', '.bin', 'tsx'), ['-e', script], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise((r) => child.on('exit', r));
    let where: { dir: string; pool: string; copy: string } | undefined;
    try {
      for (let i = 0; i < 1200 && !where; i++) {
        if (out.includes('\n')) where = JSON.parse(out);
        else await sleep(50);
      }
      expect(where, out).toBeDefined();
      const { dir, pool, copy } = where as NonNullable<typeof where>;
      // cp creates the copy only once the pool is frozen: kill the snapshotting process then.
      for (let i = 0; i < 200 && !existsSync(copy); i++) await sleep(10);
      expect(existsSync(copy)).toBe(true);
      child.kill('SIGKILL');
      await exited;
      // The copy was under way when its caller died (else this would test an ordinary snapshot).
      expect(await copying(copy)).toBe(true);
      // What the pool's users experience: a write (from a background process) completes once the
      // copy is done, without anyone else thawing it.
      const writer = spawn('sh', ['-c', 'printf x > "$1" && sync "$1"', 'writer', path.join(pool, 'after')]);
      const wrote = await Promise.race([
        new Promise((r) => writer.on('exit', (code) => r(code === 0))),
        sleep(30_000).then(() => false),
      ]);
      expect(wrote).toBe(true);
      expect((await fs.stat(copy)).size).toBeGreaterThan(0);
      expect(await cleanupRunDir(dir)).not.toContain(`thawed ${pool}`);
      expect(await leftovers(dir)).toEqual([]);
    } finally {
      child.kill('SIGKILL');
      if (where) await cleanupRunDir(where.dir).catch(() => undefined);
    }
  }, 120_000);

  it('stops what a killed run left holding its files: a server logging into the run dir', async () => {
    const dir = await createRunDir();
    const log = await fs.open(path.join(dir, 'server.log'), 'w');
    // Like a database server started by the run: its own session, no pid file of ours, its log open.
    const server = spawn('sleep', ['300'], { detached: true, stdio: ['ignore', log.fd, log.fd] });
    await log.close();
    const gone = new Promise((r) => server.on('exit', r));
    await fs.writeFile(path.join(dir, 'owner.pid'), `${await deadPid()}\n`);
    expect(await cleanupAll()).toContain(`removed ${dir}`);
    await gone;
    expect(server.signalCode).toBe('SIGKILL');
  }, 60_000);

  it('leaves the run of a live process alone', async () => {
    const dir = await createRunDir();
    const owner = spawn('sleep', ['30']);
    try {
      await fs.writeFile(path.join(dir, 'owner.pid'), `${owner.pid}\n`);
      expect(await cleanupAll()).toContain(`left ${dir}: its run (pid ${owner.pid}) is still alive`);
      expect((await fs.stat(dir)).isDirectory()).toBe(true);
    } finally {
      owner.kill('SIGKILL');
      await cleanupRunDir(dir);
    }
  }, 60_000);

  it('refuses to clean a directory outside the lab root', async () => {
    await expect(cleanupRunDir('/etc')).rejects.toThrow(/refusing to clean \/etc: not under/);
  });
});
