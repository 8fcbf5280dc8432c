import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CAN_RUN,
  type FsLab as FsLabType,
  FsLab,
  freezeWarnings,
  type FsType,
  HAS_BTRFS,
  HAS_XFS,
  processGone,
  SKIP_REASON,
  waitFor,
} from './fs-lab';

// Real freezes on loop-mounted filesystems, executing the text of the rendered documents.
if (!CAN_RUN) console.warn(`on-instance freeze tests skipped: ${SKIP_REASON}`);

const FS_TYPES: FsType[] = ['ext4', ...(HAS_XFS ? (['xfs'] as FsType[]) : [])];
if (!HAS_XFS) console.warn('xfs cases skipped: mkfs.xfs missing (apt-get install xfsprogs)');

describe.skipIf(!CAN_RUN).each(FS_TYPES)('freeze and thaw on %s', (type) => {
  let lab: FsLabType;
  beforeEach(() => {
    lab = new FsLab();
  });
  afterEach(async () => {
    await lab.cleanup();
  });

  it('blocks writes while frozen and lets them complete after the thaw', async () => {
    const { volumeId, mountpoint, device } = lab.addFilesystem(type);
    const freeze = await lab.run('freeze', lab.freezeParams([volumeId]));
    expect(freeze.code, freeze.stderr).toBe(0);
    expect(freeze.json.status).toBe('frozen');
    expect(freeze.json.targets).toEqual([
      { mountpoint, fstype: type, source: device, volumeIds: [volumeId] },
    ]);
    expect(freeze.json.hooksConfigured).toBe(false);
    expect(freeze.json.watchdog.seconds).toBe(30);
    expect(freeze.json.frozenAtMs).toBeGreaterThanOrEqual(freeze.json.freezeStartedAtMs);

    const writer = lab.writer(path.join(mountpoint, 'during-freeze'));
    expect(await waitFor(() => writer.done, 700)).toBe(false);

    const thaw = await lab.run('thaw', { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' });
    expect(thaw.code, thaw.stderr).toBe(0);
    expect(thaw.json).toMatchObject({
      status: 'thawed',
      thawed: [mountpoint],
      notFrozen: [],
      failed: [],
      watchdogFired: false,
      frozenExecutionId: 'test-exec-1',
      postThawHooksOk: true,
    });
    expect(thaw.json.freezeMs).toBeGreaterThanOrEqual(700);
    // A watchdog left behind could fire later, into someone else's freeze.
    expect(processGone(freeze.json.watchdog.pid)).toBe(true);
    expect(await waitFor(() => writer.done, 3_000)).toBe(true);
    expect(fs.readFileSync(path.join(mountpoint, 'during-freeze'), 'utf8')).toBe('data');
  });

  it('is idempotent: a second thaw, and a thaw with nothing frozen, succeed', async () => {
    const { volumeId, mountpoint } = lab.addFilesystem(type);
    const none = await lab.run('thaw', { ExecutionId: 'never-froze', HookTimeoutSeconds: '5' });
    expect(none.code, none.stderr).toBe(0);
    expect(none.json).toMatchObject({ status: 'thawed', thawed: [], notFrozen: [], watchdogFired: false });

    expect((await lab.run('freeze', lab.freezeParams([volumeId]))).json.status).toBe('frozen');
    const first = await lab.run('thaw', { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' });
    const second = await lab.run('thaw', { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' });
    expect(first.json.thawed).toEqual([mountpoint]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.json).toMatchObject({
      status: 'thawed',
      thawed: [],
      notFrozen: [mountpoint],
      watchdogFired: false,
    });
    // The repeated thaw still reports the real freeze duration from the record.
    expect(second.json.freezeMs).toBe(first.json.freezeMs);
    expect(await lab.writable(mountpoint)).toBe(true);
  });

  it('refuses a second freeze while the first is active, leaving the first in place', async () => {
    const { volumeId, mountpoint } = lab.addFilesystem(type);
    expect((await lab.run('freeze', lab.freezeParams([volumeId]))).json.status).toBe('frozen');
    const again = await lab.run('freeze', lab.freezeParams([volumeId], { ExecutionId: 'test-exec-2' }));
    expect(again.code).toBe(1);
    expect(again.json.status).toBe('error');
    expect(again.json.error.code).toBe('ALREADY_FROZEN');
    expect(again.json.error.message).toContain('test-exec-1');
    expect(await lab.writable(mountpoint)).toBe(false);
    const thaw = await lab.run('thaw', { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' });
    expect(thaw.json.thawed).toEqual([mountpoint]);
  });

  it('refuses a filesystem frozen by something else and thaws what it froze itself', async () => {
    const a = lab.addFilesystem(type);
    const b = lab.addFilesystem(type);
    // Frozen behind the tool's back: only the lab's own filesystem, thawed by cleanup.
    const [first, second] = [a, b].sort((x, y) => (x.mountpoint < y.mountpoint ? -1 : 1));
    const { execFileSync } = await import('node:child_process');
    execFileSync('fsfreeze', ['-f', second.mountpoint]);
    const freeze = await lab.run('freeze', lab.freezeParams([a.volumeId, b.volumeId]));
    expect(freeze.code).toBe(1);
    expect(freeze.json.error.code).toBe('ALREADY_FROZEN');
    expect(freeze.json.error.message).toContain(second.mountpoint);
    expect(await lab.writable(first.mountpoint)).toBe(true);
    // Someone else's freeze is theirs to end.
    expect(await lab.writable(second.mountpoint)).toBe(false);
    execFileSync('fsfreeze', ['-u', second.mountpoint]);
  });

  it('refuses a command that arrives after its not-after time, freezing nothing', async () => {
    const { volumeId, mountpoint } = lab.addFilesystem(type);
    const late = await lab.run(
      'freeze',
      lab.freezeParams([volumeId], { NotAfter: new Date(Date.now() - 1_000).toISOString() }),
    );
    expect(late.code).toBe(1);
    expect(late.json.error.code).toBe('LATE');
    expect(await lab.writable(mountpoint)).toBe(true);
    expect(fs.existsSync(path.join(lab.stateDir, 'active'))).toBe(false);
  });
});

// The watchdog cases wait out a 6 s watchdog each: they run side by side, each with its own lab.
describe.skipIf(!CAN_RUN)('watchdog', () => {
  const withLab = async (fn: (lab: FsLabType) => Promise<void>) => {
    const lab = new FsLab();
    try {
      await fn(lab);
    } finally {
      await lab.cleanup();
    }
  };

  it.concurrent.each(
    FS_TYPES,
  )('on %s the watchdog thaws within watchdog+2 s when no thaw comes, and the thaw then reports it', async (type) => {
    await withLab(async (lab) => {
      const { volumeId, mountpoint } = lab.addFilesystem(type);
      const freeze = await lab.run('freeze', lab.freezeParams([volumeId], { WatchdogSeconds: '6' }));
      expect(freeze.json.status).toBe('frozen');
      const writer = lab.writer(path.join(mountpoint, 'waits-for-watchdog'));
      const start = freeze.json.freezeStartedAtMs as number;
      // Timed from the freeze's start, not from when the freeze command returned (late under load).
      expect(await waitFor(() => writer.done, start + 5_000 - Date.now())).toBe(false);
      expect(await waitFor(() => writer.done, 6_000 + 2_000 - (Date.now() - start), 20)).toBe(true);
      const delay = (writer.doneAt as number) - start;
      // What the instance saw: the write stayed blocked until the watchdog's time.
      expect(delay).toBeGreaterThanOrEqual(5_500);
      const afterDeadline = (writer.doneAt as number) - Date.parse(freeze.json.watchdog.deadline);
      console.log(
        `[${type}] watchdog thaw observed ${delay} ms after the freeze started, ${afterDeadline} ms after its deadline (watchdog 6000 ms)`,
      );
      expect(delay).toBeLessThanOrEqual(8_000);

      const thaw = await lab.run('thaw', { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' });
      expect(thaw.code, thaw.stderr).toBe(0);
      expect(thaw.json).toMatchObject({
        status: 'thawed',
        watchdogFired: true,
        thawedBy: 'watchdog',
        thawed: [],
      });
      expect(thaw.json.notFrozen).toEqual([mountpoint]);
      expect(thaw.json.freezeMs, thaw.stdout + thaw.stderr).toBeGreaterThanOrEqual(5_500);
      expect(thaw.json.freezeMs).toBeLessThanOrEqual(8_000);
    });
  });

  it.concurrent.each(
    FS_TYPES,
  )('on %s the watchdog survives a SIGKILL of the command process tree and still thaws', async (type) => {
    await withLab(async (lab) => {
      const { volumeId, mountpoint } = lab.addFilesystem(type);
      // The agent's view: a shell that ran the document and lingers; kill its whole process group.
      const { child, result } = lab.start('freeze', lab.freezeParams([volumeId], { WatchdogSeconds: '6' }), {
        wrap: 'SCRIPT; exec sleep 60',
      });
      const frozenSeen = await waitFor(
        () =>
          fs.existsSync(path.join(lab.stateDir, 'active', 'record')) &&
          fs.readFileSync(path.join(lab.stateDir, 'active', 'record'), 'utf8').includes('stage=frozen'),
        10_000,
      );
      expect(frozenSeen).toBe(true);
      const killedAt = Date.now();
      process.kill(-(child.pid as number), 'SIGKILL');
      await result;
      const watchdogPid = Number(fs.readFileSync(path.join(lab.stateDir, 'active', 'watchdog.pid'), 'utf8'));
      expect(processGone(watchdogPid)).toBe(false);
      const record = fs.readFileSync(path.join(lab.stateDir, 'active', 'record'), 'utf8');
      const start = Number(/freezeStartMs=(\d+)/.exec(record)?.[1]);
      const writer = lab.writer(path.join(mountpoint, 'after-kill'));
      expect(await waitFor(() => writer.done, 6_000 + 2_000 - (Date.now() - start), 20)).toBe(true);
      console.log(
        `[${type}] after SIGKILL at +${killedAt - start} ms the watchdog thawed at +${(writer.doneAt as number) - start} ms (watchdog 6000 ms)`,
      );
      expect((writer.doneAt as number) - start).toBeGreaterThanOrEqual(5_500);
      // The watchdog files its record after the post-thaw hooks, a moment after the thaw itself.
      const lastRecord = path.join(lab.stateDir, 'last', 'record');
      expect(await waitFor(() => fs.existsSync(lastRecord), 3_000)).toBe(true);
      const last = fs.readFileSync(lastRecord, 'utf8');
      expect(last).toContain('watchdogFired=true');
      // The next freeze reports the freeze its own thaw never saw.
      const next = await lab.run('freeze', lab.freezeParams([volumeId], { ExecutionId: 'test-exec-2' }));
      expect(next.json.previous).toMatchObject({
        executionId: 'test-exec-1',
        watchdogFired: true,
        thawedBy: 'watchdog',
      });
      await lab.run('thaw', { ExecutionId: 'test-exec-2', HookTimeoutSeconds: '5' });
    });
  });
});

describe.skipIf(!CAN_RUN)('targets', () => {
  let lab: FsLabType;
  beforeEach(() => {
    lab = new FsLab();
  });
  afterEach(async () => {
    await lab.cleanup();
  });

  it('freezes nested mounts parent first and thaws them in reverse', async () => {
    const parent = lab.addFilesystem('ext4');
    const child = lab.addFilesystem(HAS_XFS ? 'xfs' : 'ext4', path.join(parent.mountpoint, 'nested'));
    const freeze = await lab.run('freeze', lab.freezeParams([child.volumeId, parent.volumeId]));
    expect(freeze.code, freeze.stderr).toBe(0);
    expect(freeze.json.targets.map((t: { mountpoint: string }) => t.mountpoint)).toEqual([
      parent.mountpoint,
      child.mountpoint,
    ]);
    expect(await lab.writable(child.mountpoint)).toBe(false);
    const thaw = await lab.run('thaw', { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' });
    expect(thaw.json.thawed).toEqual([child.mountpoint, parent.mountpoint]);
    expect(await lab.writable(child.mountpoint, 3_000)).toBe(true);
  });

  it('lets exactly one of two simultaneous freezes through', async () => {
    const { volumeId, mountpoint } = lab.addFilesystem('ext4');
    const [a, b] = await Promise.all([
      lab.run('freeze', lab.freezeParams([volumeId], { ExecutionId: 'racer-a' })),
      lab.run('freeze', lab.freezeParams([volumeId], { ExecutionId: 'racer-b' })),
    ]);
    const statuses = [a.json.status, b.json.status].sort();
    expect(statuses).toEqual(['error', 'frozen']);
    const loser = a.json.status === 'error' ? a : b;
    expect(['BUSY', 'ALREADY_FROZEN']).toContain(loser.json.error.code);
    const winner = a.json.status === 'frozen' ? a : b;
    const thaw = await lab.run('thaw', { ExecutionId: winner.json.executionId, HookTimeoutSeconds: '5' });
    expect(thaw.json.thawed).toEqual([mountpoint]);
  });

  it('maps a volume through VolumeDevices when no device carries its id (Xen)', async () => {
    const { volumeId, mountpoint, device } = lab.addFilesystem('ext4');
    const params = lab.freezeParams([volumeId], { VolumeDevices: `${volumeId}=${device}` });
    // No device map: the loop device has no NVMe serial and no by-id link, like a Xen disk.
    const freeze = await lab.run('freeze', params, { env: { ECB_DEVICE_MAP: '' } });
    expect(freeze.code, freeze.stderr).toBe(0);
    expect(freeze.json.targets).toEqual([expect.objectContaining({ mountpoint, volumeIds: [volumeId] })]);
    await lab.run('thaw', { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' });
    const unmapped = await lab.run('preflight', { VolumeIds: volumeId }, { env: { ECB_DEVICE_MAP: '' } });
    expect(unmapped.json.unmapped).toEqual([expect.objectContaining({ volumeId })]);
  });

  it('reports a volume it cannot map and one with nothing mounted, freezing nothing', async () => {
    const unmounted = lab.newVolumeId();
    const result = await lab.run('freeze', lab.freezeParams(['vol-0123456789abcdef0', unmounted]));
    expect(result.code, result.stderr).toBe(0);
    expect(result.json.status).toBe('nothing-to-freeze');
    expect(result.json.unmapped.map((u: { volumeId: string }) => u.volumeId)).toEqual([
      'vol-0123456789abcdef0',
      unmounted,
    ]);
    expect(result.json.watchdog).toBeNull();
    expect(fs.existsSync(path.join(lab.stateDir, 'active'))).toBe(false);
  });

  it('honours Exclude, and refuses an Include that is also excluded', async () => {
    const a = lab.addFilesystem('ext4');
    const b = lab.addFilesystem('ext4');
    const freeze = await lab.run(
      'freeze',
      lab.freezeParams([a.volumeId, b.volumeId], { Exclude: `${b.mountpoint},/nonexistent-ecb` }),
    );
    expect(freeze.json.targets.map((t: { mountpoint: string }) => t.mountpoint)).toEqual([a.mountpoint]);
    expect(freeze.json.skipped).toEqual([
      expect.objectContaining({ mountpoint: b.mountpoint, reason: expect.stringContaining('excluded') }),
    ]);
    expect(freezeWarnings(freeze.json)).toEqual([
      'Exclude path /nonexistent-ecb does not exist; nothing excluded for it',
    ]);
    expect(await lab.writable(b.mountpoint)).toBe(true);
    await lab.run('thaw', { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' });
    const both = await lab.run(
      'freeze',
      lab.freezeParams([a.volumeId], { Include: b.mountpoint, Exclude: b.mountpoint, ExecutionId: 'x2' }),
    );
    expect(both.json.error.code).toBe('INCLUDE_REFUSED');
  });

  it.skipIf(!HAS_BTRFS)(
    'maps both volumes of a two-device btrfs to one target and freezes it once',
    async () => {
      const { volumeIds, mountpoint } = lab.addBtrfsPair();
      const freeze = await lab.run('freeze', lab.freezeParams(volumeIds));
      expect(freeze.code, freeze.stderr).toBe(0);
      expect(freeze.json.targets).toHaveLength(1);
      expect(freeze.json.targets[0]).toMatchObject({ mountpoint, fstype: 'btrfs' });
      expect([...freeze.json.targets[0].volumeIds].sort()).toEqual([...volumeIds].sort());
      expect(await lab.writable(mountpoint)).toBe(false);
      const thaw = await lab.run('thaw', { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' });
      expect(thaw.json.thawed).toEqual([mountpoint]);
      expect(await lab.writable(mountpoint, 3_000)).toBe(true);
    },
  );
});
