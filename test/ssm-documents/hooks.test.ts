import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CAN_RUN, FsLab, SKIP_REASON, waitFor } from './fs-lab';

if (!CAN_RUN) console.warn(`hook tests skipped: ${SKIP_REASON}`);

const THAW = { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' };

/** The lock-holding pattern of ssm-documents/README.md, with flock(1) standing in for a database lock. */
function lockHolderHooks(lab: FsLab, lockFile: string): void {
  lab.addHook(
    'pre-freeze',
    '10-lock',
    `set -euo pipefail
state=\${ECB_HOOK_STATE_DIR:?}
rm -f "$state/held" "$state/holder.pid"
# Own session: neither the hook's time limit nor the end of the freeze command ends the holder.
# Bounded: it lets go by itself after ECB_MAX_HOLD_SECONDS even if no thaw and no watchdog come.
setsid flock ${lockFile} bash -c 'echo $$ > "$1/holder.pid"; touch "$1/held"; exec sleep "$2"' holder "$state" "\${ECB_MAX_HOLD_SECONDS:?}" </dev/null >/dev/null 2>&1 &
for _ in $(seq 100); do [ -e "$state/held" ] && break; sleep 0.05; done
[ -e "$state/held" ] || { echo "lock not acquired"; exit 1; }
echo "lock held by $(cat "$state/holder.pid") for at most \${ECB_MAX_HOLD_SECONDS}s"`,
  );
  lab.addHook(
    'post-thaw',
    '10-lock',
    `state=\${ECB_HOOK_STATE_DIR:?}
pid=$(cat "$state/holder.pid" 2>/dev/null) || { echo "no holder recorded"; exit 0; }
rm -f "$state/holder.pid" "$state/held"
if grep -q sleep "/proc/$pid/cmdline" 2>/dev/null; then
  kill "$pid"
  echo "lock released ($ECB_TRIGGER)"
else
  echo "the holder died before the thaw: the lock was not held until the snapshot" >&2
  exit 1
fi`,
  );
}

/** Whether nobody holds the lock (flock -n succeeds at once). */
const lockFree = (lockFile: string): boolean => spawnSync('flock', ['-n', lockFile, 'true']).status === 0;

describe.skipIf(!CAN_RUN)('application hooks', () => {
  let lab: FsLab;
  let vol: { volumeId: string; mountpoint: string };
  beforeEach(() => {
    lab = new FsLab();
    vol = lab.addFilesystem('ext4');
  });
  afterEach(async () => {
    await lab.cleanup();
  });

  it('runs pre-freeze hooks in lexical order before the freeze and post-thaw hooks after the thaw', async () => {
    const log = path.join(lab.dir, 'order.log');
    lab.addHook('pre-freeze', '20-second', `echo "pre 20 $ECB_PHASE $ECB_EXECUTION_ID" >> ${log}`);
    lab.addHook('pre-freeze', '10-first', `echo "pre 10" >> ${log}; echo "targets: $ECB_TARGETS"`);
    // The freeze ignores SIGPIPE for itself; a hook must get the default back (bit 13 of SigIgn).
    lab.addHook(
      'pre-freeze',
      '11-sigpipe',
      "mask=$(awk '/^SigIgn/ {print $2}' /proc/$$/status); echo $(( (16#$mask >> 12) & 1 ))",
    );
    lab.addHook('pre-freeze', '15-ignored.disabled', 'exit 1');
    lab.addHook('post-thaw', '10-first', `echo "post 10 $ECB_PHASE" >> ${log}`);
    const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
    expect(freeze.code, freeze.stderr).toBe(0);
    expect(freeze.json.hooksConfigured).toBe(true);
    expect(freeze.json.hooks.map((h: { name: string }) => h.name)).toEqual([
      '10-first',
      '11-sigpipe',
      '20-second',
    ]);
    expect(freeze.json.hooks[1].output).toBe('0');
    expect(freeze.json.hooks[0]).toMatchObject({ phase: 'pre-freeze', exitCode: 0, timedOut: false });
    expect(freeze.json.hooks[0].output).toBe(`targets: ${vol.mountpoint}`);
    expect(fs.readFileSync(log, 'utf8')).toBe('pre 10\npre 20 pre-freeze test-exec-1\n');
    const thaw = await lab.run('thaw', THAW);
    expect(thaw.json.hooks).toEqual([
      expect.objectContaining({ phase: 'post-thaw', name: '10-first', exitCode: 0 }),
    ]);
    expect(thaw.json.postThawHooksOk).toBe(true);
    expect(fs.readFileSync(log, 'utf8')).toBe('pre 10\npre 20 pre-freeze test-exec-1\npost 10 post-thaw\n');
  });

  it('keeps stdout one valid JSON object under 24,000 characters whatever hooks print', async () => {
    // Quotes, backslashes, control characters, NUL, invalid UTF-8, and far too much of it.
    for (let i = 0; i < 12; i++) {
      lab.addHook(
        'pre-freeze',
        `${10 + i}-noisy`,
        `printf 'caf\\303\\251 "quoted" back\\\\slash\\ttab\\001\\033[31m\\000nul \\377\\376 bad\\n'; head -c 20000 /dev/urandom`,
      );
    }
    const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
    expect(freeze.code, freeze.stderr).toBe(0);
    expect(freeze.json).toBeDefined();
    expect(freeze.stdout.length).toBeLessThan(24_000);
    expect(freeze.json.hooks).toHaveLength(12);
    await lab.run('thaw', THAW);

    lab.addHook('pre-freeze', '00-text', `printf 'caf\\303\\251 "quoted" back\\\\slash\\ttab\\001end\\n'`);
    for (let i = 0; i < 12; i++) fs.rmSync(path.join(lab.configDir, 'pre-freeze.d', `${10 + i}-noisy`));
    const clean = await lab.run('freeze', lab.freezeParams([vol.volumeId], { ExecutionId: 'test-exec-2' }));
    expect(clean.json.hooks[0].output).toBe('café "quoted" back\\slash\ttab\u0001end');
  });

  it('a failing pre-freeze hook aborts with nothing frozen and runs the post-thaw hooks of the hooks that ran', async () => {
    const log = path.join(lab.dir, 'abort.log');
    lab.addHook('pre-freeze', '10-ok', `echo pre10 >> ${log}`);
    lab.addHook('pre-freeze', '20-fails', `echo pre20 >> ${log}; echo "database unreachable" >&2; exit 3`);
    lab.addHook('pre-freeze', '30-never', `echo pre30 >> ${log}`);
    lab.addHook('post-thaw', '10-ok', `echo "post10 aborted=$ECB_ABORTED" >> ${log}`);
    lab.addHook('post-thaw', '20-fails', `echo post20 >> ${log}`);
    lab.addHook('post-thaw', '30-never', `echo post30 >> ${log}`);
    const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
    expect(freeze.code).toBe(1);
    expect(freeze.json.status).toBe('error');
    expect(freeze.json.error.code).toBe('HOOK_FAILED');
    expect(freeze.json.error.message).toContain('20-fails');
    expect(freeze.json.error.message).toContain('exit code 3');
    expect(freeze.json.hooks.find((h: { name: string }) => h.name === '20-fails').output).toBe(
      'database unreachable',
    );
    expect(fs.readFileSync(log, 'utf8')).toBe('pre10\npre20\npost10 aborted=1\npost20\n');
    expect(await lab.writable(vol.mountpoint)).toBe(true);
    expect(fs.existsSync(path.join(lab.stateDir, 'active'))).toBe(false);
  });

  it('stops before freezing when a thaw arrives while the pre-freeze hooks run', async () => {
    const log = path.join(lab.dir, 'cancel.log');
    // Stands in for a thaw that gave up waiting for this freeze: it leaves its marker.
    lab.addHook('pre-freeze', '10-slow', `touch ${lab.stateDir}/active/cancel; echo pre >> ${log}`);
    lab.addHook('post-thaw', '10-slow', `echo post >> ${log}`);
    const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
    expect(freeze.code).toBe(1);
    expect(freeze.json.error.code).toBe('CANCELLED');
    expect(freeze.json.watchdog).toBeNull();
    expect(fs.readFileSync(log, 'utf8')).toBe('pre\npost\n');
    expect(await lab.writable(vol.mountpoint)).toBe(true);
    expect(fs.existsSync(path.join(lab.stateDir, 'active'))).toBe(false);
  });

  it('a freeze command terminated by the agent (SIGTERM to its process group) rolls back and says so', async () => {
    const log = path.join(lab.dir, 'term.log');
    lab.addHook('pre-freeze', '10-slow', `echo pre >> ${log}; sleep 2`);
    lab.addHook('post-thaw', '10-slow', `echo "post aborted=$ECB_ABORTED" >> ${log}`);
    const { child, result } = lab.start('freeze', lab.freezeParams([vol.volumeId]));
    expect(await waitFor(() => fs.existsSync(log), 5_000)).toBe(true);
    process.kill(-(child.pid as number), 'SIGTERM');
    const freeze = await result;
    expect(freeze.json.status).toBe('error');
    expect(freeze.json.error.code).toBe('INTERRUPTED');
    expect(fs.readFileSync(log, 'utf8')).toBe('pre\npost aborted=1\n');
    expect(await lab.writable(vol.mountpoint)).toBe(true);
    expect(fs.existsSync(path.join(lab.stateDir, 'active'))).toBe(false);
  });

  it('kills a hook that runs past its time limit and freezes nothing', async () => {
    lab.addHook('pre-freeze', '10-hangs', 'echo started; sleep 30');
    const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId], { HookTimeoutSeconds: '1' }));
    expect(freeze.code).toBe(1);
    expect(freeze.json.error.code).toBe('HOOK_FAILED');
    expect(freeze.json.hooks[0]).toMatchObject({ name: '10-hangs', timedOut: true, output: 'started' });
    expect(freeze.ms).toBeLessThan(10_000);
    expect(await lab.writable(vol.mountpoint)).toBe(true);
  });

  describe('a hook holding a lock in its own session until post-thaw', () => {
    it('holds the lock while frozen and releases it at the thaw', async () => {
      const lockFile = path.join(lab.dir, 'db.lock');
      lockHolderHooks(lab, lockFile);
      const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
      expect(freeze.code, freeze.stderr).toBe(0);
      expect(freeze.json.hooks[0].output).toMatch(/^lock held by \d+ for at most 35s$/);
      // The freeze command and the hook have exited: the lock must outlive them.
      expect(lockFree(lockFile)).toBe(false);
      const thaw = await lab.run('thaw', THAW);
      // A holder must not inherit the state lock: the thaw would wait for it.
      expect(thaw.json.warnings).toEqual([]);
      expect(thaw.ms).toBeLessThan(5_000);
      expect(thaw.json.hooks[0]).toMatchObject({
        name: '10-lock',
        exitCode: 0,
        output: 'lock released (orchestrator)',
      });
      expect(thaw.json.postThawHooksOk).toBe(true);
      expect(await waitFor(() => lockFree(lockFile), 2_000)).toBe(true);
    });

    it('is released by the watchdog when no thaw comes', async () => {
      const lockFile = path.join(lab.dir, 'db.lock');
      lockHolderHooks(lab, lockFile);
      const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId], { WatchdogSeconds: '6' }));
      expect(freeze.json.status).toBe('frozen');
      expect(lockFree(lockFile)).toBe(false);
      expect(await waitFor(() => lockFree(lockFile), 9_000, 50)).toBe(true);
      expect(await lab.writable(vol.mountpoint)).toBe(true);
      const thaw = await lab.run('thaw', THAW);
      expect(thaw.json.watchdogFired).toBe(true);
      expect(thaw.json.hooks[0]).toMatchObject({
        name: '10-lock',
        exitCode: 0,
        output: 'lock released (watchdog)',
      });
    });

    it('reports a holder that died before the thaw, so the backup is not labelled application-consistent', async () => {
      const lockFile = path.join(lab.dir, 'db.lock');
      lockHolderHooks(lab, lockFile);
      await lab.run('freeze', lab.freezeParams([vol.volumeId]));
      const pid = Number(
        fs.readFileSync(path.join(lab.stateDir, 'hook-state', '10-lock', 'holder.pid'), 'utf8'),
      );
      execFileSync('kill', ['-9', String(pid)]);
      const thaw = await lab.run('thaw', THAW);
      expect(thaw.code).toBe(0);
      expect(thaw.json.thawed).toEqual([vol.mountpoint]);
      expect(thaw.json.hooks[0].exitCode).toBe(1);
      expect(thaw.json.postThawHooksOk).toBe(false);
    });
  });
});

// Each case gets its own lab, so the cases run side by side.
describe.skipIf(!CAN_RUN)('refuses hooks that someone other than root could change, freezing nothing', () => {
  const cases: [string, (lab: FsLab) => Record<string, string> | undefined, string][] = [
    [
      'a group-writable hook',
      (l) => {
        l.addHook('pre-freeze', '10-x', 'true', 0o770);
        return undefined;
      },
      'writable by group or others',
    ],
    [
      'a hook owned by another user',
      (l) => {
        fs.chownSync(l.addHook('pre-freeze', '10-x', 'true'), 1000, 1000);
        return undefined;
      },
      'owned by uid 1000',
    ],
    [
      'a world-writable hook directory',
      (l) => {
        l.addHook('pre-freeze', '10-x', 'true');
        fs.chmodSync(path.join(l.configDir, 'pre-freeze.d'), 0o777);
        return undefined;
      },
      'pre-freeze.d is writable by group or others',
    ],
    [
      'a post-thaw directory owned by another user',
      (l) => {
        l.addHook('post-thaw', '10-x', 'true');
        fs.chownSync(path.join(l.configDir, 'post-thaw.d'), 1000, 1000);
        return undefined;
      },
      'post-thaw.d is owned by uid 1000',
    ],
    [
      'a hook that is not executable',
      (l) => {
        l.addHook('pre-freeze', '10-x', 'true', 0o600);
        return undefined;
      },
      'not an executable',
    ],
    [
      'a symlink to a hook in a world-writable directory',
      (l) => {
        const dir = path.join(l.dir, 'open');
        fs.mkdirSync(dir, { mode: 0o777 });
        fs.chmodSync(dir, 0o777);
        fs.writeFileSync(path.join(dir, 'hook'), '#!/bin/sh\ntrue\n', { mode: 0o700 });
        l.addHook('pre-freeze', '05-real', 'true');
        fs.symlinkSync(path.join(dir, 'hook'), path.join(l.configDir, 'pre-freeze.d', '10-link'));
        return undefined;
      },
      'is a symlink to',
    ],
    [
      'a config directory inside a world-writable, non-sticky directory',
      (l) => {
        // Not above the state directory, which refuses such a parent too (STATE_DIR_UNSAFE).
        const open = path.join(l.dir, 'open');
        fs.mkdirSync(path.join(open, 'etc', 'pre-freeze.d'), { recursive: true, mode: 0o755 });
        fs.chmodSync(open, 0o777);
        fs.writeFileSync(path.join(open, 'etc', 'pre-freeze.d', '10-x'), '#!/bin/sh\ntrue\n', {
          mode: 0o700,
        });
        return { ECB_CONFIG_DIR: path.join(open, 'etc') };
      },
      'every directory above',
    ],
  ];
  it.concurrent.each(cases)('%s', async (_name, arrange, expected) => {
    const lab = new FsLab();
    try {
      const vol = lab.addFilesystem('ext4');
      const env = arrange(lab) ?? {};
      const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]), { env });
      expect(freeze.code).toBe(1);
      expect(freeze.json.error.code).toBe('HOOK_INSECURE');
      expect(freeze.json.error.message).toContain(expected);
      expect(freeze.json.hooks).toEqual([]);
      expect(await lab.writable(vol.mountpoint, 3_000)).toBe(true);
      const preflight = await lab.run('preflight', { VolumeIds: vol.volumeId }, { env });
      expect(preflight.code).toBe(1);
      expect(preflight.json.problems.map((p: { code: string }) => p.code)).toContain('HOOK_INSECURE');
    } finally {
      await lab.cleanup();
    }
  });
});
