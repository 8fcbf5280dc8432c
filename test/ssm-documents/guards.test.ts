import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../lib/config';
import {
  PARAMETER_DELIMITER,
  ParameterValueError,
  renderDocument,
  scriptWithParameters,
} from '../../lib/documents';
import { CAN_RUN, FsLab, SKIP_REASON } from './fs-lab';

if (!CAN_RUN) console.warn(`guard tests skipped: ${SKIP_REASON}`);

/**
 * Runs the document in a mount namespace where /usr/sbin/fsfreeze is a recorder: a guard that
 * failed would show up in the record instead of freezing this machine's root filesystem.
 */
function withRecordingFsfreeze(lab: FsLab): { wrap: string; calls: () => string } {
  const id = Math.random().toString(16).slice(2);
  const log = path.join(lab.dir, `fsfreeze-calls-${id}`);
  const fake = path.join(lab.dir, `fake-fsfreeze-${id}`);
  fs.writeFileSync(fake, `#!/bin/sh\necho "$@" >> ${log}\n`, { mode: 0o755 });
  return {
    wrap: `unshare -m --propagation private sh -c 'mount --bind ${fake} /usr/sbin/fsfreeze && exec SCRIPT'`,
    calls: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''),
  };
}

const HOSTILE_PATHS = [
  '$(touch PWNED)',
  '/data`touch PWNED`',
  '/data;touch PWNED',
  "/data' ; touch PWNED ; '",
  '/data && touch PWNED',
  '/data\ntouch PWNED',
  'relative/path',
  '/da ta',
  '/data|tee PWNED',
  '/data*',
  '/data,$(touch PWNED)',
];

describe.skipIf(!CAN_RUN)('guards', () => {
  let lab: FsLab;
  let vol: { volumeId: string; mountpoint: string };
  // One lab for the file: no test here leaves anything frozen, and the many refusals run side by side.
  beforeAll(() => {
    lab = new FsLab();
    vol = lab.addFilesystem('ext4');
  });
  afterAll(async () => {
    await lab.cleanup();
  });

  const existing = [
    '/',
    '/boot',
    '/var',
    '/tmp',
    '/usr',
    '/run',
    '/etc',
    '/var/lib/amazon/ssm',
    '/var/log',
  ].filter((p) => fs.existsSync(p));
  it.concurrent.each(
    existing,
  )('refuses %s when Include names it explicitly, freezing nothing', async (protectedPath) => {
    const recorder = withRecordingFsfreeze(lab);
    // A state directory per case: concurrent freezes on one instance would be refused as BUSY.
    const env = {
      ECB_STATE_DIR: path.join(lab.stateDir, '..', `state-${protectedPath.replaceAll('/', '_')}`),
    };
    const freeze = await lab.start('freeze', lab.freezeParams([vol.volumeId], { Include: protectedPath }), {
      wrap: recorder.wrap,
      env,
    }).result;
    expect(freeze.code).toBe(1);
    expect(freeze.json.error.code).toBe('INCLUDE_REFUSED');
    expect(freeze.json.error.message).toMatch(/holds \/\S* and is never frozen/);
    expect(recorder.calls()).toBe('');
    const preflight = await lab.run(
      'preflight',
      { VolumeIds: vol.volumeId, Include: protectedPath },
      { env },
    );
    expect(preflight.json.problems.map((p: { code: string }) => p.code)).toEqual(['INCLUDE_REFUSED']);
  });

  it('refuses a data volume that holds a protected directory, even when named in Include', async () => {
    // The rule is semantic: this filesystem is an ordinary loop device, but the hooks live on it.
    const configOnVolume = path.join(vol.mountpoint, 'ecb-config');
    fs.mkdirSync(configOnVolume, { mode: 0o755 });
    const env = { ECB_CONFIG_DIR: configOnVolume };
    const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]), { env });
    expect(freeze.code, freeze.stderr).toBe(0);
    expect(freeze.json.status).toBe('nothing-to-freeze');
    expect(freeze.json.skipped).toEqual([
      expect.objectContaining({ mountpoint: vol.mountpoint, reason: `protected: holds ${configOnVolume}` }),
    ]);
    const named = await lab.run('freeze', lab.freezeParams([vol.volumeId], { Include: vol.mountpoint }), {
      env,
    });
    expect(named.json.error.code).toBe('INCLUDE_REFUSED');
    expect(await lab.writable(vol.mountpoint, 3_000)).toBe(true);
  });

  it('fails with FSFREEZE_MISSING, never a silent success, when fsfreeze is not installed', async () => {
    const hide = `unshare -m --propagation private sh -c 'mount --bind /dev/null /usr/sbin/fsfreeze && exec SCRIPT'`;
    const freeze = await lab.start('freeze', lab.freezeParams([vol.volumeId]), { wrap: hide }).result;
    expect(freeze.code).toBe(1);
    expect(freeze.json.status).toBe('error');
    expect(freeze.json.error.code).toBe('FSFREEZE_MISSING');
    expect(freeze.json.error.message).toContain('crash-consistent');
    const preflight = await lab.start('preflight', { VolumeIds: vol.volumeId }, { wrap: hide }).result;
    expect(preflight.code).toBe(1);
    expect(preflight.json.fsfreeze).toBeNull();
    expect(preflight.json.problems.map((p: { code: string }) => p.code)).toContain('FSFREEZE_MISSING');
  });

  it('refuses a state directory that is not on tmpfs', async () => {
    const onDisk = path.join(lab.dir, 'disk-state');
    const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]), {
      env: { ECB_STATE_DIR: onDisk },
    });
    expect(freeze.code).toBe(1);
    expect(freeze.json.error.code).toBe('STATE_DIR_UNSAFE');
    expect(freeze.json.error.message).toContain('tmpfs');
    expect(await lab.writable(vol.mountpoint, 3_000)).toBe(true);
  });

  describe('hostile tag and parameter values', () => {
    const freezeDoc = renderDocument('freeze', DEFAULT_CONFIG);
    it.concurrent.each(
      HOSTILE_PATHS,
    )('Include/Exclude %j: rejected by allowedPattern and by the script', async (value) => {
      for (const name of ['Include', 'Exclude']) {
        expect(() =>
          scriptWithParameters(freezeDoc, { ...lab.freezeParams([vol.volumeId]), [name]: value }),
        ).toThrow(ParameterValueError);
        const result = await lab.run('freeze', lab.freezeParams([vol.volumeId], { [name]: value }), {
          unchecked: true,
        });
        expect(result.code).toBe(1);
        expect(result.json.error.code).toBe('INVALID_PARAMETER');
        expect(result.json.error.message).toContain(name);
      }
      expect(fs.existsSync(path.join(lab.dir, 'PWNED'))).toBe(false);
      expect(await lab.writable(vol.mountpoint, 3_000)).toBe(true);
    });

    // The documented pattern admits these characters; the script refuses the components.
    it.concurrent.each([
      '/data/../etc',
      '/data/./x',
      '/..',
    ])('Include/Exclude %j: refused by the script', async (value) => {
      for (const name of ['Include', 'Exclude']) {
        const result = await lab.run('freeze', lab.freezeParams([vol.volumeId], { [name]: value }));
        expect(result.code).toBe(1);
        expect(result.json.error.code).toBe('INVALID_PARAMETER');
        expect(result.json.error.message).toContain('without . or .. components');
      }
      expect(await lab.writable(vol.mountpoint, 3_000)).toBe(true);
    });

    const others: [string, string][] = [
      ['ExecutionId', 'x$(touch PWNED)'],
      ['ExecutionId', "x';touch PWNED;'"],
      ['VolumeIds', 'vol-0123456789abcdef0;touch PWNED'],
      ['VolumeDevices', 'vol-0123456789abcdef0=/dev/sdf;touch PWNED'],
      ['NotAfter', '2030-01-01T00:00:00Z$(touch PWNED)'],
      ['WatchdogSeconds', '5'],
      ['WatchdogSeconds', '301'],
      ['WatchdogSeconds', '30;touch PWNED'],
      ['HookTimeoutSeconds', '0'],
      ['HookTimeoutSeconds', '601'],
    ];
    it.concurrent.each(others)('%s %j: rejected by allowedPattern and by the script', async (name, value) => {
      expect(() =>
        scriptWithParameters(freezeDoc, { ...lab.freezeParams([vol.volumeId]), [name]: value }),
      ).toThrow(ParameterValueError);
      const result = await lab.run('freeze', lab.freezeParams([vol.volumeId], { [name]: value }), {
        unchecked: true,
      });
      expect(result.code).toBe(1);
      expect(result.json.error.code).toBe('INVALID_PARAMETER');
      expect(fs.existsSync(path.join(lab.dir, 'PWNED'))).toBe(false);
    });

    it('a thaw with a hostile ExecutionId is refused and runs nothing', async () => {
      const thaw = await lab.run(
        'thaw',
        { ExecutionId: "x';touch PWNED;'$(touch PWNED)", HookTimeoutSeconds: '5' },
        { unchecked: true },
      );
      expect(thaw.code).toBe(1);
      expect(thaw.json.error.code).toBe('INVALID_PARAMETER');
      expect(fs.existsSync(path.join(lab.dir, 'PWNED'))).toBe(false);
    });

    it('the only way out of the parameter here-document, a line equal to its delimiter, fails every pattern', () => {
      for (const [name, p] of Object.entries(freezeDoc.parameters)) {
        expect(new RegExp(p.allowedPattern).test(`/x\n${PARAMETER_DELIMITER}\ntouch PWNED`), name).toBe(
          false,
        );
      }
    });
  });

  describe('preflight', () => {
    it('reports a ready instance without freezing anything', async () => {
      lab.addHook('pre-freeze', '10-a', 'true');
      lab.addHook('post-thaw', '10-a', 'true');
      const preflight = await lab.run('preflight', { VolumeIds: `${vol.volumeId},vol-0123456789abcdef0` });
      expect(preflight.code, preflight.stderr).toBe(0);
      expect(preflight.json).toMatchObject({
        status: 'ready',
        ready: true,
        problems: [],
        fsfreeze: '/usr/sbin/fsfreeze',
        stateDir: { tmpfs: true },
        active: null,
        hooksConfigured: true,
        hooks: { preFreeze: ['10-a'], postThaw: ['10-a'] },
      });
      expect(preflight.json.targets).toEqual([
        expect.objectContaining({ mountpoint: vol.mountpoint, fstype: 'ext4' }),
      ]);
      expect(preflight.json.unmapped).toEqual([
        expect.objectContaining({ volumeId: 'vol-0123456789abcdef0' }),
      ]);
      expect(preflight.json.protected).toContainEqual({ mountpoint: '/', holds: '/' });
      expect(await lab.writable(vol.mountpoint, 3_000)).toBe(true);
    });

    it('reports an instance with a freeze still active as not ready', async () => {
      expect((await lab.run('freeze', lab.freezeParams([vol.volumeId]))).json.status).toBe('frozen');
      const preflight = await lab.run('preflight', { VolumeIds: vol.volumeId });
      expect(preflight.code).toBe(1);
      expect(preflight.json.status).toBe('not-ready');
      expect(preflight.json.active).toEqual({ executionId: 'test-exec-1' });
      expect(preflight.json.problems.map((p: { code: string }) => p.code)).toEqual(['ALREADY_FROZEN']);
      await lab.run('thaw', { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' });
    });
  });
});
