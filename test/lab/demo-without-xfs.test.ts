/**
 * A bare machine: root, loop devices and the ext4 tools, but no xfsprogs (hidden from PATH here).
 * The demo must still freeze real filesystems, with ext4 for the volumes that prefer xfs, and say
 * in one line what to install for the rest.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectCapabilities } from '../../lab/host';
import { postgresAvailable } from '../../lab/postgres';
import { capabilities, leftovers } from './lab-helpers';

const REPO = path.join(__dirname, '..', '..');
const XFS_TOOLS = /^(mkfs\.xfs|xfs_.*)$/;

/** A directory of links to every program on PATH except the xfs tools: PATH on a machine without xfsprogs. */
async function pathWithoutXfs(dir: string): Promise<string> {
  for (const d of (process.env.PATH ?? '').split(':')) {
    const entries = await fs.readdir(d).catch(() => [] as string[]);
    for (const name of entries) {
      if (XFS_TOOLS.test(name)) continue;
      // The first directory on PATH that has a program wins, as in a shell.
      await fs.symlink(path.join(d, name), path.join(dir, name)).catch(() => undefined);
    }
  }
  return dir;
}

let bin = '';
let child: ChildProcess | undefined;
beforeAll(async () => {
  bin = await pathWithoutXfs(await fs.mkdtemp(path.join(os.tmpdir(), 'ecb-no-xfs-')));
});
afterAll(async () => {
  // A demo still running (the test timed out) is interrupted, so it thaws and removes its run.
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child?.on('exit', r));
    child.kill('SIGINT');
    await exited;
  }
  if (bin) await fs.rm(bin, { recursive: true, force: true });
}, 120_000);

describe.skipIf(!capabilities.real)('npm run demo on a machine without xfsprogs', () => {
  it('detects ext4 only, and names the package for xfs', async () => {
    const saved = process.env.PATH;
    process.env.PATH = bin;
    try {
      const caps = await detectCapabilities();
      expect(caps).toMatchObject({ real: true, filesystems: ['ext4'] });
      expect(caps.substitutes).toBe(
        'xfs volumes are ext4 here (no mkfs.xfs, xfs_repair, xfs_logprint): apt-get install xfsprogs',
      );
    } finally {
      process.env.PATH = saved;
    }
  });

  it('freezes real ext4 filesystems, says once what to install, and leaves nothing behind', async () => {
    const demo = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(REPO, 'scripts', 'demo.ts'), '--start-latency-ms', '500'],
      { cwd: REPO, env: { ...process.env, PATH: bin }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = demo;
    let out = '';
    demo.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    demo.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const code = await new Promise<number | null>((r) => demo.on('exit', (c) => r(c)));
    expect(code, out).toBe(0);
    const lines = out.split('\n');
    // One line, first, naming the package; nothing says "simulated".
    expect(lines[0]).toMatch(/^xfs volumes are ext4 here .*: apt-get install xfsprogs$/);
    expect(lines.filter((l) => l.includes('xfsprogs'))).toHaveLength(1);
    expect(out).not.toMatch(/simulat/i);
    // Every volume is ext4, on a real loop device: the instances' volumes that prefer xfs too.
    const created = lines.filter((l) => / created app-\d/.test(l));
    // One of each kind: the fourth, PostgreSQL chosen by its Apps tag, where PostgreSQL 15 is installed
    // (its pgbench set-up and the start of PostgreSQL on its copy are why the limit is 300 s).
    expect(created).toHaveLength(postgresAvailable() ? 4 : 3);
    for (const l of created) expect(l).not.toMatch(/\bxfs vol-/);
    expect(created[0]).toMatch(/ext4 vol-\S+ at .*data0, ext4 vol-\S+ at .*data1/);
    // The real freeze and thaw documents ran: their reports moved the workflow through the thaw, and
    // the frozen time in the table is the thaw script's own measurement.
    for (const state of ['Freeze Filesystems', 'Start Backup Job', 'Check Thaw Result'])
      expect(out).toMatch(new RegExp(`app-1: ${state}`));
    const row = (name: string) =>
      lines
        .find((l) => l.startsWith(`| ${name} `))
        ?.split('|')
        .map((c) => c.trim());
    // Frozen copies are clean, checked by e2fsck on the copy; the unfrozen one needs its journal
    // replayed, but is never torn: the copy is one point in time.
    expect(row('app-1')?.slice(2, 6)).toEqual([
      'application',
      expect.stringMatching(/^[1-9]\d*$/),
      'backed-up',
      'ext4:clean/ledger ok ext4:clean',
    ]);
    // Without its hook the application is not told: the copy ends wherever its last 4 KiB block
    // ended, which is inside a transfer except when a block boundary falls right after a credit
    // record (one byte position in a transfer of about 30), so the ledger is usually, not always, torn.
    // The filesystem itself is clean either way, and the label says filesystem, not application.
    expect(row('app-2')?.slice(2, 6)).toEqual([
      'filesystem',
      expect.stringMatching(/^[1-9]\d*$/),
      'backed-up',
      expect.stringMatching(/^ext4:clean\/ledger (torn|ok)$/),
    ]);
    expect(row('app-3')?.[2]).toBe('crash');
    expect(row('app-3')?.[5]).toMatch(/^ext4:(journal replay|clean)\/ledger ok$/);
    const runDir = /(\/\S+\/run-\d+-[a-z0-9]+)\//.exec(out)?.[1];
    expect(runDir).toBeDefined();
    expect(await leftovers(runDir as string)).toEqual([]);
  }, 300_000);
});
