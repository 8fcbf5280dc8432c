import { App, Stack } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { LABEL_SWEEP } from '../../lambda/shared/labels';
import { parseConfig } from '../../lib/config';
import { CREATE_TAGS_REFILL_PER_SECOND, LABEL_QUEUE_MAX_RECEIVES, Labels } from '../../lib/labels';
import { BackupFunction } from '../../lib/lambda-function';
import { Notifications } from '../../lib/notifications';
import { Vault } from '../../lib/vault';
import { type SynthResult, synthApp } from '../../sim/app-synth';

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON.
type Json = any;

const actionsOf = (s: Json): string[] => (Array.isArray(s.Action) ? s.Action : [s.Action]);

/** The statements of the execution role of function `handlerDir`. */
function roleStatements(template: Template, handlerDir: string): Json[] {
  const roles = template.findResources('AWS::IAM::Role');
  const roleId = Object.entries(roles).find(
    ([, r]) => r.Properties.Description === `Execution role of the ${handlerDir} function`,
  )?.[0];
  expect(roleId, handlerDir).toBeDefined();
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${roleId}"`))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

function functionOf(template: Template, handlerDir: string): [string, Json] {
  const fns = template.findResources('AWS::Lambda::Function');
  const roleIds = Object.entries(template.findResources('AWS::IAM::Role'))
    .filter(([, r]) => r.Properties.Description === `Execution role of the ${handlerDir} function`)
    .map(([id]) => id);
  const found = Object.entries(fns).find(([, f]) => roleIds.includes(f.Properties.Role?.['Fn::GetAtt']?.[0]));
  expect(found, handlerDir).toBeDefined();
  return found as [string, Json];
}

describe('Labels in the stack', () => {
  let result: SynthResult;
  let queueId: string;
  beforeAll(() => {
    result = synthApp({});
    const queues = result.template.findResources('AWS::SQS::Queue');
    queueId = Object.keys(queues).find((id) => /LabelsRequests/.test(id)) as string;
  });

  it('reads the label queue with bounded concurrency and batches: the pace of CreateTags is set in the template', () => {
    const [fnId, fn] = functionOf(result.template, 'label-writer');
    result.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: fnId },
      EventSourceArn: { 'Fn::GetAtt': [queueId, 'Arn'] },
      BatchSize: 10,
      ScalingConfig: { MaximumConcurrency: 2 },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    // Two instances, each spacing its CreateTags by 500 ms: at most 4 per second, under EC2's
    // refill of 10 per second that the whole account shares.
    const env = fn.Properties.Environment.Variables;
    expect(env.LABEL_INTERVAL_MS).toBe('500');
    expect((2 * 1000) / Number(env.LABEL_INTERVAL_MS)).toBeLessThanOrEqual(CREATE_TAGS_REFILL_PER_SECOND / 2);
    expect(env.LABEL_QUEUE_URL).toEqual({ Ref: queueId });
    expect(env.LABEL_MAX_RECEIVES).toBe(String(LABEL_QUEUE_MAX_RECEIVES));
    expect(env.LABEL_VAULT_NAME).toBeDefined();
    // The event source is its only trigger: nothing else may invoke it and bypass the pace.
    expect(Object.keys(result.template.findResources('AWS::Lambda::Permission'))).not.toContainEqual(
      expect.stringMatching(/LabelsFunction/),
    );
    // Lambda needs the visibility timeout to exceed the function timeout.
    const queue = result.template.findResources('AWS::SQS::Queue')[queueId];
    expect(queue.Properties.VisibilityTimeout).toBeGreaterThan(fn.Properties.Timeout);
  });

  it('has a dead-letter queue, alarmed like the others', () => {
    const queue = result.template.findResources('AWS::SQS::Queue')[queueId];
    expect(queue.Properties.RedrivePolicy.maxReceiveCount).toBe(LABEL_QUEUE_MAX_RECEIVES);
    const dlqId = queue.Properties.RedrivePolicy.deadLetterTargetArn['Fn::GetAtt'][0];
    const alarms = Object.values(result.template.findResources('AWS::CloudWatch::Alarm'));
    const watching = alarms.filter((a) => JSON.stringify(a.Properties).includes(`"${dlqId}"`));
    expect(watching).toHaveLength(1);
    expect(JSON.stringify(watching[0].Properties.AlarmDescription)).toMatch(/label-writer/);
  });

  it('sweeps hourly through the same queue, so the sweep is paced too', () => {
    result.template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 hour)',
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [queueId, 'Arn'] },
          Input: JSON.stringify(LABEL_SWEEP),
        }),
      ],
    });
  });

  it('lets the label-writer tag only labelled AMIs with the three label tags, read verdicts, and nothing else', () => {
    const st = roleStatements(result.template, 'label-writer');
    const tagging = st.filter((s) => actionsOf(s).includes('ec2:CreateTags'));
    expect(tagging).toHaveLength(1);
    expect(JSON.stringify(tagging[0].Resource)).toContain(':image/*');
    expect(tagging[0].Condition).toEqual({
      StringLike: { 'aws:ResourceTag/ConsistentBackup:Consistency': '*' },
      'ForAllValues:StringEquals': {
        'aws:TagKeys': [
          'ConsistentBackup:Consistency',
          'ConsistentBackup:Reason',
          'ConsistentBackup:FreezeMs',
        ],
      },
    });
    const all = [...new Set(st.flatMap(actionsOf))].sort();
    expect(all).toEqual(
      [
        'backup:DescribeBackupJob',
        'backup:ListBackupJobs',
        'dynamodb:GetItem',
        'ec2:CreateTags',
        'ec2:DescribeImages',
        'logs:CreateLogStream',
        'logs:PutLogEvents',
        'sqs:ChangeMessageVisibility',
        'sqs:DeleteMessage',
        'sqs:GetQueueAttributes',
        'sqs:GetQueueUrl',
        'sqs:ReceiveMessage',
        'sqs:SendMessage',
        'xray:PutTelemetryRecords',
        'xray:PutTraceSegments',
      ].sort(),
    );
    expect(all).not.toContain('sns:Publish');
  });

  it('lets record-outcome and job-events request labels, and job-events tag nothing itself', () => {
    for (const dir of ['record-outcome', 'job-events']) {
      const st = roleStatements(result.template, dir);
      const send = st.filter((s) => actionsOf(s).includes('sqs:SendMessage'));
      expect(
        send.map((s) => s.Resource),
        dir,
      ).toEqual([{ 'Fn::GetAtt': [queueId, 'Arn'] }]);
      const [, fn] = functionOf(result.template, dir);
      expect(fn.Properties.Environment.Variables.LABEL_QUEUE_URL, dir).toEqual({ Ref: queueId });
    }
    expect(roleStatements(result.template, 'job-events').flatMap(actionsOf)).not.toContain('ec2:CreateTags');
  });
});

describe('Labels props', () => {
  function build(props: Partial<ConstructorParameters<typeof Labels>[2]>) {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'S', { env: { account: '111122223333', region: 'eu-west-1' } });
    const config = parseConfig({});
    const vault = new Vault(stack, 'Vault', { config });
    const notifications = new Notifications(stack, 'Notifications', { config, vault });
    const requester = new BackupFunction(stack, 'Requester', { handlerDir: 'job-events', description: 'x' });
    return new Labels(stack, 'Labels', { vault, notifications, requesters: [requester], ...props });
  }

  it('derives each instance’s spacing from the rate and the concurrency', () => {
    expect(build({}).intervalMs).toBe(500);
    const faster = build({ labelsPerSecond: 5, maxConcurrency: 4 });
    expect(faster.intervalMs).toBe(800);
    expect((faster.maxConcurrency * 1000) / faster.intervalMs).toBeLessThanOrEqual(5);
  });

  it('refuses a rate above half of the account’s CreateTags refill, and concurrency Lambda refuses, naming the value', () => {
    expect(() => build({ labelsPerSecond: 8 })).toThrow(
      /Invalid labelsPerSecond: got 8; allowed: more than 0 and at most 5/,
    );
    expect(() => build({ maxConcurrency: 1 })).toThrow(
      /Invalid maxConcurrency: got 1; allowed: a whole number from 2/,
    );
    expect(() => build({ batchSize: 11 })).toThrow(/Invalid batchSize: got 11/);
  });
});
