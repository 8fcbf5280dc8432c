/**
 * A wave that ends together: many outcomes of one run recorded at the same moment, against the
 * table fake, whose transactions conflict as DynamoDB's do (sim/dynamodb.ts). Every outcome must be
 * counted exactly once, none may fail, and the one summary must carry the right counts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { OutcomeKind, WorkflowOutcome } from '../../../lambda/shared/outcome';
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
    );
  });
});
