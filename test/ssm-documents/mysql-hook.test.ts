import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCUMENTS_DIR } from '../../lib/documents';
import { CAN_RUN, FsLab, SKIP_REASON, waitFor } from './fs-lab';

/**
 * The packaged MySQL/MariaDB example hooks (ssm-documents/examples/mysql) against a real MariaDB
 * server whose data directory is on the frozen volume: FLUSH TABLES WITH READ LOCK is held from the
 * pre-freeze hook until the thaw, or until the watchdog when no thaw comes.
 */

const HAS_MARIADB = ['/usr/sbin/mariadbd', '/usr/bin/mariadb', '/usr/bin/mariadb-install-db'].every((f) =>
  fs.existsSync(f),
);
const SKIP = !CAN_RUN ? SKIP_REASON : !HAS_MARIADB ? 'needs mariadb-server and mariadb-client (apt-get)' : '';
if (SKIP) console.warn(`MySQL example hook tests skipped: ${SKIP}`);

const EXAMPLE = path.join(DOCUMENTS_DIR, 'examples', 'mysql');
const HOOK = '10-mysql-read-lock';
// The lab volume is 64 MiB: the default 96 MiB redo log would not fit.

describe.skipIf(SKIP !== '')('MySQL read-lock example hooks on MariaDB', () => {
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

  // One server for the three cases: installing and starting MariaDB is most of the time.
  beforeAll(async () => {
    lab = new FsLab();
    vol = lab.addFilesystem('ext4');
    const datadir = path.join(vol.mountpoint, 'mysql');
    const socket = await lab.startMariaDb(datadir);
    cnf = path.join(lab.dir, 'mysql.cnf');
    fs.writeFileSync(cnf, `[client]\nsocket=${socket}\nuser=root\n`, { mode: 0o600 });
    sql('CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY) ENGINE=InnoDB');
    for (const phase of ['pre-freeze', 'post-thaw']) {
      lab.addHook(phase as 'pre-freeze', HOOK, '');
      fs.copyFileSync(path.join(EXAMPLE, `${phase}.d`, HOOK), path.join(lab.configDir, `${phase}.d`, HOOK));
    }
  });
  afterAll(async () => {
    await lab.cleanup();
  });

  /** An INSERT from another session, in the background: it waits while the read lock is held. */
  const insert = (id: number) => {
    const child = spawn(
      'mariadb',
      [`--defaults-extra-file=${cnf}`, '-e', `INSERT INTO shop.orders VALUES (${id})`],
      {
        stdio: 'ignore',
      },
    );
    let done = false;
    child.on('exit', () => {
      done = true;
    });
    return () => done;
  };

  it('holds FLUSH TABLES WITH READ LOCK across the freeze and releases it at the thaw', async () => {
    const env = { ECB_MYSQL_DEFAULTS: cnf };
    const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId]), { env });
    expect(freeze.code, freeze.stderr).toBe(0);
    expect(freeze.json.hooks[0].output).toMatch(/^read lock held by connection \d+ for at most 35s$/);
    const inserted = insert(1);
    expect(await waitFor(inserted, 1_000)).toBe(false);
    expect(sql('SHOW PROCESSLIST')).toContain('Waiting for backup lock');
    const thaw = await lab.run('thaw', { ExecutionId: 'test-exec-1', HookTimeoutSeconds: '5' }, { env });
    expect(thaw.json.hooks[0]).toMatchObject({ name: HOOK, exitCode: 0 });
    expect(thaw.json.hooks[0].output).toMatch(/^read lock released \(connection \d+, orchestrator\)$/);
    expect(thaw.json.postThawHooksOk).toBe(true);
    expect(await waitFor(inserted, 5_000)).toBe(true);
    expect(sql('SELECT COUNT(*) FROM shop.orders')).toBe('1');
  });

  it('is released by the watchdog when no thaw comes', async () => {
    const env = { ECB_MYSQL_DEFAULTS: cnf };
    const freeze = await lab.run(
      'freeze',
      lab.freezeParams([vol.volumeId], { WatchdogSeconds: '6', ExecutionId: 'watchdog-case' }),
      { env },
    );
    expect(freeze.json.status).toBe('frozen');
    const inserted = insert(2);
    expect(await waitFor(inserted, 3_000)).toBe(false);
    expect(await waitFor(inserted, 7_000, 50)).toBe(true);
    const thaw = await lab.run('thaw', { ExecutionId: 'watchdog-case', HookTimeoutSeconds: '5' }, { env });
    expect(thaw.json.watchdogFired).toBe(true);
    expect(thaw.json.hooks[0].output).toMatch(/^read lock released \(connection \d+, watchdog\)$/);
  });

  it('reports a lock session that ended before the thaw', async () => {
    const env = { ECB_MYSQL_DEFAULTS: cnf };
    const freeze = await lab.run('freeze', lab.freezeParams([vol.volumeId], { ExecutionId: 'killed-case' }), {
      env,
    });
    const id = /connection (\d+)/.exec(freeze.json.hooks[0].output)?.[1];
    expect(id).toMatch(/^\d+$/);
    // Someone kills the session: the lock no longer covers the snapshot.
    sql(`KILL ${id}`);
    const thaw = await lab.run('thaw', { ExecutionId: 'killed-case', HookTimeoutSeconds: '5' }, { env });
    expect(thaw.json.hooks[0].exitCode).toBe(1);
    expect(thaw.json.postThawHooksOk).toBe(false);
  });
});
