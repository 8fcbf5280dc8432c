import { describe, expect, it } from 'vitest';
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

describe.skipIf(!capabilities.real)(
  'consistency experiment, short (N=3 ledger, N=2 PostgreSQL per mode per fs)',
  () => {
    it('freeze with hooks: every copy clean and every invariant holding; the other modes show the difference', async () => {
      const { samples, runDir } = await runExperiment({
        n: 3,
        pgN: pg ? 2 : 0,
        fstypes: ['ext4', 'xfs'],
        startLatencyMs: 300,
        intervalMs: 300,
        documents: loadDocuments(),
        log: () => undefined,
      });
      console.log(summarize(samples));

      const hooked = samples.filter((s) => s.mode === 'freeze+hooks');
      expect(hooked.length).toBe(2 * 3 + (pg ? 2 * 2 : 0));
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
      expect(frozen.filter((s) => !s.ledger?.holds).length).toBeGreaterThanOrEqual(3);
      // No freeze: copies of a busy filesystem need journal or log replay.
      expect(of(samples, 'ledger', 'no-freeze').filter((s) => s.needsReplay).length).toBeGreaterThanOrEqual(
        4,
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
      expect(await leftovers(runDir)).toEqual([]);
    }, 300_000);
  },
);
