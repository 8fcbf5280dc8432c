import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../lab/exec';
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
