import { afterEach, describe, expect, it } from 'vitest';
import { runDiscovery } from '../../../lambda/discovery/discover';
import { onDemandId, parseOnDemand } from '../../../lambda/discovery/on-demand';
import { InvalidEventError } from '../../../lambda/discovery/window';
import type { WorkflowInput } from '../../../lambda/shared/workflow-input';
import { FakeAws, fleet } from '../../../sim/discovery-aws';
import { deps, FUNCTION_ARN, plentyOfTime, RecordingLog, RecordingSink, testSettings } from './helpers';

const SCHEDULED = {
  scheduledTime: '2026-12-02T08:15:00Z',
  scheduleArn: 'arn:aws:scheduler:eu-west-1:111122223333:schedule/default/x',
};
const ID = onDemandId(new Date('2026-12-02T08:15:22.480Z'));

let fake: FakeAws | undefined;
afterEach(() => {
  fake?.restore();
  fake = undefined;
});

function instances() {
  return fleet(6, (i) => (i < 3 ? { tags: { 'ConsistentBackup:Group': 'ledger' } } : {}));
}

describe('on-demand runs through discovery', () => {
  it('names the run and its executions so that no schedule window can collide with them', () => {
    expect(ID).toBe('od20261202T081522Z');
  });

  it('starts only the instances named, under run-od... and <instance>-od... names', async () => {
    fake = new FakeAws(instances());
    const sink = new RecordingSink();
    const [a, b] = instances().map((i) => i.id);
    const event = { scheduledTime: '2026-12-02T08:15:22Z', onDemand: { id: ID, instanceIds: [a, b] } };
    const result = await runDiscovery(event, plentyOfTime, deps(sink, new RecordingLog(), testSettings()));
    expect([...fake.executions.keys()].sort()).toEqual([`${a}-${ID}`, `${b}-${ID}`].sort());
    for (const e of fake.executions.values()) {
      const input = JSON.parse(e.input) as WorkflowInput;
      expect(input.runId).toBe(`run-${ID}`);
    }
    expect(result.summary).toMatchObject({ runId: `run-${ID}`, discovered: 2, started: 2 });
    expect(sink.discoveries.map((d) => d.summary.runId)).toEqual([`run-${ID}`]);
  });

  it('starts a whole group in its waves, and nothing else', async () => {
    fake = new FakeAws(instances());
    const event = { scheduledTime: '2026-12-02T08:15:22Z', onDemand: { id: ID, group: 'ledger' } };
    await runDiscovery(event, plentyOfTime, deps(new RecordingSink(), new RecordingLog(), testSettings()));
    const started = [...fake.executions.values()].map((e) => JSON.parse(e.input) as WorkflowInput);
    expect(started.map((i) => i.group)).toEqual(['ledger', 'ledger', 'ledger']);
    // maxFrozenPerGroup 1: three waves, not three at once.
    expect(new Set(started.map((i) => i.startAt)).size).toBe(3);
  });

  it('does not collide with the scheduled run of the same minute, and repeating the request starts nothing twice', async () => {
    fake = new FakeAws(instances());
    const d = () => deps(new RecordingSink(), new RecordingLog(), testSettings());
    await runDiscovery(SCHEDULED, plentyOfTime, d());
    const [a] = instances().map((i) => i.id);
    const onDemand = { scheduledTime: '2026-12-02T08:15:22Z', onDemand: { id: ID, instanceIds: [a] } };
    await runDiscovery(onDemand, plentyOfTime, d());
    await runDiscovery(onDemand, plentyOfTime, d());
    expect(fake.executions.has(`${a}-20261202T0815Z`)).toBe(true);
    expect(fake.executions.has(`${a}-${ID}`)).toBe(true);
    // Six scheduled, one on demand: the repeat found its execution and made no other.
    expect(fake.executions.size).toBe(7);
  });

  it('carries the request into a hand-over', async () => {
    fake = new FakeAws(fleet(40), { latency: { start: [4, 6] } });
    // 150 ms before a 100 ms reserve: the invocation starts a few and hands the rest over.
    const deadline = Date.now() + 250;
    const info = { functionArn: FUNCTION_ARN, remainingMs: () => deadline - Date.now() };
    const event = { scheduledTime: '2026-12-02T08:15:22Z', onDemand: { id: ID } };
    const settings = testSettings({ startConcurrency: 1, handOverReserveMs: 100 });
    const result = await runDiscovery(event, info, deps(new RecordingSink(), new RecordingLog(), settings));
    expect(result.handedOver).toBeGreaterThan(0);
    expect(fake.invocations).toHaveLength(1);
    expect(fake.invocations[0]).toMatchObject({ onDemand: { id: ID }, handOver: { runId: `run-${ID}` } });
  });

  it('refuses a malformed request, naming what is allowed', () => {
    expect(() => parseOnDemand({ id: 'od-now' })).toThrow(InvalidEventError);
    expect(() => parseOnDemand({ id: ID, instanceIds: ['vol-1'] })).toThrow(
      /instanceIds as 1-1000 instance ids/,
    );
    expect(() => parseOnDemand({ id: ID, instanceIds: ['i-0123456789abcdef0'], group: 'g' })).toThrow(
      /not both/,
    );
    expect(parseOnDemand(undefined)).toBeUndefined();
  });
});
