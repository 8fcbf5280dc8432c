import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { describe, expect, it } from 'vitest';
import { NON_TERMINAL_STATUSES } from '../../lambda/command-results/settings';
import { CommandResults, type CommandResultsProps } from '../../lib/command-results';
import { reservedConcurrency } from '../../lib/concurrency';
import { nagFindings } from '../../sim/app-synth';

const NAMES = { freeze: 'Backup-Freeze', thaw: 'Backup-Thaw' };

/** A stack with the construct and a state machine that waits on its queue, as the workflow will. */
function build(props: Partial<CommandResultsProps> = {}) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Backup', { env: { account: '111122223333', region: 'eu-west-1' } });
  const table =
    props.table ??
    new dynamodb.Table(stack, 'Coordination', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiresAt',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    });
  const results = new CommandResults(stack, 'CommandResults', {
    documents: { names: NAMES } as CommandResultsProps['documents'],
    ...props,
    table,
  });
  const wait = new tasks.SqsSendMessage(stack, 'Wait For Thaw Result', {
    queue: results.queue,
    integrationPattern: sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
    messageBody: sfn.TaskInput.fromObject({
      taskToken: sfn.JsonPath.taskToken,
      kind: 'thaw',
      command: sfn.JsonPath.objectAt('$.thawCommand'),
      instanceId: sfn.JsonPath.stringAt('$.instanceId'),
      execution: sfn.JsonPath.executionName,
    }),
    taskTimeout: sfn.Timeout.duration(Duration.seconds(90)),
  });
  const machine = new sfn.StateMachine(stack, 'Workflow', {
    definitionBody: sfn.DefinitionBody.fromChainable(wait),
    tracingEnabled: true,
  });
  results.answersTo(machine);
  return { app, stack, results, machine, template: Template.fromStack(stack) };
}

type Statement = { Action: string | string[]; Resource: unknown; Effect: string };
const statementsOf = (template: Template, roleLogicalIdPrefix: string): Statement[] =>
  Object.entries(template.findResources('AWS::IAM::Policy'))
    .filter(([, p]) => JSON.stringify(p.Properties.Roles).includes(roleLogicalIdPrefix))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Statement[]);
const actions = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);

describe('CommandResults construct', () => {
  const { app, template, stack } = build();

  it('routes only ended invocations of the two documents to the waiters queue, with a dead-letter queue', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.ssm'],
        'detail-type': ['EC2 Command Invocation Status-change Notification'],
        detail: {
          'document-name': [NAMES.freeze, NAMES.thaw],
          status: [{ 'anything-but': [...NON_TERMINAL_STATUSES] }],
        },
      },
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('CommandResultsWaiters'), 'Arn'] },
          DeadLetterConfig: {
            Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('CommandResultsDeadLetters'), 'Arn'] },
          },
        }),
      ],
    });
  });

  it('encrypts both queues, refuses non-TLS access, and moves a message failed 5 times to the dead letters', () => {
    const queues = template.findResources('AWS::SQS::Queue');
    expect(Object.keys(queues)).toHaveLength(2);
    for (const q of Object.values(queues)) expect(q.Properties.SqsManagedSseEnabled).toBe(true);
    template.hasResourceProperties('AWS::SQS::Queue', {
      RedrivePolicy: { maxReceiveCount: 5, deadLetterTargetArn: Match.anyValue() },
    });
    const denies = Object.values(template.findResources('AWS::SQS::QueuePolicy')).flatMap((p) =>
      (p.Properties.PolicyDocument.Statement as Record<string, unknown>[]).filter(
        (s) => s.Effect === 'Deny' && JSON.stringify(s.Condition).includes('aws:SecureTransport'),
      ),
    );
    expect(denies.length).toBeGreaterThanOrEqual(2);
  });

  it('consumes the queue two instances at a time, reports failures per message, and sweeps every minute', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: 10,
      ScalingConfig: { MaximumConcurrency: 2 },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      Targets: [Match.objectLike({ RetryPolicy: { MaximumRetryAttempts: 0 } })],
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      ReservedConcurrentExecutions: reservedConcurrency('command-results'),
      Timeout: 45 + 10 + 15,
    });
  });

  it("paces each instance to its share of the app's budgets", () => {
    const fn = Object.values(template.findResources('AWS::Lambda::Function')).find(
      (f) => f.Properties.Environment?.Variables?.FREEZE_DOCUMENT_NAME,
    );
    const share = (total: number) =>
      String(Number((total / reservedConcurrency('command-results')).toFixed(3)));
    expect(fn?.Properties.Environment.Variables).toMatchObject({
      FREEZE_DOCUMENT_NAME: NAMES.freeze,
      THAW_DOCUMENT_NAME: NAMES.thaw,
      GET_INVOCATION_PER_SECOND: share(10),
      LIST_INVOCATIONS_PER_SECOND: share(4),
      SEND_TASK_PER_SECOND: share(50),
      SWEEP_SECONDS: '45',
    });
  });

  it('grants the SSM reads on *, SendTask on the state machine only, and the table actions the code uses', () => {
    const st = statementsOf(template, 'CommandResultsFunctionRole');
    const ssm = st.filter((s) => actions(s).some((a) => a.startsWith('ssm:')));
    expect(ssm).toEqual([
      expect.objectContaining({
        Action: ['ssm:GetCommandInvocation', 'ssm:ListCommandInvocations'],
        Resource: '*',
      }),
    ]);
    const states = st.filter((s) => actions(s).some((a) => a.startsWith('states:')));
    expect(states).toEqual([
      expect.objectContaining({
        Action: ['states:SendTaskSuccess', 'states:SendTaskFailure'],
        Resource: {
          Ref: stack.getLogicalId(stack.node.findChild('Workflow').node.defaultChild as sfn.CfnStateMachine),
        },
      }),
    ]);
    const dynamo = st
      .flatMap(actions)
      .filter((a) => a.startsWith('dynamodb:'))
      .sort();
    expect(dynamo).toEqual([
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
      'dynamodb:UpdateItem',
    ]);
  });

  it('is cdk-nag clean and cfn-lint clean with a state machine waiting on its queue (no circular dependency)', () => {
    expect(nagFindings(app).filter((f) => f.includes('CommandResults'))).toEqual([]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ecb-cmd-'));
    const file = path.join(dir, 'template.json');
    fs.writeFileSync(file, JSON.stringify(template.toJSON()));
    const lint = spawnSync('cfn-lint', ['--ignore-checks', 'W3005', '--', file], { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true, force: true });
    expect(lint.error).toBeUndefined();
    expect(`${lint.stdout}${lint.stderr}`).toBe('');
  });

  it('uses the Coordination table it is given and makes none of its own', () => {
    const app2 = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack2 = new Stack(app2, 'Shared', { env: { account: '111122223333', region: 'eu-west-1' } });
    const shared = new dynamodb.Table(stack2, 'Coordination', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
    });
    const results = new CommandResults(stack2, 'CommandResults', {
      documents: { names: NAMES } as CommandResultsProps['documents'],
      table: shared,
    });
    expect(results.table).toBe(shared);
    Template.fromStack(stack2).resourceCountIs('AWS::DynamoDB::Table', 1);
  });

  it('refuses rates and sweep lengths it cannot honour, naming the value and what is allowed', () => {
    expect(() => build({ getInvocationsPerSecond: 0 })).toThrow(
      /Invalid getInvocationsPerSecond: got 0; allowed: more than 0 and at most 20/,
    );
    expect(() => build({ sweepSeconds: 59 })).toThrow(
      /Invalid sweepSeconds: got 59; allowed: a whole number from 10 to 50/,
    );
  });
});
