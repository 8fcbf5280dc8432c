/**
 * hooks/postgresql/verify.d/50-postgresql through the real Verify Restore document, as root, on a
 * loop-mounted ext4 holding a PostgreSQL 15 cluster that was stopped like a crash (a snapshot of a
 * running server): it starts on the read-only restored data with crash recovery and answers; a
 * damaged control file or a lost relation file makes it fail, naming what broke.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_BINDIR, PgServer, postgresAvailable } from '../../lab/postgres';
import { DEFAULT_CONFIG } from '../../lib/config';
import { renderDocument, scriptWithParameters } from '../../lib/documents';

const REPO = path.join(__dirname, '..', '..');
const canRun = process.getuid?.() === 0 && postgresAvailable() && fs.existsSync('/dev/loop-control');
if (!canRun) console.warn('postgresql verify hook tests need root, loop devices and postgresql-15; skipped');

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });
const quiet = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' });

describe.skipIf(!canRun)('hooks/postgresql verify.d', () => {
  let dir = '';
  let image = '';
  const loops: string[] = [];
  const data = '/var/lib/postgresql/15/main';
  let ledgerFile = '';

  const attach = (file: string) => {
    const loop = sh('losetup', ['--find', '--show', file]).trim();
    loops.push(loop);
    return loop;
  };

  /** A copy of the crashed cluster's volume, changed by `damage` (run on the mounted copy) first. */
  const copyWith = (name: string, damage: (mnt: string) => void) => {
    const copy = path.join(dir, `${name}.img`);
    sh('cp', ['--sparse=always', image, copy]);
    const loop = attach(copy);
    const mnt = path.join(dir, `damage-${name}`);
    fs.mkdirSync(mnt);
    sh('mount', [loop, mnt]);
    try {
      damage(path.join(mnt, '15/main'));
    } finally {
      sh('umount', [mnt]);
    }
    return loop;
  };

  const verify = (device: string) => {
    const script = path.join(dir, `verify-${Date.now()}.sh`);
    fs.writeFileSync(
      script,
      scriptWithParameters(renderDocument('verifyRestore', DEFAULT_CONFIG), {
        RestoreJobId: 'AB123456-78C9-0123-456D-789012E34567',
        ExpectedInstanceId: 'i-0123456789abcdef0',
        Filesystems: `${device}=/var/lib/postgresql`,
        MountRoot: path.join(dir, 'restored'),
        HooksDir: path.join(dir, 'etc', 'verify.d'),
        HookTimeoutSeconds: '300',
      }),
      { mode: 0o700 },
    );
    return new Promise<Record<string, unknown>>((resolve) => {
      const child = spawn('sh', ['-c', script], { env: { PATH: process.env.PATH }, cwd: dir });
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.on('close', () => resolve(JSON.parse(out)));
    });
  };

  beforeAll(async () => {
    fs.mkdirSync('/var/tmp/ecb-lab', { recursive: true });
    dir = fs.mkdtempSync('/var/tmp/ecb-lab/pgverify-');
    fs.chmodSync(dir, 0o755);
    image = path.join(dir, 'pg.img');
    fs.writeFileSync(image, '');
    fs.truncateSync(image, 128 * 1024 * 1024);
    const loop = attach(image);
    sh('mkfs.ext4', ['-q', '-F', loop]);
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    sh('mount', [loop, mnt]);
    try {
      fs.mkdirSync(path.join(mnt, '15'), { mode: 0o755 });
      const server = new PgServer({
        dataDir: path.join(mnt, '15/main'),
        socketDir: path.join(dir, 'sock'),
        port: 55_397,
        logFile: path.join(dir, 'origin.log'),
      });
      await server.init();
      await server.start();
      await server.sql(
        'create table ledger(id serial primary key, amount int); insert into ledger(amount) select g from generate_series(1, 1000) g; create table branches(id int primary key, balance int); insert into branches select g, 0 from generate_series(1, 10) g',
      );
      // After this checkpoint nothing writes the ledger again, so recovery cannot recreate its file.
      await server.sql('checkpoint');
      ledgerFile = await server.sql("select pg_relation_filepath('ledger')");
      await server.sql('update branches set balance = balance + 1');
      // Stopped like a crash: the restored copy needs recovery, as a snapshot of a running server does.
      await server.stop('immediate');
    } finally {
      sh('umount', [mnt]);
    }
    quiet('losetup', ['-d', loops.pop()!]);
    // Installed as hooks/README.md says: root-owned, not writable by others, settings beside the hook dirs.
    fs.mkdirSync(path.join(dir, 'etc', 'verify.d'), { recursive: true, mode: 0o755 });
    fs.chmodSync(path.join(dir, 'etc'), 0o755);
    sh('install', [
      '-m',
      '0700',
      path.join(REPO, 'hooks/postgresql/verify.d/50-postgresql'),
      path.join(dir, 'etc/verify.d/'),
    ]);
    fs.writeFileSync(path.join(dir, 'etc', 'postgresql.env'), `ECB_PG_BINDIR=${PG_BINDIR}\n`);
  }, 300_000);

  afterAll(() => {
    for (const mp of fs
      .readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1])) {
      if (mp?.startsWith(dir)) quiet('umount', ['-l', mp]);
    }
    for (const loop of loops) quiet('losetup', ['-d', loop]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('starts PostgreSQL on the read-only restore with crash recovery, queries every database, and changes nothing', async () => {
    const before = sh('sha256sum', [image]).split(' ')[0];
    const r = await verify(attach(image));
    expect(r.status).toBe('verified');
    const [hook] = r.hooks as { name: string; output: string; verified: boolean }[];
    expect(hook.name).toBe('50-postgresql');
    expect(hook.output).toMatch(
      new RegExp(
        `^PostgreSQL 15 on ${data}: started in \\d+ ms \\(redo done at [0-9A-F]+/[0-9A-F]+\\), 2 database\\(s\\) answered$`,
      ),
    );
    expect(sh('sha256sum', [image]).split(' ')[0]).toBe(before);
  }, 300_000);

  it('fails when the control file is damaged, quoting the server', async () => {
    const loop = copyWith('control', (pg) => {
      const fd = fs.openSync(path.join(pg, 'global/pg_control'), 'r+');
      fs.writeSync(fd, Buffer.alloc(64, 0xab), 0, 64, 16);
      fs.closeSync(fd);
    });
    const r = await verify(loop);
    expect(r.status).toBe('failed');
    expect(r.reason).toContain('verify hook 50-postgresql exited 1');
    const [hook] = r.hooks as { output: string }[];
    expect(hook.output).toMatch(/did not start on .*: .*(incorrect checksum in control file|control file)/);
  }, 300_000);

  it('fails when a table lost its relation file, naming the database', async () => {
    const loop = copyWith('relation', (pg) => fs.rmSync(path.join(pg, ledgerFile)));
    const r = await verify(loop);
    expect(r.status).toBe('failed');
    const [hook] = r.hooks as { output: string }[];
    expect(hook.output).toMatch(/database postgres on .* did not answer: .*could not open file/);
  }, 300_000);
});
