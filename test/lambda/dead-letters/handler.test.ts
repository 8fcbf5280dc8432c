import { PublishCommand, type PublishCommandInput, SNSClient } from '@aws-sdk/client-sns';
import type { Context, SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Notification } from '../../../lambda/shared/notification';
import { FakeDynamoDb } from '../../../sim/dynamodb';
import { expectValidPublish, TABLE, TOPIC } from '../notifications/fixtures';
import { FUNCTION_ARN, handOverPayload, invocationRecord, SETTINGS, schedulerDeadLetter } from './samples';

const context = {
  functionName: 'dead-letters',
  awsRequestId: 'req-1',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:111122223333:function:dead-letters',
} as unknown as Context;

const snsMock = mockClient(SNSClient);
const table = new FakeDynamoDb(TABLE);
table.install();
let published: PublishCommandInput[] = [];
let handler: (
  event: SQSEvent,
  context: Context,
) => Promise<{ batchItemFailures: { itemIdentifier: string }[] }>;

beforeAll(async () => {
  vi.stubEnv('NOTIFICATION_TOPIC_ARN', TOPIC);
  vi.stubEnv('NOTIFICATION_TABLE_NAME', TABLE);
  vi.stubEnv('DISCOVERY_FUNCTION_ARN', FUNCTION_ARN);
  vi.stubEnv('DISCOVERY_LOG_GROUP', SETTINGS.discoveryLogGroup);
  vi.stubEnv('DEAD_LETTERS_LOG_GROUP', SETTINGS.ownLogGroup);
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
  ({ handler } = await import('../../../lambda/dead-letters/handler'));
});

afterAll(() => {
  vi.unstubAllEnvs();
});

beforeEach(() => {
  table.items.clear();
  table.calls.length = 0;
  published = [];
  snsMock.reset();
  snsMock.on(PublishCommand).callsFake((input: PublishCommandInput) => {
    published.push(input);
    return { MessageId: `m-${published.length}` };
  });
});

const bodies = () => published.map((p) => expectValidPublish(p));

describe('dead-letters handler', () => {
  it('publishes one Major per message of either queue, on the fleet discovery key', async () => {
    const records = [
      schedulerDeadLetter(),
      invocationRecord(),
      invocationRecord({
        payload: handOverPayload(),
        requestId: 'f0e1d2c3-0000-4000-8000-000000000003',
        messageId: 'm-3',
      }),
    ];
    const result = await handler({ Records: records }, context);
    expect(result).toEqual({ batchItemFailures: [] });
    const sent: Notification[] = bodies();
    expect(sent.map((n) => n.eventType)).toEqual([
      'discovery-not-invoked',
      'discovery-failed',
      'discovery-failed',
    ]);
    for (const n of sent) {
      expect(n.severity).toBe('Major');
      expect(n.event.message_key).toBe('ec2-consistent-backup:111122223333:eu-west-1:fleet:discovery');
    }
    expect(published.map((p) => p.MessageAttributes?.severity?.StringValue)).toEqual([
      'Major',
      'Major',
      'Major',
    ]);
    // One mark per failed invocation, expiring after both queues' 14-day retention.
    expect(table.item('DEADLETTER#schedule:ad06f0dc-5a29-4a9e-b6a7-0c1e2d3f4a5b', 'NOTIFIED')).toBeDefined();
    const expiresAt = Number(
      table.item('DEADLETTER#invocation:e4b46cbf-b738-4a1b-8880-a18cdf61200e', 'NOTIFIED')?.expiresAt?.N,
    );
    expect(Math.abs(expiresAt - (Date.now() / 1000 + 15 * 86_400))).toBeLessThan(60);
  });

  it('a redelivered message, or a second record of the same failed request, publishes nothing more', async () => {
    await handler({ Records: [schedulerDeadLetter(), invocationRecord()] }, context);
    expect(published).toHaveLength(2);
    const again = await handler(
      {
        Records: [schedulerDeadLetter(), invocationRecord({ messageId: 'another-sqs-message-same-request' })],
      },
      context,
    );
    expect(again).toEqual({ batchItemFailures: [] });
    expect(published).toHaveLength(2);
  });

  it('a failed publish fails only that message, gives its mark back, and the redelivery publishes', async () => {
    const failing = invocationRecord();
    let calls = 0;
    snsMock.on(PublishCommand).callsFake((input: PublishCommandInput) => {
      calls += 1;
      if (input.Subject?.includes('Discovery failed'))
        throw new Error('KMS.ThrottlingException: Rate exceeded');
      published.push(input);
      return { MessageId: `m-${calls}` };
    });
    const result = await handler({ Records: [schedulerDeadLetter(), failing] }, context);
    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: failing.messageId }] });
    expect(bodies().map((n) => n.eventType)).toEqual(['discovery-not-invoked']);
    expect(
      table.item('DEADLETTER#invocation:e4b46cbf-b738-4a1b-8880-a18cdf61200e', 'NOTIFIED'),
    ).toBeUndefined();

    snsMock.on(PublishCommand).callsFake((input: PublishCommandInput) => {
      published.push(input);
      return { MessageId: 'm-retry' };
    });
    const retry = await handler({ Records: [failing] }, context);
    expect(retry).toEqual({ batchItemFailures: [] });
    expect(bodies().map((n) => n.eventType)).toEqual(['discovery-not-invoked', 'discovery-failed']);
  });

  it('a DynamoDB failure fails the message without publishing', async () => {
    const record = invocationRecord();
    const original = table.put.bind(table);
    table.put = () => {
      throw Object.assign(new Error('Throughput exceeds the current capacity'), {
        name: 'ProvisionedThroughputExceededException',
      });
    };
    try {
      const result = await handler({ Records: [record] }, context);
      expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: record.messageId }] });
      expect(published).toHaveLength(0);
    } finally {
      table.put = original;
    }
  });

  it('an unreadable message is reported, not retried forever', async () => {
    const record = { ...schedulerDeadLetter(), messageAttributes: {}, body: '<html>garbage</html>' };
    const result = await handler({ Records: [record] }, context);
    expect(result).toEqual({ batchItemFailures: [] });
    const [n] = bodies();
    expect(n.eventType).toBe('discovery-failed');
    expect(n.event.additional_info.error).toBe('UnreadableDeadLetter');
    expect(n.event.additional_info.cause).toContain('<html>garbage</html>');
  });
});
