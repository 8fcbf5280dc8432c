import type { SQSEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { isRetryableAwsError, processQueue } from '../../../lambda/shared/deferred-queue';

function event(...bodies: [string, number][]): SQSEvent {
  return {
    Records: bodies.map(([body, attempt], i) => ({
      messageId: `m${i}`,
      receiptHandle: `r${i}`,
      body,
      attributes: { ApproximateReceiveCount: String(attempt) },
    })),
  } as unknown as SQSEvent;
}

describe('processQueue', () => {
  it('fails exactly the messages that must come again, and reports an error on the last delivery instead', async () => {
    const reported: unknown[] = [];
    const result = await processQueue(
      event(['{"n":1}', 1], ['{"n":2}', 1], ['{"n":3}', 1], ['{"n":4}', 5], ['not json', 1]),
      async (body) => {
        const n = (body as { n: number }).n;
        if (n === 2) return { kind: 'retry', reason: 'label pending' };
        if (n >= 3) throw new Error(`boom ${n}`);
        return { kind: 'done' };
      },
      { maxReceives: 5, onLastAttemptError: async (body, err) => void reported.push([body, String(err)]) },
    );
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: 'm1' }, { itemIdentifier: 'm2' }]);
    expect(reported).toEqual([[{ n: 4 }, 'Error: boom 4']]);
  });

  it('lets a message go to the dead-letter queue only when even the report fails', async () => {
    const result = await processQueue(
      event(['{}', 3]),
      async () => {
        throw new Error('boom');
      },
      {
        maxReceives: 3,
        onLastAttemptError: async () => {
          throw new Error('SNS down');
        },
      },
    );
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: 'm0' }]);
  });

  it('retries throttling and server faults, not answers', () => {
    expect(isRetryableAwsError(Object.assign(new Error('x'), { name: 'ThrottlingException' }))).toBe(true);
    expect(isRetryableAwsError(Object.assign(new Error('x'), { $metadata: { httpStatusCode: 503 } }))).toBe(
      true,
    );
    expect(isRetryableAwsError(Object.assign(new Error('x'), { name: 'AccessDeniedException' }))).toBe(false);
  });
});
