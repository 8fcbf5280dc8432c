import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config';
import { BackupFunction } from '../../lib/lambda-function';
import { Notifications, type NotificationsProps } from '../../lib/notifications';
import { Vault } from '../../lib/vault';
import { nagFindings, synthApp } from '../../sim/app-synth';

const ENDPOINT =
  'https://sn-user:sn-pass@example.service-now.com/api/sn_em_connector/em/inbound_event?source=ec2cb';

function build(raw: Record<string, unknown> = {}, extra: Partial<NotificationsProps> = {}, withEnv = true) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'NotificationsTest', {
    env: withEnv ? { account: '111122223333', region: 'eu-west-1' } : undefined,
  });
  const config = parseConfig(raw);
  const vault = new Vault(stack, 'Vault', { config });
  const notifications = new Notifications(stack, 'Notifications', { config, vault, ...extra });
  const notifier = new BackupFunction(stack, 'Notifier', {
    handlerDir: 'run-summary',
    description: 'test notifier',
  });
  notifications.grantNotify(notifier, ['sweep-runs']);
  return { app, stack, notifications, notifier, template: Template.fromStack(stack) };
}

describe('Notifications construct', () => {
  it('encrypts the topic with a rotating customer-managed key and denies publishing without TLS', () => {
    const { template } = build();
    template.hasResourceProperties('AWS::KMS::Key', {
      Description: 'Encrypts the ec2-consistent-backup notification topic',
      EnableKeyRotation: true,
    });
    template.hasResourceProperties('AWS::SNS::Topic', {
      KmsMasterKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('NotificationsTopicKey'), 'Arn'] },
    });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 'sns:Publish',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it('subscribes emails, HTTPS endpoints without raw delivery, and Critical-only emails with a filter policy', () => {
    const { template } = build(
      { notificationEmails: 'ops@example.com', notificationHttpsEndpoints: ENDPOINT },
      { criticalEmails: ['oncall@example.com'] },
    );
    template.resourceCountIs('AWS::SNS::Subscription', 3);
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'oncall@example.com',
      FilterPolicy: { severity: ['Critical'] },
    });
    const https = template.findResources('AWS::SNS::Subscription', { Properties: { Protocol: 'https' } });
    const props = Object.values(https).map((r) => r.Properties);
    expect(props).toHaveLength(1);
    expect(props[0].Endpoint).toBe(ENDPOINT);
    expect(props[0].RawMessageDelivery ?? false).toBe(false);
  });

  it('keeps state in an on-demand table with TTL, point-in-time recovery, encryption and the pending-runs index', () => {
    const { template } = build();
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: 'PAY_PER_REQUEST',
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        Match.objectLike({
          IndexName: 'PendingRuns',
          KeySchema: [
            { AttributeName: 'pending', KeyType: 'HASH' },
            { AttributeName: 'deadline', KeyType: 'RANGE' },
          ],
        }),
      ],
    });
  });

  it("routes only final backup job states of this app's vault to job-events", () => {
    const { template } = build();
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.backup'],
        'detail-type': ['Backup Job State Change'],
        detail: {
          backupVaultName: [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^Vault'), 'BackupVaultName'] }],
          state: ['COMPLETED', 'FAILED', 'EXPIRED', 'ABORTED', 'PARTIAL'],
        },
      },
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('NotificationsJobEvents'), 'Arn'] },
        }),
      ],
    });
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(15 minutes)' });
  });

  it('filters job events by the name of an existing vault when one is configured', () => {
    const { template } = build({ vaultName: 'corp-vault' });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({ detail: Match.objectLike({ backupVaultName: ['corp-vault'] }) }),
    });
  });

  it('grantNotify adds the environment and only the table actions of the operations named, plus publish and the key use it needs', () => {
    const { template, stack, notifier } = build({}, { summaryDeadline: Duration.hours(2) });
    const fn = template.findResources('AWS::Lambda::Function', {
      Properties: { Description: 'test notifier' },
    });
    const env = Object.values(fn)[0].Properties.Environment.Variables;
    expect(env.SUMMARY_DEADLINE_MINUTES).toBe('120');
    expect(env.NOTIFICATION_TOPIC_ARN).toEqual({ Ref: expect.stringMatching(/NotificationsTopic/) });
    expect(env.NOTIFICATION_TABLE_NAME).toEqual({ Ref: expect.stringMatching(/NotificationsState/) });

    const roleId = stack.getLogicalId(notifier.role!.node.defaultChild as never);
    const policies = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: roleId }] },
    });
    const statements = Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement);
    const actions = statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
    expect(actions).toEqual(expect.arrayContaining(['sns:Publish', 'kms:Decrypt', 'kms:GenerateDataKey']));
    // The sweep: Query (a run's counter shards) and UpdateItem on the table, Query on the
    // pending-runs index.
    const dynamo = statements.filter((s) => JSON.stringify(s.Action).includes('dynamodb:'));
    expect(dynamo.map((s) => [s.Action, JSON.stringify(s.Resource)])).toEqual([
      [['dynamodb:Query', 'dynamodb:UpdateItem'], expect.not.stringContaining('/index/')],
      ['dynamodb:Query', expect.stringContaining('/index/PendingRuns')],
    ]);
    expect(actions.some((a: string) => a.endsWith(':*') || a === '*')).toBe(false);
  });

  it('gives job-events no tagging at all (it asks the label-writer, lib/labels.ts), and no backup:TagResource anywhere', () => {
    const { template } = build();
    const policies = Object.values(template.findResources('AWS::IAM::Policy'));
    const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement);
    expect(JSON.stringify(statements)).not.toContain('backup:TagResource');
    expect(JSON.stringify(statements)).not.toContain('ec2:CreateTags');
  });

  it.each([
    ['an account and region', true],
    ['an environment-agnostic stack', false],
  ])('passes cdk-nag AwsSolutions in %s, every acknowledgement with a reason', (_label, withEnv) => {
    const { app } = build(
      { notificationEmails: 'ops@example.com', notificationHttpsEndpoints: ENDPOINT },
      { criticalEmails: ['oncall@example.com'] },
      withEnv,
    );
    const report = new AwsSolutionsChecks(app).validateScope(app);
    const findings = report.violations.flatMap((v) =>
      v.violatingResources.map((r) => `${v.ruleName} ${r.resourceLogicalId ?? ''}: ${v.description}`),
    );
    expect(findings).toEqual([]);
  });

  it('limits the KMS key use of a publisher to messages of this topic', () => {
    const { template } = build();
    const statements = Object.values(template.findResources('AWS::IAM::Policy')).flatMap(
      (p) => p.Properties.PolicyDocument.Statement,
    );
    const kmsUse = statements.filter((s) => JSON.stringify(s.Action).includes('kms:'));
    expect(kmsUse.length).toBeGreaterThan(0);
    for (const s of kmsUse) {
      expect(s.Action).toEqual(['kms:GenerateDataKey', 'kms:Decrypt']);
      expect(s.Condition.StringEquals['kms:EncryptionContext:aws:sns:topicArn']).toEqual({
        Ref: expect.stringMatching(/NotificationsTopic/),
      });
    }
  });

  it('rejects an address that is in both email lists, naming it', () => {
    expect(() =>
      build({ notificationEmails: 'ops@example.com' }, { criticalEmails: ['ops@example.com'] }),
    ).toThrow('Invalid notificationCriticalEmails: ["ops@example.com"] also in notificationEmails');
  });

  it('rejects a summary deadline outside 5 minutes to 48 hours, naming the value', () => {
    expect(() => build({}, { summaryDeadline: Duration.minutes(2) })).toThrow(
      /Invalid summaryDeadline: got 2 minutes; allowed: whole minutes from 5 minutes to 48 hours/,
    );
    expect(() => build({}, { summaryDeadline: Duration.days(3) })).toThrow(/Invalid summaryDeadline/);
  });
});

describe('Notifications config keys', () => {
  it('reads notificationCriticalEmails and summaryDeadlineMinutes from the config once it has them', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'KeysTest', { env: { account: '111122223333', region: 'eu-west-1' } });
    const config = {
      ...parseConfig({}),
      notificationCriticalEmails: ['pager@example.com'],
      summaryDeadlineMinutes: 90,
    };
    const vault = new Vault(stack, 'Vault', { config });
    new Notifications(stack, 'Notifications', { config, vault });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Endpoint: 'pager@example.com',
      FilterPolicy: { severity: ['Critical'] },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ SUMMARY_DEADLINE_MINUTES: '90' }) },
    });
  });
});

describe('Notifications in the whole app', () => {
  it('is wired into the stack, cdk-nag clean, and every notifying function can publish', () => {
    const { app, template } = synthApp({ notificationEmails: 'ops@example.com' });
    const ours = nagFindings(app).filter((f) => / Notifications/.test(f) || /Notifications[A-Z]/.test(f));
    expect(ours).toEqual([]);
    const functions = template.findResources('AWS::Lambda::Function');
    const notifying = Object.entries(functions).filter(
      ([, f]) => f.Properties.Environment?.Variables?.NOTIFICATION_TOPIC_ARN !== undefined,
    );
    // job-events, run-summary, record-outcome, discovery, dead-letters and execution-events all notify.
    expect(notifying.map(([id]) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual([
      'ConsistentBackupDeadLettersFunction',
      'ConsistentBackupDiscoveryFunction',
      'ConsistentBackupExecutionEventsFunction',
      'ConsistentBackupNotificationsJobEvents',
      'ConsistentBackupNotificationsRunSummary',
      'ConsistentBackupWorkflowRecordOutcome',
    ]);
    for (const [, f] of notifying) {
      expect(f.Properties.Environment.Variables.NOTIFICATION_TABLE_NAME).toBeDefined();
    }
  });
});
