import { afterEach, describe, expect, it } from 'vitest';
import {
  type DiscoveryResult,
  HandOverError,
  runDiscovery,
  StartExecutionFailedError,
} from '../../../lambda/discovery/discover';
import { InvalidEventError } from '../../../lambda/discovery/window';
import type { WorkflowInput } from '../../../lambda/shared/workflow-input';
import { FakeAws, type FakeInstance, fleet, OWNER, volumeFor } from '../../../sim/discovery-aws';
import { lcg, VirtualClock } from '../../../sim/fleet/virtual-clock';
import { deps, FUNCTION_ARN, plentyOfTime, RecordingLog, RecordingSink, testSettings } from './helpers';

const EVENT = {
  scheduledTime: '2026-11-22T02:00:37Z',
  scheduleArn: 'arn:aws:scheduler:eu-west-1:111122223333:schedule/default/x',
};
const STAMP = '20261122T0200Z';

let fake: FakeAws | undefined;
afterEach(() => {
  fake?.restore();
  fake = undefined;
});

function inputs(f: FakeAws): Map<string, WorkflowInput> {
  const map = new Map<string, WorkflowInput>();
  for (const e of f.executions.values()) map.set(e.instanceId, JSON.parse(e.input) as WorkflowInput);
  return map;
}

/** A virtual clock read in whole milliseconds, as Date.now() is (the hand-over cursor checks it). */
type WholeMsClock = Pick<VirtualClock, 'now' | 'sleep' | 'run'>;
function wholeMs(vc: VirtualClock): WholeMsClock {
  return { now: () => Math.floor(vc.now()), sleep: (ms) => vc.sleep(ms), run: (w) => vc.run(w) };
}

/** Runs a handed-over chain to the end, the way Lambda would deliver each asynchronous invocation. */
async function runChain(
  f: FakeAws,
  sink: RecordingSink,
  log: RecordingLog,
  settings = testSettings(),
  budgetMs = 900_000,
  /** A per-invocation clock instead of wall time, e.g. "time is up after K calls". */
  remaining?: () => () => number,
  /** Run on this virtual clock (deps, deadlines and the fake's latency): deterministic under load. */
  clock?: WholeMsClock,
): Promise<DiscoveryResult[]> {
  const results: DiscoveryResult[] = [];
  let event: Record<string, unknown> = EVENT;
  const now = () => (clock ? clock.now() : Date.now());
  for (let n = 0; n < 60; n++) {
    const deadline = now() + budgetMs;
    const remainingMs = remaining ? remaining() : () => deadline - now();
    const before = f.invocations.length;
    const invocation = runDiscovery(
      event,
      { functionArn: FUNCTION_ARN, remainingMs },
      clock ? { ...deps(sink, log, settings), clock, random: lcg(n + 1) } : deps(sink, log, settings),
    );
    results.push(await (clock ? clock.run(invocation) : invocation));
    if (f.invocations.length === before) return results;
    event = f.invocations[f.invocations.length - 1] as Record<string, unknown>;
  }
  throw new Error('chain did not end');
}

describe('discovery: listing and readiness', () => {
  it('follows DescribeInstances pages and filters on the opt-in tag and live states', async () => {
    fake = new FakeAws(
      [
        ...fleet(10),
        { id: 'i-0000000000000aaaa', tags: { ConsistentBackup: 'disabled' } },
        { id: 'i-0000000000000bbbb', tags: {} },
      ],
      { pageSize: 3 },
    );
    const sink = new RecordingSink();
    const result = await runDiscovery(EVENT, plentyOfTime, deps(sink, new RecordingLog()));
    expect(fake.counts.describe).toBe(4);
    expect(result.describePages).toBe(4);
    expect(fake.describeInputs[0]).toMatchObject({
      Filters: [
        { Name: 'tag:ConsistentBackup', Values: ['enabled'] },
        {
          Name: 'instance-state-name',
          Values: ['pending', 'running', 'stopping', 'stopped', 'shutting-down'],
        },
      ],
      MaxResults: 1000,
    });
    expect((fake.describeInputs[1] as { NextToken: string }).NextToken).toBe('3');
    expect(result.summary).toMatchObject({ discovered: 10, started: 10, alreadyRunning: 0, excluded: {} });
    expect(fake.executions.size).toBe(10);
    expect([...fake.executions.values()].map((e) => e.instanceId)).not.toContain('i-0000000000000aaaa');
  });

  it('asks SSM about running instances only, at most 50 ids a call', async () => {
    fake = new FakeAws(fleet(120, (i) => (i % 4 === 0 ? { state: 'stopped' } : {})));
    const result = await runDiscovery(EVENT, plentyOfTime, deps(new RecordingSink(), new RecordingLog()));
    const asked = fake.ssmMock.commandCalls(
      (await import('@aws-sdk/client-ssm')).DescribeInstanceInformationCommand,
    );
    const ids = asked.flatMap((c) => c.args[0].input.Filters?.[0].Values ?? []);
    expect(ids).toHaveLength(90);
    expect(asked.every((c) => (c.args[0].input.Filters?.[0].Values?.length ?? 0) <= 50)).toBe(true);
    expect(result.ssmCalls).toBe(2);
    expect(result.summary.started).toBe(120);
  });

  it('falls back to one id at a time when SSM refuses a batch with InvalidInstanceId', async () => {
    const instances = fleet(5);
    fake = new FakeAws(instances, { ssmInvalidIds: new Set([instances[2].id]) });
    const result = await runDiscovery(EVENT, plentyOfTime, deps(new RecordingSink(), new RecordingLog()));
    expect(result.summary.started).toBe(4);
    expect(result.excluded).toEqual([
      expect.objectContaining({ instanceId: instances[2].id, reason: 'ssm-not-managed' }),
    ]);
  });
  it('reports instances whose readiness could not be read as failed, and still backs up stopped ones', async () => {
    const error = Object.assign(new Error('not authorized to perform ssm:DescribeInstanceInformation'), {
      name: 'AccessDeniedException',
    });
    fake = new FakeAws(
      fleet(4, (i) => (i === 0 ? { state: 'stopped' } : {})),
      { ssmError: error },
    );
    const sink = new RecordingSink();
    const log = new RecordingLog();
    await expect(runDiscovery(EVENT, plentyOfTime, deps(sink, log))).rejects.toThrow(
      /3 instance\(s\) could not be started.*AccessDeniedException/,
    );
    expect(fake.executions.size).toBe(1);
    expect(sink.discoveries[0].summary).toMatchObject({ discovered: 4, started: 1, excluded: {} });
    expect(log.summaries()[0]).toMatchObject({ failed: 3 });
  });

  it('logs the first 20 failures one by one and counts the rest, so a fleet-wide fault does not flood the log', async () => {
    const instances = fleet(30);
    fake = new FakeAws(instances, { startFailures: new Set(instances.map((i) => i.id)) });
    const log = new RecordingLog();
    await expect(runDiscovery(EVENT, plentyOfTime, deps(new RecordingSink(), log))).rejects.toThrow(
      /30 instance\(s\) could not be started/,
    );
    expect(log.lines.filter((l) => l.message === 'StartExecution failed')).toHaveLength(20);
    expect(log.lines.filter((l) => l.level === 'error')).toHaveLength(21);
    expect(log.summaries()[0]).toMatchObject({ failed: 30 });
    expect(log.summaries()[0].failedInstances).toHaveLength(20);
  });
});

describe('discovery: a mixed fleet', () => {
  const raw: FakeInstance[] = [
    { id: 'i-00000000000000001', tags: { Name: 'web-1' } },
    { id: 'i-00000000000000002', platform: 'windows', tags: { Name: 'sql-1' } },
    { id: 'i-00000000000000003', ssm: { ping: 'ConnectionLost' } },
    { id: 'i-00000000000000004', ssm: null },
    { id: 'i-00000000000000005', state: 'stopped', platform: 'windows' },
    { id: 'i-00000000000000006', volumes: [] },
    { id: 'i-00000000000000007', rootDeviceType: 'instance-store', volumes: [] },
    { id: 'i-00000000000000008', state: 'pending' },
    { id: 'i-00000000000000009', tags: { 'ConsistentBackup:Include': '/data/../etc' } },
    { id: 'i-0000000000000000a', ssm: { ping: 'Online', platformType: 'MacOS' } },
    {
      id: 'i-0000000000000000b',
      volumes: ['vol-0aaaaaaaaaaaaaaa1', 'vol-0aaaaaaaaaaaaaaa2'],
      tags: { 'ConsistentBackup:Include': '/data /logs', 'ConsistentBackup:OnFreezeFailure': 'skip' },
    },
    { id: 'i-0000000000000000c', state: 'stopping' },
  ];
  const mixed = raw.map((f) => ({ ...f, tags: { ConsistentBackup: 'enabled', ...f.tags } }));

  it('starts the ready ones, backs up stopped ones without a freeze, and excludes the rest with reasons', async () => {
    fake = new FakeAws(mixed);
    const sink = new RecordingSink();
    const log = new RecordingLog();
    const result = await runDiscovery(EVENT, plentyOfTime, deps(sink, log));

    const started = inputs(fake);
    expect([...started.keys()].sort()).toEqual([
      'i-00000000000000001',
      'i-00000000000000002',
      'i-00000000000000005',
      'i-0000000000000000b',
    ]);
    expect(started.get('i-00000000000000001')).toEqual({
      schemaVersion: 1,
      runId: `run-${STAMP}`,
      window: '2026-11-22T02:00:00Z',
      accountId: OWNER,
      region: 'eu-west-1',
      instanceId: 'i-00000000000000001',
      instanceArn: `arn:aws:ec2:eu-west-1:${OWNER}:instance/i-00000000000000001`,
      instanceName: 'web-1',
      platform: 'linux',
      instanceState: 'running',
      volumeIds: [volumeFor('i-00000000000000001')],
      volumeDevices: [`${volumeFor('i-00000000000000001')}=/dev/sda`],
      startAt: '2026-11-22T02:00:00.000Z',
      notAfter: '2026-11-22T03:00:00.000Z',
      options: { include: '', exclude: '', onFreezeFailure: 'crash-consistent' },
    });
    expect(started.get('i-00000000000000002')).toMatchObject({
      platform: 'windows',
      instanceState: 'running',
    });
    expect(started.get('i-00000000000000005')).toMatchObject({
      platform: 'windows',
      instanceState: 'stopped',
    });
    expect(started.get('i-0000000000000000b')).toMatchObject({
      volumeIds: ['vol-0aaaaaaaaaaaaaaa1', 'vol-0aaaaaaaaaaaaaaa2'],
      volumeDevices: ['vol-0aaaaaaaaaaaaaaa1=/dev/sda', 'vol-0aaaaaaaaaaaaaaa2=/dev/sdb'],
      options: { include: '/data,/logs', exclude: '', onFreezeFailure: 'skip' },
    });

    const reasons = Object.fromEntries(result.excluded.map((e) => [e.instanceId, e.reason]));
    expect(reasons).toEqual({
      'i-00000000000000003': 'ssm-offline',
      'i-00000000000000004': 'ssm-not-managed',
      'i-00000000000000006': 'no-ebs-volumes',
      'i-00000000000000007': 'no-ebs-volumes',
      'i-00000000000000008': 'unsupported-state',
      'i-00000000000000009': 'invalid-tag',
      'i-0000000000000000a': 'unsupported-platform',
      'i-0000000000000000c': 'unsupported-state',
    });
    const invalid = result.excluded.find((e) => e.reason === 'invalid-tag');
    expect(invalid?.detail).toContain('ConsistentBackup:Include');
    expect(invalid?.detail).toContain('"/data/../etc"');
    expect(invalid?.detail).toContain('no ".." segment');
    expect(result.excluded.find((e) => e.reason === 'ssm-offline')?.detail).toContain('ConnectionLost');

    expect(sink.discoveries).toHaveLength(1);
    expect(sink.discoveries[0].summary).toMatchObject({
      runId: `run-${STAMP}`,
      window: '2026-11-22T02:00:00Z',
      accountId: '111122223333',
      region: 'eu-west-1',
      discovered: 12,
      started: 4,
      alreadyRunning: 0,
      excluded: {
        'ssm-offline': 1,
        'ssm-not-managed': 1,
        'no-ebs-volumes': 2,
        'unsupported-state': 2,
        'invalid-tag': 1,
        'unsupported-platform': 1,
      },
      handedOver: 0,
    });
    expect(sink.discoveries[0].excluded).toHaveLength(8);
    const [summary] = log.summaries();
    expect(summary).toMatchObject({
      discovered: 12,
      started: 4,
      alreadyRunning: 0,
      handedOver: 0,
      excluded: sink.discoveries[0].summary.excluded,
    });
  });

  it('excludes a Linux instance with too many volumes and group members past the stagger limit, without starting them', async () => {
    const volumes = (n: number) => Array.from({ length: n }, (_, i) => `vol-${String(i).padStart(17, '0')}`);
    const instances: FakeInstance[] = [
      { id: 'i-00000000000000001', volumes: volumes(41) },
      { id: 'i-00000000000000002', volumes: volumes(40) },
      {
        id: 'i-00000000000000003',
        platform: 'windows',
        volumes: volumes(41),
        ssm: { ping: 'Online', platformType: 'Windows' },
      },
      ...['4', '5', '6', '7'].map((n) => ({
        id: `i-0000000000000000${n}`,
        tags: { 'ConsistentBackup:Group': 'db' },
      })),
    ];
    fake = new FakeAws(instances.map((f) => ({ ...f, tags: { ConsistentBackup: 'enabled', ...f.tags } })));
    const sink = new RecordingSink();
    const log = new RecordingLog();
    // Waves are 18 min apart: with a 40 min limit, waves 0-2 of group db are scheduled, wave 3 is not.
    const settings = testSettings({ stagger: { ...testSettings().stagger, maxStaggerSeconds: 2400 } });
    const result = await runDiscovery(EVENT, plentyOfTime, deps(sink, log, settings));

    expect([...inputs(fake).keys()].sort()).toEqual([
      'i-00000000000000002',
      'i-00000000000000003',
      'i-00000000000000004',
      'i-00000000000000005',
      'i-00000000000000006',
    ]);
    // The last member started is in wave 2, 36 min after the window: within the 40 min limit.
    expect(inputs(fake).get('i-00000000000000006')?.startAt).toBe('2026-11-22T02:36:00.000Z');
    const reasons = Object.fromEntries(result.excluded.map((e) => [e.instanceId, e.reason]));
    expect(reasons).toEqual({
      'i-00000000000000001': 'too-many-volumes',
      'i-00000000000000007': 'stagger-limit',
    });
    expect(result.excluded.find((e) => e.reason === 'stagger-limit')?.detail).toContain(
      'group db of 4 running members; at maxFrozenPerGroup=1 its wave 3 would start 2026-11-22T02:54:00.000Z',
    );
    expect(sink.discoveries[0].summary.excluded).toEqual({ 'too-many-volumes': 1, 'stagger-limit': 1 });
  });

  it('names executions <instanceId>-<window> and starts nothing new when the window runs again', async () => {
    fake = new FakeAws(mixed);
    await runDiscovery(EVENT, plentyOfTime, deps(new RecordingSink(), new RecordingLog()));
    // A retry comes at least seconds later; the running executions answer with their start date.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect([...fake.executions.keys()].sort()).toEqual([
      `i-00000000000000001-${STAMP}`,
      `i-00000000000000002-${STAMP}`,
      `i-00000000000000005-${STAMP}`,
      `i-0000000000000000b-${STAMP}`,
    ]);
    const created = fake.counts.created;

    // The Scheduler retries a few seconds later: same window, identical inputs.
    const sink = new RecordingSink();
    const again = await runDiscovery(
      { ...EVENT, scheduledTime: '2026-11-22T02:00:59.999Z' },
      plentyOfTime,
      deps(sink, new RecordingLog()),
    );
    expect(fake.counts.created).toBe(created);
    expect(again.summary).toMatchObject({ started: 0, alreadyRunning: 4, discovered: 12 });
    expect(fake.duplicates()).toEqual([]);
  });

  it('counts ExecutionAlreadyExists (a closed execution, or a changed input) as already running', async () => {
    fake = new FakeAws(fleet(3));
    await runDiscovery(EVENT, plentyOfTime, deps(new RecordingSink(), new RecordingLog()));
    await new Promise((resolve) => setTimeout(resolve, 300));
    // A Name tag added since: the input differs, so Step Functions refuses the name.
    fake.instances[0].tags!.Name = 'renamed';
    const again = await runDiscovery(EVENT, plentyOfTime, deps(new RecordingSink(), new RecordingLog()));
    expect(fake.counts.alreadyExists).toBe(1);
    expect(again.summary).toMatchObject({ started: 0, alreadyRunning: 3 });
    expect(fake.executions.size).toBe(3);
  });

  it('rejects an event without a usable scheduledTime, naming the value', async () => {
    fake = new FakeAws(fleet(1));
    await expect(
      runDiscovery(
        { scheduledTime: 'yesterday' },
        plentyOfTime,
        deps(new RecordingSink(), new RecordingLog()),
      ),
    ).rejects.toThrow(/scheduledTime.*"yesterday".*ISO-8601/);
    await expect(
      runDiscovery({}, plentyOfTime, deps(new RecordingSink(), new RecordingLog())),
    ).rejects.toThrow(InvalidEventError);
    expect(fake.counts.describe).toBe(0);
  });
});

describe('discovery: throttling', () => {
  it('starts everything once through a throttling storm', async () => {
    // The first 300 calls are all refused, then the service's own bucket applies.
    fake = new FakeAws(fleet(400), {
      throttleWhen: (call) => call <= 300,
      throttle: { burst: 100, ratePerSecond: 2000 },
    });
    const log = new RecordingLog();
    const result = await runDiscovery(EVENT, plentyOfTime, deps(new RecordingSink(), log));
    expect(result.throttled).toBeGreaterThanOrEqual(300);
    expect(result.summary).toMatchObject({ started: 400, alreadyRunning: 0, discovered: 400 });
    expect(fake.executions.size).toBe(400);
    expect(fake.duplicates()).toEqual([]);
    expect(log.summaries()[0]).toMatchObject({ throttled: result.throttled, failed: 0 });
  });

  it('fans out near the quota: 2,000 starts behind a 1,300/300-per-second bucket, close to the minimum', async () => {
    // On a virtual clock with seeded randomness: the same timing on a busy machine as on an idle one.
    const clock = new VirtualClock(Date.parse('2026-11-22T02:00:40Z'));
    const random = lcg(7);
    fake = new FakeAws(fleet(2000), {
      latency: { start: [20, 60] },
      throttle: { burst: 1300, ratePerSecond: 300 },
      clock,
      random,
    });
    const began = clock.now();
    const result = await clock.run(
      runDiscovery(EVENT, plentyOfTime, {
        ...deps(new RecordingSink(), new RecordingLog(), testSettings({ startConcurrency: 64 })),
        clock,
        random,
      }),
    );
    const seconds = (clock.now() - began) / 1000;
    const minimum = (2000 - 1300) / 300;
    expect(result.summary.started).toBe(2000);
    expect(fake.duplicates()).toEqual([]);
    expect(seconds).toBeGreaterThanOrEqual(minimum);
    expect(seconds).toBeLessThan(minimum * 1.1);
    expect(fake.counts.throttled).toBe(0);
  });

  it('keeps at most the configured number of StartExecution calls in flight', async () => {
    fake = new FakeAws(fleet(60), { latency: { start: [5, 10] } });
    const result = await runDiscovery(
      EVENT,
      plentyOfTime,
      deps(new RecordingSink(), new RecordingLog(), testSettings({ startConcurrency: 5 })),
    );
    expect(result.summary.started).toBe(60);
    expect(fake.maxInFlight).toBe(5);
  });

  it('adapts when another workload shares the quota (service bucket far below the configured one)', async () => {
    fake = new FakeAws(fleet(300), { throttle: { burst: 20, ratePerSecond: 500 } });
    const result = await runDiscovery(
      EVENT,
      plentyOfTime,
      deps(
        new RecordingSink(),
        new RecordingLog(),
        testSettings({ startBurst: 1300, startRatePerSecond: 5000 }),
      ),
    );
    expect(fake.counts.throttled).toBeGreaterThan(0);
    expect(result.summary.started).toBe(300);
    expect(fake.duplicates()).toEqual([]);
  });

  it('fails the invocation loudly, after starting the others, when a start is refused for good', async () => {
    const instances = fleet(6);
    fake = new FakeAws(instances, { startFailures: new Set([instances[3].id]) });
    const sink = new RecordingSink();
    const log = new RecordingLog();
    await expect(runDiscovery(EVENT, plentyOfTime, deps(sink, log))).rejects.toThrow(
      StartExecutionFailedError,
    );
    expect(fake.executions.size).toBe(5);
    expect(sink.discoveries[0].summary).toMatchObject({ discovered: 6, started: 5 });
    expect(log.lines.find((l) => l.level === 'error')?.extra).toMatchObject({ instanceId: instances[3].id });
    expect(log.summaries()[0]).toMatchObject({ failed: 1 });
  });
});

describe('discovery: hand-over when time runs short', () => {
  it('hands the rest to a new invocation and, over the chain, starts every instance exactly once', async () => {
    // Virtual time: the budgets are exact whatever the machine's load.
    const clock = wholeMs(new VirtualClock(Date.parse('2026-11-22T02:00:40Z')));
    fake = new FakeAws(fleet(150), { latency: { start: [4, 6] }, clock, random: lcg(3) });
    const sink = new RecordingSink();
    const log = new RecordingLog();
    // Each invocation has 150 ms before its 100 ms reserve: about a third of the fleet.
    const settings = testSettings({ startConcurrency: 4, handOverReserveMs: 100 });
    const results = await runChain(fake, sink, log, settings, 250, undefined, clock);

    expect(results.length).toBeGreaterThan(1);
    expect(fake.counts.invokes).toBe(results.length - 1);
    expect(fake.executions.size).toBe(150);
    expect(fake.duplicates()).toEqual([]);
    // Each slice is disjoint; together they are the fleet.
    expect(results.reduce((n, r) => n + r.slice.discovered, 0)).toBe(150);
    expect(results.reduce((n, r) => n + r.slice.started, 0)).toBe(150);
    // Every invocation but the last says it handed over; the last carries the run's totals.
    expect(
      sink.discoveries
        .slice(0, -1)
        .every((d) => (d.summary as unknown as { handedOver: number }).handedOver > 0),
    ).toBe(true);
    expect(sink.discoveries.at(-1)?.summary).toMatchObject({ discovered: 150, started: 150, handedOver: 0 });
    const payload = fake.invocations[0] as {
      scheduledTime: string;
      handOver: { invocation: number; runId: string };
    };
    expect(payload.scheduledTime).toBe(EVENT.scheduledTime);
    expect(payload.handOver).toMatchObject({ invocation: 2, runId: `run-${STAMP}` });
    expect(log.summaries().map((s) => s.invocation)).toEqual(results.map((_, i) => i + 1));
  });

  it('keeps group waves identical to an uninterrupted run when a hand-over splits a group', async () => {
    const make = (i: number) => ({
      tags: { 'ConsistentBackup:Group': `cluster-${Math.floor(i / 7)}` },
      ...(i % 5 === 3 ? { ssm: { ping: 'ConnectionLost' } } : {}),
    });
    const settings = testSettings({
      startConcurrency: 3,
      handOverReserveMs: 100,
      stagger: { ...testSettings().stagger, maxFrozenPerGroup: 2 },
    });

    const baselineFake = new FakeAws(fleet(60, make));
    await runDiscovery(EVENT, plentyOfTime, deps(new RecordingSink(), new RecordingLog(), settings));
    const baseline = inputs(baselineFake);
    baselineFake.restore();

    // Time is up once an invocation has made 10 StartExecution calls: deterministic cuts.
    fake = new FakeAws(fleet(60, make), { latency: { start: [1, 3] } });
    const f = fake;
    const results = await runChain(f, new RecordingSink(), new RecordingLog(), settings, 0, () => {
      const startCalls = f.counts.start;
      return () => (f.counts.start - startCalls >= 10 ? 0 : 900_000);
    });
    expect(results.length).toBeGreaterThan(3);
    // At least one cursor falls inside a group: a member of its boundary group comes after it.
    const cursors = f.invocations.map((p) => (p as { handOver: { afterKey: string } }).handOver.afterKey);
    const split = cursors.filter((key) => {
      const [flag, group, id] = key.split('\u0000');
      return (
        flag === '0' && f.instances.some((i) => i.tags?.['ConsistentBackup:Group'] === group && i.id > id)
      );
    });
    expect(split.length).toBeGreaterThan(0);
    const chained = inputs(fake);
    expect(chained.size).toBe(baseline.size);
    for (const [id, input] of baseline) {
      expect(chained.get(id)?.startAt, id).toBe(input.startAt);
      expect(chained.get(id)?.notAfter, id).toBe(input.notAfter);
    }
    // And the waves obey the limit: at most 2 members of a group share a start time.
    const perSlot = new Map<string, number>();
    for (const input of chained.values()) {
      const key = `${input.group}@${input.startAt}`;
      perSlot.set(key, (perSlot.get(key) ?? 0) + 1);
    }
    expect(Math.max(...perSlot.values())).toBeLessThanOrEqual(2);
    expect(fake.duplicates()).toEqual([]);
  });

  it('gives up retrying a throttled start at the deadline and hands it over instead of dropping it', async () => {
    // Throttled for the whole first invocation.
    let firstInvocation = true;
    fake = new FakeAws(fleet(20), { throttleWhen: () => firstInvocation, latency: { start: [1, 2] } });
    const sink = new RecordingSink();
    const deadline = Date.now() + 300;
    const settings = testSettings({ handOverReserveMs: 100 });
    const first = runDiscovery(
      EVENT,
      { functionArn: FUNCTION_ARN, remainingMs: () => deadline - Date.now() },
      deps(sink, new RecordingLog(), settings),
    );
    // Excluded and started nothing, but the first invocation must not lose the work either:
    // it ends with an error (no progress) instead of an endless chain.
    await expect(first).rejects.toThrow(HandOverError);
    expect(fake.counts.invokes).toBe(0);
    firstInvocation = false;
    // The failure destination replays the same event: everything starts.
    const replay = await runDiscovery(EVENT, plentyOfTime, deps(sink, new RecordingLog(), settings));
    expect(replay.summary.started).toBe(20);
    expect(fake.duplicates()).toEqual([]);
  });

  it('hands over earlier when many exclusions still have to be notified', async () => {
    fake = new FakeAws(fleet(100, () => ({ ssm: { ping: 'ConnectionLost' } })));
    const sink = new RecordingSink();
    // 2 s left, 1 s reserve, 20 ms of notifying per exclusion: the 51st exclusion makes the
    // reserve (2,020 ms) larger than the time left, so no 52nd instance is taken.
    const settings = testSettings({ handOverReserveMs: 1000, notifyMsPerExclusion: 20, startConcurrency: 1 });
    const result = await runDiscovery(
      EVENT,
      { functionArn: FUNCTION_ARN, remainingMs: () => 2000 },
      deps(sink, new RecordingLog(), settings),
    );
    expect(result.slice.discovered).toBe(51);
    expect(result.handedOver).toBe(49);
    expect(sink.discoveries[0].excluded).toHaveLength(51);
    expect(fake.counts.invokes).toBe(1);
  });

  it('refuses a cursor of another run or a forged one, naming it', async () => {
    fake = new FakeAws(fleet(2));
    const other = {
      ...EVENT,
      handOver: {
        schemaVersion: 1,
        runId: 'run-20261121T0200Z',
        invocation: 2,
        afterKey: '',
        boundarySlots: 0,
        doneBeyond: [],
        totals: { discovered: 0, started: 0, alreadyRunning: 0, excluded: {} },
      },
    };
    await expect(
      runDiscovery(other, plentyOfTime, deps(new RecordingSink(), new RecordingLog())),
    ).rejects.toThrow(/handOver.*run-20261122T0200Z/);
    const endless = { ...other, handOver: { ...other.handOver, runId: `run-${STAMP}`, invocation: 51 } };
    await expect(
      runDiscovery(endless, plentyOfTime, deps(new RecordingSink(), new RecordingLog())),
    ).rejects.toThrow(HandOverError);
    expect(fake.counts.start).toBe(0);
  });
});
