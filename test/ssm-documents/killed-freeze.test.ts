import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CAN_RUN, FsLab, processGone, SKIP_REASON, waitFor } from './fs-lab';

/**
 * Issue 13, item 10: a freeze killed during a pre-freeze hook by the agent's timeout (SIGKILL of
 * the command's process group, nothing gentler). The hook dies with the command, and the next
 * freeze is not refused because of the state the killed one left.
 */

if (!CAN_RUN) console.warn(`killed freeze tests skipped: ${SKIP_REASON}`);

async function withLab(fn: (lab: FsLab) => Promise<void>): Promise<void> {
  const lab = new FsLab();
  try {
    await fn(lab);
  } finally {
    await lab.cleanup();
  }
}

/** A pre-freeze hook that outlives any agent timeout below 30 s, with a child of its own. */
function slowHook(lab: FsLab): { pids: () => number[]; log: string } {
  const pidFile = path.join(lab.dir, 'hook.pids');
  const log = path.join(lab.dir, 'post.log');
  lab.addHook('pre-freeze', '10-slow', `sleep 30 & echo "$$ $!" > ${pidFile}; wait`);
  lab.addHook('post-thaw', '10-slow', `echo "post aborted=$ECB_ABORTED" >> ${log}`);
  lab.onCleanup(() => {
    for (const pid of readPids(pidFile)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
  });
  return { pids: () => readPids(pidFile), log };
}

function readPids(file: string): number[] {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split(/\s+/).map(Number) : [];
}

describe.skipIf(!CAN_RUN)('a freeze killed during a pre-freeze hook', () => {
  it.concurrent('the hook dies with the command, and the next freeze is not refused', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      const hook = slowHook(lab);
      const killed = lab.run('freeze', lab.freezeParams([vol.volumeId], { HookTimeoutSeconds: '60' }), {
        timeoutMs: 6_000,
      });
      expect(await waitFor(() => hook.pids().length === 2, 8_000)).toBe(true);
      const result = await killed;
      expect(result.killedByTimeout).toBe(true);
      expect(result.json).toBeUndefined();
      // The hook and its child, in the process group `timeout` gave them, go with the command.
      expect(await waitFor(() => hook.pids().every(processGone), 3_000)).toBe(true);
      // Its post-thaw hook undid what it did, as for any freeze abandoned before the fsfreeze.
      const logged = () => fs.existsSync(hook.log) && fs.readFileSync(hook.log, 'utf8').endsWith('\n');
      expect(await waitFor(logged, 3_000)).toBe(true);
      expect(fs.readFileSync(hook.log, 'utf8')).toBe('post aborted=1\n');
      fs.rmSync(path.join(lab.configDir, 'pre-freeze.d', '10-slow'));
      const next = await lab.run('freeze', lab.freezeParams([vol.volumeId], { ExecutionId: 'test-exec-2' }));
      expect(next.code, next.stderr).toBe(0);
      expect(next.json.status).toBe('frozen');
      expect(next.json.previous).toMatchObject({ executionId: 'test-exec-1', outcome: 'aborted:KILLED' });
      const thaw = await lab.run('thaw', { ExecutionId: 'test-exec-2', HookTimeoutSeconds: '5' });
      expect(thaw.json.thawed).toEqual([vol.mountpoint]);
    });
  });

  it.concurrent('a watchdog killed while the hooks run: the freeze refuses WATCHDOG_FAILED before any fsfreeze', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      const started = path.join(lab.dir, 'hook-started');
      lab.addHook('pre-freeze', '10-slow', `touch ${started}; sleep 2`);
      const freeze = lab.run('freeze', lab.freezeParams([vol.volumeId]));
      expect(await waitFor(() => fs.existsSync(started), 8_000)).toBe(true);
      for (const pid of lab.watchdogPids()) process.kill(pid, 'SIGKILL');
      const result = await freeze;
      expect(result.code).toBe(1);
      expect(result.json.error.code).toBe('WATCHDOG_FAILED');
      expect(result.json.error.message).toContain('nothing was frozen');
      expect(await lab.writable(vol.mountpoint, 3_000)).toBe(true);
      expect(fs.existsSync(path.join(lab.stateDir, 'active'))).toBe(false);
    });
  });

  it.concurrent('when its watchdog was killed too, the next freeze recovers the abandoned state', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      const hook = slowHook(lab);
      const { child, result } = lab.start(
        'freeze',
        lab.freezeParams([vol.volumeId], { HookTimeoutSeconds: '60' }),
      );
      expect(await waitFor(() => hook.pids().length === 2, 8_000)).toBe(true);
      // Nothing of the freeze survives: its watchdog, then the command's process group.
      for (const pid of lab.watchdogPids()) process.kill(pid, 'SIGKILL');
      process.kill(-(child.pid as number), 'SIGKILL');
      await result;
      expect(fs.existsSync(path.join(lab.stateDir, 'active'))).toBe(true);
      fs.rmSync(path.join(lab.configDir, 'pre-freeze.d', '10-slow'));
      const preflight = await lab.run('preflight', { VolumeIds: vol.volumeId });
      expect(preflight.json.problems).toEqual([]);
      expect(preflight.json.warnings.join('\n')).toContain('the next freeze recovers it');
      const next = await lab.run('freeze', lab.freezeParams([vol.volumeId], { ExecutionId: 'test-exec-2' }));
      expect(next.code, next.stderr).toBe(0);
      expect(next.json.status).toBe('frozen');
      expect(next.json.warnings.join('\n')).toContain('abandoned freeze of execution test-exec-1');
      expect(next.json.previous).toMatchObject({
        executionId: 'test-exec-1',
        outcome: 'aborted:ABANDONED',
        thawedBy: 'recovery:test-exec-2',
      });
      // SIGKILL to the hook's process group was sent; the processes end a moment later.
      expect(await waitFor(() => hook.pids().every(processGone), 2_000)).toBe(true);
      expect(fs.readFileSync(hook.log, 'utf8')).toBe('post aborted=1\n');
      const thaw = await lab.run('thaw', { ExecutionId: 'test-exec-2', HookTimeoutSeconds: '5' });
      expect(thaw.json.thawed).toEqual([vol.mountpoint]);
    });
  });
});
