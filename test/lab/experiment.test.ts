import { afterAll, describe, expect, it } from 'vitest';
import { loadDocuments } from '../../lab/documents';
import { type Mode, runExperiment, type Sample, summarize } from '../../lab/experiment';
import { postgresAvailable } from '../../lab/postgres';
import { DEFAULT_CONFIG } from '../../lib/config';
import { capabilities, leftovers } from './lab-helpers';

const pg = postgresAvailable();
if (!pg)
  console.warn('test/lab: PostgreSQL 15 is not installed; the experiment runs without its PostgreSQL rows');

const of = (samples: readonly Sample[], workload: Sample['workload'], mode: Mode) =>
  samples.filter((s) => s.workload === workload && s.mode === mode);

/**
 * The CI form of `npm run bench:consistency` (which runs N=10 / N=5): the same code and the same
 * checks, N=3 ledger backups and one PostgreSQL backup per mode per filesystem (each PostgreSQL copy
 * without the hooks replays 65-78 MB of WAL to be checked, as seen on 2 December 2026; the
 * assertions compare the modes, which one backup each shows). Each workload on each
 * filesystem runs in a lab run of its own, all at once: the experiment waits on snapshot latencies,
 * freezes and copy checks far more than it computes, so side by side takes the time of the longest.
 */
const PG_N = 1;
let running: Promise<unknown> | undefined;
// Should the test time out, its runs still end (and clean up) before the worker goes away.
afterAll(async () => {
  await running;
}, 300_000);

async function runSideBySide(): Promise<{ samples: Sample[]; runDirs: string[] }> {
  const common = { startLatencyMs: 300, intervalMs: 300, documents: loadDocuments(), log: () => undefined };
  const all = Promise.allSettled(
    capabilities.filesystems.flatMap((fstype) => [
      runExperiment({ ...common, n: 3, pgN: 0, fstypes: [fstype] }),
      ...(pg ? [runExperiment({ ...common, n: 0, pgN: PG_N, fstypes: [fstype] })] : []),
    ]),
  );
  running = all;
  const settled = await all;
  // Every run has cleaned up (each does in a finally) before a failure is reported.
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  const runs = settled.map(
    (r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof runExperiment>>>).value,
  );
  return { samples: runs.flatMap((r) => r.samples), runDirs: runs.map((r) => r.runDir) };
}

describe.skipIf(!capabilities.real)(
  `consistency experiment, short (N=3 ledger, N=${PG_N} PostgreSQL per mode, on ${capabilities.filesystems.join(' and ')})`,
  () => {
    it('freeze with hooks: every copy clean and every invariant holding; the other modes show the difference', async () => {
      const { samples, runDirs } = await runSideBySide();
      console.log(summarize(samples));
      const filesystems = capabilities.filesystems.length;

      const hooked = samples.filter((s) => s.mode === 'freeze+hooks');
      expect(hooked.length).toBe(filesystems * 3 + (pg ? filesystems * PG_N : 0));
      for (const s of hooked) {
        expect(s.clean, `${s.workload} ${s.fstype}: ${s.detail}`).toBe(true);
        expect(
          s.ledger ? s.ledger.holds : s.pg?.invariantHolds,
          `${s.workload} ${s.fstype}: ${s.detail}`,
        ).toBe(true);
      }
      // Freezing alone gives a clean filesystem, not an application at a transaction boundary.
      const frozen = of(samples, 'ledger', 'freeze');
      expect(frozen.every((s) => s.clean)).toBe(true);
      // At least half torn (3 of 6 with ext4 and xfs).
      expect(frozen.filter((s) => !s.ledger?.holds).length).toBeGreaterThanOrEqual(
        Math.ceil(frozen.length / 2),
      );
      // No freeze: copies of a busy filesystem need journal or log replay (at least 4 of 6).
      const unfrozen = of(samples, 'ledger', 'no-freeze');
      expect(unfrozen.filter((s) => s.needsReplay).length).toBeGreaterThanOrEqual(
        Math.ceil((unfrozen.length * 2) / 3),
      );

      // The freeze window stays far below the budget.
      const freezes = samples.map((s) => s.freezeMs).filter((v): v is number => v !== undefined);
      expect(freezes.length).toBe(samples.filter((s) => s.mode !== 'no-freeze').length);
      expect(Math.max(...freezes)).toBeLessThan(DEFAULT_CONFIG.freezeBudgetSeconds * 1000);

      if (pg) {
        // PostgreSQL always runs crash recovery on a copy of a running server; the CHECKPOINT hook makes it short.
        const pgAll = samples.filter((s) => s.workload === 'postgresql');
        expect(pgAll.every((s) => s.pg?.started && s.pg.recovery && s.pg.invariantHolds)).toBe(true);
        const redo = (mode: Mode) =>
          Math.max(...of(samples, 'postgresql', mode).map((s) => s.pg?.redoBytes ?? 0));
        expect(redo('freeze+hooks')).toBeLessThan(
          Math.min(...of(samples, 'postgresql', 'freeze').map((s) => s.pg?.redoBytes ?? 0)),
        );
      }
      for (const runDir of runDirs) expect(await leftovers(runDir)).toEqual([]);
    }, 300_000);
  },
);
