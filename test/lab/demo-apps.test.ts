import { afterAll, describe, expect, it } from 'vitest';
import { type DemoResult, demoTable, runDemo } from '../../lab/demo';
import { postgresAvailable } from '../../lab/postgres';
import { capabilities, leftovers } from './lab-helpers';

/**
 * The demo's PostgreSQL instance: tagged ConsistentBackup:Apps=postgresql and nothing else done to
 * it. Discovery reads the tag, the synthesized workflow's Freeze step sends the AppHooks document,
 * which installs the packaged hook, and the Freeze runs it: the label is application because of it.
 */
describe.skipIf(!capabilities.real || !postgresAvailable())(
  'npm run demo: a PostgreSQL server chosen by its Apps tag',
  () => {
    let demo: Promise<DemoResult> | undefined;
    afterAll(async () => {
      await demo?.catch(() => undefined);
    }, 180_000);

    it('gets the packaged hook from the AppHooks document, no file copied by hand, and the label application', async () => {
      const lines: string[] = [];
      demo = runDemo({
        instances: 1,
        kinds: ['postgresql-tag'],
        startLatencyMs: 500,
        capabilities,
        out: (l) => lines.push(l),
      });
      const result = await demo;
      console.log(demoTable(result.rows, result.simulated));
      const [row] = result.rows;
      expect(row).toMatchObject({
        consistency: 'application',
        expected: 'application',
        outcome: 'backed-up',
      });
      expect(row.reason).toMatch(/^application hooks ran and /);
      expect(row.appHooks).toMatch(
        /^AppHooks installed (pre-freeze\.d\/50-ecb-postgresql, post-thaw\.d\/50-ecb-postgresql|post-thaw\.d\/50-ecb-postgresql, pre-freeze\.d\/50-ecb-postgresql) \(hooks [0-9a-f]{12}\)$/,
      );
      expect(lines.some((l) => l.includes('no hook file was put on it by hand'))).toBe(true);
      // The copy, restored: PostgreSQL starts on it and pgbench's sums agree.
      expect(row.copyCheck).toMatch(/^xfs:clean\/postgresql started, redo [0-9.]+ MB, pgbench ok$/);
      expect(row.copiesClean).toBe(true);
      // The restore test on that copy: the Verify Restore document with the packaged PostgreSQL
      // verify hook (crash recovery on an overlay, every database answers), as on a restored instance.
      expect(row.verified).toMatch(/^verified \((ext4|xfs) clean, 50-postgresql ok\)$/);
      expect(await leftovers(result.runDir)).toEqual([]);
    }, 240_000);
  },
);
