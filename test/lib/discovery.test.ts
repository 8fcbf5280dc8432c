import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSettings } from '../../lambda/discovery/settings';
import { DEFAULT_MAX_STAGGER_SECONDS } from '../../lambda/discovery/stagger';
import { parseConfig } from '../../lib/config';
import { Discovery } from '../../lib/discovery';
import { Notifications } from '../../lib/notifications';
import { Vault } from '../../lib/vault';

type Statement = { Sid?: string; Effect: string; Action: string | string[]; Resource: unknown };

function build(raw: Record<string, unknown> = {}) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'DiscoveryTest', { env: { account: '111122223333', region: 'eu-west-1' } });
  const config = parseConfig(raw);
  const vault = new Vault(stack, 'Vault', { config });
  const notifications = new Notifications(stack, 'Notifications', { config, vault });
  const stateMachine = new sfn.StateMachine(stack, 'Workflow', {
    definitionBody: sfn.DefinitionBody.fromChainable(new sfn.Pass(stack, 'Stand-in')),
    tracingEnabled: true,
    logs: {
      destination: new logs.LogGroup(stack, 'WorkflowLogs'),
      level: sfn.LogLevel.ALL,
    },
  });
  Validations.of(stateMachine.role).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason: 'Stand-in for lib/workflow.ts in this test only: X-Ray and log delivery need "*".',
  });
  const discovery = new Discovery(stack, 'Discovery', { config, stateMachine, notifications });
  return { app, stack, discovery, stateMachine, template: Template.fromStack(stack), config };
}

/** Statements of the policies attached to the discovery function's role. */
function policyStatements(template: Template): Statement[] {
  const policies = Object.values(template.findResources('AWS::IAM::Policy')).filter((p) =>
    JSON.stringify((p as { Properties: { Roles: unknown } }).Properties.Roles).includes(
      'DiscoveryFunctionRole',
    ),
  );
  expect(policies.length).toBeGreaterThanOrEqual(2);
  return policies.flatMap(
    (p) =>
      (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
        .Statement,
  );
}

const actions = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);

describe('Discovery construct', () => {
  let built: ReturnType<typeof build>;
  beforeAll(() => {
    built = build({ maxFrozenPerGroup: 2, optInTagKey: 'Backup', optInTagValue: 'yes' });
  });

  it('has zero unacknowledged cdk-nag AwsSolutions findings', () => {
    const report = new AwsSolutionsChecks(built.app).validateScope(built.app);
    const findings = report.violations.flatMap((v) =>
      v.violatingResources.map((r) => `${v.ruleName} ${JSON.stringify(r)}: ${v.description}`),
    );
    expect(findings).toEqual([]);
  });

  it('passes cfn-lint (W3005, a DependsOn duplicating a GetAtt in CDK output, ignored)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ecb-discovery-'));
    const file = path.join(dir, 'template.json');
    fs.writeFileSync(file, JSON.stringify(built.template.toJSON()));
    const lint = spawnSync('cfn-lint', ['--ignore-checks', 'W3005', '--', file], { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true, force: true });
    expect(lint.error).toBeUndefined();
    expect(`${lint.stdout}${lint.stderr}`).toBe('');
    expect(lint.status).toBe(0);
  });

  it('runs 15 minutes with the config as environment variables the handler accepts', () => {
    const fns = built.template.findResources('AWS::Lambda::Function', {
      Properties: { Description: Match.stringLikeRegexp('opted-in EC2 instances') },
    });
    const [fn] = Object.values(fns) as {
      Properties: { Timeout: number; Environment: { Variables: Record<string, unknown> } };
    }[];
    expect(fn.Properties.Timeout).toBe(900);
    const vars = fn.Properties.Environment.Variables;
    expect(vars).toMatchObject({
      OPT_IN_TAG_KEY: 'Backup',
      OPT_IN_TAG_VALUE: 'yes',
      MAX_FROZEN_PER_GROUP: '2',
      WATCHDOG_SECONDS: '90',
      HOOK_TIMEOUT_SECONDS: '30',
      ON_FREEZE_FAILURE: 'crash-consistent',
      NOTIFICATION_TOPIC_ARN: expect.anything(),
    });
    // The handler validates exactly these at cold start: the tokens resolved, they must pass.
    const env: Record<string, string> = { AWS_REGION: 'eu-west-1' };
    for (const [k, v] of Object.entries(vars)) env[k] = typeof v === 'string' ? v : 'x';
    env.STATE_MACHINE_ARN = 'arn:aws:states:eu-west-1:111122223333:stateMachine:Workflow';
    const settings = readSettings(env);
    expect(settings.stagger.maxFrozenPerGroup).toBe(2);
    expect(settings.optInTagKey).toBe('Backup');
    // Admission (lambda/discovery/admission.ts) paces the starts at 85 % of the Region's quota.
    expect(settings.admission).toMatchObject({ profile: 'large', binding: { name: 'describeSnapshots' } });
    expect(settings.startBurst).toBe(1105);
    // The stagger limit the workflow's execution timeout allows by default.
    expect(vars.MAX_STAGGER_SECONDS).toBe(String(DEFAULT_MAX_STAGGER_SECONDS));
    expect(settings.stagger.maxStaggerSeconds).toBe(DEFAULT_MAX_STAGGER_SECONDS);
  });

  it("passes the workflow's stagger limit to the function", () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'Stagger');
    const config = parseConfig({});
    const vault = new Vault(stack, 'Vault', { config });
    const notifications = new Notifications(stack, 'Notifications', { config, vault });
    const stateMachine = new sfn.StateMachine(stack, 'Workflow', {
      definitionBody: sfn.DefinitionBody.fromChainable(new sfn.Pass(stack, 'Stand-in')),
    });
    new Discovery(stack, 'Discovery', { config, stateMachine, notifications, maxStagger: Duration.days(3) });
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ MAX_STAGGER_SECONDS: String(3 * 86_400) }) },
    });
  });

  it('allows the two list actions on "*", StartExecution only on the workflow, and invoking only itself', () => {
    const statements = policyStatements(built.template);
    const star = statements.filter((s) => s.Resource === '*');
    expect(star.flatMap(actions).sort()).toEqual(
      [
        'ec2:DescribeInstances',
        'ssm:DescribeInstanceInformation',
        'xray:PutTelemetryRecords',
        'xray:PutTraceSegments',
      ].sort(),
    );
    const start = statements.filter((s) => actions(s).includes('states:StartExecution'));
    expect(start).toHaveLength(1);
    expect(start[0].Resource).toEqual({
      Ref: built.stack.getLogicalId(built.stateMachine.node.defaultChild as sfn.CfnStateMachine),
    });
    const invoke = statements.filter((s) => actions(s).includes('lambda:InvokeFunction'));
    expect(invoke).toHaveLength(1);
    expect(JSON.stringify(invoke[0].Resource)).toMatch(/DiscoveryFunction[0-9A-F]{8}/);
    expect(JSON.stringify(invoke[0].Resource)).not.toContain('*');
  });

  it('sends failed invocations to an encrypted queue instead of retrying them', () => {
    built.template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      MaximumRetryAttempts: 0,
      DestinationConfig: {
        OnFailure: { Destination: { 'Fn::GetAtt': [Match.stringLikeRegexp('FailedInvocations'), 'Arn'] } },
      },
    });
    built.template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true });
  });

  it('passes a raised StartExecution quota to the function', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'Quota');
    const config = parseConfig({});
    const vault = new Vault(stack, 'Vault', { config });
    const notifications = new Notifications(stack, 'Notifications', { config, vault });
    const stateMachine = new sfn.StateMachine(stack, 'Workflow', {
      definitionBody: sfn.DefinitionBody.fromChainable(new sfn.Pass(stack, 'Stand-in')),
    });
    new Discovery(stack, 'Discovery', {
      config,
      stateMachine,
      notifications,
      startExecutionQuota: { burst: 5000, ratePerSecond: 1000 },
    });
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ START_BURST: '5000', START_RATE_PER_SECOND: '1000' }) },
    });
  });
});
