import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mustRun, run } from '../../lab/exec';
import { PG_BINDIR, PgServer, postgresAvailable } from '../../lab/postgres';

const REPO = path.join(__dirname, '..', '..');
const canRun = process.getuid?.() === 0 && postgresAvailable();
if (!canRun) console.warn('test/hooks: PostgreSQL hook tests need root and postgresql-15; skipped');

describe.skipIf(!canRun)('hooks/postgresql', () => {
  let dir = '';
  let server: PgServer;
  let pre = '';
  let post = '';
  const port = 55_391;

  beforeAll(async () => {
    await fs.mkdir('/var/tmp/ecb-lab', { recursive: true });
    dir = await fs.mkdtemp('/var/tmp/ecb-lab/hooktest-');
    await fs.chmod(dir, 0o755);
    server = new PgServer({
      dataDir: path.join(dir, 'data'),
      socketDir: path.join(dir, 'sock'),
      port,
      logFile: path.join(dir, 'pg.log'),
    });
    await server.init();
    await server.start();
    // Installed the way the README says, with settings next to the hook directories.
    for (const d of ['pre-freeze.d', 'post-thaw.d'])
      await fs.mkdir(path.join(dir, 'etc', d), { recursive: true });
    pre = path.join(dir, 'etc', 'pre-freeze.d', '20-postgresql');
    post = path.join(dir, 'etc', 'post-thaw.d', '80-postgresql');
    await mustRun('install', [
      '-m',
      '0755',
      path.join(REPO, 'hooks', 'postgresql', 'pre-freeze.d', '20-postgresql'),
      pre,
    ]);
    await mustRun('install', [
      '-m',
      '0755',
      path.join(REPO, 'hooks', 'postgresql', 'post-thaw.d', '80-postgresql'),
      post,
    ]);
    await fs.writeFile(
      path.join(dir, 'etc', 'postgresql.env'),
      `ECB_PG_HOST=${path.join(dir, 'sock')}\nECB_PG_PORT=${port}\nECB_PG_BINDIR=${PG_BINDIR}\n`,
    );
  }, 120_000);

  afterAll(async () => {
    await server?.stop('immediate');
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('pre-freeze runs a CHECKPOINT the server counts', async () => {
    const before = Number(await server.sql('select checkpoints_req from pg_stat_bgwriter'));
    const r = await run(pre, []);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^postgresql checkpoint done in \d+ ms$/m);
    expect(Number(await server.sql('select checkpoints_req from pg_stat_bgwriter'))).toBe(before + 1);
  });

  it('post-thaw reports a server accepting connections', async () => {
    const r = await run(post, []);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/accepting connections/);
  });

  it('both fail loudly when the server cannot be reached, so the backup is not called application-consistent', async () => {
    await fs.appendFile(path.join(dir, 'etc', 'postgresql.env'), 'ECB_PG_PORT=1\n');
    const p = await run(pre, []);
    expect(p.code).toBe(1);
    expect(p.stderr).toMatch(/postgresql CHECKPOINT failed: .*/);
    const t = await run(post, []);
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/not accepting connections/);
  });
});
