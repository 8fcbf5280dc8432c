/**
 * Each notifier operation calls exactly the DynamoDB actions lambda/shared/notifier-permissions.ts
 * declares for it, on the table or the pending-runs index: lib/notifications.ts grants those and
 * nothing else, so a call outside the list would be an AccessDenied in production, and a grant
 * no path uses would be privilege for nothing. Every path below runs against the table fake.
 */
import type { TransactWriteItemsCommandInput } from '@aws-sdk/client-dynamodb';
import { PublishCommand } from '@aws-sdk/client-sns';
import { afterEach, describe, expect, it } from 'vitest';
import { handleJobEvent } from '../../../lambda/job-events/job-events';
import {
  buildCopyFailedNotification,
  buildCopyRecoveredNotification,
  buildVerificationFailedNotification,
  buildVerificationRecoveredNotification,
  type CopyContext,
  type VerificationContext,
} from '../../../lambda/shared/notifications/protection';
import { NOTIFIER_OPERATIONS, type NotifierOperation } from '../../../lambda/shared/notifier-permissions';
import type { FakeDynamoDb } from '../../../sim/dynamodb';
import { ACCOUNT, excluded, harness, outcome, REGION, summary } from './fixtures';

type Harness = ReturnType<typeof harness>;
let open: Harness[] = [];
afterEach(() => {
  for (const h of open) {
    h.snsMock.restore();
    h.dynamodbMock.restore();
  }
  open = [];
});

function start(): Harness {
  const h = harness();
  open.push(h);
  return h;
}

/** The IAM actions the recorded calls need, split by the resource they act on. */
function actionsOf(table: FakeDynamoDb, from: number): { table: string[]; pendingRunsIndex: string[] } {
  const onTable = new Set<string>();
  const onIndex = new Set<string>();
  for (const { command, input } of table.calls.slice(from)) {
    if (command === 'TransactWriteItems') {
      for (const item of (input as TransactWriteItemsCommandInput).TransactItems ?? []) {
        if (item.Put) onTable.add('dynamodb:PutItem');
        if (item.Update) onTable.add('dynamodb:UpdateItem');
        if (item.Delete) onTable.add('dynamodb:DeleteItem');
        if (item.ConditionCheck) onTable.add('dynamodb:ConditionCheckItem');
      }
    } else if ((input as { IndexName?: string }).IndexName) {
      onIndex.add(`dynamodb:${command}`);
    } else {
      onTable.add(`dynamodb:${command}`);
    }
  }
  return { table: [...onTable].sort(), pendingRunsIndex: [...onIndex].sort() };
}

function declared(op: NotifierOperation) {
  return {
    table: [...NOTIFIER_OPERATIONS[op].table].sort(),
    pendingRunsIndex: [...NOTIFIER_OPERATIONS[op].pendingRunsIndex].sort(),
  };
}

const JOB = 'D1E2F3A4-B5C6-7D8E-9F0A-1B2C3D4E5F60';
const IMAGE = 'arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0';
const thawFailed = outcome({
  outcome: 'thaw-failed',
  instanceId: 'i-0a1b2c3d4e5f60718',
  backupJobId: JOB,
  verdict: { consistency: 'application', reason: 'hooks ran; thaw failed', freezeMs: 90_000 },
});

describe('notifier operations and the DynamoDB actions they are granted', () => {
  it('record-outcomes: first outcome, its retry, an outcome that finishes the run, and the undo after a failed publish', async () => {
    const h = start();
    await h.notifier.recordDiscovery(summary({ discovered: 2, started: 2 }), []);
    const from = h.table.calls.length;
    await h.notifier.recordOutcome(thawFailed);
    await h.notifier.recordOutcome(thawFailed);
    let down = true;
    h.snsMock.on(PublishCommand).callsFake((input) => {
      if (down) {
        down = false;
        throw new Error('SNS is down');
      }
      h.published.push(input);
      return { MessageId: `m-${h.published.length}` };
    });
    const failing = outcome({ outcome: 'backup-start-failed', instanceId: 'i-0f1e2d3c4b5a69788' });
    await expect(h.notifier.recordOutcome(failing)).rejects.toThrow('SNS is down');
    await h.notifier.recordOutcome(failing);
    expect(h.messages().map((m) => m.eventType)).toContain('run-summary');
    expect(actionsOf(h.table, from)).toEqual(declared('record-outcomes'));
  });

  it('record-discovery: exclusions, a repeated report, and a report that finishes the run', async () => {
    const h = start();
    await h.notifier.recordOutcome(outcome({ outcome: 'backed-up', instanceId: 'i-0a1b2c3d4e5f60718' }));
    const from = h.table.calls.length;
    const report = summary({ discovered: 2, started: 1, excluded: { 'ssm-offline': 1 } });
    const exclusions = [excluded('i-0f1e2d3c4b5a69788', 'ssm-offline', 'SSM agent offline')];
    await h.notifier.recordDiscovery(report, exclusions);
    await h.notifier.recordDiscovery(report, exclusions);
    const sent = h.messages().map((m) => m.eventType);
    expect(sent.filter((t) => t === 'instance-not-ready')).toHaveLength(1);
    expect(sent.at(-1)).toBe('run-summary');
    expect(actionsOf(h.table, from)).toEqual(declared('record-discovery'));
  });

  it('finalize-jobs: a completed job that clears the open problem, a repeated event, a failed job, and a release after an error', async () => {
    const h = start();
    await h.notifier.recordOutcome(thawFailed);
    const second = outcome({
      outcome: 'backed-up',
      instanceId: 'i-0a1b2c3d4e5f60718',
      backupJobId: 'E1E2F3A4-B5C6-7D8E-9F0A-1B2C3D4E5F61',
      window: '2026-11-23T02:00:00Z',
      runId: 'run-20261123T0200Z',
      verdict: { consistency: 'application', reason: 'hooks ran', freezeMs: 2_500 },
    });
    await h.notifier.recordOutcome(second);
    const from = h.table.calls.length;
    const event = (jobId: string, state: string) => ({
      'detail-type': 'Backup Job State Change',
      source: 'aws.backup',
      resources: [IMAGE],
      detail: { backupJobId: jobId, state },
    });
    const deps = { notifier: h.notifier, requestLabel: async () => undefined, clock: h.now };
    const cleared = await handleJobEvent(event(second.backupJobId as string, 'COMPLETED'), deps);
    expect(cleared).toMatchObject({
      action: 'handled',
      notifications: [expect.objectContaining({ severity: 'Clear' })],
    });
    expect(await handleJobEvent(event(second.backupJobId as string, 'COMPLETED'), deps)).toMatchObject({
      action: 'ignored',
    });
    await expect(
      handleJobEvent(event(JOB, 'FAILED'), {
        ...deps,
        notifier: Object.assign(Object.create(h.notifier), {
          notifyProblem: async () => {
            throw new Error('SNS is down');
          },
        }),
      }),
    ).rejects.toThrow('SNS is down');
    expect(await handleJobEvent(event(JOB, 'FAILED'), deps)).toMatchObject({
      action: 'handled',
      state: 'FAILED',
    });
    expect(actionsOf(h.table, from)).toEqual(declared('finalize-jobs'));
  });

  it('sweep-runs: an overdue run gets its summary, a run already summarized leaves the index', async () => {
    const h = start();
    await h.notifier.recordDiscovery(summary({ discovered: 2, started: 2 }), []);
    await h.notifier.recordOutcome(outcome({ outcome: 'backed-up', instanceId: 'i-0a1b2c3d4e5f60718' }));
    h.advance(241);
    const from = h.table.calls.length;
    expect(await h.notifier.sweepOverdueRuns()).toEqual(['run-20261122T0200Z']);
    expect(await h.notifier.sweepOverdueRuns()).toEqual([]);
    expect(actionsOf(h.table, from)).toEqual(declared('sweep-runs'));
  });

  it('track-copies: a failed copy counted once however often delivered, a publish that fails and is undone, a Clear for an open problem and none for an absent one', async () => {
    const h = start();
    const copy: CopyContext = {
      accountId: ACCOUNT,
      region: REGION,
      instanceId: 'i-0a1b2c3d4e5f60718',
      runId: 'run-20261122T0200Z',
      sourceRecoveryPointArn: IMAGE,
      destinationVaultArn: 'arn:aws:backup:us-east-1:444455556666:backup-vault:central',
      copyJobId: 'C0FFEE00-B5C6-7D8E-9F0A-1B2C3D4E5F60',
      copyJobState: 'FAILED',
    };
    const from = h.table.calls.length;
    const failed = buildCopyFailedNotification(copy, 'Access denied', h.now());
    expect(await h.notifier.countCopy('run-20261122T0200Z', 'copiesFailed', 'copy:1:FAILED')).toBe(true);
    expect(await h.notifier.countCopy('run-20261122T0200Z', 'copiesFailed', 'copy:1:FAILED')).toBe(false);
    h.snsMock.on(PublishCommand).rejectsOnce(new Error('SNS is down'));
    await expect(h.notifier.notifyProblem(failed, undefined, 'copy:1:FAILED', h.now())).rejects.toThrow(
      'SNS is down',
    );
    h.snsMock.on(PublishCommand).callsFake((input) => {
      h.published.push(input);
      return { MessageId: `m-${h.published.length}` };
    });
    expect(await h.notifier.notifyProblem(failed, undefined, 'copy:1:FAILED', h.now())).toBe(true);
    const completed = {
      ...copy,
      copyJobId: 'C0FFEE01-B5C6-7D8E-9F0A-1B2C3D4E5F61',
      copyJobState: 'COMPLETED',
    };
    const build = (problem: Parameters<typeof buildCopyRecoveredNotification>[0]) =>
      buildCopyRecoveredNotification(problem, completed, h.now());
    expect(await h.notifier.clearProblem(copy.instanceId, 'copy', build)).toMatchObject({
      severity: 'Clear',
    });
    expect(await h.notifier.clearProblem(copy.instanceId, 'copy', build)).toBeUndefined();
    expect(actionsOf(h.table, from)).toEqual(declared('track-copies'));
  });

  it('verify-restores: a failed verification, its repeat, and the Clear of a later verified restore', async () => {
    const h = start();
    const test: VerificationContext = {
      accountId: ACCOUNT,
      region: REGION,
      instanceId: 'i-0a1b2c3d4e5f60718',
      restoreJobId: 'R0A1B2C3-B5C6-7D8E-9F0A-1B2C3D4E5F60',
      recoveryPointArn: IMAGE,
      result: 'failed',
      summary: 'fsck found errors on /data',
      detail: '/dev/nvme1n1: 3 errors',
    };
    const from = h.table.calls.length;
    const failed = buildVerificationFailedNotification(test, h.now());
    expect(await h.notifier.notifyProblem(failed, undefined, `restore:${test.restoreJobId}`, h.now())).toBe(
      true,
    );
    expect(await h.notifier.notifyProblem(failed, undefined, `restore:${test.restoreJobId}`, h.now())).toBe(
      false,
    );
    const verified = {
      ...test,
      restoreJobId: 'R1A1B2C3-B5C6-7D8E-9F0A-1B2C3D4E5F61',
      result: 'verified' as const,
    };
    const build = (problem: Parameters<typeof buildVerificationRecoveredNotification>[0]) =>
      buildVerificationRecoveredNotification(problem, verified, h.now());
    expect(await h.notifier.clearProblem(test.instanceId, 'verification', build)).toMatchObject({
      severity: 'Clear',
    });
    expect(await h.notifier.clearProblem(test.instanceId, 'verification', build)).toBeUndefined();
    expect(actionsOf(h.table, from)).toEqual(declared('verify-restores'));
  });

  it('publish-only: publishing touches no table', async () => {
    const h = start();
    const from = h.table.calls.length;
    await h.notifier.recordDiscovery(summary({ discovered: 0, started: 0 }), []);
    const message = h.messages()[0];
    expect(message).toBeDefined();
    const before = h.table.calls.length;
    await h.notifier.publish(message as never);
    expect(actionsOf(h.table, before)).toEqual(declared('publish-only'));
    expect(from).toBeLessThan(before);
  });
});
