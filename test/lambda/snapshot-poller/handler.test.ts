import { EC2Client } from '@aws-sdk/client-ec2';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FakeDynamoDb } from '../../../sim/dynamodb';

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
  vi.resetModules();
  vi.unstubAllEnvs();
});

function env(extra: Record<string, string> = {}) {
  vi.stubEnv('AWS_REGION', 'eu-west-1');
  vi.stubEnv('AWS_LAMBDA_FUNCTION_NAME', 'Ec2ConsistentBackup-SnapshotPoller');
  vi.stubEnv('COORDINATION_TABLE_NAME', 'Coordination');
  for (const [k, v] of Object.entries(extra)) vi.stubEnv(k, v);
}

const context = (remainingMs: number) =>
  ({ awsRequestId: 'req-1', getRemainingTimeInMillis: () => remainingMs }) as unknown as Context;

describe('snapshot-poller handler', () => {
  it('checks its environment at cold start, naming the variable and what is allowed', async () => {
    env({ DESCRIBE_SNAPSHOTS_PER_SECOND: '40' });
    await expect(import('../../../lambda/snapshot-poller/handler')).rejects.toThrow(
      'Invalid DESCRIBE_SNAPSHOTS_PER_SECOND: got "40"; allowed: a number above 0 and at most 20.',
    );
  });

  it('takes the lease for its invocation and, near its timeout, hands over to itself', async () => {
    env();
    const table = new FakeDynamoDb('Coordination');
    const { mock: dynamodb } = table.install();
    const ec2 = mockClient(EC2Client);
    const lambda = mockClient(LambdaClient);
    lambda.on(InvokeCommand).resolves({ StatusCode: 202 });
    cleanup.push(() => {
      dynamodb.restore();
      ec2.restore();
      lambda.restore();
    });
    const { handler } = await import('../../../lambda/snapshot-poller/handler');
    const run = await handler({ source: 'schedule' }, context(5000));
    expect(run.outcome).toBe('handed-over');
    expect(table.item('LEASE', 'POLLER')?.holder?.S).toMatch(/^req-1\//);
    const invoke = lambda.commandCalls(InvokeCommand)[0].args[0].input;
    expect(invoke).toMatchObject({
      FunctionName: 'Ec2ConsistentBackup-SnapshotPoller',
      InvocationType: 'Event',
    });
    expect(ec2.calls()).toHaveLength(0);
  });
});
