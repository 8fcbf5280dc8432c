import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../lab/exec';
import { type DemoResult, demoTable, runDemo } from '../../lab/demo';
import { DEFAULT_CONFIG } from '../../lib/config';
import { capabilities, leftovers } from './lab-helpers';

const REPO = path.join(__dirname, '..', '..');

describe.skipIf(!capabilities.real)('npm run demo on real loop-mounted filesystems', () => {
  // One run of the three kinds of instance serves the first two tests: a demo run is the expensive part.
  const lines: string[] = [];
  let result: DemoResult;
  let demo: Promise<DemoResult> | undefined;
  beforeAll(async () => {
    demo = runDemo({ instances: 3, startLatencyMs: 500, capabilities, out: (l) => lines.push(l) });
    result = await demo;
    console.log(demoTable(result.rows, result.simulated));
  }, 180_000);
  // Should beforeAll time out, the run still ends (and cleans up) before the worker goes away.
  afterAll(async () => {
    await demo?.catch(() => undefined);
  }, 180_000);

  it('backs up the instances through discovery and the synthesized workflow, labels them honestly, and leaves nothing behind', async () => {
    expect(result.simulated).toBe(false);
    expect(result.rows.map((r) => [r.name, r.consistency, r.outcome])).toEqual([
      ['app-1', 'application', 'backed-up'],
      ['app-2', 'filesystem', 'backed-up'],
      ['app-3', 'crash', 'backed-up'],
    ]);
    for (const r of result.rows.slice(0, 2)) {
      expect(r.freezeMs).toBeGreaterThan(0);
      expect(r.freezeMs).toBeLessThan(DEFAULT_CONFIG.freezeBudgetSeconds * 1000);
      // Frozen copies need no journal replay on either filesystem type.
      expect(r.copiesClean).toBe(true);
    }
    // With hooks the application's invariant holds in the copy.
    expect(result.rows[0].ledgerHolds).toBe(true);
    // The restore test (the real Verify Restore document on the copies) agrees with the copy check.
    // (Two filesystems: ext4 and xfs where xfsprogs is installed, else both ext4.)
    expect(result.rows[0].verified).toMatch(
      /^verified \((ext4|xfs) clean, (ext4|xfs) clean, 50-ledger ok\)$/,
    );
    for (const r of result.rows) expect(r.verified.startsWith('verified')).toBe(r.ledgerHolds === true);
    // Live progress went through the real states, and snapshots started while frozen.
    expect(lines.some((l) => /app-1: Freeze Filesystems/.test(l))).toBe(true);
    expect(lines.some((l) => /app-1: snapshot snap-[0-9a-f]+ of vol-/.test(l))).toBe(true);
    expect(lines.some((l) => /app-1: Check Thaw Result/.test(l))).toBe(true);
    // The run summary reaches SNS; of the per-instance alarms, only the broken hook's.
    expect(result.notifications.map((n) => n.Subject)).toEqual([
      expect.stringContaining(result.rows[2].instanceId),
      expect.stringMatching(/Run .*: 2\/3 consistent, 0 failed, 1 fell back/),
    ]);
    expect(await leftovers(result.runDir)).toEqual([]);
  });

  it('a broken hook does not degrade silently: crash-consistent, and a notification says why', () => {
    const broken = result.rows[2];
    expect(broken).toMatchObject({ name: 'app-3', consistency: 'crash', freezeMs: 0 });
    expect(broken.reason).toMatch(/20-broken/);
    const alarm = result.notifications.find((n) => n.Subject?.includes(broken.instanceId));
    expect(alarm?.Message).toMatch(/crash-consistent/);
    expect(alarm?.Message).toMatch(/20-broken/);
  });

  let interrupted: ChildProcess | undefined;
  afterAll(async () => {
    // Should the test time out before its Ctrl-C, the demo still gets one, and cleans up.
    if (interrupted && interrupted.exitCode === null && interrupted.signalCode === null) {
      const exited = new Promise((r) => interrupted?.on('exit', r));
      process.kill(-(interrupted.pid as number), 'SIGINT');
      await exited;
    }
  }, 120_000);

  it('Ctrl-C mid-run thaws, stops the workloads and removes everything', async () => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(REPO, 'scripts', 'demo.ts'),
        '--instances',
        '1',
        '--start-latency-ms',
        '5000',
      ],
      {
        cwd: REPO,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    interrupted = child;
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    // Interrupt while the instance is frozen and its backup job starts (Start Backup Job waits for the snapshots).
    for (let i = 0; i < 600 && !/Start Backup Job/.test(out); i++) await sleep(100);
    expect(out).toMatch(/Start Backup Job/);
    const runDir = /(\/\S+\/run-\d+-[a-z0-9]+)\//.exec(out)?.[1];
    expect(runDir).toBeDefined();
    process.kill(-(child.pid as number), 'SIGINT');
    expect(await exited).toBe(130);
    expect(out).toMatch(/SIGINT: thawing, stopping workloads/);
    expect(await leftovers(runDir as string)).toEqual([]);
  }, 180_000);
});
