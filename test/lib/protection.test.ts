import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { type BackupConfig, ConfigError, parseConfig } from '../../lib/config';
import { addCopyDestinationStacks } from '../../lib/copy-destination';
import { ConsistentBackupStack } from '../../lib/stack';
import { nagFindings, synthApp } from '../../sim/app-synth';

const OPTIONS: Partial<Record<keyof BackupConfig, unknown>> = {
  copyDestinations: 'arn:aws:backup:us-east-1:444455556666:backup-vault:central=365',
  copyRegions: 'eu-central-1=90',
  vaultLockMode: 'compliance',
  vaultLockMinRetentionDays: 7,
  vaultLockMaxRetentionDays: 400,
  vaultLockComplianceConfirm: 'I-understand-this-is-irreversible',
  restoreTestSubnetId: 'subnet-0123456789abcdef0',
  restoreTestSecurityGroupIds: 'sg-0123456789abcdef0',
  restoreTestInstanceRoles: 'AppServerRole',
  restoreTestInstanceType: 't3.small',
};

/** The whole app as bin/app.ts builds it (main stack and the copyRegions stacks), without bundling. */
function synthWithOptions(
  raw: Partial<Record<keyof BackupConfig, unknown>>,
  env = { account: '111122223333', region: 'eu-west-1' },
) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const config = parseConfig(raw);
  const main = new ConsistentBackupStack(app, 'Ec2ConsistentBackup', { config, env });
  const copies = addCopyDestinationStacks(app, main, config);
  return { app, main, copies, template: Template.fromStack(main) };
}

type Statement = {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, unknown>;
};
function statements(template: Template): Statement[] {
  return Object.values(template.findResources('AWS::IAM::Policy')).flatMap(
    (p) =>
      (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
        .Statement,
  );
}
const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);

function cfnLint(templates: Template[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ecb-cfn-'));
  const files = templates.map((t, i) => {
    const file = path.join(dir, `t${i}.json`);
    fs.writeFileSync(file, JSON.stringify(t.toJSON()));
    return file;
  });
  const lint = spawnSync('cfn-lint', ['--ignore-checks', 'W3005', '--', ...files], { encoding: 'utf8' });
  fs.rmSync(dir, { recursive: true, force: true });
  if (lint.error) throw lint.error;
  return `${lint.stdout}${lint.stderr}`;
}

describe('copies, vault lock and restore testing, all on', () => {
  let s: ReturnType<typeof synthWithOptions>;
  beforeAll(() => {
    s = synthWithOptions(OPTIONS);
  });

  it('has zero unacknowledged cdk-nag findings in every stack, and cfn-lint is clean', () => {
    expect(nagFindings(s.app)).toEqual([]);
    expect(cfnLint([s.template, ...s.copies.map((c) => Template.fromStack(c))])).toBe('');
  });

  it('locks the vault in compliance mode with the configured range and grace time', () => {
    s.template.hasResource('AWS::Backup::BackupVault', {
      Properties: { LockConfiguration: { MinRetentionDays: 7, MaxRetentionDays: 400, ChangeableForDays: 3 } },
      DeletionPolicy: 'Retain',
    });
  });

  it('creates the destination vault of each copy Region in a stack of its own, locked alike, deployed first', () => {
    expect(s.copies.map((c) => [c.stackName, c.region])).toEqual([
      ['Ec2ConsistentBackup-Copy-eu-central-1', 'eu-central-1'],
    ]);
    const copy = Template.fromStack(s.copies[0]);
    copy.hasResource('AWS::Backup::BackupVault', {
      Properties: {
        BackupVaultName: 'Ec2ConsistentBackup-copy',
        EncryptionKeyArn: Match.anyValue(),
        LockConfiguration: { MinRetentionDays: 7, MaxRetentionDays: 400, ChangeableForDays: 3 },
      },
      DeletionPolicy: 'Retain',
    });
    copy.hasResourceProperties('AWS::KMS::Alias', { AliasName: 'alias/Ec2ConsistentBackup-copy' });
    expect(s.main.dependencies).toContain(s.copies[0]);
  });

  it('sends both AWS Backup events of our vault to the copy queue, read by the copy-jobs function', () => {
    const rules = Object.values(s.template.findResources('AWS::Events::Rule')).map(
      (r) => (r as { Properties: { EventPattern: Record<string, unknown> } }).Properties.EventPattern,
    );
    expect(rules).toContainEqual({
      source: ['aws.backup'],
      'detail-type': ['Backup Job State Change'],
      detail: {
        backupVaultName: [{ 'Fn::GetAtt': [expect.stringMatching(/Vault/), 'BackupVaultName'] }],
        state: ['COMPLETED'],
      },
    });
    expect(rules).toContainEqual({
      source: ['aws.backup'],
      'detail-type': ['Copy Job State Change'],
      detail: {
        sourceBackupVaultArn: [{ 'Fn::GetAtt': [expect.stringMatching(/Vault/), 'BackupVaultArn'] }],
        state: ['COMPLETED', 'FAILED', 'PARTIAL', 'ABORTED'],
      },
    });
    const fn = Object.values(s.template.findResources('AWS::Lambda::Function')).find((f) =>
      /Copies/.test(JSON.stringify((f as { Properties: unknown }).Properties)),
    ) as { Properties: { Environment: { Variables: Record<string, unknown> } } };
    const destinations = JSON.stringify(fn.Properties.Environment.Variables.COPY_DESTINATIONS);
    expect(destinations).toContain('arn:aws:backup:us-east-1:444455556666:backup-vault:central');
    expect(destinations).toContain('backup-vault:Ec2ConsistentBackup-copy');
    // AWS Backup's events are best-effort: an hourly sweep message catches up on lost ones.
    for (const kind of ['copy-sweep', 'restore-sweep']) {
      s.template.hasResourceProperties('AWS::Events::Rule', {
        ScheduleExpression: 'rate(1 hour)',
        Targets: [Match.objectLike({ Input: JSON.stringify({ kind: `ec2-consistent-backup/${kind}` }) })],
      });
    }
    s.template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: 60,
      RedrivePolicy: { maxReceiveCount: 50, deadLetterTargetArn: Match.anyValue() },
    });
  });

  it('restores the latest consistent recovery point of opted-in instances into the configured subnet', () => {
    s.template.hasResourceProperties('AWS::Backup::RestoreTestingPlan', {
      ScheduleExpression: 'cron(0 5 ? * SUN *)',
      ScheduleExpressionTimezone: 'UTC',
      RecoveryPointSelection: {
        Algorithm: 'LATEST_WITHIN_WINDOW',
        RecoveryPointTypes: ['SNAPSHOT'],
        SelectionWindowDays: 7,
        IncludeVaults: [{ 'Fn::GetAtt': [Match.stringLikeRegexp('Vault'), 'BackupVaultArn'] }],
      },
    });
    s.template.hasResourceProperties('AWS::Backup::RestoreTestingSelection', {
      ProtectedResourceType: 'EC2',
      ProtectedResourceArns: ['*'],
      ProtectedResourceConditions: {
        StringEquals: [{ Key: 'ConsistentBackup', Value: 'enabled' }],
        StringNotEquals: [
          { Key: 'ConsistentBackup:Consistency', Value: 'crash' },
          { Key: 'ConsistentBackup:Consistency', Value: 'pending' },
          { Key: 'ConsistentBackup:RestoreTest', Value: 'skip' },
        ],
      },
      RestoreMetadataOverrides: {
        subnetId: 'subnet-0123456789abcdef0',
        securityGroupIds: '["sg-0123456789abcdef0"]',
        requireImdsV2: 'true',
        instanceType: 't3.small',
        iamInstanceProfileName: 'UseBackedUpValue',
      },
      ValidationWindowHours: 4,
    });
  });

  it('lets restore-validation send only the Verify Restore document, only to restore-test instances', () => {
    const send = statements(s.template).filter((st) => actionsOf(st).includes('ssm:SendCommand'));
    const toInstances = send.filter((st) => JSON.stringify(st.Resource).includes(':instance/'));
    const restoreInstances = toInstances.filter((st) =>
      // The state machine's thaw statement has no condition (any instance: issue 13 item 4).
      JSON.stringify(st.Condition ?? {}).includes('awsbackup-restore-test'),
    );
    expect(restoreInstances).toEqual([
      expect.objectContaining({
        Condition: { StringLike: { 'ssm:resourceTag/awsbackup-restore-test': '*' } },
      }),
    ]);
    expect(JSON.stringify(send)).toContain('document/Ec2ConsistentBackup-VerifyRestore');
    // The workflow's SendCommand never reaches the Verify Restore document.
    const workflowDocs = send.filter((st) => /Freeze|Thaw/.test(JSON.stringify(st.Resource)));
    expect(JSON.stringify(workflowDocs)).not.toContain('VerifyRestore');
  });

  it('tags only with ConsistentBackup keys, and passes roles only to the services they are for', () => {
    for (const st of statements(s.template).filter((x) => actionsOf(x).includes('ec2:CreateTags'))) {
      expect(JSON.stringify(st.Condition)).toMatch(/aws:TagKeys.*ConsistentBackup:/);
    }
    const pass = statements(s.template).filter((st) => actionsOf(st).includes('iam:PassRole'));
    expect(pass.map((p) => p.Condition)).toEqual(
      expect.arrayContaining([
        { StringEquals: { 'iam:PassedToService': 'backup.amazonaws.com' } },
        { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
      ]),
    );
    for (const p of pass) expect(p.Condition).toBeDefined();
    expect(JSON.stringify(pass)).toContain(':role/AppServerRole');
  });

  it('grants "*" only on actions with no resource-level permissions', () => {
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
      'backup:DescribeCopyJob',
      'backup:ListCopyJobs',
      'backup:DescribeRestoreJob',
      'backup:ListRestoreJobs',
      'backup:PutRestoreValidationResult',
      'logs:CreateLogDelivery',
      'logs:GetLogDelivery',
      'logs:UpdateLogDelivery',
      'logs:DeleteLogDelivery',
      'logs:ListLogDeliveries',
      'logs:PutResourcePolicy',
      'logs:DescribeResourcePolicies',
      'logs:DescribeLogGroups',
    ]);
    const offenders = statements(s.template)
      .filter((st) => st.Effect === 'Allow' && JSON.stringify(st.Resource) === '"*"')
      .flatMap(actionsOf)
      .filter((a) => !starOnly.has(a));
    expect(offenders).toEqual([]);
  });

  it('synthesizes environment-agnostic (cdk synth without credentials), still nag-clean', () => {
    const agnostic = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const config = parseConfig(OPTIONS);
    const main = new ConsistentBackupStack(agnostic, 'Ec2ConsistentBackup', { config });
    addCopyDestinationStacks(agnostic, main, config);
    expect(() => agnostic.synth()).not.toThrow();
    expect(nagFindings(agnostic)).toEqual([]);
  });
});

describe('protection options, one at a time', () => {
  it('adds nothing by default', () => {
    const { template } = synthApp();
    template.resourceCountIs('AWS::Backup::RestoreTestingPlan', 0);
    // Schedule and discovery dead letters, execution-events failures, the label queue and its dead
    // letters, the command waiters queue and its dead letters.
    template.resourceCountIs('AWS::SQS::Queue', 7);
    template.hasResourceProperties('AWS::Backup::BackupVault', { LockConfiguration: Match.absent() });
  });

  it('locks in governance mode without a lock date', () => {
    const { template, app } = synthApp({ vaultLockMode: 'governance', vaultLockMinRetentionDays: 14 });
    template.hasResourceProperties('AWS::Backup::BackupVault', {
      LockConfiguration: { MinRetentionDays: 14 },
    });
    expect(nagFindings(app)).toEqual([]);
  });

  it('restore testing without passable roles launches the test instance without an instance profile', () => {
    const { template } = synthApp({
      restoreTestSubnetId: 'subnet-0123456789abcdef0',
      restoreTestSecurityGroupIds: 'sg-0123456789abcdef0',
    });
    template.hasResourceProperties('AWS::Backup::RestoreTestingSelection', {
      RestoreMetadataOverrides: Match.objectEquals({
        subnetId: 'subnet-0123456789abcdef0',
        securityGroupIds: '["sg-0123456789abcdef0"]',
        requireImdsV2: 'true',
      }),
    });
  });

  const refused: [string, Partial<Record<keyof BackupConfig, unknown>>, RegExp][] = [
    [
      'a copy to the own account and Region',
      { copyDestinations: 'arn:aws:backup:eu-west-1:111122223333:backup-vault:dr=30' },
      /another Region or another account/,
    ],
    [
      'a copy Region equal to the own Region',
      { copyRegions: 'eu-west-1=30' },
      /a Region other than the stack's own \(eu-west-1\)/,
    ],
    [
      'a copy to another partition',
      { copyDestinations: 'arn:aws-cn:backup:cn-north-1:444455556666:backup-vault:dr=30' },
      /partition aws/,
    ],
  ];
  it.each(refused)('refuses %s, naming the key and the value', (_what, raw, allowed) => {
    let error: unknown;
    try {
      synthWithOptions(raw);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(allowed);
  });
});
