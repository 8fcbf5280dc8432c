import { describe, expect, it } from 'vitest';
import {
  APIS,
  BACKUP_USE,
  backupUse,
  computePacing,
  type PacingSettings,
  parseApiRates,
  resolveProfile,
} from '../../../lambda/discovery/admission';
import { admissionSpanSeconds, planFleet } from '../../../lambda/discovery/fleet-plan';
import type { FleetInstance } from '../../../lambda/discovery/instances';
import { readSettings, SettingsError } from '../../../lambda/discovery/settings';
import { latestFrozenUntil, type StaggerSettings } from '../../../lambda/discovery/stagger';
import { freezePathConcurrency } from '../../../lib/concurrency';

const WINDOW = new Date('2026-11-22T02:00:00Z');
const base: PacingSettings = {
  region: 'us-east-1',
  regionProfile: 'auto',
  quotaShare: 0.85,
  apiRates: {},
  reservedConcurrency: {
    'freeze-filesystems': 25,
    'start-backup': 60,
    'wait-for-command': 15,
    'record-outcome': 20,
  },
};

function instance(n: number, group?: string): FleetInstance {
  return {
    instanceId: `i-${n.toString(16).padStart(17, '0')}`,
    ownerId: '111122223333',
    state: 'running',
    volumeIds: ['vol-0123456789abcdef0'],
    volumeDevices: [],
    tags: group ? [{ Key: 'ConsistentBackup:Group', Value: group }] : [],
  };
}

const stagger: StaggerSettings = {
  maxFrozenPerGroup: 2,
  watchdogSeconds: 90,
  hookTimeoutSeconds: 30,
  groupSlackSeconds: 900,
  ungroupedSlackSeconds: 3600,
  marginSeconds: 60,
};

describe('admission pacing', () => {
  it('resolves the Region profile: the three largest Regions are large, every other standard', () => {
    expect(['us-east-1', 'us-west-2', 'eu-west-1'].map((r) => resolveProfile('auto', r))).toEqual([
      'large',
      'large',
      'large',
    ]);
    expect(resolveProfile('auto', 'eu-central-1')).toBe('standard');
    expect(resolveProfile('large', 'eu-central-1')).toBe('large');
    expect(resolveProfile('standard', 'us-east-1')).toBe('standard');
  });

  it('paces to the tightest quota per backup, with the share applied, and names it', () => {
    const p = computePacing(base);
    expect(p.profile).toBe('large');
    // Today's shape: every frozen instance polls DescribeSnapshots (refill 20/s), 13 times per backup.
    expect(p.binding.name).toBe('describeSnapshots');
    expect(p.ratePerSecond).toBeCloseTo((0.85 * 20) / 13, 9);
    // Every limit is listed, tightest first, and no limit allows less than the rate.
    expect(p.limits.map((l) => l.name)).toContain('stateTransitions');
    expect(p.limits.map((l) => l.name)).toContain('lambda:freeze-filesystems');
    expect(p.limits.every((l) => l.backupsPerSecond >= p.ratePerSecond)).toBe(true);
    // Transitions at the slot: 9 of the 11 (two are spent at StartExecution: Check Input, then the Wait).
    expect(p.limits.find((l) => l.name === 'stateTransitions')).toMatchObject({
      perBackup: 9,
      bucket: { burst: 5000, ratePerSecond: 1500 },
    });
    // CreateTags comes after the freeze: it does not limit admission.
    expect(p.limits.find((l) => l.name === 'createTags')).toBeUndefined();
    // Discovery starts ahead of the slots, at 85 % of StartExecution, within the spare transitions.
    expect(p.start).toEqual({ burst: 1105, ratePerSecond: 0.85 * 300 });
  });

  it('uses the standard profile outside the three largest Regions, where transitions bind once EC2 and SSM are raised', () => {
    const raised = {
      ...base,
      region: 'ap-southeast-2',
      apiRates: parseApiRates(
        'describeSnapshots=10000,getCommandInvocation=10000,listBackupJobs=10000,describeBackupJob=10000,sendCommand=10000,startBackupJob=10000',
      ) as PacingSettings['apiRates'],
      reservedConcurrency: {
        'freeze-filesystems': 2000,
        'start-backup': 2000,
        'wait-for-command': 2000,
        'record-outcome': 1000,
      },
    };
    const p = computePacing(raised);
    expect(p.profile).toBe('standard');
    expect(p.binding.name).toBe('stateTransitions');
    expect(p.ratePerSecond).toBeCloseTo((0.85 * 500) / 9, 9);
    // The starts get only the transitions the admitted executions leave: 425 - 47.2 x 9 = 0 -> at least 1/s.
    expect(p.start.ratePerSecond).toBeGreaterThanOrEqual(1);
    expect(p.start.ratePerSecond).toBeLessThanOrEqual(0.85 * 150);
    const large = computePacing({ ...raised, regionProfile: 'large' });
    expect(large.ratePerSecond).toBeCloseTo((0.85 * 1500) / 9, 9);
  });

  it("counts the probe's polls for the snapshot start it plans for", () => {
    expect(BACKUP_USE).toEqual(backupUse(3));
    expect(backupUse(2)).toMatchObject({ describeSnapshots: 9, describeBackupJob: 2 });
    // 5 s of 250 ms polls, then one a second, plus the last one.
    expect(backupUse(30)).toMatchObject({ describeSnapshots: 20 + 25 + 1, describeBackupJob: 30 });
    const slow = computePacing({ ...base, snapshotStartSeconds: 30 });
    expect(slow.ratePerSecond).toBeCloseTo((0.85 * 20) / 46, 9);
  });

  it('parses apiRates overrides and names a bad item and what is allowed', () => {
    expect(parseApiRates('')).toEqual({});
    expect(parseApiRates('getCommandInvocation=50/200, stateTransitions=3000')).toEqual({
      getCommandInvocation: { ratePerSecond: 50, burst: 200 },
      stateTransitions: { ratePerSecond: 3000, burst: 15000 },
    });
    expect(parseApiRates('describeSnapshots=0.5')).toEqual({
      describeSnapshots: { ratePerSecond: 0.5, burst: 3 },
    });
    expect(parseApiRates('describeImages=5')).toMatch(/"describeImages=5".*one of startExecution/);
    expect(parseApiRates('sendCommand=0')).toMatch(/a rate above 0/);
    expect(parseApiRates('sendCommand=5,sendCommand=6')).toMatch(/each API at most once/);
    expect(APIS).toHaveLength(9);
  });
});

describe('admission slots in the fleet plan', () => {
  it('gives every instance its own slot, 1/rate apart in listing order, deterministic for the window', () => {
    const fleet = Array.from({ length: 50 }, (_, n) => instance(n + 1));
    const rate = 4;
    const a = planFleet(fleet, WINDOW, stagger, undefined, { ratePerSecond: rate });
    const b = planFleet([...fleet].reverse(), WINDOW, stagger, undefined, { ratePerSecond: rate });
    expect(a.map((e) => e.times.startAt.toISOString())).toEqual(b.map((e) => e.times.startAt.toISOString()));
    a.forEach((e, k) => {
      expect(e.times.startAt.getTime() - WINDOW.getTime()).toBe(Math.floor((k * 1000) / rate));
      // notAfter keeps its slack after the slot.
      expect(e.times.notAfter.getTime() - e.times.startAt.getTime()).toBe(3600_000);
    });
    // Without admission, as before: every ungrouped instance at the window.
    expect(
      planFleet(fleet, WINDOW, stagger).every((e) => e.times.startAt.getTime() === WINDOW.getTime()),
    ).toBe(true);
  });

  it('resumes a handed-over run with the same slots', () => {
    const fleet = Array.from({ length: 20 }, (_, n) => instance(n + 1, n < 8 ? 'db' : undefined));
    const all = planFleet(fleet, WINDOW, stagger, undefined, { ratePerSecond: 2 });
    const cut = all[11];
    const rest = planFleet(
      fleet,
      WINDOW,
      stagger,
      { afterKey: cut.key, boundarySlots: cut.slotsThrough },
      { ratePerSecond: 2 },
    );
    expect(rest.map((e) => [e.instance.instanceId, e.times.startAt.toISOString()])).toEqual(
      all.slice(12).map((e) => [e.instance.instanceId, e.times.startAt.toISOString()]),
    );
  });

  it('never admits faster than the rate, across groups and waves, and keeps every group wave after the previous one is over', () => {
    // Three groups of 7 (waves of 2) and 30 ungrouped: 51 slots at 0.04/s take 21 minutes, longer
    // than the 18-minute wave spacing, so wave 1 would be admitted among the last ungrouped slots
    // without the admission span (22 minutes, added to the spacing).
    const fleet = [
      ...Array.from({ length: 21 }, (_, n) => instance(n + 1, ['a', 'b', 'c'][n % 3])),
      ...Array.from({ length: 30 }, (_, n) => instance(100 + n)),
    ];
    const rate = 0.04;
    const entries = planFleet(fleet, WINDOW, stagger, undefined, { ratePerSecond: rate });
    const starts = entries.map((e) => e.times.startAt.getTime()).sort((x, y) => x - y);
    for (let k = 1; k < starts.length; k++)
      expect(starts[k] - starts[k - 1]).toBeGreaterThanOrEqual(Math.floor(1000 / rate));
    expect(admissionSpanSeconds(fleet.length, rate)).toBe(1320);
    for (const g of ['a', 'b', 'c']) {
      const members = entries.filter((e) => e.group === g);
      const waves = Math.max(...members.map((e) => e.wave ?? 0));
      for (let w = 1; w <= waves; w++) {
        const previousOver = Math.max(
          ...members
            .filter((e) => e.wave === w - 1)
            .map((e) => latestFrozenUntil(e.times, stagger).getTime()),
        );
        const next = Math.min(...members.filter((e) => e.wave === w).map((e) => e.times.startAt.getTime()));
        expect(next).toBeGreaterThan(previousOver);
      }
    }
  });
});

describe('discovery settings for admission', () => {
  const env = {
    AWS_REGION: 'eu-west-1',
    STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:111122223333:stateMachine:Workflow',
    OPT_IN_TAG_KEY: 'ConsistentBackup',
    OPT_IN_TAG_VALUE: 'enabled',
    ON_FREEZE_FAILURE: 'skip',
    MAX_FROZEN_PER_GROUP: '1',
    WATCHDOG_SECONDS: '90',
    HOOK_TIMEOUT_SECONDS: '30',
  };
  const admissionEnv = {
    ...env,
    REGION_PROFILE: 'auto',
    QUOTA_SHARE_PERCENT: '85',
    SNAPSHOT_START_SECONDS: '3',
    API_RATES: '',
    RESERVED_CONCURRENCY: freezePathConcurrency(),
  };

  it('computes the pacing at cold start from the Region and paces StartExecution by it', () => {
    const s = readSettings(admissionEnv);
    expect(s.admission?.profile).toBe('large');
    expect(s.admission?.ratePerSecond).toBeCloseTo((0.85 * 20) / 13, 9);
    expect(s).toMatchObject({ startBurst: 1105, startRatePerSecond: 255 });
    expect(
      readSettings({ ...admissionEnv, API_RATES: 'describeSnapshots=40/200' }).admission?.binding.name,
    ).not.toBe('describeSnapshots');
    expect(readSettings(env).admission).toBeUndefined();
  });

  it.each([
    ['REGION_PROFILE', 'huge', 'auto, large, standard'],
    ['API_RATES', 'describeSnapshots=fast', 'allowed <api>=<rate per second>'],
    ['RESERVED_CONCURRENCY', 'freeze-filesystems=0', '<function>=<reserved concurrency of at least 1>'],
    ['QUOTA_SHARE_PERCENT', '0', 'a whole number from 1 to 100'],
  ])('names %s, its value and what is allowed', (name, value, allowed) => {
    const bad = { ...admissionEnv, [name]: value };
    expect(() => readSettings(bad)).toThrow(SettingsError);
    expect(() => readSettings(bad)).toThrow(name);
    expect(() => readSettings(bad)).toThrow(allowed);
  });
});
