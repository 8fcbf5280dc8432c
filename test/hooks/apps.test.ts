import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appHooksVersion } from '../../lib/documents';
import { PG_BINDIR, PgServer, postgresAvailable } from '../../lab/postgres';
import { CAN_RUN, FsLab, SKIP_REASON, waitFor } from '../ssm-documents/fs-lab';

/**
 * The packaged application hooks (ssm-documents/apps/), installed by the AppHooks document as the
 * workflow installs them, then run by the real Freeze and Thaw documents against real servers
 * whose data is on the frozen volume: Redis 7, MariaDB 10.11 and PostgreSQL 15 from Debian.
 */

const has = (f: string) => fs.existsSync(f);
const HAS_REDIS = has('/usr/bin/redis-server') && has('/usr/bin/redis-cli');
const HAS_MARIADB = ['/usr/sbin/mariadbd', '/usr/bin/mariadb', '/usr/bin/mariadb-install-db'].every(has);
const SKIP = CAN_RUN ? '' : SKIP_REASON;
if (SKIP) console.warn(`packaged application hook tests skipped: ${SKIP}`);

/** A background client command; returns whether it has ended yet. */
function background(cmd: string, args: string[]): (() => boolean) & { stderr: () => string } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let done = false;
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += String(d);
  });
  child.on('exit', () => {
    done = true;
  });
  return Object.assign(() => done, { stderr: () => stderr });
}

describe.skipIf(SKIP !== '')('AppHooks document', () => {
  let lab: FsLab;
  beforeAll(() => {
    lab = new FsLab();
  });
  afterAll(async () => {
    await lab.cleanup();
  });

  it('installs the named hooks root-only, leaves them unchanged when run again, removes those no longer named', async () => {
    const first = await lab.run('appHooks', { Apps: 'postgresql,mysql,redis' });
    expect(first.code, first.stderr).toBe(0);
    expect(first.json).toMatchObject({ status: 'installed', version: appHooksVersion(), removed: [] });
    expect(first.json.installed).toHaveLength(6);
    for (const phase of ['pre-freeze', 'post-thaw']) {
      const st = fs.statSync(path.join(lab.configDir, `${phase}.d`, '50-ecb-redis'));
      expect([st.uid, st.mode & 0o777]).toEqual([0, 0o700]);
    }
    const again = await lab.run('appHooks', { Apps: 'postgresql,mysql,redis' });
    expect(again.json.installed).toEqual([]);
    expect(again.json.unchanged).toHaveLength(6);
    const fewer = await lab.run('appHooks', { Apps: 'redis' });
    expect(fewer.json.removed.sort()).toEqual([
      'post-thaw.d/50-ecb-mysql',
      'post-thaw.d/50-ecb-postgresql',
      'pre-freeze.d/50-ecb-mysql',
      'pre-freeze.d/50-ecb-postgresql',
    ]);
    expect(fs.readdirSync(path.join(lab.configDir, 'pre-freeze.d'))).toEqual(['50-ecb-redis']);
    const none = await lab.run('appHooks', { Apps: '' });
    expect(none.json.removed).toHaveLength(2);
  });

  it('refuses an Apps value outside the packaged applications, naming it and what is allowed', async () => {
    const r = await lab.run('appHooks', { Apps: 'oracle' }, { unchecked: true });
    expect(r.code).toBe(1);
    expect(r.json.error).toEqual({
      code: 'INVALID_PARAMETER',
      message: 'Apps "oracle" is not allowed; allowed: empty or comma-separated postgresql, mysql, redis',
    });
  });
});

describe.skipIf(SKIP !== '' || !HAS_REDIS)('redis packaged hook', () => {
  let lab: FsLab;
  let vol: { volumeId: string; mountpoint: string };
  let server: ChildProcess;
  const port = 56_379;
  const cli = (...args: string[]) =>
    execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim();

  beforeAll(async () => {
    lab = new FsLab();
    vol = lab.addFilesystem('ext4');
    const dir = path.join(vol.mountpoint, 'redis');
    fs.mkdirSync(dir);
    server = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', ''],
      { stdio: 'ignore', detached: true },
    );
    lab.onCleanup(() => {
      server.kill('SIGKILL');
      execFileSync('sh', [
        '-c',
        `for i in $(seq 50); do kill -0 ${server.pid} 2>/dev/null || exit 0; sleep 0.1; done`,
      ]);
    });
    expect(
      await waitFor(() => {
        try {
          return cli('PING') === 'PONG';
        } catch {
          return false;
        }
      }, 10_000),
    ).toBe(true);
    const install = await lab.run('appHooks', { Apps: 'redis' });
    expect(install.code, install.stderr).toBe(0);
    fs.writeFileSync(path.join(lab.configDir, 'apps', 'redis.conf'), `REDIS_PORT=${port}\n`, { mode: 0o600 });
  }, 60_000);
  afterAll(async () => {
    await lab.cleanup();
  });

  it('pauses writes from before the freeze until the thaw; reads go on while frozen', async () => {
    cli('SET', 'before', '1');
    const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
    expect(freeze.code, freeze.stderr).toBe(0);
    expect(freeze.json.hooksConfigured).toBe(true);
    expect(freeze.json.hooks[0]).toMatchObject({ name: '50-ecb-redis', exitCode: 0 });
    expect(freeze.json.hooks[0].output).toMatch(/^redis: writes paused \(append-only file/);
    const written = background('redis-cli', ['-p', String(port), 'SET', 'during', '1']);
    expect(cli('GET', 'before')).toBe('1');
    expect(await waitFor(written, 1_000)).toBe(false);
    const thaw = await lab.run('thaw', { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' });
    expect(thaw.json.postThawHooksOk).toBe(true);
    expect(thaw.json.hooks[0].output).toMatch(/^redis: writes resumed after \d+ ms \(orchestrator\)$/);
    expect(await waitFor(written, 5_000)).toBe(true);
    expect(cli('GET', 'during')).toBe('1');
  });

  it('fails before anything is frozen when Redis is down, with the reason in the freeze error', async () => {
    fs.writeFileSync(path.join(lab.configDir, 'apps', 'redis.conf'), 'REDIS_PORT=1\n', { mode: 0o600 });
    const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId], { ExecutionId: 'down' }));
    fs.writeFileSync(path.join(lab.configDir, 'apps', 'redis.conf'), `REDIS_PORT=${port}\n`, { mode: 0o600 });
    expect(freeze.code).toBe(1);
    expect(freeze.json.error.code).toBe('HOOK_FAILED');
    expect(freeze.json.error.message).toMatch(
      /^pre-freeze hook 50-ecb-redis failed with exit code 1: redis: not reachable at 127\.0\.0\.1:1: .*; nothing was frozen, and the post-thaw hooks of the pre-freeze hooks that ran were run$/s,
    );
  });

  it('with RDB only, saves the dump under the pause, so it holds every write acknowledged before the freeze', async () => {
    const dir = path.join(vol.mountpoint, 'redis-rdb');
    fs.mkdirSync(dir);
    const rdbPort = port + 1;
    const rdb = spawn(
      'redis-server',
      [
        '--port',
        String(rdbPort),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--appendonly',
        'no',
        '--save',
        '3600 1',
      ],
      { stdio: 'ignore', detached: true },
    );
    const rcli = (...args: string[]) =>
      execFileSync('redis-cli', ['-p', String(rdbPort), ...args], { encoding: 'utf8' }).trim();
    try {
      expect(
        await waitFor(() => {
          try {
            return rcli('PING') === 'PONG';
          } catch {
            return false;
          }
        }, 10_000),
      ).toBe(true);
      rcli('SET', 'acknowledged', 'before-the-freeze');
      // A save moments before the hook's: when both end in the same second, LASTSAVE (one-second
      // resolution) does not change; the hook once waited for it until its limit killed it.
      rcli('SET', 'saved-just-before', 'yes');
      rcli('SAVE');
      fs.writeFileSync(path.join(lab.configDir, 'apps', 'redis.conf'), `REDIS_PORT=${rdbPort}\n`, {
        mode: 0o600,
      });
      const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId], { ExecutionId: 'rdb' }));
      expect(freeze.code, freeze.stderr).toBe(0);
      expect(freeze.json.hooks[0].output).toMatch(/^redis: writes paused, dump saved in \d+ ms$/);
      // The dump on the frozen filesystem already holds the write.
      const dump = fs.readFileSync(path.join(dir, 'dump.rdb'));
      expect(dump.includes(Buffer.from('before-the-freeze'))).toBe(true);
      const thaw = await lab.run('thaw', { ExecutionId: 'rdb', HookTimeoutSeconds: '5' });
      expect(thaw.json.postThawHooksOk).toBe(true);
    } finally {
      fs.writeFileSync(path.join(lab.configDir, 'apps', 'redis.conf'), `REDIS_PORT=${port}\n`, {
        mode: 0o600,
      });
      rdb.kill('SIGKILL');
      await waitFor(() => rdb.exitCode !== null || rdb.signalCode !== null, 5_000);
    }
  });

  it('refuses a settings file others can change', async () => {
    const conf = path.join(lab.configDir, 'apps', 'redis.conf');
    fs.chmodSync(conf, 0o666);
    const freeze = await lab.run(
      'freeze',
      lab.freezeParams([vol.volumeId], { ExecutionId: 'insecure-conf' }),
    );
    fs.chmodSync(conf, 0o600);
    expect(freeze.json.error.message).toContain(
      `redis: refusing ${conf}: it and its directory must be owned by root`,
    );
  });
});

describe.skipIf(SKIP !== '' || !HAS_MARIADB)('mysql packaged hook on MariaDB', () => {
  let lab: FsLab;
  let vol: { volumeId: string; mountpoint: string };
  let cnf: string;
  const sql = (statement: string) =>
    execFileSync(
      'mariadb',
      [`--defaults-extra-file=${cnf}`, '--batch', '--skip-column-names', '-e', statement],
      {
        encoding: 'utf8',
      },
    ).trim();

  beforeAll(async () => {
    lab = new FsLab();
    vol = lab.addFilesystem('ext4');
    const datadir = path.join(vol.mountpoint, 'mysql');
    const socket = await lab.startMariaDb(datadir);
    const install = await lab.run('appHooks', { Apps: 'mysql' });
    expect(install.code, install.stderr).toBe(0);
    // The credentials file the hook finds by default: apps/mysql.cnf, root's, 0600.
    cnf = path.join(lab.configDir, 'apps', 'mysql.cnf');
    fs.writeFileSync(cnf, `[client]\nsocket=${socket}\nuser=root\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(lab.configDir, 'apps', 'mysql.conf'), 'MYSQL_LOCK_WAIT_TIMEOUT=2\n', {
      mode: 0o600,
    });
    sql('CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY) ENGINE=InnoDB');
  }, 60_000);
  afterAll(async () => {
    await lab.cleanup();
  });

  it('holds FLUSH TABLES WITH READ LOCK from before the freeze until the thaw', async () => {
    const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
    expect(freeze.code, freeze.stderr).toBe(0);
    expect(freeze.json.hooks[0].output).toMatch(/^mysql: read lock held by connection \d+ for at most 35s$/);
    const inserted = background('mariadb', [
      `--defaults-extra-file=${cnf}`,
      '-e',
      'INSERT INTO shop.orders VALUES (1)',
    ]);
    expect(await waitFor(inserted, 1_000)).toBe(false);
    const thaw = await lab.run('thaw', { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' });
    expect(thaw.json.postThawHooksOk).toBe(true);
    expect(thaw.json.hooks[0].output).toMatch(/^mysql: read lock released \(connection \d+, orchestrator\)$/);
    expect(await waitFor(inserted, 5_000)).toBe(true);
    expect(sql('SELECT COUNT(*) FROM shop.orders')).toBe('1');
  });

  it('gives up within lock_wait_timeout when a long query holds the lock off, and freezes nothing', async () => {
    // A write statement still running: FLUSH TABLES WITH READ LOCK must wait for it.
    const long = background('mariadb', [
      `--defaults-extra-file=${cnf}`,
      '-e',
      'INSERT INTO shop.orders SELECT 100 + SLEEP(20)',
    ]);
    const running = () =>
      sql(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO shop.orders SELECT 100%'",
      ) === '1';
    expect(await waitFor(running, 5_000), long.stderr()).toBe(true);
    const started = Date.now();
    const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId], { ExecutionId: 'lock-timeout' }));
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(freeze.code).toBe(1);
    expect(freeze.json.error.code).toBe('HOOK_FAILED');
    expect(freeze.json.error.message).toMatch(/lock_wait_timeout \(2s\)/);
    expect(freeze.json.error.message).toMatch(/nothing was frozen/);
    const id = sql(
      "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO shop.orders SELECT 100%'",
    );
    sql(`KILL QUERY ${id}`);
    expect(await waitFor(long, 5_000)).toBe(true);
    // No lock left behind: a write goes through at once.
    sql('INSERT INTO shop.orders VALUES (2)');
  });
});

describe.skipIf(SKIP !== '' || !postgresAvailable())('postgresql packaged hook', () => {
  let lab: FsLab;
  let vol: { volumeId: string; mountpoint: string };
  let server: PgServer;
  const port = 55_392;

  beforeAll(async () => {
    lab = new FsLab();
    vol = lab.addFilesystem('ext4');
    // The server runs as postgres, which must reach its data directory.
    fs.chmodSync(lab.dir, 0o711);
    fs.chmodSync(vol.mountpoint, 0o755);
    const sock = path.join(vol.mountpoint, 'sock');
    server = new PgServer({
      dataDir: path.join(vol.mountpoint, 'data'),
      socketDir: sock,
      port,
      logFile: path.join(lab.dir, 'pg.log'),
    });
    await server.init();
    await server.start();
    lab.onCleanup(() => {
      execFileSync(
        'runuser',
        [
          '-u',
          'postgres',
          '--',
          path.join(PG_BINDIR, 'pg_ctl'),
          '-D',
          path.join(vol.mountpoint, 'data'),
          '-m',
          'immediate',
          'stop',
        ],
        { stdio: 'ignore' },
      );
    });
    const install = await lab.run('appHooks', { Apps: 'postgresql' });
    expect(install.code, install.stderr).toBe(0);
    fs.writeFileSync(
      path.join(lab.configDir, 'apps', 'postgresql.conf'),
      `PG_HOST=${sock}\nPG_PORT=${port}\nPG_BINDIR=${PG_BINDIR}\n`,
      { mode: 0o600 },
    );
  }, 120_000);
  afterAll(async () => {
    await lab.cleanup();
  });

  it('checkpoints before the freeze and finds the server answering after the thaw', async () => {
    const before = Number(await server.sql('select checkpoints_req from pg_stat_bgwriter'));
    const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]));
    expect(freeze.code, freeze.stderr).toBe(0);
    expect(freeze.json.hooks[0].output).toMatch(/^postgresql: checkpoint done in \d+ ms$/);
    const thaw = await lab.run('thaw', { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' });
    expect(thaw.json.postThawHooksOk).toBe(true);
    expect(thaw.json.hooks[0].output).toBe('postgresql: answering after the thaw');
    expect(Number(await server.sql('select checkpoints_req from pg_stat_bgwriter'))).toBeGreaterThan(before);
  });

  it('the preflight reports the server reachable and the hook able to run', async () => {
    const r = await lab.run('preflight', { VolumeIds: vol.volumeId, Apps: 'postgresql' });
    expect(r.json.apps).toEqual([
      {
        app: 'postgresql',
        ready: true,
        exitCode: 0,
        message: expect.stringMatching(
          /^postgresql: reachable on .* may CHECKPOINT\n\(postgresql hook [0-9a-f]{12}\)$/,
        ),
      },
    ]);
  });

  it('a server that is down fails the freeze with the reason, nothing frozen; the preflight says not ready', async () => {
    await server.stop('fast');
    const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId], { ExecutionId: 'pg-down' }));
    const pre = await lab.run('preflight', { VolumeIds: vol.volumeId, Apps: 'postgresql' });
    await server.start();
    expect(freeze.json.error.code).toBe('HOOK_FAILED');
    expect(freeze.json.error.message).toMatch(
      /^pre-freeze hook 50-ecb-postgresql failed with exit code 1: postgresql: CHECKPOINT failed on /,
    );
    expect(freeze.json.error.message).toMatch(/nothing was frozen/);
    expect(pre.json.ready).toBe(false);
    expect(pre.json.problems).toContainEqual({
      code: 'APP_NOT_READY',
      message: expect.stringMatching(/^postgresql: not reachable/),
    });
  });
});
