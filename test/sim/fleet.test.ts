import { describe, expect, it } from 'vitest';
import { BACKUP_USE } from '../../lambda/discovery/admission';
import { parseConfig } from '../../lib/config';
import { synthWorkflow } from '../../sim/asl';
import { type FleetRunReport, runFleet } from '../../sim/fleet/run';

/**
 * The CI case of `npm run bench:fleet`: 1,000 instances, large-Region profile, snapshots starting
 * a median 2 s after StartBackupJob, on the real definition and the real probe logic against
 * buckets for every API (docs/scale.md). Deterministic: virtual clock and a seeded random.
 */
describe('fleet simulation, 1,000 instances', () => {
  const config = parseConfig({});
  const asl = synthWorkflow({}).asl;
  const runs = new Map<string, Promise<FleetRunReport>>();
  const run = (pacing: 'admission' | 'none'): Promise<FleetRunReport> => {
    if (!runs.has(pacing)) runs.set(pacing, simulate(pacing));
    return runs.get(pacing) as Promise<FleetRunReport>;
  };
  const simulate = (pacing: 'admission' | 'none'): Promise<FleetRunReport> =>
    runFleet(asl, config, {
      size: 1000,
      profile: 'large',
      snapshotMedianSeconds: 2,
      pacing,
      quotaShare: 0.85,
      quotaOverrides: {},
      seed: 1,
      volumesPerInstance: 2,
    });

  it('admission loses none to throttling or concurrency, and throttles no call', async () => {
    const r = await run('admission');
    expect(r.lostToThrottling).toBe(0);
    expect(r.lost).toBe(0);
    expect(r.labels).toEqual({ filesystem: 1000 });
    expect(Object.values(r.throttled).every((n) => n === 0)).toBe(true);
    expect(r.lambdaRefused).toBe(0);
    expect(r.transitionsDelayed).toBe(0);
    expect(r.watchdogFired).toBe(0);
    // Every freeze ends within the budget; wall within 1.25x of what the binding quota allows.
    expect(r.freezeMs.max).toBeLessThan(config.freezeBudgetSeconds * 1000);
    expect(r.wallSeconds / r.minimumSeconds).toBeLessThan(1.25);
  }, 300_000);

  it("admission's per-backup table is not below what the run really used", async () => {
    const r = await run('admission');
    for (const [api, calls] of Object.entries(r.calls)) {
      const perBackup = calls / 1000;
      expect({ api, perBackup: perBackup <= BACKUP_USE[api as keyof typeof BACKUP_USE] }).toEqual({
        api,
        perBackup: true,
      });
    }
    expect(r.transitionsPerBackup).toBeLessThanOrEqual(BACKUP_USE.stateTransitions);
  }, 300_000);

  it('without admission (every startAt at the window) the same fleet loses backups: the pacing is what makes it 0', async () => {
    const r = await run('none');
    expect(r.lostToThrottling).toBeGreaterThan(0);
    expect(Object.values(r.throttled).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  }, 300_000);
});
