import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { type NotifierOperation, tableActions } from '../../lambda/shared/notifier-permissions';
import { nagFindings, type SynthResult, synthApp } from '../../sim/app-synth';

type Statement = {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
};

function statements(result: SynthResult): Statement[] {
  const policies = result.template.findResources('AWS::IAM::Policy');
  return Object.values(policies).flatMap(
    (p) =>
      (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
        .Statement,
  );
}

const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);

/** The DynamoDB actions the execution role of function `handlerDir` holds, on the table and on its index. */
function dynamoActionsOf(result: SynthResult, handlerDir: string) {
  const roles = result.template.findResources('AWS::IAM::Role');
  const policies = result.template.findResources('AWS::IAM::Policy');
  const roleId = Object.entries(roles).find(
    ([, r]) => r.Properties.Description === `Execution role of the ${handlerDir} function`,
  )?.[0];
  expect(roleId, handlerDir).toBeDefined();
  const granted = { table: new Set<string>(), pendingRunsIndex: new Set<string>() };
  for (const policy of Object.values(policies)) {
    if (!JSON.stringify(policy.Properties.Roles).includes(`"${roleId}"`)) continue;
    for (const st of policy.Properties.PolicyDocument.Statement as Statement[]) {
      const onIndex = JSON.stringify(st.Resource).includes('/index/');
      for (const a of actionsOf(st).filter((x) => x.startsWith('dynamodb:'))) {
        (onIndex ? granted.pendingRunsIndex : granted.table).add(a);
      }
    }
  }
  return { table: [...granted.table].sort(), pendingRunsIndex: [...granted.pendingRunsIndex].sort() };
}

describe('ConsistentBackup stack', () => {
  let result: SynthResult;
  beforeAll(() => {
    result = synthApp({ notificationEmails: 'ops@example.com' });
  });

  it('has zero unacknowledged cdk-nag AwsSolutions findings', () => {
    expect(nagFindings(result.app)).toEqual([]);
  });

  it('passes cfn-lint with no errors or warnings (W3005, DependsOn duplicating GetAtt in CDK output, ignored)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ecb-cfn-'));
    const file = path.join(dir, 'template.json');
    fs.writeFileSync(file, JSON.stringify(result.template.toJSON()));
    const lint = spawnSync('cfn-lint', ['--ignore-checks', 'W3005', '--', file], { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true, force: true });
    expect(lint.error, 'cfn-lint must be installed (it is on the CI machine image)').toBeUndefined();
    expect(`${lint.stdout}${lint.stderr}`).toBe('');
    expect(lint.status).toBe(0);
  });

  it("passes aws-cdk-lib's built-in CloudFormation validation with an empty report", () => {
    // test/setup.ts turns it off for every other synth (it costs ~10 s of CPU per process): here it
    // runs as `cdk synth` runs it, over the whole app.
    const saved = process.env.CDK_VALIDATION;
    delete process.env.CDK_VALIDATION;
    try {
      const { app } = synthApp({ notificationEmails: 'ops@example.com' });
      const assembly = app.synth();
      const report = JSON.parse(
        fs.readFileSync(path.join(assembly.directory, 'validation-report.json'), 'utf8'),
      ) as {
        pluginReports: { pluginName: string; violations: { ruleName: string; description: string }[] }[];
      };
      expect(
        report.pluginReports.flatMap((r) =>
          r.violations.map((v) => `${r.pluginName} ${v.ruleName}: ${v.description}`),
        ),
      ).toEqual([]);
    } finally {
      process.env.CDK_VALIDATION = saved;
    }
  });

  it('grants each function only the DynamoDB actions of what its code does with the state table', () => {
    const dynamoActions = (handlerDir: string) => dynamoActionsOf(result, handlerDir);
    const uses: Record<string, readonly NotifierOperation[]> = {
      discovery: ['record-discovery'],
      'record-outcome': ['record-outcomes'],
      'job-events': ['finalize-jobs'],
      'run-summary': ['sweep-runs'],
    };
    for (const [dir, ops] of Object.entries(uses)) expect(dynamoActions(dir), dir).toEqual(tableActions(ops));
    // dead-letters writes and removes its once-only marks and reads nothing.
    expect(dynamoActions('dead-letters')).toEqual({
      table: ['dynamodb:DeleteItem', 'dynamodb:PutItem'],
      pendingRunsIndex: [],
    });
    for (const dir of ['freeze-filesystems', 'start-backup', 'wait-for-command'])
      expect(dynamoActions(dir), dir).toEqual({ table: [], pendingRunsIndex: [] });
    // Nobody holds an action the notifier never calls.
    const all = statements(result).flatMap(actionsOf);
    expect(all).not.toContain('dynamodb:ConditionCheckItem');
    expect(all).not.toContain('backup:TagResource');
  });

  it('grants copy tracking and restore verification only the DynamoDB actions of their notifier operations', () => {
    const withBoth = synthApp({
      notificationEmails: 'ops@example.com',
      copyDestinations: 'arn:aws:backup:us-east-1:444455556666:backup-vault:central=365',
      restoreTestSubnetId: 'subnet-0123456789abcdef0',
      restoreTestSecurityGroupIds: 'sg-0123456789abcdef0',
    });
    expect(dynamoActionsOf(withBoth, 'copy-jobs')).toEqual(tableActions(['track-copies']));
    expect(dynamoActionsOf(withBoth, 'restore-validation')).toEqual(tableActions(['verify-restores']));
    expect(nagFindings(withBoth.app)).toEqual([]);
  });

  it("creates a backup vault kept on stack deletion, with no customer-managed key (EC2 backups keep the volumes' encryption)", () => {
    result.template.hasResource('AWS::Backup::BackupVault', {
      Properties: { EncryptionKeyArn: Match.absent() },
      DeletionPolicy: 'Retain',
    });
    const keys = result.template.findResources('AWS::KMS::Key');
    expect(Object.values(keys).map((k) => k.Properties.Description)).toEqual([
      'Encrypts the ec2-consistent-backup notification topic',
    ]);
  });

  it('synthesizes environment-agnostic, as `cdk synth` does without credentials, still nag-clean', () => {
    const agnostic = synthApp({}, { environmentAgnostic: true });
    expect(() => agnostic.app.synth()).not.toThrow();
    expect(nagFindings(agnostic.app)).toEqual([]);
  });

  it('uses an existing vault by name instead of creating one', () => {
    const existing = synthApp({ vaultName: 'prod-vault' });
    existing.template.resourceCountIs('AWS::Backup::BackupVault', 0);
    expect(JSON.stringify(existing.template.toJSON())).toContain('prod-vault');
    expect(nagFindings(existing.app)).toEqual([]);
  });

  it('gives AWS Backup a service role that only backup.amazonaws.com assumes', () => {
    result.template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Service: 'backup.amazonaws.com' } })],
      },
      ManagedPolicyArns: [Match.objectLike({ 'Fn::Join': Match.anyValue() })],
    });
  });

  it('encrypts the notification topic with KMS and subscribes the configured email', () => {
    result.template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    result.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
  });

  it('schedules discovery with EventBridge Scheduler: time zone, retries and a dead-letter queue', () => {
    result.template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(0 2 * * ? *)',
      ScheduleExpressionTimezone: 'UTC',
      Target: Match.objectLike({
        RetryPolicy: Match.objectLike({ MaximumRetryAttempts: 3 }),
        DeadLetterConfig: { Arn: Match.anyValue() },
        Input: Match.stringLikeRegexp('aws.scheduler.scheduled-time'),
      }),
    });
  });

  it('runs every function on the shared settings: explicit log group, tracing, arm64', () => {
    const functions = result.template.findResources('AWS::Lambda::Function');
    expect(Object.keys(functions).length).toBeGreaterThanOrEqual(2);
    for (const fn of Object.values(functions)) {
      const props = (fn as { Properties: Record<string, unknown> }).Properties;
      expect(props.TracingConfig).toEqual({ Mode: 'Active' });
      expect(props.Architectures).toEqual(['arm64']);
      expect(props.LoggingConfig).toEqual({ LogGroup: expect.anything() });
    }
  });

  it('creates a Standard state machine with logging and tracing', () => {
    result.template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ Destinations: Match.anyValue() }),
    });
  });

  it('creates one SSM document for each ssm-documents/*.yml', () => {
    const ymls = fs
      .readdirSync(path.join(__dirname, '../../ssm-documents'))
      .filter((f) => f.endsWith('.yml'));
    expect(ymls.length).toBeGreaterThanOrEqual(2);
    result.template.resourceCountIs('AWS::SSM::Document', ymls.length);
    result.template.allResourcesProperties('AWS::SSM::Document', { UpdateMethod: 'NewVersion' });
  });

  it("limits ssm:SendCommand to this stack's documents, on opted-in instances except for the thaw", () => {
    const send = statements(result).filter((s) => actionsOf(s).includes('ssm:SendCommand'));
    expect(send.length).toBeGreaterThan(0);
    let thawGrants = 0;
    for (const policy of Object.values(result.template.findResources('AWS::IAM::Policy'))) {
      const own = (policy.Properties.PolicyDocument.Statement as Statement[]).filter((s) =>
        actionsOf(s).includes('ssm:SendCommand'),
      );
      const onInstances = own.filter((s) => JSON.stringify(s.Resource).includes(':instance/'));
      const documents = own.filter((s) => !onInstances.includes(s)).map((s) => JSON.stringify(s.Resource));
      for (const s of own) expect(JSON.stringify(s.Resource)).not.toBe('"*"');
      for (const d of documents) expect(d).toContain('document/');
      for (const s of onInstances) {
        expect(JSON.stringify(s.Resource)).not.toContain('document/');
        if (s.Condition === undefined) {
          // Only a role whose one document is the thaw may send to any instance (issue 13): the
          // thaw must not be denied when the opt-in tag changes mid-freeze.
          thawGrants += 1;
          expect(documents).toHaveLength(1);
          expect(documents[0]).toMatch(/Thaw/);
        } else {
          expect(s.Condition).toEqual({ StringEquals: { 'ssm:resourceTag/ConsistentBackup': 'enabled' } });
        }
      }
    }
    expect(thawGrants).toBe(1);
    const all = JSON.stringify(send);
    expect(all).toContain(':instance/');
    expect(all).toContain('document/');
  });

  it('watches its own workflow for FAILED, TIMED_OUT and ABORTED executions, with a narrow function and an alarmed failure queue', () => {
    // biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON.
    const resources = result.template.toJSON().Resources as Record<string, { Type: string; Properties: any }>;
    const idOf = (type: string, pattern: RegExp) => {
      const ids = Object.keys(resources).filter((id) => resources[id].Type === type && pattern.test(id));
      expect(ids, `${type} ${pattern}`).toHaveLength(1);
      return ids[0];
    };
    const machine = idOf('AWS::StepFunctions::StateMachine', /Workflow/);
    const fn = idOf('AWS::Lambda::Function', /ExecutionEventsFunction/);
    const queue = idOf('AWS::SQS::Queue', /ExecutionEventsFailures/);
    const rule = resources[idOf('AWS::Events::Rule', /ExecutionEventsRule/)].Properties;
    expect(rule.EventPattern).toEqual({
      source: ['aws.states'],
      'detail-type': ['Step Functions Execution Status Change'],
      detail: { status: ['FAILED', 'TIMED_OUT', 'ABORTED'], stateMachineArn: [{ Ref: machine }] },
    });
    expect(rule.Targets).toHaveLength(1);
    expect(rule.Targets[0]).toMatchObject({
      Arn: { 'Fn::GetAtt': [fn, 'Arn'] },
      DeadLetterConfig: { Arn: { 'Fn::GetAtt': [queue, 'Arn'] } },
    });
    const invokeConfig = Object.values(resources).find(
      (r) =>
        r.Type === 'AWS::Lambda::EventInvokeConfig' && JSON.stringify(r.Properties.FunctionName).includes(fn),
    );
    expect(invokeConfig?.Properties.DestinationConfig.OnFailure.Destination).toEqual({
      'Fn::GetAtt': [queue, 'Arn'],
    });
    // Its role: publish to the topic, the topic key for SNS only, and the once-only mark.
    const role = resources[fn].Properties.Role['Fn::GetAtt'][0];
    const granted = Object.values(resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy' && JSON.stringify(r.Properties.Roles).includes(role))
      .flatMap((r) => r.Properties.PolicyDocument.Statement as Statement[])
      .flatMap(actionsOf)
      .filter((a) => !a.startsWith('logs:') && !a.startsWith('xray:') && !a.startsWith('sqs:'));
    expect(granted.sort()).toEqual(
      ['dynamodb:UpdateItem', 'kms:Decrypt', 'kms:GenerateDataKey', 'sns:Publish'].sort(),
    );
    // Monitoring alarms on its queue.
    const alarms = Object.values(resources).filter(
      (r) => r.Type === 'AWS::CloudWatch::Alarm' && JSON.stringify(r.Properties).includes(queue),
    );
    expect(alarms).toHaveLength(1);
  });

  it('lets the workflow pass only the backup role, and only to AWS Backup', () => {
    const passRole = statements(result).filter((s) => actionsOf(s).includes('iam:PassRole'));
    expect(passRole.length).toBe(1);
    expect(passRole[0].Condition).toEqual({
      StringEquals: { 'iam:PassedToService': 'backup.amazonaws.com' },
    });
    expect(JSON.stringify(passRole[0].Resource)).toMatch(/BackupRole/);
  });

  it('grants no "*" resource except on actions that allow nothing narrower', () => {
    // Actions with no resource-level permissions in the Service Authorization Reference.
    const starOnly = new Set([
      'xray:PutTraceSegments',
      'xray:PutTelemetryRecords',
      'xray:GetSamplingRules',
      'xray:GetSamplingTargets',
      'ec2:DescribeInstances',
      'ec2:DescribeSnapshots',
      'ec2:DescribeImages',
      'ssm:DescribeInstanceInformation',
      'ssm:GetCommandInvocation',
      'ssm:ListCommands',
      'ssm:ListCommandInvocations',
      'backup:ListBackupJobs',
      'backup:DescribeBackupJob',
      'logs:CreateLogDelivery',
      'logs:GetLogDelivery',
      'logs:UpdateLogDelivery',
      'logs:DeleteLogDelivery',
      'logs:ListLogDeliveries',
      'logs:PutResourcePolicy',
      'logs:DescribeResourcePolicies',
      'logs:DescribeLogGroups',
    ]);
    const offenders = statements(result)
      .filter((s) => s.Effect === 'Allow' && JSON.stringify(s.Resource) === '"*"')
      .flatMap(actionsOf)
      .filter((a) => !starOnly.has(a));
    expect(offenders).toEqual([]);
  });
});

describe('bin/app.ts', () => {
  it('fails synth on an invalid value, naming the key, the value and what is allowed', () => {
    const root = path.join(__dirname, '../..');
    const run = spawnSync('npx', ['tsx', 'bin/app.ts'], {
      cwd: root,
      encoding: 'utf8',
      env: {
        ...process.env,
        CDK_CONTEXT_JSON: JSON.stringify({ freezeBudgetSeconds: 200, 'aws:cdk:bundling-stacks': [] }),
        CDK_OUTDIR: fs.mkdtempSync(path.join(os.tmpdir(), 'ecb-out-')),
      },
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(
      'Invalid configuration "freezeBudgetSeconds": got 200; allowed: a whole number from 5 to 110.',
    );
  });
});
