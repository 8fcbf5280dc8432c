/**
 * Every notification the workflow and discovery can emit, produced in its real scenario: the
 * synthesized state machine executed locally (sim/workflow-sim.ts, with the real record-outcome
 * logic) or the discovery logic over simulated AWS (sim/discovery-aws.ts), each handing
 * its outcomes to the real notifier over the in-memory table and a mocked SNS.
 */

import type { EC2Client } from '@aws-sdk/client-ec2';
import type { BackupClient } from '@aws-sdk/client-backup';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runDiscovery } from '../../../lambda/discovery/discover';
import { handleJobEvent } from '../../../lambda/job-events/job-events';
import { writeLabel } from '../../../lambda/label-writer/label-writer';
import type { LabelRequest } from '../../../lambda/shared/labels';
import { type Notification, SEVERITY_RULES } from '../../../lambda/shared/notification';
import { type Asl, synthWorkflow } from '../../../sim/asl';
import { SCENARIOS } from '../../../sim/workflow-scenarios';
import { IMAGE_ARN, runScenario } from '../../../sim/workflow-sim';
import { FakeAws, type FakeInstance } from '../../../sim/discovery-aws';
import { deps as discoveryDeps, plentyOfTime, RecordingLog, testSettings } from '../discovery/helpers';
import { expectValidPublish, harness, outcome } from './fixtures';

const asls = new Map<string, Asl>();
function aslFor(config: Record<string, unknown> = {}): Asl {
  const key = JSON.stringify(config);
  if (!asls.has(key)) asls.set(key, synthWorkflow(config).asl);
  return asls.get(key) as Asl;
}

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
});

function notifierHarness() {
  const h = harness();
  cleanup.push(() => {
    h.snsMock.restore();
    h.dynamodbMock.restore();
  });
  return h;
}

/** Runs a workflow scenario and hands its one outcome to the real notifier. */
async function scenario(name: string) {
  const { scenario: s, config } = SCENARIOS[name];
  const run = await runScenario(aslFor(config), s);
  expect(run.outcomes, `${name}: one outcome reaches the sink`).toHaveLength(1);
  const h = notifierHarness();
  await h.notifier.recordOutcome(run.outcomes[0]);
  const published = h.published.map(expectValidPublish);
  return { run, h, published };
}

function described(n: Notification): string {
  return `${n.severity} ${n.eventType}`;
}

describe('workflow scenarios, executed locally, through the notifier', () => {
  beforeAll(() => {
    aslFor();
  }, 120_000);

  it.each([
    ['thaw fails', 'Critical thaw-failed'],
    ['StartBackupJob error', 'Major backup-start-failed'],
    ['freeze fails, policy skip', 'Major skipped-freeze-failed'],
    ['freeze fails, policy crash-consistent', 'Warning crash-consistent-fallback'],
    ['freeze output unreadable', 'Warning crash-consistent-fallback'],
    ['nothing to freeze', 'Warning crash-consistent-fallback'],
    ['snapshots never start (budget)', 'Warning crash-consistent-fallback'],
    ['job FAILED', 'Major backup-job-failed'],
    ['active job skip', 'Warning skipped-active-job'],
  ])('%s → %s', async (name, expected) => {
    const { published } = await scenario(name);
    expect(published.map(described)).toEqual([expected]);
    const n = published[0];
    expect(SEVERITY_RULES[n.eventType].severities).toContain(n.severity);
    expect(n.event.message_key).toBe(
      `ec2-consistent-backup:111122223333:eu-west-1:i-0123456789abcdef0:${SEVERITY_RULES[n.eventType].problemClass}`,
    );
  });

  it('thaw fails: the Critical message says when the watchdog thaws', async () => {
    const { run, published } = await scenario('thaw fails');
    expect(published[0].event.additional_info.watchdog_thaw_by).toBe(run.outcomes[0].watchdogThawBy);
    expect(published[0].event.description).toContain(`thaws by itself by ${run.outcomes[0].watchdogThawBy}`);
  });

  it.each([
    'linux success',
    'linux success, no hooks',
    'thaw fails once, retried',
    'stopped instance',
    'windows success',
  ])('%s → no per-instance message', async (name) => {
    const { published } = await scenario(name);
    expect(published).toEqual([]);
  });

  it('windows VSS install fails → Warning backup-warnings naming AwsVssComponents', async () => {
    const { published } = await scenario('windows VSS install fails');
    expect(published.map(described)).toEqual(['Warning backup-warnings']);
    expect(published[0].event.description).toContain('AwsVssComponents');
  });

  it('job FAILED while frozen: the later job event finds its Major already published, so one alert', async () => {
    const { run, h } = await scenario('job FAILED');
    const jobId = run.outcomes[0].backupJobId!;
    expect(run.outcomes[0].outcome).toBe('backup-job-failed');
    const result = await handleJobEvent(
      {
        'detail-type': 'Backup Job State Change',
        source: 'aws.backup',
        detail: { backupJobId: jobId, state: 'FAILED', statusMessage: '"Snapshot creation failed."' },
      },
      { notifier: h.notifier, requestLabel: async () => undefined, clock: h.now },
    );
    // job-events handled the job (its final state is claimed) but had nothing new to publish.
    expect(result).toMatchObject({ action: 'handled', state: 'FAILED', notifications: [] });
    expect(h.published.map((p) => described(expectValidPublish(p)))).toEqual(['Major backup-job-failed']);
    expect(expectValidPublish(h.published[0]).event.description).toContain(`Backup job ${jobId}`);
  });

  it('windows success, then VSS falls back at completion → recovery point relabelled crash, Warning vss-fallback', async () => {
    const { run, h } = await scenario('windows success');
    const sim = run.sim;
    const backupJobId = run.outcomes[0].backupJobId as string;
    const statusMessage =
      'Windows VSS Backup attempt failed because of timeout on VSS enabled snapshot creation';
    const requests: LabelRequest[] = [];
    const result = await handleJobEvent(
      {
        'detail-type': 'Backup Job State Change',
        source: 'aws.backup',
        resources: [IMAGE_ARN],
        detail: { backupJobId, state: 'COMPLETED', statusMessage },
      },
      { notifier: h.notifier, requestLabel: async (r) => void requests.push(r), clock: h.now },
    );
    expect(result.action).toBe('handled');
    expect(h.published.map((p) => described(expectValidPublish(p)))).toEqual(['Warning vss-fallback']);
    // The label-writer handles the request: DescribeBackupJob as AWS answers it for the completed
    // EC2 job (its AMI, and the status message), the verdict record-outcome stored, the sim's EC2.
    expect(requests).toEqual([{ kind: 'label', backupJobId, cause: 'job-ended' }]);
    const backup = {
      send: async () => ({
        BackupJobId: backupJobId,
        State: 'COMPLETED',
        RecoveryPointArn: IMAGE_ARN,
        StatusMessage: statusMessage,
      }),
    };
    const written = await writeLabel(requests[0], {
      backup: backup as unknown as BackupClient,
      ec2: sim.ec2Client as unknown as EC2Client,
      jobs: h.notifier,
      pace: async () => undefined,
    });
    expect(written.action).toBe('labelled');
    expect(sim.imageTags['ConsistentBackup:Consistency']).toBe('crash');
  });

  it('two runs: a thaw failure opens one ticket, the next clean run of the instance clears it', async () => {
    const first = await scenario('thaw fails');
    const h = first.h;
    const second = await runScenario(aslFor(), SCENARIOS['linux success'].scenario);
    // The simulation names every execution alike; a second run is a new execution of a new window.
    const next = {
      ...second.outcomes[0],
      runId: 'run-20261123T0200Z',
      window: '2026-11-23T02:00:00Z',
      executionArn: `${second.outcomes[0].executionArn}-next`,
    };
    h.advance(24 * 60);
    await h.notifier.recordOutcome(next);
    h.advance(20);
    await handleJobEvent(
      {
        'detail-type': 'Backup Job State Change',
        source: 'aws.backup',
        resources: [IMAGE_ARN],
        detail: { backupJobId: next.backupJobId, state: 'COMPLETED' },
      },
      { notifier: h.notifier, requestLabel: async () => undefined, clock: h.now },
    );
    const all = h.published.map(expectValidPublish);
    expect(all.map(described)).toEqual(['Critical thaw-failed', 'Clear problem-cleared']);
    expect(all[1].event.message_key).toBe(all[0].event.message_key);
  });
});

describe('discovery scenarios through the notifier', () => {
  const EVENT = {
    scheduledTime: '2026-11-22T02:00:37Z',
    scheduleArn: 'arn:aws:scheduler:eu-west-1:111122223333:schedule/default/x',
  };
  const raw: FakeInstance[] = [
    { id: 'i-00000000000000001', tags: { Name: 'web-1' } },
    { id: 'i-00000000000000003', ssm: { ping: 'ConnectionLost' }, tags: { Name: 'app-3' } },
    { id: 'i-00000000000000004', ssm: null },
    { id: 'i-00000000000000006', volumes: [] },
    { id: 'i-00000000000000008', state: 'pending' },
    { id: 'i-00000000000000009', tags: { 'ConsistentBackup:Include': '/data/../etc' } },
    { id: 'i-0000000000000000a', ssm: { ping: 'Online', platformType: 'MacOS' } },
  ];
  const fleet = raw.map((f) => ({ ...f, tags: { ConsistentBackup: 'enabled', ...f.tags } }));

  it('sends one valid Minor per instance that is not ready, once per run however often discovery repeats', async () => {
    const fake = new FakeAws(fleet);
    cleanup.push(() => fake.restore());
    const h = notifierHarness();
    const result = await runDiscovery(EVENT, plentyOfTime, discoveryDeps(h.notifier, new RecordingLog()));
    expect(result.excluded).toHaveLength(6);
    const minors = h.published.map(expectValidPublish);
    expect(minors.map(described)).toEqual(Array(6).fill('Minor instance-not-ready'));
    expect(new Map(minors.map((m) => [m.instanceId, m.event.additional_info.exclusion_reason]))).toEqual(
      new Map([
        ['i-00000000000000003', 'ssm-offline'],
        ['i-00000000000000004', 'ssm-not-managed'],
        ['i-00000000000000006', 'no-ebs-volumes'],
        ['i-00000000000000008', 'unsupported-state'],
        ['i-00000000000000009', 'invalid-tag'],
        ['i-0000000000000000a', 'unsupported-platform'],
      ]),
    );
    const tag = minors.find((m) => m.event.additional_info.exclusion_reason === 'invalid-tag');
    expect(tag?.event.description).toContain('/data/../etc');
    expect(minors.find((m) => m.instanceId === 'i-00000000000000003')?.event.node).toBe(
      'i-00000000000000003 (app-3)',
    );
    // One instance started, none finished: no summary yet.
    expect(h.table.item('RUN#run-20261122T0200Z', 'RUN')?.expected?.N).toBe('1');

    // EventBridge Scheduler retries the same window: nothing is sent twice.
    await runDiscovery(EVENT, plentyOfTime, discoveryDeps(h.notifier, new RecordingLog()));
    expect(h.published).toHaveLength(6);
  });

  it('a hand-over chain sends its summary only after the last invocation reports, though executions finish early', async () => {
    const instances = Array.from({ length: 240 }, (_, i) => ({
      id: `i-${(i + 1).toString(16).padStart(17, '0')}`,
      ...(i % 3 === 0 ? { ssm: { ping: 'ConnectionLost' } } : {}),
      tags: { ConsistentBackup: 'enabled' },
    }));
    const fake = new FakeAws(instances);
    cleanup.push(() => fake.restore());
    const h = notifierHarness();
    const settings = testSettings({ startConcurrency: 4, handOverReserveMs: 100 });
    // No wall clock: each invocation has 250 virtual ms, each StartExecution costs 5 of them, and
    // discovery's own waits (its token bucket) advance the same virtual clock. So every invocation
    // starts the same ~30 executions and hands over, whatever the machine's load.
    let virtualMs = Date.parse(EVENT.scheduledTime);
    const clock = {
      now: () => virtualMs,
      sleep: async (ms: number) => {
        virtualMs += Math.max(0, Math.ceil(ms));
      },
    };
    let event: Record<string, unknown> = EVENT;
    const summariesAfter: number[] = [];
    const fed = new Set<string>();
    for (let n = 0; n < 60; n++) {
      const before = fake.invocations.length;
      const startsBefore = fake.counts.start;
      const began = clock.now();
      const result = await runDiscovery(
        event,
        {
          functionArn: plentyOfTime.functionArn,
          remainingMs: () => 250 - 5 * (fake.counts.start - startsBefore) - (clock.now() - began),
        },
        { ...discoveryDeps(h.notifier, new RecordingLog(), settings), clock },
      );
      // Every execution started so far finishes at once (say, an active job skips the window).
      for (const [name, execution] of fake.executions) {
        if (fed.has(name)) continue;
        fed.add(name);
        await h.notifier.recordOutcome(
          outcome({
            outcome: 'skipped-active-job',
            instanceId: execution.instanceId,
            runId: result.summary.runId,
            executionArn: `arn:aws:states:eu-west-1:111122223333:execution:Workflow:${name}`,
          }),
        );
      }
      summariesAfter.push(h.messages().filter((m) => m.eventType === 'run-summary').length);
      if (fake.invocations.length === before) break;
      event = fake.invocations.at(-1) as Record<string, unknown>;
    }
    const all = h.published.map(expectValidPublish);
    expect(summariesAfter.length).toBeGreaterThan(1);
    expect(summariesAfter.slice(0, -1)).toEqual(summariesAfter.slice(0, -1).map(() => 0));
    expect(summariesAfter.at(-1)).toBe(1);
    expect(all.filter((m) => m.eventType === 'instance-not-ready')).toHaveLength(80);
    const summary = all.find((m) => m.eventType === 'run-summary');
    expect(summary?.event.additional_info).toMatchObject({
      discovered: '240',
      started: '160',
      finished: '160',
      skipped: '160',
      excluded: JSON.stringify({ 'ssm-offline': 80 }),
    });
  });
});
