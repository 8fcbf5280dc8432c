import { ConditionalCheckFailedException, DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FakeAws, fleet } from '../../../sim/discovery-aws';
import { FUNCTION_ARN, STATE_MACHINE_ARN } from './helpers';

const ENV = {
  AWS_REGION: 'eu-west-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  STATE_MACHINE_ARN,
  OPT_IN_TAG_KEY: 'ConsistentBackup',
  OPT_IN_TAG_VALUE: 'enabled',
  ON_FREEZE_FAILURE: 'crash-consistent',
  MAX_FROZEN_PER_GROUP: '1',
  WATCHDOG_SECONDS: '90',
  HOOK_TIMEOUT_SECONDS: '30',
  NOTIFICATION_TOPIC_ARN: 'arn:aws:sns:eu-west-1:111122223333:Notifications',
  NOTIFICATION_TABLE_NAME: 'Notifications',
  POWERTOOLS_LOG_LEVEL: 'ERROR',
};

describe('discovery handler', () => {
  const table = mockClient(DynamoDBClient);
  const topic = mockClient(SNSClient);
  let fake: FakeAws;

  beforeAll(() => {
    for (const [k, v] of Object.entries(ENV)) vi.stubEnv(k, v);
    table.onAnyCommand().resolves({});
    table.on(UpdateItemCommand).callsFake(async (input) => {
      if (String(input.ConditionExpression ?? '').includes('completed >= expected')) {
        throw new ConditionalCheckFailedException({ message: 'conditional request failed', $metadata: {} });
      }
      return {};
    });
    topic.on(PublishCommand).resolves({ MessageId: 'm-1' });
  });
  afterAll(() => {
    vi.unstubAllEnvs();
    fake?.restore();
    table.restore();
    topic.restore();
  });

  it('wires the real notifier and module-scope clients: starts the fleet and records the run', async () => {
    fake = new FakeAws(fleet(3, (i) => (i === 2 ? { ssm: null } : {})));
    const { handler } = await import('../../../lambda/discovery/handler');
    const context = {
      invokedFunctionArn: FUNCTION_ARN,
      functionName: 'Discovery',
      awsRequestId: 'req-1',
      getRemainingTimeInMillis: () => 900_000,
    } as unknown as Context;
    const result = await handler({ scheduledTime: '2026-11-22T02:00:00Z', scheduleArn: 'arn' }, context);
    expect(result.summary).toMatchObject({ discovered: 3, started: 2, excluded: { 'ssm-not-managed': 1 } });
    expect(fake.executions.size).toBe(2);
    const runWrites = table
      .commandCalls(UpdateItemCommand)
      .filter((c) => c.args[0].input.Key?.pk?.S === 'RUN#run-20261122T0200Z');
    expect(runWrites.length).toBeGreaterThan(0);
    // The excluded instance became one notification.
    expect(topic.commandCalls(PublishCommand)).toHaveLength(1);
    expect(String(topic.commandCalls(PublishCommand)[0].args[0].input.Message)).toContain(
      'i-00000000000000002',
    );
  });
});
