/**
 * The Verify Restore document, run for real as root on loop devices: clean and deliberately
 * corrupted ext4 and xfs, a journal still to replay, failing and insecure verify hooks, and auto
 * mode stopping a process that holds a restored filesystem. Everything created is unmounted and
 * detached in afterEach, also when a test fails.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../lib/config';
import { type CheckReport, verdictOf } from '../../lambda/restore-validation/validation';
import { renderDocument, scriptWithParameters } from '../../lib/documents';
import { CAN_RUN, HAS_SHELLCHECK, HAS_XFS, processGone, SKIP_REASON, waitFor } from './fs-lab';

if (!CAN_RUN) console.warn(`verify-restore tests skipped: ${SKIP_REASON}`);

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });
const quiet = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' });

interface Volume {
  readonly image: string;
  readonly device: string;
  readonly fstype: 'ext4' | 'xfs';
}

class RestoreLab {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ecb-verify-'));
  readonly hooksDir = path.join(this.dir, 'etc', 'verify.d');
  readonly root = path.join(this.dir, 'restored');
  private readonly loops: string[] = [];
  private readonly mounts: string[] = [];
  private readonly pids: number[] = [];

  constructor() {
    // Hooks must be root-owned and not writable by others all the way up (/tmp is sticky).
    fs.chmodSync(this.dir, 0o755);
    fs.mkdirSync(this.hooksDir, { recursive: true, mode: 0o755 });
    fs.chmodSync(path.dirname(this.hooksDir), 0o755);
  }

  /** A filesystem with some files, unmounted cleanly: what a restored instance's volume looks like after boot. */
  volume(fstype: 'ext4' | 'xfs', files: Record<string, string>): Volume {
    const image = path.join(this.dir, `${fstype}-${this.loops.length}.img`);
    fs.writeFileSync(image, '');
    fs.truncateSync(image, fstype === 'ext4' ? 64 * 1024 * 1024 : 512 * 1024 * 1024);
    const device = sh('losetup', ['--find', '--show', image]).trim();
    this.loops.push(device);
    if (fstype === 'ext4') sh('mkfs.ext4', ['-q', '-F', device]);
    else sh('mkfs.xfs', ['-q', '-f', device]);
    const mnt = this.mount(device);
    for (const [name, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(mnt, name)), { recursive: true });
      fs.writeFileSync(path.join(mnt, name), content);
    }
    this.unmount(mnt);
    return { image, device, fstype };
  }

  mount(device: string, at?: string): string {
    const mnt = at ?? fs.mkdtempSync(path.join(this.dir, 'mnt-'));
    fs.mkdirSync(mnt, { recursive: true });
    sh('mount', [device, mnt]);
    this.mounts.push(mnt);
    return mnt;
  }

  unmount(mnt: string): void {
    sh('umount', [mnt]);
    this.mounts.splice(this.mounts.indexOf(mnt), 1);
  }

  hook(name: string, body: string, mode = 0o700): void {
    const file = path.join(this.hooksDir, name);
    fs.writeFileSync(file, `#!/bin/bash\n${body}\n`);
    fs.chmodSync(file, mode);
  }

  /** Runs the rendered document the way the SSM agent does: `sh -c <script file>`, parameters pasted in. */
  run(params: Record<string, string>, env: Record<string, string> = {}) {
    const script = path.join(this.dir, `verify-${Date.now()}.sh`);
    fs.writeFileSync(script, scriptWithParameters(renderDocument('verifyRestore', DEFAULT_CONFIG), params), {
      mode: 0o700,
    });
    return new Promise<{ code: number | null; json: Record<string, unknown>; stderr: string }>((resolve) => {
      const child = spawn('sh', ['-c', script], { env: { PATH: process.env.PATH, ...env }, cwd: this.dir });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
      });
      child.on('close', (code) => {
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(out);
        } catch {
          json = { unparsed: out };
        }
        resolve({ code, json, stderr: err });
      });
    });
  }

  explicit(volumes: [Volume, string][]): Record<string, string> {
    return {
      RestoreJobId: '1B234A56-789B-01CD-2A34-4567A08901FD',
      ExpectedInstanceId: 'i-0123456789abcdef0',
      Filesystems: volumes.map(([v, mp]) => `${v.device}=${mp}`).join(','),
      MountRoot: this.root,
      HooksDir: this.hooksDir,
      HookTimeoutSeconds: '60',
    };
  }

  /** A process that keeps a file open on `dir`'s filesystem, like a database on a restored instance. */
  holdOpen(file: string): number {
    const child = spawn('sh', ['-c', 'exec 3<"$1"; echo ready; exec sleep 600', 'holder', file], {
      stdio: ['ignore', 'pipe', 'ignore'],
      detached: true,
    });
    this.pids.push(child.pid!);
    return child.pid!;
  }

  mounted(): string[] {
    return fs
      .readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1])
      .filter((mp) => mp?.startsWith(this.dir));
  }

  cleanup(): void {
    for (const pid of this.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const mp of this.mounted().reverse()) quiet('umount', ['-l', mp]);
    for (const loop of this.loops) quiet('losetup', ['-d', loop]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

let lab: RestoreLab;
beforeEach(() => {
  if (CAN_RUN) lab = new RestoreLab();
});
afterEach(() => lab?.cleanup());

describe.skipIf(!CAN_RUN)('Verify Restore on real filesystems', () => {
  it('verifies clean ext4 and xfs: fsck clean, mounted read-only, the hook sees the data and cannot write', async () => {
    // The xfs is mounted inside the ext4, which holds its (empty) mount point directory, as on the instance.
    const ext4 = lab.volume('ext4', { 'ledger/000.log': 'debit 10\ncredit 10\n', 'pg/.mountpoint': '' });
    const xfs = HAS_XFS ? lab.volume('xfs', { 'pg/PG_VERSION': '15\n' }) : undefined;
    lab.hook(
      '50-check',
      [
        'set -e',
        'grep -q "credit 10" "$ECB_VERIFY_ROOT/data/ledger/000.log"',
        '! touch "$ECB_VERIFY_ROOT/data/written-by-hook" 2>/dev/null',
        'echo "mounts: $(echo "$ECB_VERIFY_MOUNTS" | wc -l) scratch writable: $(touch "$ECB_VERIFY_SCRATCH/x" && echo yes)"',
      ].join('\n'),
    );
    const volumes: [Volume, string][] = [[ext4, '/data']];
    if (xfs) volumes.push([xfs, '/data/pg']);

    const sha = () => volumes.map(([v]) => sh('sha256sum', [v.image]).split(' ')[0]);
    const before = sha();
    const r = await lab.run(lab.explicit(volumes));

    expect(r.code).toBe(0);
    expect({ status: r.json.status, reason: r.json.reason }).toEqual({
      status: 'verified',
      reason: `${volumes.length} data filesystem(s) clean and mounted read-only, 1 verify hook(s) passed`,
    });
    const filesystems = r.json.filesystems as { fstype: string; fsck: string; mounted: boolean }[];
    expect(filesystems.map((f) => [f.fstype, f.fsck, f.mounted])).toEqual(
      volumes.map(([v]) => [v.fstype, 'clean', true]),
    );
    expect(r.json.hooks).toEqual([
      expect.objectContaining({
        name: '50-check',
        exitCode: 0,
        verified: true,
        output: `mounts: ${volumes.length} scratch writable: yes`,
      }),
    ]);
    // Nothing stays mounted, and the mount points it made are gone.
    expect(lab.mounted()).toEqual([]);
    expect(fs.existsSync(path.join(lab.root, 'data'))).toBe(false);
    // Read-only: fsck, mount and the hook left every restored volume byte for byte as it was.
    expect(sha()).toEqual(before);
    // The restore-validation function reads this very output.
    expect(verdictOf(r.json as unknown as CheckReport)).toMatchObject({
      result: 'verified',
      validationStatus: 'SUCCESSFUL',
    });
  });

  it('fails a corrupted ext4 (an inode cleared under a directory entry) and does not run the hooks on it', async () => {
    const ext4 = lab.volume('ext4', { 'db/table.dat': 'rows' });
    sh('debugfs', ['-w', '-R', 'clri /db/table.dat', ext4.device]);
    lab.hook('50-check', 'echo ran; exit 0');

    const r = await lab.run(lab.explicit([[ext4, '/data']]));

    expect(r.json.status).toBe('failed');
    expect(r.json.reason).toMatch(/\/data \(ext4 on \/dev\/loop\d+\): fsck found errors/);
    const [fsInfo] = r.json.filesystems as { fsck: string; mounted: boolean; detail: string }[];
    expect(fsInfo).toMatchObject({ fsck: 'errors', mounted: false });
    expect(fsInfo.detail).toMatch(/^exit 4: /);
    expect(r.json.hooks).toEqual([]);
    expect(lab.mounted()).toEqual([]);
    expect(verdictOf(r.json as unknown as CheckReport)).toMatchObject({
      result: 'failed',
      validationStatus: 'FAILED',
      detail: expect.stringMatching(/^\/data ext4: fsck errors \(exit 4: /),
    });
  });

  it.skipIf(!HAS_XFS)('fails a corrupted xfs (a wrong link count) with xfs_repair -n', async () => {
    const xfs = lab.volume('xfs', { 'pg/base/1/1259': 'catalog' });
    const mnt = lab.mount(xfs.device);
    const inode = fs.statSync(path.join(mnt, 'pg/base/1/1259')).ino;
    lab.unmount(mnt);
    sh('xfs_db', ['-x', '-c', `inode ${inode}`, '-c', 'write core.nlinkv2 7', xfs.device]);

    const r = await lab.run(lab.explicit([[xfs, '/var/lib/pgsql']]));

    expect(r.json.status).toBe('failed');
    expect(r.json.filesystems).toEqual([
      expect.objectContaining({ fstype: 'xfs', fsck: 'errors', mounted: false }),
    ]);
  });

  it('fails a device that carries no filesystem at all', async () => {
    const ext4 = lab.volume('ext4', { a: 'b' });
    sh('dd', ['if=/dev/zero', `of=${ext4.device}`, 'bs=1M', 'count=4', 'conv=notrunc', 'status=none']);
    const r = await lab.run(lab.explicit([[ext4, '/data']]));
    expect(r.json.status).toBe('failed');
    expect(r.json.reason).toMatch(/\/data: no filesystem found on \/dev\/loop\d+/);
  });

  it('calls a journal still to replay inconclusive instead of reporting errors replay would fix', async () => {
    const ext4 = lab.volume('ext4', {});
    const mnt = lab.mount(ext4.device);
    fs.writeFileSync(path.join(mnt, 'busy'), 'x');
    // A copy of a mounted ext4 carries needs_recovery, as a snapshot does before its first mount.
    const copy = path.join(lab.dir, 'copy.img');
    sh('cp', [ext4.image, copy]);
    const loop = sh('losetup', ['--find', '--show', copy]).trim();
    try {
      const r = await lab.run(lab.explicit([[{ ...ext4, device: loop, image: copy }, '/data']]));
      expect(r.json.status).toBe('inconclusive');
      expect(r.json.filesystems).toEqual([expect.objectContaining({ fsck: 'needs-replay', mounted: false })]);
    } finally {
      quiet('losetup', ['-d', loop]);
    }
  });

  it('fails when a verify hook fails, naming it, and refuses hooks others could have written', async () => {
    const ext4 = lab.volume('ext4', { x: 'y' });
    lab.hook('10-ok', 'exit 0');
    lab.hook('20-postgresql', 'echo "psql: connection refused" >&2; exit 3');
    const failed = await lab.run(lab.explicit([[ext4, '/data']]));
    expect(failed.json.status).toBe('failed');
    expect(failed.json.reason).toContain('verify hook 20-postgresql exited 3');
    expect(failed.json.hooks).toEqual([
      expect.objectContaining({ name: '10-ok', verified: true }),
      expect.objectContaining({
        name: '20-postgresql',
        verified: false,
        output: 'psql: connection refused',
      }),
    ]);

    fs.rmSync(path.join(lab.hooksDir, '20-postgresql'));
    lab.hook('30-planted', 'exit 0', 0o775);
    const refused = await lab.run(lab.explicit([[ext4, '/data']]));
    expect(refused.json.status).toBe('inconclusive');
    expect(refused.json.reason).toMatch(/refusing verify hook 30-planted: .* writable by group or others/);
    expect(refused.json.hooks).toEqual([]);
  });

  it('says which packaged applications had no verify hook, instead of implying they were checked', async () => {
    const ext4 = lab.volume('ext4', { 'db/ibdata1': 'x' });
    // What the AppHooks document left on the instance for the freeze: PostgreSQL and MariaDB hooks.
    const preFreeze = path.join(path.dirname(lab.hooksDir), 'pre-freeze.d');
    fs.mkdirSync(preFreeze, { mode: 0o755 });
    for (const app of ['postgresql', 'mysql']) {
      fs.writeFileSync(path.join(preFreeze, `50-ecb-${app}`), '#!/bin/bash\n', { mode: 0o700 });
    }
    lab.hook('50-postgresql', 'exit 0');
    const r = await lab.run(lab.explicit([[ext4, '/var/lib/mysql']]));
    expect(r.json).toMatchObject({ status: 'verified', unverifiedApps: ['mysql'] });
    expect(r.json.reason).toMatch(
      /1 verify hook\(s\) passed; no verify hook for the packaged application\(s\) mysql: their data was checked as files only$/,
    );
    expect(verdictOf(r.json as unknown as CheckReport).detail).toContain(
      'no verify hook for mysql: checked as files only',
    );
  });

  it('refuses a device that is mounted in explicit mode', async () => {
    const ext4 = lab.volume('ext4', {});
    lab.mount(ext4.device);
    const r = await lab.run(lab.explicit([[ext4, '/data']]));
    expect(r.json).toMatchObject({ status: 'inconclusive', reason: expect.stringMatching(/is mounted/) });
  });
});

describe.skipIf(!CAN_RUN)(
  'Verify Restore auto mode (a restored instance boots with its data mounted)',
  () => {
    let imds: http.Server;
    let imdsUrl: string;
    beforeEach(async () => {
      // IMDSv2 as the instance sees it: a session token first, then the instance id with that token.
      imds = http.createServer((req, res) => {
        if (req.method === 'PUT' && req.url === '/latest/api/token') return void res.end('token-1');
        if (
          req.url === '/latest/meta-data/instance-id' &&
          req.headers['x-aws-ec2-metadata-token'] === 'token-1'
        ) {
          return void res.end('i-0123456789abcdef0');
        }
        res.statusCode = 401;
        res.end();
      });
      await new Promise<void>((resolve) => imds.listen(0, '127.0.0.1', resolve));
      imdsUrl = `http://127.0.0.1:${(imds.address() as AddressInfo).port}`;
    });
    afterEach(() => imds.close());

    it('stops the process holding a data filesystem, unmounts it, checks it and mounts it read-only', async () => {
      const ext4 = lab.volume('ext4', { 'pg/PG_VERSION': '15\n' });
      const data = lab.mount(ext4.device, path.join(lab.dir, 'srv', 'data'));
      const holder = lab.holdOpen(path.join(data, 'pg/PG_VERSION'));
      await waitFor(() => fs.readdirSync(`/proc/${holder}/fd`).length > 3, 5000);
      lab.hook('50-seen', 'test -f "$ECB_VERIFY_ROOT'.concat(data, '/pg/PG_VERSION"'));

      const r = await lab.run(
        { ...lab.explicit([]), Filesystems: 'auto', MountRoot: '/' },
        { ECB_IMDS_URL: imdsUrl, ECB_VERIFY_AUTO_UNDER: lab.dir },
      );

      expect(r.json.status).toBe('verified');
      expect(r.json.stopped).toEqual([
        expect.stringMatching(new RegExp(`^sleep \\(${holder}\\) on ${data}$`)),
      ]);
      expect(await waitFor(() => processGone(holder), 5000)).toBe(true);
      expect(r.json.filesystems).toEqual([
        expect.objectContaining({ mountpoint: data, fsck: 'clean', mounted: true }),
      ]);
      expect(r.json.hooks).toEqual([expect.objectContaining({ name: '50-seen', verified: true })]);
      // Left unmounted: the test instance is deleted by AWS Backup after validation.
      expect(lab.mounted()).toEqual([]);
    });

    it('refuses to touch anything on an instance other than the restored one', async () => {
      const ext4 = lab.volume('ext4', { a: 'b' });
      const data = lab.mount(ext4.device, path.join(lab.dir, 'srv', 'data'));
      const holder = lab.holdOpen(path.join(data, 'a'));
      const r = await lab.run(
        { ...lab.explicit([]), Filesystems: 'auto', ExpectedInstanceId: 'i-0fffffffffffffff0' },
        { ECB_IMDS_URL: imdsUrl, ECB_VERIFY_AUTO_UNDER: lab.dir },
      );
      expect(r.json.status).toBe('inconclusive');
      expect(r.json.reason).toMatch(
        /this is i-0123456789abcdef0, not the restored instance i-0fffffffffffffff0/,
      );
      expect(processGone(holder)).toBe(false);
      expect(lab.mounted()).toEqual([data]);
    });
  },
);

describe.skipIf(!HAS_SHELLCHECK)('Verify Restore script', () => {
  it('is shellcheck clean as rendered', () => {
    const file = path.join(os.tmpdir(), `ecb-verify-sc-${process.pid}.sh`);
    fs.writeFileSync(
      file,
      `${renderDocument('verifyRestore', DEFAULT_CONFIG).mainSteps[0].inputs.runCommand.join('\n')}\n`,
    );
    const r = spawnSync('shellcheck', ['--shell=bash', '--severity=style', '--exclude=SC2317', file], {
      encoding: 'utf8',
    });
    fs.rmSync(file, { force: true });
    expect(`${r.stdout}${r.stderr}`).toBe('');
  });
});
