/**
 * A wave that ends together: many outcomes of one run recorded at the same moment, against the
 * table fake, whose transactions conflict as DynamoDB's do (sim/dynamodb.ts). Every outcome must be
 * counted exactly once, none may fail, and the one summary must carry the right counts.
 */
import {
  TransactionCanceledException,
  TransactionConflictException,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import {
  isConditionFailure,
  isRetryableCancellation,
  TRANSACTION_RETRY,
} from '../../../lambda/shared/notifier';
import type { OutcomeKind, WorkflowOutcome } from '../../../lambda/shared/outcome';
import { viewRun } from '../../../lambda/shared/run-ledger';
import { harness, outcome, summary } from './fixtures';

let h: ReturnType<typeof harness> | undefined;
afterEach(() => {
  h?.snsMock.restore();
  h?.dynamodbMock.restore();
  h = undefined;
});

const instanceId = (i: number) => `i-${i.toString(16).padStart(17, '0')}`;

/** Outcome i of a run: a fixed mix of every counter. */
function mixed(i: number, runId = 'run-20261122T0200Z'): WorkflowOutcome {
  const kinds: [OutcomeKind, 'application' | 'filesystem' | 'crash' | undefined][] = [
    ['backed-up', 'application'],
    ['backed-up', 'application'],
    ['backed-up', 'filesystem'],
    ['backed-up', 'crash'],
    ['skipped-active-job', undefined],
    ['backup-start-failed', undefined],
  ];
  const [kind, consistency] = kinds[i % kinds.length];
  return outcome({
    runId,
    outcome: kind,
    instanceId: instanceId(i),
    ...(consistency
      ? {
          backupJobId: `job-${i}`,
          verdict: { consistency, reason: `${consistency} reason`, freezeMs: 1200 },
        }
      : {}),
    ...(kind === 'backup-start-failed' ? { error: { error: 'E', cause: 'c' } } : {}),
  });
}

describe('a run whose outcomes all arrive at once', () => {
  it.each([
    { n: 120, transactionMs: undefined },
    { n: 60, transactionMs: 5 },
  ])('counts all $n outcomes once, loses none, and sends one right summary (transactions held $transactionMs ms)', async ({
    n,
    transactionMs,
  }) => {
    h = harness(undefined, { transactionMs });
    await h.notifier.recordDiscovery(
      summary({ discovered: n + 2, started: n, excluded: { 'ssm-offline': 2 } }),
      [],
    );
    const results = await Promise.allSettled(
      Array.from({ length: n }, (_, i) => h!.notifier.recordOutcome(mixed(i))),
    );
    const failures = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(failures.length, `${failures.length} outcomes failed, first: ${failures[0]?.reason}`).toBe(0);

    // A retried record-outcome (Step Functions retries the task) changes nothing.
    await Promise.all(Array.from({ length: 6 }, (_, i) => h!.notifier.recordOutcome(mixed(i))));

    const summaries = h.messages().filter((m) => m.eventType === 'run-summary');
    expect(summaries).toHaveLength(1);
    const share = (k: number) => Array.from({ length: n }, (_, i) => i % 6 === k).filter(Boolean).length;
    expect(summaries[0].event.additional_info).toMatchObject({
      discovered: String(n + 2),
      started: String(n),
      finished: String(n),
      application_consistent: String(share(0) + share(1)),
      filesystem_consistent: String(share(2)),
      fell_back: String(share(3)),
      skipped: String(share(4)),
      failed: String(share(5)),
    });
    // One message per instance that fell back, was skipped or failed, each once.
    const perInstance = h.messages().filter((m) => m.eventType !== 'run-summary');
    expect(perInstance).toHaveLength(share(3) + share(4) + share(5));
    expect(new Set(perInstance.map((m) => m.instanceId)).size).toBe(perInstance.length);
    console.info(
      `${n} concurrent outcomes (transactions held ${transactionMs ?? 'one macrotask'}): conflicts`,
      h.table.conflicts,
      'retries',
      h.notifier.retries,
    );
  });
});

describe('what a cancelled transaction means', () => {
  const cancelled = (...codes: string[]) =>
    new TransactionCanceledException({
      message: 'Transaction cancelled',
      $metadata: {},
      CancellationReasons: codes.map((Code) => ({ Code })),
    });

  it('a conflict is retried and is never taken for a condition failure (a repeat)', () => {
    for (const err of [
      cancelled('None', 'TransactionConflict'),
      cancelled('TransactionConflict', 'ThrottlingError'),
      new TransactionConflictException({ message: 'ongoing transaction', $metadata: {} }),
    ]) {
      expect(isRetryableCancellation(err)).toBe(true);
      expect(isConditionFailure(err)).toBe(false);
    }
  });

  it('a failed condition is the answer, even beside a conflict; anything else is an error', () => {
    const repeat = cancelled('ConditionalCheckFailed', 'TransactionConflict');
    expect(isConditionFailure(repeat)).toBe(true);
    expect(isRetryableCancellation(repeat)).toBe(false);
    expect(isRetryableCancellation(cancelled('None', 'ValidationError'))).toBe(false);
    expect(isRetryableCancellation(new Error('socket hang up'))).toBe(false);
  });

  it('an outcome whose shard stays contended fails loudly after the last attempt, recording nothing', async () => {
    const waits: number[] = [];
    h = harness(undefined, {}, { random: () => 0.5, sleep: async (ms) => void waits.push(ms) });
    let sent = 0;
    h.dynamodbMock.on(TransactWriteItemsCommand).callsFake(() => {
      sent++;
      return Promise.reject(cancelled('None', 'TransactionConflict'));
    });
    const o = mixed(5);
    await expect(h.notifier.recordOutcome(o)).rejects.toBeInstanceOf(TransactionCanceledException);
    expect(sent).toBe(TRANSACTION_RETRY.attempts);
    // Full jitter (random 0.5 here) under a ceiling that doubles from 20 ms up to 1 s.
    expect(waits).toEqual([10, 20, 40, 80, 160, 320, 500, 500, 500]);
    expect(h.notifier.retries.transactions).toBe(TRANSACTION_RETRY.attempts - 1);
    expect(h.published).toEqual([]);
    expect(h.table.item(`EXEC#${o.executionArn}`, 'OUTCOME')).toBeUndefined();
  });
});

describe('summing a run', () => {
  it('adds the shards to what the run item itself counted (runs counted before the shards existed)', () => {
    const S = (v: string) => ({ S: v });
    const N = (v: number) => ({ N: String(v) });
    const view = viewRun([
      { pk: S('RUN#r'), sk: S('RUN'), expected: N(5), completed: N(2), failed: N(2) },
      {
        pk: S('RUN#r'),
        sk: S('COUNT#03'),
        completed: N(2),
        application: N(2),
        lastReportAt: S('2026-11-22T02:10:00Z'),
      },
      {
        pk: S('RUN#r'),
        sk: S('COUNT#17'),
        completed: N(1),
        skipped: N(1),
        lastReportAt: S('2026-11-22T02:12:00Z'),
      },
    ]);
    expect(view.totals).toMatchObject({ completed: 5, failed: 2, application: 2, skipped: 1 });
    expect(view.lastReportAt).toBe('2026-11-22T02:12:00Z');
    expect(view.present.has('copiesStarted')).toBe(false);
  });
});
