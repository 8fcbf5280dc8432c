import { App, Stack } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../lib/config';
import { DeadLetters } from '../../../lib/dead-letters';
import { BackupFunction } from '../../../lib/lambda-function';
import { Notifications } from '../../../lib/notifications';
import { Vault } from '../../../lib/vault';
import { nagFindings, type SynthResult, synthApp } from '../../../sim/app-synth';

type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown };
type Resource = { Type: string; Properties: Record<string, unknown> };

const actions = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const getAtt = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });

describe('DeadLetters in the whole stack', () => {
  let result: SynthResult;
  let resources: Record<string, Resource>;
  const idOf = (type: string, pattern: RegExp): string => {
    const ids = Object.keys(resources).filter((id) => resources[id].Type === type && pattern.test(id));
    expect(ids, `${type} matching ${pattern}`).toHaveLength(1);
    return ids[0];
  };

  beforeAll(() => {
    result = synthApp({ notificationEmails: 'ops@example.com' });
    resources = result.template.toJSON().Resources as Record<string, Resource>;
  });

  it('polls both failure queues with small batches, partial batch failures and two pollers at most', () => {
    const fn = idOf('AWS::Lambda::Function', /DeadLettersFunction/);
    const mappings = Object.values(resources).filter((r) => r.Type === 'AWS::Lambda::EventSourceMapping');
    const ours = mappings.filter(
      (m) => JSON.stringify(m.Properties.FunctionName) === JSON.stringify({ Ref: fn }),
    );
    expect(ours.map((m) => m.Properties.EventSourceArn)).toEqual(
      expect.arrayContaining([
        getAtt(idOf('AWS::SQS::Queue', /ScheduleDeadLetterQueue/)),
        getAtt(idOf('AWS::SQS::Queue', /DiscoveryFailedInvocations/)),
      ]),
    );
    expect(ours).toHaveLength(2);
    for (const m of ours) {
      expect(m.Properties).toMatchObject({
        BatchSize: 5,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        ScalingConfig: { MaximumConcurrency: 2 },
      });
    }
  });

  it('times out within the queues visibility timeout (Lambda rejects the mapping otherwise), and the queues stay SQS-managed encrypted', () => {
    const fn = resources[idOf('AWS::Lambda::Function', /DeadLettersFunction/)];
    for (const pattern of [/ScheduleDeadLetterQueue/, /DiscoveryFailedInvocations/]) {
      const queue = resources[idOf('AWS::SQS::Queue', pattern)];
      const visibility = (queue.Properties.VisibilityTimeout as number | undefined) ?? 30;
      expect(fn.Properties.Timeout as number).toBeLessThanOrEqual(visibility);
      expect(queue.Properties.SqsManagedSseEnabled).toBe(true);
    }
  });

  it('knows the discovery function and log groups it names in notifications', () => {
    const fn = resources[idOf('AWS::Lambda::Function', /DeadLettersFunction/)];
    const variables = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(variables).toMatchObject({
      DISCOVERY_FUNCTION_ARN: getAtt(idOf('AWS::Lambda::Function', /DiscoveryFunction/)),
      DISCOVERY_LOG_GROUP: { Ref: idOf('AWS::Logs::LogGroup', /DiscoveryFunctionLogs/) },
      DEAD_LETTERS_LOG_GROUP: { Ref: idOf('AWS::Logs::LogGroup', /DeadLettersFunctionLogs/) },
      NOTIFICATION_TOPIC_ARN: { Ref: idOf('AWS::SNS::Topic', /NotificationsTopic/) },
      NOTIFICATION_TABLE_NAME: { Ref: idOf('AWS::DynamoDB::Table', /NotificationsState/) },
    });
  });

  it('may publish, write its marks, and read only the two queues: nothing else', () => {
    const policy = resources[idOf('AWS::IAM::Policy', /DeadLettersFunctionRoleDefaultPolicy/)];
    const statements = (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement;
    const byAction = Object.fromEntries(statements.flatMap((s) => actions(s).map((a) => [a, s.Resource])));
    const topic = { Ref: idOf('AWS::SNS::Topic', /NotificationsTopic/) };
    const table = getAtt(idOf('AWS::DynamoDB::Table', /NotificationsState/));
    const schedulerQueue = getAtt(idOf('AWS::SQS::Queue', /ScheduleDeadLetterQueue/));
    const failuresQueue = getAtt(idOf('AWS::SQS::Queue', /DiscoveryFailedInvocations/));
    expect(Object.keys(byAction).sort()).toEqual(
      [
        'dynamodb:DeleteItem',
        'dynamodb:PutItem',
        'kms:Decrypt',
        'kms:GenerateDataKey',
        'logs:CreateLogStream',
        'logs:PutLogEvents',
        'sns:Publish',
        'sqs:ChangeMessageVisibility',
        'sqs:DeleteMessage',
        'sqs:GetQueueAttributes',
        'sqs:GetQueueUrl',
        'sqs:ReceiveMessage',
        'xray:PutTelemetryRecords',
        'xray:PutTraceSegments',
      ].sort(),
    );
    expect(byAction['sns:Publish']).toEqual(topic);
    expect(byAction['dynamodb:PutItem']).toEqual(table);
    expect(byAction['kms:GenerateDataKey']).toEqual(getAtt(idOf('AWS::KMS::Key', /NotificationsTopicKey/)));
    const kms = statements.find((s) => actions(s).includes('kms:GenerateDataKey'));
    expect(kms?.Condition).toEqual({ StringEquals: { 'kms:EncryptionContext:aws:sns:topicArn': topic } });
    const sqsResources = statements
      .filter((s) => actions(s).some((a) => a.startsWith('sqs:')))
      .map((s) => JSON.stringify(s.Resource))
      .sort();
    expect(sqsResources).toEqual([JSON.stringify(schedulerQueue), JSON.stringify(failuresQueue)].sort());
  });

  it('leaves no cdk-nag finding on its resources', () => {
    expect(nagFindings(result.app).filter((f) => /DeadLetters/.test(f))).toEqual([]);
  });
});

describe('DeadLetters props', () => {
  function build(batchSize: number) {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'DeadLettersTest', {
      env: { account: '111122223333', region: 'eu-west-1' },
    });
    const config = parseConfig({});
    const notifications = new Notifications(stack, 'Notifications', {
      config,
      vault: new Vault(stack, 'Vault', { config }),
    });
    return new DeadLetters(stack, 'DeadLetters', {
      notifications,
      discoveryFunction: new BackupFunction(stack, 'Discovery', {
        handlerDir: 'discovery',
        description: 'test',
      }),
      scheduleDeadLetterQueue: new sqs.Queue(stack, 'SchedulerQueue'),
      discoveryFailures: new sqs.Queue(stack, 'FailuresQueue'),
      batchSize,
    });
  }

  it.each([0, 11, 2.5])('rejects batchSize %s, naming the value and what is allowed', (batchSize) => {
    expect(() => build(batchSize)).toThrow(
      `Invalid batchSize: got ${batchSize}; allowed: a whole number from 1 to 10.`,
    );
  });

  it('accepts a batch size of 1', () => {
    expect(build(1).function).toBeInstanceOf(BackupFunction);
  });
});
