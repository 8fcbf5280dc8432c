import { GetCommandInvocationCommand, SSMClient } from '@aws-sdk/client-ssm';
import { SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import type { SQSEvent } from 'aws-lambda';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerCommandWaiter } from '../../../lambda/shared/command-waiters';
import { FakeDynamoDb } from '../../../sim/dynamodb';
import { thawStdout } from './fixtures';

const COMMAND_ID = 'e8d3c0e4-71f7-4491-898f-c9b35bee5f3b';
const INSTANCE = 'i-0123456789abcdef0';

function env() {
  vi.stubEnv('AWS_REGION', 'eu-west-1');
  vi.stubEnv('COORDINATION_TABLE_NAME', 'Coordination');
  vi.stubEnv('FREEZE_DOCUMENT_NAME', 'Backup-Freeze');
  vi.stubEnv('THAW_DOCUMENT_NAME', 'Backup-Thaw');
  vi.stubEnv('GET_INVOCATION_PER_SECOND', '100');
  vi.stubEnv('LIST_INVOCATIONS_PER_SECOND', '100');
  vi.stubEnv('SEND_TASK_PER_SECOND', '100');
  vi.stubEnv('SWEEP_SECONDS', '10');
}

/** GetCommandInvocation's answer for an ended thaw (botocore GetCommandInvocationResult fields). */
const ENDED = {
  CommandId: COMMAND_ID,
  InstanceId: INSTANCE,
  DocumentName: 'Backup-Thaw',
  Status: 'Success' as const,
  StatusDetails: 'Success',
  ResponseCode: 0,
  StandardOutputContent: thawStdout(Date.now()),
  StandardErrorContent: '',
};

const event = (status: string) => ({
  version: '0',
  id: '4780e1b8-f56b-4de5-95f2-95db273d1602',
  'detail-type': 'EC2 Command Invocation Status-change Notification',
  source: 'aws.ssm',
  account: '111122223333',
  time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
  region: 'eu-west-1',
  resources: [`arn:aws:ec2:eu-west-1:111122223333:instance/${INSTANCE}`],
  detail: {
    'command-id': COMMAND_ID,
    'document-name': 'Backup-Thaw',
    'instance-id': INSTANCE,
    'requested-date-time': new Date().toISOString(),
    status,
  },
});

const restores: (() => void)[] = [];
afterEach(() => {
  for (const r of restores.splice(0)) r();
  vi.unstubAllEnvs();
  vi.resetModules();
});

function clients() {
  const table = new FakeDynamoDb('Coordination');
  const { client: ddb, mock } = table.install();
  const ssm = mockClient(SSMClient);
  const sfn = mockClient(SFNClient);
  restores.push(
    () => mock.restore(),
    () => ssm.restore(),
    () => sfn.restore(),
  );
  return { table, ddb, ssm, sfn };
}

describe('command-results handler', () => {
  it('handles a queue batch concurrently and reports only the record that failed', async () => {
    env();
    const { ddb, ssm, sfn } = clients();
    ssm.on(GetCommandInvocationCommand).resolves(ENDED);
    sfn.on(SendTaskSuccessCommand).resolves({});
    await registerCommandWaiter(ddb, 'Coordination', {
      commandId: COMMAND_ID,
      kind: 'thaw',
      executionName: 'exec-1',
      instanceId: INSTANCE,
      sentAtMs: Date.now(),
      taskToken: 'token-1',
    });
    const { handler } = await import('../../../lambda/command-results/handler');
    const records = [
      { messageId: 'ok', body: JSON.stringify(event('Success')) },
      { messageId: 'not-json', body: '{' },
      { messageId: 'running', body: JSON.stringify(event('InProgress')) },
      // The end of a command SSM will not read out now (throttled): SQS delivers it again.
      {
        messageId: 'throttled',
        body: JSON.stringify({
          ...event('Failed'),
          detail: { ...event('Failed').detail, 'command-id': 'aaaaaaaa-71f7-4491-898f-c9b35bee5f3b' },
        }),
      },
    ].map((r) => ({ ...r, attributes: { ApproximateReceiveCount: '1' } }));
    ssm
      .on(GetCommandInvocationCommand, { CommandId: 'aaaaaaaa-71f7-4491-898f-c9b35bee5f3b' })
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    const out = await handler({ Records: records } as unknown as SQSEvent);
    expect(out).toEqual({ batchItemFailures: [{ itemIdentifier: 'throttled' }] });
    expect(sfn.commandCalls(SendTaskSuccessCommand)).toHaveLength(1);
    expect(
      JSON.parse(sfn.commandCalls(SendTaskSuccessCommand)[0].args[0].input.output as string),
    ).toMatchObject({
      confirmed: true,
      attempt: 1,
    });
  });

  it('sweeps on its schedule: a waiter whose event never came is answered', async () => {
    env();
    const { ddb, ssm, sfn } = clients();
    ssm.on(GetCommandInvocationCommand).resolves(ENDED);
    sfn.on(SendTaskSuccessCommand).resolves({});
    await registerCommandWaiter(ddb, 'Coordination', {
      commandId: COMMAND_ID,
      kind: 'thaw',
      executionName: 'exec-1',
      instanceId: INSTANCE,
      sentAtMs: Date.now() - 10_000,
      taskToken: 'token-2',
    });
    const { handler } = await import('../../../lambda/command-results/handler');
    await handler({ 'detail-type': 'Scheduled Event', source: 'aws.events', detail: {} });
    expect(sfn.commandCalls(SendTaskSuccessCommand).map((c) => c.args[0].input.taskToken)).toEqual([
      'token-2',
    ]);
  });
});
