import { describe, expect, it } from 'vitest';
import { classify, decideEntry, decideFromPlan } from '../../../lambda/discovery/classify';
import { planFleet, sortKey } from '../../../lambda/discovery/fleet-plan';
import { type FleetInstance, toFleetInstance } from '../../../lambda/discovery/instances';
import {
  type Clock,
  fullJitterDelay,
  isRetryable,
  isThrottle,
  TokenBucket,
} from '../../../lambda/discovery/rate';
import { defaultStartQuota, readSettings, SettingsError } from '../../../lambda/discovery/settings';
import {
  DEFAULT_MAX_STAGGER_SECONDS,
  groupWaveTimes,
  lastWave,
  latestFrozenUntil,
  type StaggerSettings,
  ungroupedTimes,
  waveSpacingSeconds,
} from '../../../lambda/discovery/stagger';
import {
  executionName,
  runIdFor,
  windowFromScheduledTime,
  windowStamp,
} from '../../../lambda/discovery/window';
import { parseInstanceOptions, parsePaths } from '../../../lambda/shared/instance-options';
import { MAX_FREEZE_VOLUMES } from '../../../lambda/shared/outcome';

const WINDOW = new Date('2026-11-22T02:00:00Z');

function instance(
  id: string,
  extra: Partial<FleetInstance> = {},
  tags: Record<string, string> = {},
): FleetInstance {
  return {
    instanceId: id,
    ownerId: '111122223333',
    state: 'running',
    volumeIds: ['vol-0123456789abcdef0'],
    volumeDevices: [],
    tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
    ...extra,
  };
}

describe('option tags', () => {
  it('accepts empty, comma- and space-separated absolute paths and returns them comma-separated', () => {
    expect(parsePaths('')).toEqual({ ok: true, paths: '' });
    expect(parsePaths('/data, /var/lib/pgsql  /srv/app-1/x_y.z')).toEqual({
      ok: true,
      paths: '/data,/var/lib/pgsql,/srv/app-1/x_y.z',
    });
  });

  it.each([
    ['relative path', 'data'],
    ['parent segment', '/data/../etc'],
    ['trailing parent segment', '/data/..'],
    ['shell metacharacter', '/data;rm -rf /'],
    ['quote', "/data'"],
    ['non-ASCII', '/dätä'],
    ['too many paths', Array.from({ length: 17 }, (_, i) => `/d${i}`).join(',')],
    ['too long', `/${'a'.repeat(256)}`],
  ])('refuses a %s', (_, value) => {
    expect(parsePaths(value).ok).toBe(false);
  });

  it('allows 16 paths and names every bad tag with its value and what is allowed', () => {
    expect(parsePaths(Array.from({ length: 16 }, (_, i) => `/d${i}`).join(' ')).ok).toBe(true);
    const result = parseInstanceOptions(
      [
        { Key: 'ConsistentBackup:Include', Value: '/data/../etc' },
        { Key: 'ConsistentBackup:Exclude', Value: 'tmp' },
        { Key: 'ConsistentBackup:OnFreezeFailure', Value: 'ignore' },
        { Key: 'ConsistentBackup:Group', Value: ' db' },
      ],
      'crash-consistent',
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => p.tag)).toEqual([
      'ConsistentBackup:Include',
      'ConsistentBackup:Exclude',
      'ConsistentBackup:OnFreezeFailure',
      'ConsistentBackup:Group',
    ]);
    expect(result.detail).toContain(
      'Tag ConsistentBackup:OnFreezeFailure has the invalid value "ignore"; allowed: crash-consistent or skip',
    );
    expect(result.detail).toContain('"tmp"');
  });

  it('applies the deployment default and a valid override', () => {
    expect(parseInstanceOptions([], 'skip')).toEqual({
      ok: true,
      options: { include: '', exclude: '', onFreezeFailure: 'skip' },
    });
    expect(
      parseInstanceOptions(
        [
          { Key: 'ConsistentBackup:OnFreezeFailure', Value: 'crash-consistent' },
          { Key: 'ConsistentBackup:Group', Value: 'pg-cluster/eu 1' },
        ],
        'skip',
      ),
    ).toEqual({
      ok: true,
      options: { include: '', exclude: '', onFreezeFailure: 'crash-consistent' },
      group: 'pg-cluster/eu 1',
    });
  });
});

describe('window and names', () => {
  it('truncates the scheduled time to the minute and derives names from it only', () => {
    const w = windowFromScheduledTime('2026-11-22T03:00:59.9+01:00');
    expect(w.toISOString()).toBe('2026-11-22T02:00:00.000Z');
    expect(windowStamp(w)).toBe('20261122T0200Z');
    expect(runIdFor(w)).toBe('run-20261122T0200Z');
    expect(executionName('i-0123456789abcdef0', w)).toBe('i-0123456789abcdef0-20261122T0200Z');
    expect(executionName('i-0123456789abcdef0', w).length).toBeLessThanOrEqual(80);
  });

  it('refuses a time without a zone or a date that does not exist', () => {
    expect(() => windowFromScheduledTime('2026-11-22T02:00:00')).toThrow(
      /allowed: an ISO-8601 time with a zone/,
    );
    expect(() => windowFromScheduledTime('2026-13-45T02:00:00Z')).toThrow(/a real calendar time/);
  });
});

describe('group staggering', () => {
  const base: StaggerSettings = {
    maxFrozenPerGroup: 1,
    watchdogSeconds: 90,
    hookTimeoutSeconds: 30,
    groupSlackSeconds: 900,
    ungroupedSlackSeconds: 3600,
    marginSeconds: 60,
  };

  it('separates waves by slack + hooks + watchdog + margin', () => {
    expect(waveSpacingSeconds(base)).toBe(1080);
    expect(groupWaveTimes(WINDOW, 2, base)).toEqual({
      startAt: new Date('2026-11-22T02:36:00Z'),
      notAfter: new Date('2026-11-22T02:51:00Z'),
    });
    expect(ungroupedTimes(WINDOW, base).notAfter.toISOString()).toBe('2026-11-22T03:00:00.000Z');
  });

  it('never lets two waves of a group be frozen at the same time, whatever the settings', () => {
    // Deterministic pseudo-random settings: a wave's latest possible freeze must end before the next wave may begin.
    let seed = 7;
    const rnd = (lo: number, hi: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return lo + (seed % (hi - lo + 1));
    };
    for (let trial = 0; trial < 500; trial++) {
      const s: StaggerSettings = {
        maxFrozenPerGroup: rnd(1, 10),
        watchdogSeconds: rnd(6, 300),
        hookTimeoutSeconds: rnd(1, 600),
        groupSlackSeconds: rnd(60, 3600),
        ungroupedSlackSeconds: 3600,
        marginSeconds: rnd(0, 120),
      };
      for (let wave = 0; wave < 5; wave++) {
        const current = groupWaveTimes(WINDOW, wave, s);
        const next = groupWaveTimes(WINDOW, wave + 1, s);
        expect(latestFrozenUntil(current, s).getTime()).toBeLessThanOrEqual(next.startAt.getTime());
        expect(current.notAfter.getTime()).toBeGreaterThan(current.startAt.getTime());
      }
    }
  });

  it('puts at most N members of a group in one wave, and only running members take slots', () => {
    const group = (id: string, state = 'running') =>
      instance(id, { state }, { 'ConsistentBackup:Group': 'db' });
    const plan = planFleet(
      [group('i-5'), group('i-1'), group('i-3', 'stopped'), group('i-2'), group('i-4'), instance('i-0')],
      WINDOW,
      { ...base, maxFrozenPerGroup: 2 },
    );
    expect(plan.map((e) => [e.instance.instanceId, e.wave])).toEqual([
      ['i-1', 0],
      ['i-2', 0],
      ['i-3', undefined],
      ['i-4', 1],
      ['i-5', 1],
      ['i-0', undefined],
    ]);
    expect(plan[3].times.startAt.toISOString()).toBe('2026-11-22T02:18:00.000Z');
  });

  it('schedules no wave later than the stagger limit: 1,121 waves fit in 14 days at 18 min apart', () => {
    expect(DEFAULT_MAX_STAGGER_SECONDS).toBe(14 * 86_400);
    expect(lastWave(base)).toBe(1120);
    const members = Array.from({ length: 1125 }, (_, i) =>
      instance(`i-${String(i).padStart(17, '0')}`, {}, { 'ConsistentBackup:Group': 'web' }),
    );
    const plan = planFleet(members, WINDOW, base);
    const over = plan.filter((e) => e.beyondStagger);
    expect(over.map((e) => e.wave)).toEqual([1121, 1122, 1123, 1124]);
    expect(over.every((e) => e.beyondStagger?.groupMembers === 1125)).toBe(true);
    const lastScheduled = plan.find((e) => e.wave === 1120);
    expect(lastScheduled?.beyondStagger).toBeUndefined();
    expect(lastScheduled?.times.startAt.getTime()).toBe(WINDOW.getTime() + 14 * 86_400_000);
    // Two per wave halves the waves: everyone fits.
    expect(planFleet(members, WINDOW, { ...base, maxFrozenPerGroup: 2 }).some((e) => e.beyondStagger)).toBe(
      false,
    );
  });

  it('excludes the overflow as stagger-limit, naming the group, its size, the setting and the limit', () => {
    const small = { ...base, maxStaggerSeconds: 3600 };
    // 3600 / 1080: waves 0-3 start within the hour.
    const members = ['i-a', 'i-b', 'i-c', 'i-d', 'i-e', 'i-f'].map((id) =>
      instance(id, {}, { 'ConsistentBackup:Group': 'db' }),
    );
    const plan = planFleet(members, WINDOW, small);
    const decisions = plan.map((e) => decideFromPlan(e, small));
    expect(decisions.slice(0, 4)).toEqual([undefined, undefined, undefined, undefined]);
    expect(decisions[4]).toMatchObject({ action: 'excluded', reason: 'stagger-limit' });
    expect(decisions[4]?.detail).toBe(
      'Instance i-e is in group db of 6 running members; at maxFrozenPerGroup=1 its wave 4 would start 2026-11-22T03:12:00.000Z, and waves more than 1 hour after the window are not scheduled. Raise maxFrozenPerGroup or split the group.',
    );
    // The dry run decides alike; an EC2 exclusion still comes first.
    const online = { pingStatus: 'Online', platformType: 'Linux' } as const;
    expect(plan.map((e) => decideEntry(e, online, 'skip', small).action)).toEqual([
      'freeze',
      'freeze',
      'freeze',
      'freeze',
      'excluded',
      'excluded',
    ]);
    const noEbs = planFleet(
      [
        ...members.slice(0, 4),
        instance('i-e', { rootDeviceType: 'instance-store' }, { 'ConsistentBackup:Group': 'db' }),
      ],
      WINDOW,
      small,
    );
    expect(noEbs[4].beyondStagger).toBeDefined();
    expect(decideEntry(noEbs[4], online, 'skip', small)).toMatchObject({ reason: 'no-ebs-volumes' });
    const resumed = planFleet(members, WINDOW, small, { afterKey: plan[3].key, boundarySlots: 4 });
    expect(resumed.map((e) => decideFromPlan(e, small)?.reason)).toEqual(['stagger-limit', 'stagger-limit']);
    expect(resumed[0].beyondStagger).toEqual({ groupMembers: 6 });
  });

  it('resumes with the same waves after a cursor that splits a group', () => {
    const members = Array.from({ length: 9 }, (_, i) =>
      instance(`i-${i}`, {}, { 'ConsistentBackup:Group': i < 6 ? 'a' : 'b' }),
    );
    const s = { ...base, maxFrozenPerGroup: 2 };
    const full = planFleet(members, WINDOW, s);
    const cut = full[2];
    // Even if a handled member has since been terminated, the count in the cursor keeps the waves.
    const resumed = planFleet(members.slice(1), WINDOW, s, {
      afterKey: cut.key,
      boundarySlots: cut.slotsThrough,
    });
    expect(resumed.map((e) => [e.instance.instanceId, e.wave])).toEqual(
      full.slice(3).map((e) => [e.instance.instanceId, e.wave]),
    );
  });

  it('orders grouped instances first, by group then id', () => {
    const keys = [
      instance('i-2'),
      instance('i-9', {}, { 'ConsistentBackup:Group': 'db-2' }),
      instance('i-1', {}, { 'ConsistentBackup:Group': 'db' }),
    ].map(sortKey);
    expect([...keys].sort()).toEqual([keys[2], keys[1], keys[0]]);
  });
});

describe('classification', () => {
  it('reads Windows from EC2 for stopped instances and from SSM for running ones', () => {
    const stopped = classify(
      instance('i-1', { state: 'stopped', platformDetails: 'Windows with SQL Server Standard' }),
      undefined,
      'skip',
    );
    expect(stopped).toMatchObject({ action: 'no-freeze', platform: 'windows' });
    const running = classify(instance('i-2'), { pingStatus: 'Online', platformType: 'Windows' }, 'skip');
    expect(running).toMatchObject({ action: 'freeze', platform: 'windows' });
  });

  it('excludes a running Linux instance with more volumes than the freeze document takes', () => {
    const volumes = (n: number) => Array.from({ length: n }, (_, i) => `vol-${String(i).padStart(17, '0')}`);
    const online = { pingStatus: 'Online', platformType: 'Linux' } as const;
    expect(
      classify(instance('i-1', { volumeIds: volumes(MAX_FREEZE_VOLUMES) }), online, 'skip'),
    ).toMatchObject({
      action: 'freeze',
    });
    const tooMany = classify(instance('i-1', { volumeIds: volumes(MAX_FREEZE_VOLUMES + 1) }), online, 'skip');
    expect(tooMany).toMatchObject({ action: 'excluded', reason: 'too-many-volumes' });
    expect(tooMany.action === 'excluded' && tooMany.detail).toContain(
      `has ${MAX_FREEZE_VOLUMES + 1} attached EBS volumes; the freeze document takes at most ${MAX_FREEZE_VOLUMES}`,
    );
    // Windows takes no volume list, and a stopped instance is not frozen.
    const windows = { pingStatus: 'Online', platformType: 'Windows' } as const;
    expect(classify(instance('i-2', { volumeIds: volumes(60) }), windows, 'skip')).toMatchObject({
      action: 'freeze',
      platform: 'windows',
    });
    expect(
      classify(instance('i-3', { state: 'stopped', volumeIds: volumes(60) }), undefined, 'skip'),
    ).toMatchObject({ action: 'no-freeze' });
  });

  it('keeps only attached volumes from the block device mappings', () => {
    const fleetInstance = toFleetInstance(
      {
        InstanceId: 'i-1',
        State: { Name: 'running' },
        BlockDeviceMappings: [
          { DeviceName: '/dev/xvda', Ebs: { VolumeId: 'vol-1', Status: 'attached' } },
          { DeviceName: '/dev/xvdb', Ebs: { VolumeId: 'vol-2', Status: 'detaching' } },
          { DeviceName: '/dev/xvdc', Ebs: { VolumeId: 'vol-3', Status: 'attaching' } },
        ],
        Tags: [
          { Key: 'Owner', Value: 'x' },
          { Key: 'ConsistentBackup:Group', Value: 'g' },
        ],
      },
      '111122223333',
    );
    expect(fleetInstance?.volumeIds).toEqual(['vol-1', 'vol-3']);
    expect(fleetInstance?.tags).toEqual([{ Key: 'ConsistentBackup:Group', Value: 'g' }]);
  });

  it('pairs each attached volume with its device name, leaving out names the freeze document refuses', () => {
    const fleetInstance = toFleetInstance(
      {
        InstanceId: 'i-1',
        State: { Name: 'running' },
        BlockDeviceMappings: [
          { DeviceName: '/dev/xvda', Ebs: { VolumeId: 'vol-0aaaaaaaaaaaaaaa1', Status: 'attached' } },
          { DeviceName: '/dev/sdf', Ebs: { VolumeId: 'vol-0aaaaaaaaaaaaaaa2', Status: 'attached' } },
          { DeviceName: '/dev/sdg', Ebs: { VolumeId: 'vol-0aaaaaaaaaaaaaaa3', Status: 'detaching' } },
          // Names the document's pattern (/dev/[a-z0-9]{1,16}) does not take: left out, not passed raw.
          { DeviceName: 'xvdh', Ebs: { VolumeId: 'vol-0aaaaaaaaaaaaaaa4', Status: 'attached' } },
          {
            DeviceName: '/dev/sdi,vol-0bbbbbbbbbbbbbbb1=/dev/sda',
            Ebs: { VolumeId: 'vol-0aaaaaaaaaaaaaaa5' },
          },
          { DeviceName: '/dev/SDJ', Ebs: { VolumeId: 'vol-0aaaaaaaaaaaaaaa6', Status: 'attached' } },
          { Ebs: { VolumeId: 'vol-0aaaaaaaaaaaaaaa7', Status: 'attached' } },
        ],
      },
      '111122223333',
    );
    expect(fleetInstance?.volumeIds).toHaveLength(6);
    expect(fleetInstance?.volumeDevices).toEqual([
      'vol-0aaaaaaaaaaaaaaa1=/dev/xvda',
      'vol-0aaaaaaaaaaaaaaa2=/dev/sdf',
    ]);
  });
});

describe('pacing', () => {
  class VirtualClock implements Clock {
    t = 0;
    now = () => this.t;
    sleep = async (ms: number) => {
      this.t += ms;
    };
  }

  it('lets the burst through at once, then paces at the refill rate', async () => {
    const clock = new VirtualClock();
    const bucket = new TokenBucket(10, 5, clock);
    for (let i = 0; i < 10; i++) await bucket.take();
    expect(clock.t).toBe(0);
    for (let i = 0; i < 5; i++) await bucket.take();
    expect(clock.t).toBeCloseTo(1000, 0);
  });

  it('starts a handed-over invocation with only the tokens refilled since the hand-over', async () => {
    const clock = new VirtualClock();
    const bucket = new TokenBucket(1300, 300, clock, 3);
    for (let i = 0; i < 3; i++) await bucket.take();
    expect(clock.t).toBe(0);
    await bucket.take();
    expect(clock.t).toBeCloseTo(1000 / 300, 3);
  });

  it('forgets the burst after a throttle', async () => {
    const clock = new VirtualClock();
    const bucket = new TokenBucket(100, 10, clock);
    bucket.drain();
    await bucket.take();
    expect(clock.t).toBeCloseTo(100, 0);
  });

  it('spreads retries with full jitter up to the cap', () => {
    expect(fullJitterDelay(0, 100, 5000, () => 0.999)).toBe(99);
    expect(fullJitterDelay(10, 100, 5000, () => 0.5)).toBe(2500);
    expect(fullJitterDelay(3, 100, 5000, () => 0)).toBe(0);
  });

  it('retries throttling, server faults and network errors, and nothing else', () => {
    expect(isThrottle({ name: 'ThrottlingException' })).toBe(true);
    expect(isRetryable({ name: 'ServiceUnavailable' })).toBe(true);
    expect(isRetryable({ name: 'Error', code: 'ECONNRESET' })).toBe(true);
    expect(isRetryable({ name: 'InternalServerError', $fault: 'server' })).toBe(true);
    expect(isRetryable({ name: 'AccessDeniedException', $fault: 'client' })).toBe(false);
    expect(isRetryable({ name: 'InvalidExecutionInput' })).toBe(false);
  });
});

describe('settings', () => {
  const env = {
    AWS_REGION: 'ap-southeast-2',
    STATE_MACHINE_ARN: 'arn:aws:states:ap-southeast-2:111122223333:stateMachine:Workflow',
    OPT_IN_TAG_KEY: 'ConsistentBackup',
    OPT_IN_TAG_VALUE: 'enabled',
    ON_FREEZE_FAILURE: 'skip',
    MAX_FROZEN_PER_GROUP: '1',
    WATCHDOG_SECONDS: '90',
    HOOK_TIMEOUT_SECONDS: '30',
  };

  it('reads the stagger limit, defaulting to the workflow default, and names a bad value', () => {
    expect(readSettings(env).stagger.maxStaggerSeconds).toBe(DEFAULT_MAX_STAGGER_SECONDS);
    expect(readSettings({ ...env, MAX_STAGGER_SECONDS: '86400' }).stagger.maxStaggerSeconds).toBe(86_400);
    expect(() => readSettings({ ...env, MAX_STAGGER_SECONDS: '2w' })).toThrow(
      'Invalid environment variable MAX_STAGGER_SECONDS: got "2w"; allowed: a whole number from 0 to 31536000.',
    );
  });

  it('defaults the StartExecution pace to the documented quota of the region', () => {
    expect(readSettings(env)).toMatchObject({
      startBurst: 800,
      startRatePerSecond: 150,
      handOverReserveMs: 60_000,
    });
    expect(defaultStartQuota('eu-west-1')).toEqual({ burst: 1300, rate: 300 });
    expect(readSettings({ ...env, START_RATE_PER_SECOND: '1000' }).startRatePerSecond).toBe(1000);
  });

  it.each([
    [
      'STATE_MACHINE_ARN',
      'arn:aws:lambda:eu-west-1:111122223333:function:x',
      'a Step Functions state machine ARN',
    ],
    ['MAX_FROZEN_PER_GROUP', '0', 'a whole number from 1 to 1000'],
    ['ON_FREEZE_FAILURE', 'ignore', 'crash-consistent or skip'],
    ['AWS_REGION', undefined, 'an AWS region name'],
  ])('names %s, its value and what is allowed', (name, value, allowed) => {
    const bad = { ...env, [name]: value };
    expect(() => readSettings(bad)).toThrow(SettingsError);
    expect(() => readSettings(bad)).toThrow(name);
    expect(() => readSettings(bad)).toThrow(allowed);
  });
});
