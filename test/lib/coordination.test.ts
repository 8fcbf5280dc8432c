import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { beforeAll, describe, expect, it } from 'vitest';
import { Coordination } from '../../lib/coordination';
import { nagFindings, type SynthResult, synthApp } from '../../sim/app-synth';

type Resources = Record<string, { Type: string; Properties?: unknown; DependsOn?: string | string[] }>;

/** The logical ids a resource refers to (Ref, Fn::GetAtt, DependsOn). */
function references(value: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const v of value) references(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'Ref' && typeof v === 'string') out.add(v);
      else if (k === 'Fn::GetAtt' && Array.isArray(v)) out.add(String(v[0]));
      else references(v, out);
    }
  }
  return out;
}

/** A dependency cycle among the template's resources, if any (CloudFormation would refuse it). */
function findCycle(resources: Resources): string[] | undefined {
  const edges = new Map(
    Object.entries(resources).map(([id, r]) => [
      id,
      [...references(r.Properties), ...[r.DependsOn ?? []].flat()].filter((d) => d in resources),
    ]),
  );
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (id: string): string[] | undefined => {
    if (state.get(id) === 'done') return undefined;
    if (state.get(id) === 'open') return [...path.slice(path.indexOf(id)), id];
    state.set(id, 'open');
    path.push(id);
    for (const next of edges.get(id) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const id of edges.keys()) {
    const cycle = visit(id);
    if (cycle) return cycle;
  }
  return undefined;
}

describe('Coordination (table and snapshot poller) in the app', () => {
  let result: SynthResult;
  let pollerPolicies: { Statement: { Action: string | string[]; Resource: unknown }[] }[];
  beforeAll(() => {
    result = synthApp();
    const policies = result.template.findResources('AWS::IAM::Policy');
    const pollerRole = Object.keys(result.template.findResources('AWS::IAM::Role')).find((id) =>
      id.includes('SnapshotPoller'),
    );
    pollerPolicies = Object.values(policies)
      .filter((p) => JSON.stringify((p.Properties as { Roles: unknown }).Roles).includes(String(pollerRole)))
      .map((p) => (p.Properties as { PolicyDocument: (typeof pollerPolicies)[number] }).PolicyDocument);
  });

  it('is nag-clean and has no dependency cycle', () => {
    expect(nagFindings(result.app)).toEqual([]);
    expect(findCycle(result.template.toJSON().Resources as Resources)).toBeUndefined();
  });

  it('creates the table on demand, with TTL on expiresAt, point-in-time recovery and encryption', () => {
    result.template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
    });
  });

  it('runs one poller at most (reserved concurrency 1), woken every minute as a safety net', () => {
    result.template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('snapshot wait'),
      ReservedConcurrentExecutions: 1,
      Timeout: 900,
      Environment: {
        Variables: Match.objectLike({
          COORDINATION_TABLE_NAME: { Ref: Match.stringLikeRegexp('CoordinationTable') },
          DESCRIBE_SNAPSHOTS_PER_SECOND: '10',
          SEND_TASK_PER_SECOND: '100',
          BACKUP_TAG_RULE: 'required',
        }),
      },
    });
    result.template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('SnapshotPoller'), 'Arn'] },
          Input: JSON.stringify({ source: 'schedule' }),
          RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 },
        }),
      ],
    });
  });

  it('grants the poller only what it calls, and SendTask* only on the workflow state machine', () => {
    const statements = pollerPolicies.flatMap((p) => p.Statement);
    const actionsOn = (action: string) =>
      statements.filter((s) => [s.Action].flat().includes(action)).map((s) => s.Resource);
    expect(actionsOn('ec2:DescribeSnapshots')).toEqual(['*']);
    expect(actionsOn('backup:ListBackupJobs')).toEqual(['*']);
    expect(actionsOn('states:SendTaskSuccess')).toEqual([
      { Ref: expect.stringMatching(/WorkflowStateMachine/) },
    ]);
    expect(actionsOn('states:SendTaskFailure')).toHaveLength(1);
    expect(actionsOn('dynamodb:Query')).toEqual([
      { 'Fn::GetAtt': [expect.stringMatching(/CoordinationTable/), 'Arn'] },
    ]);
    expect(actionsOn('lambda:InvokeFunction')).toEqual([
      { 'Fn::GetAtt': [expect.stringMatching(/SnapshotPoller/), 'Arn'] },
    ]);
    const granted = new Set(statements.flatMap((s) => [s.Action].flat()));
    for (const action of granted) {
      expect(action).toMatch(
        /^(logs:CreateLogStream|logs:PutLogEvents|xray:.*|dynamodb:(GetItem|PutItem|UpdateItem|DeleteItem|Query)|ec2:DescribeSnapshots|backup:ListBackupJobs|lambda:InvokeFunction|states:SendTask(Success|Failure))$/,
      );
    }
  });
});

describe('Coordination wired to a start-backup function and its state machine', () => {
  it('grants the registering function the table and the wake-up, with no dependency cycle', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'Wiring', { env: { account: '111122223333', region: 'eu-west-1' } });
    const coordination = new Coordination(stack, 'Coordination');
    const startBackup = new lambda.Function(stack, 'StartBackup', {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('exports.handler = async () => ({})'),
    });
    coordination.grantRegisterWaiter(startBackup);
    // The state machine names start-backup, start-backup names the poller, the poller answers
    // the state machine's tokens: grantAnswerTasks must not close that loop.
    const stateMachine = new sfn.StateMachine(stack, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromChainable(
        new tasks.LambdaInvoke(stack, 'Start Backup Job', {
          lambdaFunction: startBackup,
          integrationPattern: sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
          payload: sfn.TaskInput.fromObject({ taskToken: sfn.JsonPath.taskToken }),
          taskTimeout: sfn.Timeout.at('$.freeze.budgetSeconds'),
        }),
      ),
    });
    coordination.grantAnswerTasks(stateMachine);
    const template = Template.fromStack(stack);
    expect(findCycle(template.toJSON().Resources as Resources)).toBeUndefined();
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.handler',
      Environment: {
        Variables: {
          COORDINATION_TABLE_NAME: { Ref: Match.stringLikeRegexp('CoordinationTable') },
          SNAPSHOT_POLLER_FUNCTION_NAME: { Ref: Match.stringLikeRegexp('SnapshotPoller') },
        },
      },
    });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: ['dynamodb:PutItem', 'dynamodb:GetItem'],
            Resource: { 'Fn::GetAtt': [Match.stringLikeRegexp('CoordinationTable'), 'Arn'] },
          }),
          Match.objectLike({
            Action: 'lambda:InvokeFunction',
            Resource: { 'Fn::GetAtt': [Match.stringLikeRegexp('SnapshotPoller'), 'Arn'] },
          }),
        ]),
      },
    });
  });

  it('(would cycle: the same grant on the poller default policy closes the loop the separate policy avoids)', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'Naive', { env: { account: '111122223333', region: 'eu-west-1' } });
    const coordination = new Coordination(stack, 'Coordination');
    const startBackup = new lambda.Function(stack, 'StartBackup', {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('exports.handler = async () => ({})'),
    });
    coordination.grantRegisterWaiter(startBackup);
    const stateMachine = new sfn.StateMachine(stack, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromChainable(
        new tasks.LambdaInvoke(stack, 'Start Backup Job', { lambdaFunction: startBackup }),
      ),
    });
    stateMachine.grantTaskResponse(coordination.poller);
    expect(() => Template.fromStack(stack)).toThrow(/dependency cycle: .*SnapshotPollerRoleDefaultPolicy/);
  });

  it('refuses a DescribeSnapshots pace above half of EC2s refill, naming the value', () => {
    const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Bad');
    expect(() => new Coordination(stack, 'Coordination', { describeSnapshotsPerSecond: 15 })).toThrow(
      /Invalid describeSnapshotsPerSecond: got 15; allowed: more than 0 and at most 10/,
    );
  });
});
