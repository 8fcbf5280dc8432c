import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CAN_RUN, FsLab, SKIP_REASON } from './fs-lab';

/**
 * Issue 13, item 10: what hooks print and write. The state directory lives on a tmpfs every
 * service on the host shares (/run; the lab's is 16 MiB), and the orchestrator reads only the
 * first 24,000 characters of the command's stdout.
 */

if (!CAN_RUN) console.warn(`hook output tests skipped: ${SKIP_REASON}`);

const THAW = { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' };
const MIB = 1024 * 1024;
/** What SSM keeps of stdout (StandardOutputContent), all the orchestrator reads. */
const SSM_STDOUT_CHARS = 24_000;

async function withLab(fn: (lab: FsLab) => Promise<void>): Promise<void> {
  const lab = new FsLab();
  try {
    await fn(lab);
  } finally {
    await lab.cleanup();
  }
}

describe.skipIf(!CAN_RUN)('a hook that fills /run', () => {
  it.concurrent('a hook printing more than the state tmpfs holds: the freeze goes on, and /run keeps only a capped tail', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      // 24 MiB of output into a 16 MiB tmpfs.
      lab.addHook(
        'pre-freeze',
        '10-loud',
        `head -c ${24 * MIB} /dev/zero | tr '\\0' x; echo; echo last-line`,
      );
      const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
      expect(freeze.code, freeze.stderr.slice(-2_000)).toBe(0);
      expect(freeze.json.status).toBe('frozen');
      expect(freeze.json.hooks[0]).toMatchObject({ name: '10-loud', exitCode: 0 });
      expect(freeze.json.hooks[0].output).toMatch(/last-line$/);
      expect(freeze.json.hooks[0].output).toContain('[truncated:');
      expect(lab.runUsedBytes()).toBeLessThan(MIB);
      expect(await lab.writable(vol.mountpoint)).toBe(false);
      const thaw = await lab.run('thaw', THAW);
      expect(thaw.json.thawed).toEqual([vol.mountpoint]);
      expect(lab.runUsedBytes()).toBeLessThan(MIB);
    });
  });

  it.concurrent('a hook that fills the state tmpfs: STATE_DIR_FULL names the cause, nothing is frozen, nothing of ours is left', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      const log = path.join(lab.dir, 'post.log');
      lab.addHook(
        'pre-freeze',
        '10-fill',
        `head -c ${32 * MIB} /dev/zero > "$ECB_HOOK_STATE_DIR/fill" 2>/dev/null; exit 0`,
      );
      lab.addHook('post-thaw', '10-fill', `echo "post aborted=$ECB_ABORTED" >> ${log}`);
      const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
      expect(freeze.code).toBe(1);
      expect(freeze.json.error.code).toBe('STATE_DIR_FULL');
      expect(freeze.json.error.message).toContain(lab.stateDir);
      expect(freeze.json.error.message).toContain('hook-state/10-fill');
      expect(await lab.writable(vol.mountpoint, 3_000)).toBe(true);
      expect(fs.existsSync(path.join(lab.stateDir, 'active'))).toBe(false);
      expect(lab.watchdogPids()).toEqual([]);
      expect(fs.readFileSync(log, 'utf8')).toBe('post aborted=1\n');
      // What is left on the tmpfs is the hook's own file, and the next freeze refuses at once, saying so.
      const fill = fs.statSync(path.join(lab.stateDir, 'hook-state', '10-fill', 'fill')).size;
      expect(lab.runUsedBytes() - fill).toBeLessThan(MIB);
      const again = await lab.run('freeze', lab.freezeParams([vol.volumeId], { ExecutionId: 'test-exec-2' }));
      expect(again.json.error.code).toBe('STATE_DIR_FULL');
      expect(again.json.hooks).toEqual([]);
      const preflight = await lab.run('preflight', { VolumeIds: vol.volumeId });
      expect(preflight.json.problems.map((p: { code: string }) => p.code)).toContain('STATE_DIR_FULL');
      fs.rmSync(path.join(lab.stateDir, 'hook-state', '10-fill', 'fill'));
      fs.rmSync(path.join(lab.configDir, 'pre-freeze.d', '10-fill'));
      const third = await lab.run('freeze', lab.freezeParams([vol.volumeId], { ExecutionId: 'test-exec-3' }));
      expect(third.json.status).toBe('frozen');
      await lab.run('thaw', { ...THAW, ExecutionId: 'test-exec-3' });
    });
  });
});

describe.skipIf(!CAN_RUN)('output that becomes too long when escaped', () => {
  it.concurrent.each([
    ['ESC', '\\033'],
    ['TAB', '\\t'],
  ])('six hooks printing 2 KiB of %s each: the one JSON result parses within the first 24,000 characters', async (_name, octal) => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      for (let i = 0; i < 6; i++) {
        lab.addHook('pre-freeze', `${10 + i}-noisy`, `head -c 2048 /dev/zero | tr '\\0' '${octal}'`);
      }
      const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
      expect(freeze.code, freeze.stderr).toBe(0);
      expect(freeze.stdout.length).toBeLessThan(SSM_STDOUT_CHARS);
      const json = JSON.parse(freeze.stdout.slice(0, SSM_STDOUT_CHARS));
      expect(json.status).toBe('frozen');
      expect(json.truncated).toBe(true);
      expect(json.hooks).toHaveLength(6);
      for (const hook of json.hooks) {
        expect(hook.exitCode).toBe(0);
        expect(hook.output).toContain('[truncated:');
      }
      expect(json.targets).toEqual([expect.objectContaining({ mountpoint: vol.mountpoint })]);
      expect(json.watchdog.pid).toBeGreaterThan(0);
      await lab.run('thaw', THAW);
    });
  });

  it.concurrent('six post-thaw hooks printing 2 KiB of ESC each: the thaw result parses within 24,000 characters too', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      for (let i = 0; i < 6; i++) {
        lab.addHook('post-thaw', `${10 + i}-noisy`, `head -c 2048 /dev/zero | tr '\\0' '\\033'`);
      }
      expect((await lab.run('freeze', lab.freezeParams([vol.volumeId]))).json.status).toBe('frozen');
      const thaw = await lab.run('thaw', THAW);
      expect(thaw.code, thaw.stderr).toBe(0);
      expect(thaw.stdout.length).toBeLessThan(SSM_STDOUT_CHARS);
      const json = JSON.parse(thaw.stdout.slice(0, SSM_STDOUT_CHARS));
      expect(json).toMatchObject({ status: 'thawed', thawed: [vol.mountpoint], truncated: true });
      expect(json.hooks).toHaveLength(6);
    });
  });

  it.concurrent('long warnings and hook outputs together still leave every field in place', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      // Sixteen Exclude paths that do not exist: sixteen warnings of some 300 characters.
      const exclude = Array.from({ length: 16 }, (_, i) => `/nonexistent-${i}-${'e'.repeat(240)}`).join(',');
      for (let i = 0; i < 6; i++) {
        lab.addHook('pre-freeze', `${10 + i}-noisy`, `head -c 4096 /dev/zero | tr '\\0' '\\001'`);
      }
      const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId], { Exclude: exclude }));
      expect(freeze.code, freeze.stderr).toBe(0);
      expect(freeze.stdout.length).toBeLessThan(SSM_STDOUT_CHARS);
      const json = JSON.parse(freeze.stdout);
      expect(json.status).toBe('frozen');
      expect(json.warnings.length).toBeGreaterThan(0);
      expect(json.hooks).toHaveLength(6);
      await lab.run('thaw', THAW);
    });
  });
});
