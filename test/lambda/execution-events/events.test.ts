/**
 * execution-events: each failed, timed-out or aborted workflow execution reaches SNS once, through
 * the one schema, whoever notifies first (record-outcome, the state machine's last resort, or this
 * function), with the real notifier over the table fake.
 */
import { PublishCommand } from '@aws-sdk/client-sns';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ExecutionStatusEvent,
  handleExecutionEvent,
  WORKFLOW_ERRORS,
} from '../../../lambda/execution-events/events';
import {
  BACKUP_FAILED,
  INPUT_REJECTED,
  OUTCOME_ALREADY_NOTIFIED,
  OUTCOME_NOT_NOTIFIED,
  OUTCOME_NOT_RECORDED,
} from '../../../lib/workflow';
import { workflowInput, Sim } from '../../../sim/workflow-sim';
import {
  ACCOUNT,
  executionArn,
  expectValidPublish,
  harness,
  outcome,
  REGION,
  TABLE,
} from '../notifications/fixtures';

type Harness = ReturnType<typeof harness>;
let open: Harness[] = [];
let mocks: { restore(): void }[] = [];
afterEach(() => {
  for (const m of mocks) m.restore();
  mocks = [];
  for (const h of open) {
    h.snsMock.restore();
    h.dynamodbMock.restore();
  }
  open = [];
});

const INSTANCE = 'i-0123456789abcdef0';
const ARN = executionArn(INSTANCE);
const STOP = Date.parse('2026-11-22T02:03:00Z');

function start() {
  const h = harness();
  open.push(h);
  // The same table fake the notifier writes to, through a client of this function's own.
  const { client, mock } = h.table.install();
  mocks.push(mock);
  const deps = {
    publisher: h.notifier,
    dynamodb: client,
    tableName: TABLE,
    watchdogSeconds: 90,
    logger: { info: () => undefined },
    clock: h.now,
  };
  return { h, deps };
}

function event(
  status: string,
  input: Record<string, unknown> | undefined,
  error?: string,
  cause?: string,
): ExecutionStatusEvent {
  return {
    account: ACCOUNT,
    region: REGION,
    detail: {
      executionArn: ARN,
      status,
      stopDate: STOP,
      input: input === undefined ? null : JSON.stringify(input),
      error: error ?? null,
      cause: cause ?? null,
    },
  };
}

const linuxInput = () => workflowInput(new Sim({})) as unknown as Record<string, unknown>;

describe('execution-events', () => {
  it('reads the error names the workflow really uses', () => {
    expect(WORKFLOW_ERRORS).toEqual({
      outcomeNotRecorded: OUTCOME_NOT_RECORDED,
      outcomeAlreadyNotified: OUTCOME_ALREADY_NOTIFIED,
      backupFailed: BACKUP_FAILED,
      inputRejected: INPUT_REJECTED,
    });
  });

  it('input Check Input rejected: one Major execution-failed naming each bad field and value, once however often delivered', async () => {
    const { h, deps } = start();
    const { startAt: _s, ...input }: Record<string, unknown> = { ...linuxInput(), instanceArn: 'not-an-arn' };
    const e = event('FAILED', input, INPUT_REJECTED, 'The execution input breaks a rule');
    expect(await handleExecutionEvent(e, deps)).toBe('notified');
    expect(await handleExecutionEvent(e, deps)).toBe('already-notified');
    expect(h.published).toHaveLength(1);
    const n = expectValidPublish(h.published[0]);
    expect(n).toMatchObject({ severity: 'Major', eventType: 'execution-failed', instanceId: INSTANCE });
    expect(n.subject).toBe(`[Major] Backup input rejected for ${INSTANCE} (db-1)`);
    expect(n.event.description).toContain('startAt is missing; allowed: an RFC 3339 timestamp');
    expect(n.event.description).toContain('instanceArn is "not-an-arn"; allowed: an EC2 instance ARN');
    expect(n.event.description).toContain('Nothing was frozen');
  });

  it('an execution aborted on a running Linux instance: Critical thaw-failed with the latest watchdog time', async () => {
    const { h, deps } = start();
    expect(await handleExecutionEvent(event('ABORTED', linuxInput()), deps)).toBe('notified');
    const n = expectValidPublish(h.published[0]);
    expect(n).toMatchObject({ severity: 'Critical', eventType: 'thaw-failed' });
    expect(n.event.message_key).toBe(`ec2-consistent-backup:${ACCOUNT}:${REGION}:${INSTANCE}:thaw`);
    expect(n.event.additional_info.watchdog_thaw_by).toBe('2026-11-22 02:04:30');
    expect(n.event.description).toContain('was aborted');
  });

  it('a timed-out Windows execution, and one whose input names no valid instance: Major, on the fleet node when needed', async () => {
    const { h, deps } = start();
    const windows = { ...linuxInput(), platform: 'windows' };
    expect(await handleExecutionEvent(event('TIMED_OUT', windows), deps)).toBe('notified');
    expect(expectValidPublish(h.published[0])).toMatchObject({
      severity: 'Major',
      eventType: 'execution-failed',
    });
    const other = start();
    const bad = { instanceId: 'web server' };
    expect(await handleExecutionEvent(event('FAILED', bad, INPUT_REJECTED), other.deps)).toBe('notified');
    const n = expectValidPublish(other.h.published[0]);
    expect(n.event.node).toBe('fleet');
    expect(n.event.description).toContain('instanceId is "web server"');
  });

  it('nothing for an execution record-outcome already notified, for the last resort, or for a success', async () => {
    const { h, deps } = start();
    // record-outcome recorded (and notified) this execution's outcome, then the execution failed.
    await h.notifier.recordOutcome(
      outcome({ outcome: 'backup-start-failed', instanceId: INSTANCE, error: { error: 'E', cause: 'c' } }),
    );
    expect(h.published).toHaveLength(1);
    expect(await handleExecutionEvent(event('FAILED', linuxInput(), 'BackupFailed'), deps)).toBe(
      'already-notified',
    );
    expect(await handleExecutionEvent(event('FAILED', linuxInput(), OUTCOME_NOT_RECORDED), deps)).toBe(
      'notified-by-last-resort',
    );
    expect(await handleExecutionEvent(event('SUCCEEDED', linuxInput()), deps)).toBe('not-a-failure');
    expect(h.published).toHaveLength(1);
  });

  it('a last resort that could not publish is notified here', async () => {
    const { h, deps } = start();
    expect(await handleExecutionEvent(event('FAILED', linuxInput(), OUTCOME_NOT_NOTIFIED), deps)).toBe(
      'notified',
    );
    expect(expectValidPublish(h.published[0])).toMatchObject({ severity: 'Critical' });
  });

  it('a failed publish gives the claim back, so the retry publishes; only UpdateItem is used', async () => {
    const { h, deps } = start();
    let down = true;
    h.snsMock.on(PublishCommand).callsFake((input) => {
      if (down) {
        down = false;
        throw new Error('SNS is down');
      }
      h.published.push(input);
      return { MessageId: 'm-1' };
    });
    const from = h.table.calls.length;
    const e = event('TIMED_OUT', linuxInput());
    await expect(handleExecutionEvent(e, deps)).rejects.toThrow(/SNS is down/);
    expect(await handleExecutionEvent(e, deps)).toBe('notified');
    expect(await handleExecutionEvent(e, deps)).toBe('already-notified');
    expect(h.published).toHaveLength(1);
    // lib/execution-events.ts grants exactly this one on the table.
    expect([...new Set(h.table.calls.slice(from).map((c) => c.command))].sort()).toEqual(['UpdateItem']);
  });

  it('a claim record-outcome left unconfirmed (it died before or after its publish) is taken over: never silent', async () => {
    const { h, deps } = start();
    // The notifier's mark without notifiedAt: what a Record Outcome that hung in its publish leaves.
    h.table.items.set(`EXEC#${ARN}\u0000OUTCOME`, {
      pk: { S: `EXEC#${ARN}` },
      sk: { S: 'OUTCOME' },
      outcome: { S: 'backup-start-failed' },
      shard: { N: '3' },
    });
    expect(await handleExecutionEvent(event('FAILED', linuxInput(), OUTCOME_NOT_NOTIFIED), deps)).toBe(
      'notified',
    );
    expect(h.published).toHaveLength(1);
    expect(h.table.item(`EXEC#${ARN}`, 'OUTCOME')?.notifiedAt?.S).toBeDefined();
    // Confirmed now: a redelivery sends nothing.
    expect(await handleExecutionEvent(event('FAILED', linuxInput(), OUTCOME_NOT_NOTIFIED), deps)).toBe(
      'already-notified',
    );
    expect(h.published).toHaveLength(1);
  });

  it('the last resort found the confirmed notification: nothing more, without a table call', async () => {
    const { h, deps } = start();
    const from = h.table.calls.length;
    expect(await handleExecutionEvent(event('FAILED', linuxInput(), OUTCOME_ALREADY_NOTIFIED), deps)).toBe(
      'already-notified',
    );
    expect(h.table.calls.length).toBe(from);
    expect(h.published).toHaveLength(0);
  });
});
