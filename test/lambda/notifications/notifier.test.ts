import { PublishCommand } from '@aws-sdk/client-sns';
import { afterEach, describe, expect, it } from 'vitest';
import { handleJobEvent } from '../../../lambda/job-events/job-events';
import type { OpenProblem } from '../../../lambda/shared/notifications/clear';
import {
  buildCopyFailedNotification,
  buildCopyRecoveredNotification,
  type CopyContext,
} from '../../../lambda/shared/notifications/protection';
import { createNotifier, NotifierConfigError } from '../../../lambda/shared/notifier';
import {
  ACCOUNT,
  excluded,
  expectValidPublish,
  harness,
  outcome,
  REGION,
  summary,
  TABLE,
  TOPIC,
} from './fixtures';

const A = 'i-0aaaaaaaaaaaaaaa1';
const B = 'i-0bbbbbbbbbbbbbbb2';
const C = 'i-0ccccccccccccccc3';
const app = (consistency: 'application' | 'filesystem' | 'crash') => ({
  consistency,
  reason: `${consistency} reason`,
  freezeMs: 1500,
});

let h: ReturnType<typeof harness>;
afterEach(() => {
  h?.snsMock.restore();
  h?.dynamodbMock.restore();
});

describe('recordOutcome', () => {
  it('publishes a failure once, as a valid message with filterable attributes, and remembers the open problem', async () => {
    h = harness();
    const o = outcome({
      outcome: 'thaw-failed',
      instanceId: A,
      instanceName: 'ledger',
      backupJobId: 'job-a1',
      recoveryPointArn: 'arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0',
      verdict: app('application'),
      watchdogThawBy: '2026-11-22T02:01:31.000Z',
      error: { error: 'ThawCommandFailed', cause: 'Failed' },
    });
    await h.notifier.recordOutcome(o);
    expect(h.published).toHaveLength(1);
    const body = expectValidPublish(h.published[0]);
    expect(body.severity).toBe('Critical');
    expect(h.published[0].MessageAttributes).toEqual({
      severity: { DataType: 'String', StringValue: 'Critical' },
      event_type: { DataType: 'String', StringValue: 'thaw-failed' },
      instance_id: { DataType: 'String', StringValue: A },
    });
    const problem = h.table.item(`INSTANCE#${A}`, 'PROBLEM#thaw');
    expect(problem?.messageKey?.S).toBe(`ec2-consistent-backup:${ACCOUNT}:${REGION}:${A}:thaw`);
    expect(problem?.occurrences?.N).toBe('1');
    expect(Number(problem?.expiresAt?.N)).toBe(Math.floor(h.now().getTime() / 1000) + 90 * 86400);
    const job = h.table.item('JOB#job-a1', 'JOB');
    expect(job?.outcome?.S).toBe('thaw-failed');
    expect(Number(job?.expiresAt?.N)).toBe(Math.floor(h.now().getTime() / 1000) + 7 * 86400);
    expect((await h.notifier.readRun(o.runId)).totals.failed).toBe(1);
  });

  it('a retried record-outcome for the same execution neither publishes nor counts again', async () => {
    h = harness();
    const o = outcome({ outcome: 'backup-start-failed', instanceId: A, error: { error: 'E', cause: 'c' } });
    await h.notifier.recordOutcome(o);
    await h.notifier.recordOutcome(o);
    expect(h.published).toHaveLength(1);
    const { totals } = await h.notifier.readRun(o.runId);
    expect(totals.completed).toBe(1);
    expect(totals.failed).toBe(1);
  });

  it('a retry after a failure past the notification still finishes the run', async () => {
    h = harness();
    await h.notifier.recordDiscovery(summary({ discovered: 1, started: 1 }), []);
    const o = outcome({ outcome: 'skipped-active-job', instanceId: A });
    // The first attempt notifies, then DynamoDB fails while it checks whether the run is done.
    let failed = false;
    const original = h.notifier.finishRunIfDone.bind(h.notifier);
    h.notifier.finishRunIfDone = async (runId: string) => {
      if (!failed) {
        failed = true;
        throw Object.assign(new Error('throttled'), { name: 'ProvisionedThroughputExceededException' });
      }
      return original(runId);
    };
    await expect(h.notifier.recordOutcome(o)).rejects.toThrow('throttled');
    expect(h.messages().map((m) => m.eventType)).toEqual(['skipped-active-job']);
    await h.notifier.recordOutcome(o);
    expect(h.messages().map((m) => m.eventType)).toEqual(['skipped-active-job', 'run-summary']);
  });

  it('when SNS fails, nothing is counted or marked, so the retry publishes exactly once', async () => {
    h = harness();
    const o = outcome({ outcome: 'skipped-active-job', instanceId: A });
    h.snsMock
      .on(PublishCommand)
      .rejectsOnce(Object.assign(new Error('throttled'), { name: 'ThrottledException' }));
    await expect(h.notifier.recordOutcome(o)).rejects.toThrow('throttled');
    expect(h.table.item(`EXEC#${o.executionArn}`, 'OUTCOME')).toBeUndefined();
    expect((await h.notifier.readRun(o.runId)).totals.completed).toBe(0);
    expect(h.table.item(`INSTANCE#${A}`, 'PROBLEM#window')?.lastEventId).toBeUndefined();

    h.snsMock.on(PublishCommand).callsFake((input) => {
      h.published.push(input);
      return { MessageId: 'retry' };
    });
    await h.notifier.recordOutcome(o);
    expect(h.published).toHaveLength(1);
    expect(expectValidPublish(h.published[0]).eventType).toBe('skipped-active-job');
    expect((await h.notifier.readRun(o.runId)).totals.completed).toBe(1);
  });

  it('an application-consistent backup publishes nothing per instance but stores the job for job-events', async () => {
    h = harness();
    await h.notifier.recordOutcome(
      outcome({ outcome: 'backed-up', instanceId: A, backupJobId: 'job-ok', verdict: app('application') }),
    );
    expect(h.published).toHaveLength(0);
    expect(h.table.item('JOB#job-ok', 'JOB')?.consistency?.S).toBe('application');
  });

  it('a label that could not be written yet is not a degradation', async () => {
    h = harness();
    await h.notifier.recordOutcome(
      outcome({
        outcome: 'backed-up',
        instanceId: A,
        backupJobId: 'job-late-label',
        verdict: app('application'),
        warnings: [
          'Could not label recovery point arn:aws:ec2:eu-west-1::image/ami-1 yet (InvalidAMIID.NotFound).',
        ],
      }),
    );
    expect(h.published).toHaveLength(0);
    expect(h.table.item('JOB#job-late-label', 'JOB')?.warningCount?.N).toBe('0');
  });
});

describe('run summary', () => {
  it('is sent exactly once, when the last expected execution reports, with the counts', async () => {
    h = harness();
    await h.notifier.recordDiscovery(
      summary({ discovered: 5, started: 3, excluded: { 'ssm-offline': 1, 'invalid-tag': 1 } }),
      [
        excluded('i-0ddddddddddddddd4', 'ssm-offline', 'SSM agent ConnectionLost since 2026-11-21.'),
        excluded(
          'i-0eeeeeeeeeeeeeee5',
          'invalid-tag',
          'ConsistentBackup:Include has "data" (not an absolute path).',
        ),
      ],
    );
    expect(h.messages().map((m) => m.severity)).toEqual(['Minor', 'Minor']);
    await h.notifier.recordOutcome(
      outcome({ outcome: 'backed-up', instanceId: A, backupJobId: 'j1', verdict: app('application') }),
    );
    await h.notifier.recordOutcome(
      outcome({ outcome: 'backed-up', instanceId: B, backupJobId: 'j2', verdict: app('crash') }),
    );
    expect(h.messages().filter((m) => m.eventType === 'run-summary')).toHaveLength(0);
    await h.notifier.recordOutcome(
      outcome({ outcome: 'backup-start-failed', instanceId: C, error: { error: 'E', cause: 'c' } }),
    );
    const summaries = h.messages().filter((m) => m.eventType === 'run-summary');
    expect(summaries).toHaveLength(1);
    for (const p of h.published) expectValidPublish(p);
    const s = summaries[0];
    expect(s.severity).toBe('Warning');
    expect(s.event.additional_info).toMatchObject({
      discovered: '5',
      excluded: JSON.stringify({ 'ssm-offline': 1, 'invalid-tag': 1 }),
      started: '3',
      finished: '3',
      application_consistent: '1',
      fell_back: '1',
      failed: '1',
      summary_reason: 'finished',
    });
    // A retried discovery and a repeated outcome send no second summary.
    await h.notifier.recordDiscovery(summary({ discovered: 5, started: 0, alreadyRunning: 3 }), []);
    await h.notifier.recordOutcome(
      outcome({ outcome: 'backup-start-failed', instanceId: C, error: { error: 'E', cause: 'c' } }),
    );
    expect(h.messages().filter((m) => m.eventType === 'run-summary')).toHaveLength(1);
    expect(h.table.item('RUN#run-20261122T0200Z', 'RUN')?.pending).toBeUndefined();
  });

  it('waits for discovery when outcomes arrive first, and is OK when every backup is consistent', async () => {
    h = harness();
    await h.notifier.recordOutcome(
      outcome({ outcome: 'backed-up', instanceId: A, backupJobId: 'j1', verdict: app('application') }),
    );
    await h.notifier.recordOutcome(
      outcome({ outcome: 'backed-up', instanceId: B, backupJobId: 'j2', verdict: app('filesystem') }),
    );
    expect(h.published).toHaveLength(0);
    await h.notifier.recordDiscovery(summary({ discovered: 2, started: 2 }), []);
    expect(h.published).toHaveLength(1);
    const s = expectValidPublish(h.published[0]);
    expect(s.severity).toBe('OK');
    expect(s.event.message_key).toBe(`ec2-consistent-backup:${ACCOUNT}:${REGION}:fleet:run-summary`);
  });

  it('a run that started nothing is summarized at once', async () => {
    h = harness();
    await h.notifier.recordDiscovery(
      summary({ discovered: 1, started: 0, excluded: { 'no-ebs-volumes': 1 } }),
      [excluded(A, 'no-ebs-volumes', 'No EBS volume is attached.')],
    );
    expect(h.messages().map((m) => `${m.severity} ${m.eventType}`)).toEqual([
      'Minor instance-not-ready',
      'OK run-summary',
    ]);
  });

  it('goes out at the deadline when executions never report, and only once', async () => {
    h = harness();
    await h.notifier.recordDiscovery(summary({ discovered: 3, started: 3 }), []);
    await h.notifier.recordOutcome(
      outcome({ outcome: 'backed-up', instanceId: A, backupJobId: 'j1', verdict: app('application') }),
    );
    h.advance(239);
    expect(await h.notifier.sweepOverdueRuns()).toEqual([]);
    h.advance(2);
    expect(await h.notifier.sweepOverdueRuns()).toEqual(['run-20261122T0200Z']);
    const s = expectValidPublish(h.published[0]);
    expect(s.severity).toBe('Warning');
    expect(s.event.additional_info).toMatchObject({
      summary_reason: 'deadline',
      finished: '1',
      unfinished: '2',
    });
    expect(await h.notifier.sweepOverdueRuns()).toEqual([]);
    await h.notifier.recordOutcome(
      outcome({ outcome: 'backed-up', instanceId: B, backupJobId: 'j2', verdict: app('application') }),
    );
    await h.notifier.recordOutcome(
      outcome({ outcome: 'backed-up', instanceId: C, backupJobId: 'j3', verdict: app('application') }),
    );
    h.advance(300);
    expect(await h.notifier.sweepOverdueRuns()).toEqual([]);
    expect(h.published).toHaveLength(1);
  });

  it('waits while waves are still reporting: the deadline runs from the last report', async () => {
    h = harness();
    await h.notifier.recordDiscovery(summary({ discovered: 3, started: 3 }), []);
    h.advance(200);
    await h.notifier.recordOutcome(
      outcome({ outcome: 'backed-up', instanceId: A, backupJobId: 'w1', verdict: app('application') }),
    );
    h.advance(200);
    await h.notifier.recordOutcome(
      outcome({ outcome: 'backed-up', instanceId: B, backupJobId: 'w2', verdict: app('application') }),
    );
    h.advance(200);
    // 600 minutes since discovery, 200 since the last report: the run is still alive.
    expect(await h.notifier.sweepOverdueRuns()).toEqual([]);
    h.advance(41);
    expect(await h.notifier.sweepOverdueRuns()).toEqual(['run-20261122T0200Z']);
    expect(expectValidPublish(h.published[0]).event.additional_info).toMatchObject({
      finished: '2',
      unfinished: '1',
    });
  });

  it('is summarized by the deadline even when discovery never reported', async () => {
    h = harness();
    await h.notifier.recordOutcome(
      outcome({ outcome: 'backed-up', instanceId: A, backupJobId: 'j1', verdict: app('application') }),
    );
    h.advance(241);
    expect(await h.notifier.sweepOverdueRuns()).toEqual(['run-20261122T0200Z']);
    const s = expectValidPublish(h.published[0]);
    expect(s.severity).toBe('Warning');
    expect(s.event.additional_info).toMatchObject({
      discovered: 'unknown',
      started: 'unknown',
      finished: '1',
    });
  });
});

describe('de-duplication and Clear across runs', () => {
  const run1 = { runId: 'run-20261122T0200Z', window: '2026-11-22T02:00:00Z' };
  const run2 = { runId: 'run-20261123T0200Z', window: '2026-11-23T02:00:00Z' };
  const completed = (jobId: string, extra: Record<string, unknown> = {}) => ({
    version: '0',
    'detail-type': 'Backup Job State Change',
    source: 'aws.backup',
    account: ACCOUNT,
    region: REGION,
    resources: [],
    detail: {
      backupJobId: jobId,
      state: 'COMPLETED',
      backupVaultName: 'vault',
      resourceType: 'EC2',
      ...extra,
    },
  });

  it('repeated failures update one ticket, and a later consistent backup clears each open one', async () => {
    h = harness();
    const labels: string[] = [];
    const deps = {
      notifier: h.notifier,
      requestLabel: async (r: { backupJobId: string }) => {
        labels.push(r.backupJobId);
      },
      clock: h.now,
    };

    // Run 1: A's thaw fails, B falls back to crash-consistent, C is not ready.
    await h.notifier.recordDiscovery(
      { ...summary(run1), discovered: 3, started: 2, excluded: { 'ssm-offline': 1 } },
      [excluded(C, 'ssm-offline', 'SSM agent ConnectionLost.')],
    );
    await h.notifier.recordOutcome(
      outcome({
        ...run1,
        outcome: 'thaw-failed',
        instanceId: A,
        backupJobId: 'a1',
        verdict: app('application'),
        error: { error: 'ThawCommandFailed', cause: 'Failed' },
      }),
    );
    await h.notifier.recordOutcome(
      outcome({ ...run1, outcome: 'backed-up', instanceId: B, backupJobId: 'b1', verdict: app('crash') }),
    );
    // A's run-1 job completing proves nothing: its thaw failed.
    await handleJobEvent(completed('a1'), deps);
    const run1Keys = h.messages().filter((m) => m.eventType !== 'run-summary');
    expect(run1Keys.map((m) => `${m.severity} ${m.event.message_key}`)).toEqual([
      `Minor ec2-consistent-backup:${ACCOUNT}:${REGION}:${C}:readiness`,
      `Critical ec2-consistent-backup:${ACCOUNT}:${REGION}:${A}:thaw`,
      `Warning ec2-consistent-backup:${ACCOUNT}:${REGION}:${B}:consistency`,
    ]);

    // Run 2, a day later: A fails the same way again (same key, one ticket), B and C recover.
    h.advance(24 * 60);
    await h.notifier.recordDiscovery({ ...summary(run2), discovered: 3, started: 3 }, []);
    await h.notifier.recordOutcome(
      outcome({
        ...run2,
        outcome: 'thaw-failed',
        instanceId: A,
        backupJobId: 'a2',
        verdict: app('application'),
        error: { error: 'ThawCommandFailed', cause: 'Failed again' },
      }),
    );
    await h.notifier.recordOutcome(
      outcome({
        ...run2,
        outcome: 'backed-up',
        instanceId: B,
        backupJobId: 'b2',
        verdict: app('application'),
      }),
    );
    await h.notifier.recordOutcome(
      outcome({
        ...run2,
        outcome: 'backed-up',
        instanceId: C,
        backupJobId: 'c2',
        verdict: app('application'),
      }),
    );
    const before = h.published.length;
    h.advance(20);
    const resultB = await handleJobEvent(completed('b2'), deps);
    const resultC = await handleJobEvent(completed('c2'), deps);
    // The same event delivered twice clears nothing twice.
    const repeat = await handleJobEvent(completed('c2'), deps);
    expect(repeat).toEqual({
      action: 'ignored',
      reason: 'the final state of backup job c2 was already handled',
    });

    const all = h.messages();
    for (const p of h.published) expectValidPublish(p);
    const thawTickets = all.filter((m) => m.event.message_key.endsWith(`${A}:thaw`));
    expect(thawTickets.map((m) => m.severity)).toEqual(['Critical', 'Critical']);
    expect(h.table.item(`INSTANCE#${A}`, 'PROBLEM#thaw')?.occurrences?.N).toBe('2');

    const clears = all.slice(before).filter((m) => m.severity === 'Clear');
    expect(clears.map((m) => m.event.message_key)).toEqual([
      `ec2-consistent-backup:${ACCOUNT}:${REGION}:${B}:consistency`,
      `ec2-consistent-backup:${ACCOUNT}:${REGION}:${C}:readiness`,
    ]);
    expect(resultB.action === 'handled' && resultB.notifications.map((n) => n.severity)).toEqual(['Clear']);
    expect(resultC.action === 'handled' && resultC.notifications.map((n) => n.severity)).toEqual(['Clear']);
    expect(h.table.item(`INSTANCE#${B}`, 'PROBLEM#consistency')).toBeUndefined();
    expect(h.table.item(`INSTANCE#${C}`, 'PROBLEM#readiness')).toBeUndefined();
    expect(h.table.item(`INSTANCE#${A}`, 'PROBLEM#thaw')).toBeDefined();
    // Each completed job of ours asks the label-writer for its label (lambda/shared/labels.ts).
    expect(labels).toEqual(['a1', 'b2', 'c2']);

    // Run 3: A recovers; its thaw ticket clears; nothing else is left to clear.
    h.advance(24 * 60);
    const run3 = { runId: 'run-20261124T0200Z', window: '2026-11-24T02:00:00Z' };
    await h.notifier.recordOutcome(
      outcome({
        ...run3,
        outcome: 'backed-up',
        instanceId: A,
        backupJobId: 'a3',
        verdict: app('application'),
      }),
    );
    h.advance(20);
    await handleJobEvent(completed('a3'), deps);
    const last = h.messages().at(-1)!;
    expect(last.severity).toBe('Clear');
    expect(last.event.message_key).toBe(`ec2-consistent-backup:${ACCOUNT}:${REGION}:${A}:thaw`);
    expect(await h.notifier.openProblems(A)).toEqual([]);
  });

  it('a filesystem-consistent backup clears only when nothing degraded; crash never clears', async () => {
    h = harness();
    const deps = { notifier: h.notifier, requestLabel: async () => undefined, clock: h.now };
    await h.notifier.recordOutcome(outcome({ ...run1, outcome: 'skipped-active-job', instanceId: A }));
    h.advance(60);
    await h.notifier.recordOutcome(
      outcome({
        ...run2,
        outcome: 'backed-up',
        instanceId: A,
        backupJobId: 'fs-hook-failed',
        verdict: app('filesystem'),
        warnings: ['Pre-freeze hooks failed: pre-freeze 10-db (exit 3); labelled filesystem-consistent.'],
      }),
    );
    await handleJobEvent(completed('fs-hook-failed'), deps);
    expect(h.messages().filter((m) => m.severity === 'Clear')).toHaveLength(0);

    const run3 = { runId: 'run-20261124T0200Z', window: '2026-11-24T02:00:00Z' };
    h.advance(60);
    await h.notifier.recordOutcome(
      outcome({
        ...run3,
        outcome: 'backed-up',
        instanceId: A,
        backupJobId: 'crash-1',
        verdict: app('crash'),
      }),
    );
    await handleJobEvent(completed('crash-1'), deps);
    expect(h.messages().filter((m) => m.severity === 'Clear')).toHaveLength(0);

    const run4 = { runId: 'run-20261125T0200Z', window: '2026-11-25T02:00:00Z' };
    h.advance(60);
    await h.notifier.recordOutcome(
      outcome({
        ...run4,
        outcome: 'backed-up',
        instanceId: A,
        backupJobId: 'fs-clean',
        verdict: app('filesystem'),
      }),
    );
    h.advance(5);
    await handleJobEvent(completed('fs-clean'), deps);
    expect(
      h
        .messages()
        .filter((m) => m.severity === 'Clear')
        .map((m) => m.event.resource)
        .sort(),
    ).toEqual(['consistency', 'window']);
  });

  it('a Clear whose publish fails is not lost: the retried event finds the problem open and sends it', async () => {
    h = harness();
    const deps = { notifier: h.notifier, requestLabel: async () => undefined, clock: h.now };
    await h.notifier.recordOutcome(
      outcome({ ...run1, outcome: 'backup-start-failed', instanceId: A, error: { error: 'E', cause: 'c' } }),
    );
    h.advance(24 * 60);
    await h.notifier.recordOutcome(
      outcome({
        ...run2,
        outcome: 'backed-up',
        instanceId: A,
        backupJobId: 'a2',
        verdict: app('application'),
      }),
    );
    h.advance(20);
    const before = h.published.length;
    h.failPublishes(1);
    // job-events gives its claim back and throws, so EventBridge delivers the event again.
    await expect(handleJobEvent(completed('a2'), deps)).rejects.toThrow('SNS is down');
    expect(h.published).toHaveLength(before);
    expect(await h.notifier.openProblems(A)).toHaveLength(1);

    const retry = await handleJobEvent(completed('a2'), deps);
    expect(retry.action === 'handled' && retry.notifications.map((n) => n.severity)).toEqual(['Clear']);
    const clears = h.messages().filter((m) => m.severity === 'Clear');
    expect(clears.map((m) => m.event.message_key)).toEqual([
      `ec2-consistent-backup:${ACCOUNT}:${REGION}:${A}:backup`,
    ]);
    expect(await h.notifier.openProblems(A)).toEqual([]);
    // Handled now: a third delivery sends nothing.
    await handleJobEvent(completed('a2'), deps);
    expect(h.messages().filter((m) => m.severity === 'Clear')).toHaveLength(1);
  });

  it('a single-problem Clear (copies, restore tests) whose publish fails leaves the problem open for the retry', async () => {
    h = harness();
    const copy: CopyContext = {
      accountId: ACCOUNT,
      region: REGION,
      instanceId: A,
      runId: run1.runId,
      sourceRecoveryPointArn: 'arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0',
      destinationVaultArn: 'arn:aws:backup:us-east-1:444455556666:backup-vault:central',
      copyJobId: 'C0FFEE00-B5C6-7D8E-9F0A-1B2C3D4E5F60',
      copyJobState: 'FAILED',
    };
    await h.notifier.notifyProblem(
      buildCopyFailedNotification(copy, 'Access denied', h.now()),
      undefined,
      'copy:1',
      h.now(),
    );
    const completedCopy = {
      ...copy,
      copyJobId: 'C0FFEE01-B5C6-7D8E-9F0A-1B2C3D4E5F61',
      copyJobState: 'COMPLETED',
    };
    const build = (problem: OpenProblem) => buildCopyRecoveredNotification(problem, completedCopy, h.now());
    h.failPublishes(1);
    await expect(h.notifier.clearProblem(A, 'copy', build)).rejects.toThrow('SNS is down');
    expect(await h.notifier.openProblems(A)).toHaveLength(1);
    expect(await h.notifier.clearProblem(A, 'copy', build)).toMatchObject({ severity: 'Clear' });
    expect(await h.notifier.openProblems(A)).toEqual([]);
    expect(await h.notifier.clearProblem(A, 'copy', build)).toBeUndefined();
    expect(h.messages().map((m) => m.severity)).toEqual(['Major', 'Clear']);
  });

  it('an older backup does not clear a problem opened after it was taken', async () => {
    h = harness();
    const deps = { notifier: h.notifier, requestLabel: async () => undefined, clock: h.now };
    await h.notifier.recordOutcome(
      outcome({
        ...run1,
        outcome: 'backed-up',
        instanceId: A,
        backupJobId: 'old',
        verdict: app('application'),
      }),
    );
    h.advance(10);
    await h.notifier.recordOutcome(
      outcome({ ...run2, outcome: 'backup-start-failed', instanceId: A, error: { error: 'E', cause: 'c' } }),
    );
    h.advance(10);
    await handleJobEvent(completed('old'), deps);
    expect(h.messages().filter((m) => m.severity === 'Clear')).toHaveLength(0);
    expect(await h.notifier.openProblems(A)).toHaveLength(1);
  });
});

describe('createNotifier', () => {
  it('checks its environment, naming the variable and what is allowed', () => {
    const clients = { sns: {} as never, dynamodb: {} as never };
    expect(() => createNotifier({}, clients)).toThrow(
      new NotifierConfigError(
        'Environment variable NOTIFICATION_TOPIC_ARN is undefined; allowed: an SNS topic ARN.',
      ),
    );
    expect(() => createNotifier({ NOTIFICATION_TOPIC_ARN: TOPIC }, clients)).toThrow(
      /NOTIFICATION_TABLE_NAME/,
    );
    expect(() =>
      createNotifier(
        { NOTIFICATION_TOPIC_ARN: TOPIC, NOTIFICATION_TABLE_NAME: TABLE, SUMMARY_DEADLINE_MINUTES: 'soon' },
        clients,
      ),
    ).toThrow(
      'Environment variable SUMMARY_DEADLINE_MINUTES is "soon"; allowed: a whole number of minutes from 5 to 2880.',
    );
    const n = createNotifier({ NOTIFICATION_TOPIC_ARN: TOPIC, NOTIFICATION_TABLE_NAME: TABLE }, clients);
    expect(n.settings).toEqual({ topicArn: TOPIC, tableName: TABLE, summaryDeadlineMinutes: 240 });
  });
});
