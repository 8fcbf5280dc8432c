import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CAN_RUN, FsLab, type FsType, HAS_XFS, SKIP_REASON } from './fs-lab';

/**
 * Issue 13, item 10: a hostile or unlucky host. Paths the freeze acts on and hooks it runs as root,
 * attacked the way the attack run did, on real loop-mounted filesystems, the document run as the
 * SSM agent runs it (fs-lab `start`).
 */

if (!CAN_RUN) console.warn(`hostile path tests skipped: ${SKIP_REASON}`);

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

describe.skipIf(!CAN_RUN)('never freeze / on odd mount point names', () => {
  it.concurrent.each(
    FS_TYPES,
  )('%s: data filesystems mounted at paths with a newline or a tab freeze nothing but the data filesystems', async (type) => {
    await withLab(async (lab) => {
      const normal = lab.addFilesystem(type);
      // "\n." once made the freeze run `fsfreeze -f -- .`, the working directory's filesystem.
      const newline = lab.addFilesystem('ext4', path.join(lab.dir, 'nl\n.'));
      // A tab made it freeze the parent directory's filesystem.
      const tab = lab.addFilesystem('ext4', path.join(lab.dir, 'tab\tx'));
      const guard = lab.guardedFsfreeze();
      const freeze = await lab.run(
        'freeze',
        lab.freezeParams([newline.volumeId, tab.volumeId, normal.volumeId]),
        { wrap: guard.wrap },
      );
      // Every fsfreeze call the freeze made was on one of the lab's own filesystems.
      expect(guard.calls().filter((c) => !c.lab)).toEqual([]);
      expect(freeze.code, freeze.stderr).toBe(0);
      expect(freeze.json.status).toBe('frozen');
      expect(freeze.json.targets.map((t: { mountpoint: string }) => t.mountpoint)).toEqual([
        normal.mountpoint,
      ]);
      expect(freeze.json.skipped).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            mountpoint: newline.mountpoint,
            reason: expect.stringContaining('control'),
          }),
          expect.objectContaining({ mountpoint: tab.mountpoint, reason: expect.stringContaining('control') }),
        ]),
      );
      expect(guard.calls().filter((c) => c.op === '-f')).toHaveLength(1);
      expect(await lab.writable(normal.mountpoint)).toBe(false);
      expect(await lab.writable(newline.mountpoint, 3_000)).toBe(true);
      expect(await lab.writable(tab.mountpoint, 3_000)).toBe(true);
      const thaw = await lab.run('thaw', THAW, { wrap: guard.wrap });
      expect(thaw.json.thawed).toEqual([normal.mountpoint]);
      expect(await lab.writable(normal.mountpoint, 3_000)).toBe(true);
    });
  });
});

describe.skipIf(!CAN_RUN)(
  'the protected-path check runs on the final path, right before each fsfreeze',
  () => {
    it('a data filesystem mounted over a protected path after discovery is refused, nothing frozen', async () => {
      await withLab(async (lab) => {
        const vol = lab.addFilesystem('ext4');
        // A pre-freeze hook mounts the data filesystem over the command's working directory, which,
        // like the SSM agent's own directories, must never be frozen.
        const mounted = path.join(lab.dir, 'bound-over-cwd');
        lab.addHook(
          'pre-freeze',
          '10-bind',
          `mount --bind ${vol.mountpoint} "$PWD" && echo "$PWD" > ${mounted}`,
        );
        lab.onCleanup(() => {
          if (fs.existsSync(mounted)) execFileSync('umount', ['-l', fs.readFileSync(mounted, 'utf8').trim()]);
        });
        const guard = lab.guardedFsfreeze();
        const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]), { wrap: guard.wrap });
        expect(fs.existsSync(mounted)).toBe(true);
        expect(freeze.code).toBe(1);
        expect(freeze.json.error.code).toBe('TARGET_REFUSED');
        expect(freeze.json.error.message).toContain(
          `refusing ${vol.mountpoint}: its filesystem holds a protected path`,
        );
        expect(guard.calls().filter((c) => c.op === '-f')).toEqual([]);
        expect(await lab.writable(vol.mountpoint, 3_000)).toBe(true);
      });
    });
  },
);

describe.skipIf(!CAN_RUN)('a hook swapped between the check and the run', () => {
  it('a hook reached through a directory a non-root user can write is refused before any hook runs', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      // uid 1000 must be able to reach its directory, as it would anywhere outside a lab.
      fs.chmodSync(lab.dir, 0o755);
      const open = path.join(lab.dir, 'open');
      fs.mkdirSync(path.join(open, 'sub'), { recursive: true, mode: 0o755 });
      fs.chownSync(open, 1000, 1000);
      const real = path.join(open, 'sub', 'hook');
      fs.writeFileSync(real, `#!/bin/sh\ntouch ${lab.dir}/ran-original\n`, { mode: 0o700 });
      const pwned = path.join(lab.dir, 'PWNED');
      // While an earlier hook runs, the owner of `open` swaps `sub` for a directory of its own.
      lab.addHook(
        'pre-freeze',
        '10-swap',
        `setpriv --reuid=1000 --regid=1000 --clear-groups sh -c 'mv ${open}/sub ${open}/sub.old && mkdir ${open}/sub && printf "#!/bin/sh\\ntouch ${pwned}\\n" > ${open}/sub/hook && chmod 755 ${open}/sub/hook'`,
      );
      fs.symlinkSync(real, path.join(lab.configDir, 'pre-freeze.d', '20-link'));
      const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
      expect(fs.existsSync(pwned)).toBe(false);
      expect(freeze.code).toBe(1);
      expect(freeze.json.error.code).toBe('HOOK_INSECURE');
      expect(freeze.json.error.message).toContain(`${open} is owned by uid 1000`);
      expect(freeze.json.hooks).toEqual([]);
      expect(await lab.writable(vol.mountpoint, 3_000)).toBe(true);
    });
  });

  it('a hook changed after loading is checked again at the moment it would run, and refused', async () => {
    await withLab(async (lab) => {
      const vol = lab.addFilesystem('ext4');
      const dir = path.join(lab.dir, 'hooks-real');
      fs.mkdirSync(dir, { mode: 0o755 });
      const real = path.join(dir, 'hook');
      fs.writeFileSync(real, `#!/bin/sh\ntouch ${lab.dir}/ran-original\n`, { mode: 0o700 });
      const pwned = path.join(lab.dir, 'PWNED');
      const log = path.join(lab.dir, 'post.log');
      // Everything is root's when the hooks are loaded; the first hook then hands the second to uid 1000.
      lab.addHook(
        'pre-freeze',
        '10-change',
        `printf '#!/bin/sh\\ntouch ${pwned}\\n' > ${real}.new && chown 1000:1000 ${real}.new && chmod 755 ${real}.new && mv ${real}.new ${real}`,
      );
      lab.addHook('post-thaw', '10-change', `echo "post 10 aborted=$ECB_ABORTED" >> ${log}`);
      fs.symlinkSync(real, path.join(lab.configDir, 'pre-freeze.d', '20-link'));
      const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
      expect(fs.existsSync(pwned)).toBe(false);
      expect(freeze.code).toBe(1);
      expect(freeze.json.error.code).toBe('HOOK_INSECURE');
      expect(freeze.json.error.message).toContain(`${real} is owned by uid 1000`);
      // The hook that ran, and its post-thaw hook undoing it; never the refused one.
      expect(freeze.json.hooks.map((h: { phase: string; name: string }) => `${h.phase} ${h.name}`)).toEqual([
        'pre-freeze 10-change',
        'post-thaw 10-change',
      ]);
      // Nothing was frozen, and the hook that ran has been undone by its post-thaw hook.
      expect(fs.readFileSync(log, 'utf8')).toBe('post 10 aborted=1\n');
      expect(await lab.writable(vol.mountpoint, 3_000)).toBe(true);
      expect(fs.existsSync(path.join(lab.stateDir, 'active'))).toBe(false);
    });
  });
});
