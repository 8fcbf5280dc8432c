import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CAN_PROTECT_FROM_OOM, CAN_RUN, FsLab, OOM_WARNING, SKIP_REASON, waitFor } from './fs-lab';

/**
 * Issue 13, items 1 and 3 (script side): a freeze that arrives after its own execution's thaw never
 * runs, and a freeze retried with the same ExecutionId never freezes twice. Then the smaller cases
 * of item 10: the watchdog's OOM score, a thaw by another execution, a clock set back.
 */

if (!CAN_RUN) console.warn(`execution-scope tests skipped: ${SKIP_REASON}`);

/**
 * Seen twice in CI on a loaded 2-core machine, never reproduced in 6 runs alone: a freeze of a
 * filesystem the lab had just made and mounted answered `nothing-to-freeze` (in two different tests
 * of this file). The cause is not found yet (suspects: the freeze's mount discovery racing another
 * test file's loop-device set-up). A retry keeps CI meaningful; each retry is printed by vitest, and
 * the symptom is tracked in the closing note of issue 13 rather than hidden.
 */
const FLAKY_MOUNT_DISCOVERY = { retry: 1 } as const;

const THAW = { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' };

async function withLab(fn: (lab: FsLab) => Promise<void>): Promise<void> {
  const lab = new FsLab();
  try {
    await fn(lab);
  } finally {
    await lab.cleanup();
  }
}

describe.skipIf(!CAN_RUN)('a freeze that arrives after its thaw never runs', FLAKY_MOUNT_DISCOVERY, () => {
  it.concurrent('a freeze after its own execution thawed is refused THAWED_BEFORE_FREEZE, freezing nothing', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      const log = path.join(lab.dir, 'pre.log');
      lab.addHook('pre-freeze', '10-a', `echo ran >> ${log}`);
      // The orchestrator gave up on the delayed freeze and thawed: a no-op, but it leaves its mark.
      const thaw = await lab.run('thaw', THAW);
      expect(thaw.json).toMatchObject({ status: 'thawed', thawed: [] });
      const late = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
      expect(late.code).toBe(1);
      expect(late.json.error.code).toBe('THAWED_BEFORE_FREEZE');
      expect(late.json.error.message).toContain('test-exec-1');
      expect(fs.existsSync(log)).toBe(false);
      expect(await lab.writable(vol.mountpoint, 3_000)).toBe(true);
      // Another execution is not affected.
      const other = await lab.run('freeze', lab.freezeParams([vol.volumeId], { ExecutionId: 'test-exec-2' }));
      expect(other.json.status).toBe('frozen');
      await lab.run('thaw', { ...THAW, ExecutionId: 'test-exec-2' });
    });
  });

  it.concurrent('a thaw arriving while the pre-freeze hooks run stops the freeze before any fsfreeze', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      const started = path.join(lab.dir, 'hook-started');
      lab.addHook('pre-freeze', '10-slow', `touch ${started}; sleep 2`);
      const freeze = lab.run('freeze', lab.freezeParams([vol.volumeId]));
      expect(await waitFor(() => fs.existsSync(started), 5_000)).toBe(true);
      const thaw = lab.run('thaw', THAW);
      const frozenOrNot = await freeze;
      expect(frozenOrNot.code).toBe(1);
      expect(frozenOrNot.json.error.code).toBe('THAWED_BEFORE_FREEZE');
      expect(frozenOrNot.json.watchdog).toBeNull();
      expect((await thaw).json.status).toBe('thawed');
      expect(await lab.writable(vol.mountpoint, 3_000)).toBe(true);
    });
  });

  it.concurrent('the marker is small, on the state tmpfs, and pruned after a day', async () => {
    await withLab(async (lab) => {
      await lab.run('thaw', THAW);
      const marker = path.join(lab.stateDir, 'executions', 'test-exec-1.thawed');
      expect(fs.statSync(marker).size).toBeLessThan(200);
      const old = new Date(Date.now() - 25 * 3600_000);
      fs.utimesSync(marker, old, old);
      await lab.run('thaw', { ...THAW, ExecutionId: 'test-exec-2' });
      expect(fs.existsSync(marker)).toBe(false);
      expect(fs.existsSync(path.join(lab.stateDir, 'executions', 'test-exec-2.thawed'))).toBe(true);
    });
  });

  it.concurrent('LATE names the not-after time and the instance clock, so skew shows', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      const notAfter = new Date(Date.now() - 5_000).toISOString();
      const late = await lab.run('freeze', lab.freezeParams([vol.volumeId], { NotAfter: notAfter }));
      expect(late.json.error.code).toBe('LATE');
      expect(late.json.error.message).toContain(notAfter);
      expect(late.json.error.message).toMatch(/instance clock \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/);
    });
  });
});

describe.skipIf(!CAN_RUN)('no duplicate freeze from orchestrator retries', FLAKY_MOUNT_DISCOVERY, () => {
  it.concurrent('a retried freeze while the first is frozen reports the original freeze as a duplicate', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      lab.addHook('pre-freeze', '10-a', 'true');
      const first = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
      expect(first.json.status).toBe('frozen');
      const retry = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
      expect(retry.code, retry.stderr).toBe(0);
      expect(retry.json).toMatchObject({
        status: 'frozen',
        duplicate: true,
        executionId: 'test-exec-1',
        frozenAt: first.json.frozenAt,
        frozenAtMs: first.json.frozenAtMs,
        freezeStartedAtMs: first.json.freezeStartedAtMs,
        targets: first.json.targets,
        watchdog: first.json.watchdog,
        hooksConfigured: true,
        hooks: [],
      });
      expect(first.json.duplicate).toBe(false);
      expect(lab.watchdogPids()).toEqual([first.json.watchdog.pid]);
      expect(await lab.writable(vol.mountpoint)).toBe(false);
      const thaw = await lab.run('thaw', THAW);
      expect(thaw.json.thawed).toEqual([vol.mountpoint]);
      // After the thaw, a third copy of the command is refused rather than freezing again.
      const third = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
      expect(third.json.error.code).toBe('THAWED_BEFORE_FREEZE');
    });
  });

  it.concurrent('a retried freeze while the first still runs waits for it, then reports it', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      const started = path.join(lab.dir, 'hook-started');
      lab.addHook('pre-freeze', '10-slow', `touch ${started}; sleep 1.5`);
      const first = lab.run('freeze', lab.freezeParams([vol.volumeId]));
      expect(await waitFor(() => fs.existsSync(started), 5_000)).toBe(true);
      const retry = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
      const original = await first;
      expect(original.json.status).toBe('frozen');
      expect(retry.json).toMatchObject({
        status: 'frozen',
        duplicate: true,
        frozenAtMs: original.json.frozenAtMs,
      });
      expect(lab.watchdogPids()).toEqual([original.json.watchdog.pid]);
      await lab.run('thaw', THAW);
    });
  });

  it.concurrent('a retried freeze waits only a few seconds for the first, then says BUSY_SAME_EXECUTION', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      const started = path.join(lab.dir, 'hook-started');
      lab.addHook('pre-freeze', '10-slow', `touch ${started}; sleep 9`);
      const first = lab.run('freeze', lab.freezeParams([vol.volumeId], { HookTimeoutSeconds: '15' }));
      expect(await waitFor(() => fs.existsSync(started), 5_000)).toBe(true);
      const retry = await lab.run('freeze', lab.freezeParams([vol.volumeId], { HookTimeoutSeconds: '15' }));
      expect(retry.code).toBe(1);
      expect(retry.json.error.code).toBe('BUSY_SAME_EXECUTION');
      expect(retry.json.error.message).toContain('test-exec-1');
      // It waited, but not for the whole hook.
      expect(retry.ms).toBeGreaterThanOrEqual(4_000);
      expect(fs.existsSync(path.join(lab.stateDir, 'active'))).toBe(true);
      expect((await first).json.status).toBe('frozen');
      await lab.run('thaw', THAW);
    });
  });
});

describe.skipIf(!CAN_RUN)('smaller cases', FLAKY_MOUNT_DISCOVERY, () => {
  it.concurrent('the watchdog is never chosen by the OOM killer (oom_score_adj -1000), or the freeze says it could not be', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
      const adj = fs.readFileSync(`/proc/${freeze.json.watchdog.pid}/oom_score_adj`, 'utf8').trim();
      const warned = freeze.json.warnings.some((w: string) => w.startsWith(OOM_WARNING));
      if (CAN_PROTECT_FROM_OOM) {
        expect(adj).toBe('-1000');
        expect(warned).toBe(false);
      } else {
        // This machine's root lacks CAP_SYS_RESOURCE: the freeze must say so, not stay silent.
        console.warn(
          'oom_score_adj -1000 not settable here (no CAP_SYS_RESOURCE): checking the warning instead',
        );
        expect(warned).toBe(true);
      }
      await lab.run('thaw', THAW);
    });
  });

  it.concurrent("a thaw by another execution says so, and this execution's own later thaw reports who thawed it", async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
      expect(freeze.json.status).toBe('frozen');
      const other = await lab.run('thaw', { ...THAW, ExecutionId: 'other-exec' });
      expect(other.json).toMatchObject({
        status: 'thawed',
        thawed: [vol.mountpoint],
        frozenExecutionId: 'test-exec-1',
        thawedBy: 'thaw:other-exec',
        thawedByOtherExecution: true,
      });
      // A later freeze and thaw by a third execution come in between.
      const third = await lab.run('freeze', lab.freezeParams([vol.volumeId], { ExecutionId: 'third-exec' }));
      expect(third.json.status).toBe('frozen');
      await lab.run('thaw', { ...THAW, ExecutionId: 'third-exec' });
      const own = await lab.run('thaw', THAW);
      expect(own.code, own.stderr).toBe(0);
      expect(own.json).toMatchObject({
        status: 'thawed',
        frozenExecutionId: 'test-exec-1',
        thawedBy: 'thaw:other-exec',
        thawedByOtherExecution: true,
        watchdogFired: false,
      });
      expect(own.json.freezeMs).toBeGreaterThan(0);
      expect(own.json.warnings.join('\n')).toContain('other-exec');
    });
  });

  it.concurrent('an instance clock set back during the freeze never gives a negative freezeMs', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
      expect(freeze.json.status).toBe('frozen');
      const before = Date.now();
      await new Promise((r) => setTimeout(r, 600));
      // The thaw runs with the instance clock an hour behind the one the freeze saw.
      const real = path.join(lab.dir, 'real-date');
      fs.copyFileSync('/usr/bin/date', real);
      fs.chmodSync(real, 0o755);
      const fake = path.join(lab.dir, 'date-an-hour-back');
      fs.writeFileSync(
        fake,
        `#!/bin/bash\nfor a in "$@"; do case $a in -d*|--date*) exec ${real} "$@";; esac; done\nexec ${real} -d "@$(( $(${real} +%s) - 3600 ))" "$@"\n`,
        { mode: 0o755 },
      );
      const thaw = await lab.run('thaw', THAW, {
        wrap: `unshare -m --propagation private sh -c 'mount --bind ${fake} /usr/bin/date && exec SCRIPT'`,
      });
      const elapsed = Date.now() - before;
      expect(thaw.code, thaw.stderr).toBe(0);
      expect(thaw.json.thawed).toEqual([vol.mountpoint]);
      expect(thaw.json.freezeMs).toBeGreaterThanOrEqual(600);
      expect(thaw.json.freezeMs).toBeLessThan(elapsed + 5_000);
    });
  });

  it.concurrent('an ExecutionId equal to the old here-document delimiter renders and runs like any other', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      const id = 'ECB_PARAMETER_END';
      const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId], { ExecutionId: id }));
      expect(freeze.code, freeze.stderr).toBe(0);
      expect(freeze.json).toMatchObject({ status: 'frozen', executionId: id });
      const thaw = await lab.run('thaw', { ...THAW, ExecutionId: id });
      expect(thaw.json).toMatchObject({ status: 'thawed', executionId: id, thawed: [vol.mountpoint] });
    });
  });
});
