import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CAN_RUN, FsLab, type FsType, HAS_XFS, processGone, SKIP_REASON, waitFor } from './fs-lab';

/**
 * Issue 13, item 10: a thaw that reports success while frozen. The thaw and the watchdog find the
 * frozen filesystems themselves, reach them even when something is mounted over their mount point,
 * and the watchdog is stopped only once every target is confirmed thawed.
 */

if (!CAN_RUN) console.warn(`thaw confirmation tests skipped: ${SKIP_REASON}`);

const FS_TYPES: FsType[] = ['ext4', ...(HAS_XFS ? (['xfs'] as FsType[]) : [])];
const THAW = { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' };

async function withLab(fn: (lab: FsLab) => Promise<void>): Promise<void> {
  const lab = new FsLab();
  try {
    await fn(lab);
  } finally {
    await lab.cleanup();
  }
}

describe.skipIf(!CAN_RUN)('a thaw that reports success while frozen', () => {
  it.concurrent.each(
    FS_TYPES,
  )('%s: Thaw finds and thaws the freeze when the state directory was deleted while frozen', async (type) => {
    await withLab(async (lab) => {
      const { volumeId, mountpoint } = lab.addFilesystem(type);
      const freeze = await lab.run('freeze', lab.freezeParams([volumeId]));
      expect(freeze.json.status, freeze.stdout).toBe('frozen');
      fs.rmSync(lab.stateDir, { recursive: true, force: true });
      const thaw = await lab.run('thaw', THAW);
      expect(thaw.code, thaw.stderr).toBe(0);
      expect(thaw.json).toMatchObject({
        status: 'thawed',
        thawed: [mountpoint],
        failed: [],
        frozenExecutionId: 'test-exec-1',
        thawedBy: 'thaw:test-exec-1',
      });
      expect(thaw.json.warnings.join('\n')).toContain('state directory');
      expect(await lab.writable(mountpoint, 3_000)).toBe(true);
      expect(processGone(freeze.json.watchdog.pid)).toBe(true);
    });
  });

  it.concurrent.each(
    FS_TYPES,
  )('%s: Thaw reaches a filesystem hidden under a tmpfs mounted over its mount point', async (type) => {
    await withLab(async (lab) => {
      const { volumeId, mountpoint } = lab.addFilesystem(type);
      const freeze = await lab.run('freeze', lab.freezeParams([volumeId]));
      expect(freeze.json.status, freeze.stdout).toBe('frozen');
      const unmount = lab.mountTmpfsOver(mountpoint);
      const thaw = await lab.run('thaw', THAW);
      expect(thaw.code, thaw.stderr).toBe(0);
      expect(thaw.json).toMatchObject({ status: 'thawed', thawed: [mountpoint], notFrozen: [], failed: [] });
      expect(processGone(freeze.json.watchdog.pid)).toBe(true);
      unmount();
      expect(await lab.writable(mountpoint, 3_000)).toBe(true);
    });
  });

  it.concurrent('the watchdog thaws a filesystem hidden under a tmpfs mounted over its mount point', async () => {
    await withLab(async (lab) => {
      const { volumeId, mountpoint } = lab.addFilesystem('ext4');
      const freeze = await lab.run('freeze', lab.freezeParams([volumeId], { WatchdogSeconds: '6' }));
      expect(freeze.json.status, freeze.stdout).toBe('frozen');
      const unmount = lab.mountTmpfsOver(mountpoint);
      const deadline = Date.parse(freeze.json.watchdog.deadline);
      expect(await waitFor(() => processGone(freeze.json.watchdog.pid), deadline - Date.now() + 5_000)).toBe(
        true,
      );
      unmount();
      expect(await lab.writable(mountpoint, 3_000)).toBe(true);
      const thaw = await lab.run('thaw', THAW);
      expect(thaw.json).toMatchObject({ watchdogFired: true, thawedBy: 'watchdog', failed: [] });
    });
  });

  it.concurrent('a target no thaw can reach is an error naming why, never success; the next thaw finishes it', async () => {
    await withLab(async (lab) => {
      const { volumeId, mountpoint } = lab.addFilesystem('ext4');
      const freeze = await lab.run('freeze', lab.freezeParams([volumeId]));
      expect(freeze.json.status, freeze.stdout).toBe('frozen');
      // The watchdog's handle on the filesystem is what reaches it under a mount: without it, nothing can.
      process.kill(freeze.json.watchdog.pid, 'SIGKILL');
      expect(await waitFor(() => processGone(freeze.json.watchdog.pid), 3_000)).toBe(true);
      const unmount = lab.mountTmpfsOver(mountpoint);
      const thaw = await lab.run('thaw', THAW);
      expect(thaw.code, thaw.stdout + thaw.stderr).toBe(1);
      expect(thaw.json.status).toBe('error');
      expect(thaw.json.error.code).toBe('THAW_FAILED');
      expect(thaw.json.failed).toEqual([mountpoint]);
      expect(thaw.json.error.message).toContain('mounted over');
      unmount();
      const again = await lab.run('thaw', THAW);
      expect(again.code, again.stderr).toBe(0);
      expect(again.json).toMatchObject({ status: 'thawed', thawed: [mountpoint], failed: [] });
      expect(await lab.writable(mountpoint, 3_000)).toBe(true);
    });
  });
});
