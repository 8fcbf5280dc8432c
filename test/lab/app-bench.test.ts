import { describe, expect, it } from 'vitest';
import { AckWriter } from '../../lab/ack-writer';
import { type AppSample, summarizeApps } from '../../lab/app-bench';
import { parseInnodbRecovery } from '../../lab/mariadb';
import { parseRedisLoad } from '../../lab/redis';
import { END, BEGIN, withTable } from '../../scripts/bench-consistency';

describe('the consistency bench, its pure parts', () => {
  it('reads InnoDB crash recovery and MyISAM repairs from a MariaDB 10.11 error log', () => {
    // Lines as mariadbd 10.11.19 (Debian 12) wrote them after a SIGKILL under sysbench.
    const log = [
      '2026-12-02 16:34:34 0 [Note] InnoDB: Starting crash recovery from checkpoint LSN=5307098',
      '2026-12-02 16:34:34 0 [Note] InnoDB: End of log at LSN=5396929',
      '2026-12-02 16:34:34 0 [Note] InnoDB: To recover: 50 pages',
      "2026-12-02 16:42:53 3 [ERROR] mariadbd: Table './ecb/m' is marked as crashed and should be repaired",
      "2026-12-02 16:42:53 3 [Warning] Checking table:   './ecb/m'",
    ].join('\n');
    expect(parseInnodbRecovery(log)).toEqual({
      recovery: true,
      redoBytes: 5396929 - 5307098,
      pages: 50,
      crashedTables: ['./ecb/m'],
    });
    expect(parseInnodbRecovery('[Note] InnoDB: log sequence number 44760; transaction id 14')).toEqual({
      recovery: false,
      redoBytes: 0,
      pages: 0,
      crashedTables: [],
    });
  });

  it("reads where Redis 7 loaded a copy's data from", () => {
    expect(parseRedisLoad('* DB loaded from disk: 0.002 seconds')).toMatchObject({ loaded: 'rdb' });
    expect(
      parseRedisLoad('* DB loaded from incr file appendonly.aof.1.incr.aof: 0.010 seconds'),
    ).toMatchObject({ loaded: 'aof', truncated: false });
    expect(parseRedisLoad('* Ready to accept connections')).toMatchObject({ loaded: 'nothing' });
  });

  it('knows the last write acknowledged before an instant', async () => {
    const w = new AckWriter(async () => undefined, 0);
    w.acks.push({ n: 1, atMs: 100 }, { n: 2, atMs: 200 }, { n: 3, atMs: 300 });
    expect([w.ackedBefore(50), w.ackedBefore(200), w.ackedBefore(201), w.ackedBefore(1e9)]).toEqual([
      0, 1, 2, 3,
    ]);
  });

  it('summarizes samples per application, filesystem and mode', () => {
    const sample = (over: Partial<AppSample>): AppSample => ({
      workload: 'postgresql',
      fstype: 'ext4',
      mode: 'freeze+hook',
      fsReplay: false,
      started: true,
      recovery: true,
      redoBytes: 1_000_000,
      acked: 100,
      missing: 0,
      freezeMs: 1000,
      hookMs: 500,
      detail: '',
      ...over,
    });
    const table = summarizeApps([
      sample({}),
      sample({ redoBytes: 3_000_000, freezeMs: 2000 }),
      sample({
        workload: 'redis',
        mode: 'freeze',
        loaded: 'rdb',
        recovery: false,
        missing: 7,
        hookMs: undefined,
      }),
    ]);
    const rows = table.split('\n').slice(2);
    expect(rows[0]).toMatch(
      /^\| postgresql \| ext4 \| freeze\+hook \| 2 \| 0\/2 +\| 2\/2 +\| 2\/2, redo p50 1\.0 MB max 3\.0 MB +\| 0\/2 +\| 1000 \/ 2000 +\| 500 +\|$/,
    );
    expect(rows[1]).toMatch(
      /\| redis +\| ext4 \| freeze +\| 1 \| .*loaded rdb 1 .*\| 1\/1 \(max 7 of 100\) .*\| - +\|$/,
    );
  });

  it('writes the measured section between the markers of docs/hooks.md, and refuses a doc without them', () => {
    const doc = `# Hooks\n${BEGIN}\nold\n${END}\nafter\n`;
    expect(withTable(doc, 'new table\n')).toBe(`# Hooks\n${BEGIN}\nnew table\n${END}\nafter\n`);
    expect(() => withTable('# Hooks\n', 'x')).toThrow(/no <!-- bench:consistency begin -->/);
  });
});
