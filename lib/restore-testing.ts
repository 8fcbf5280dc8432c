import { Duration, Stack, Validations } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { RESTORE_ENV } from '../lambda/restore-validation/settings';
import {
  FINAL_RESTORE_STATUSES,
  RESTORE_JOB_DETAIL_TYPE,
  RESTORE_SWEEP,
} from '../lambda/restore-validation/validation';
import { OPTION_TAGS, RECOVERY_POINT_TAGS, RESTORE_TEST_TAG } from '../lambda/shared/tags';
import type { BackupConfig } from './config';
import type { Documents } from './documents';
import { BackupFunction } from './lambda-function';
import { type Notifications, nagText } from './notifications';
import type { Vault } from './vault';

/** Recovery points older than this are not restore-tested (RecoveryPointSelection.SelectionWindowDays). */
export const SELECTION_WINDOW_DAYS = 7;
/** Hours after the scheduled time within which AWS Backup starts the restore jobs (StartWindowHours). */
export const START_WINDOW_HOURS = 3;
/** The test instance must be Online in SSM this long after its restore completed. */
export const SSM_WAIT_MINUTES = 20;
/** The Verify Restore step may run 60 minutes (its timeoutSeconds); delivery and a margin on top. */
export const COMMAND_WAIT_MINUTES = 70;
/** Deliveries at one a minute: the two waits above and a margin. */
export const RESTORE_QUEUE_MAX_RECEIVES = 150;

export interface RestoreTestingProps {
  /** The validated configuration: `restoreTest*`, `optInTagKey`, `optInTagValue`, `scheduleTimeZone`. */
  readonly config: BackupConfig;
  readonly vault: Vault;
  readonly documents: Documents;
  readonly notifications: Notifications;
}

/**
 * Restore verification: an AWS Backup restore testing plan that regularly restores the latest
 * consistent recovery point of every opted-in instance into the configured subnet, and the
 * restore-validation function that checks each restored test instance through SSM (the Verify
 * Restore document) and reports to AWS Backup, the recovery point's tags and the notifications.
 * AWS Backup deletes the test instance once the result is reported, or when the validation window
 * ends. Created only when `restoreTestSubnetId` is set.
 */
export class RestoreTesting extends Construct {
  readonly plan: backup.CfnRestoreTestingPlan;
  readonly selection: backup.CfnRestoreTestingSelection;
  readonly restoreRole: iam.Role;
  readonly function: BackupFunction;
  readonly queue: sqs.Queue;

  constructor(scope: Construct, id: string, props: RestoreTestingProps) {
    super(scope, id);
    const { config, vault, documents, notifications } = props;
    const stack = Stack.of(this);
    if (!config.restoreTestSubnetId) throw new Error('RestoreTesting needs config restoreTestSubnetId.');

    this.restoreRole = new iam.Role(this, 'RestoreRole', {
      assumedBy: new iam.ServicePrincipal('backup.amazonaws.com'),
      description: 'Role AWS Backup assumes to restore test instances for ec2-consistent-backup',
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSBackupServiceRolePolicyForRestores'),
      ],
    });
    Validations.of(this.restoreRole).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores]',
      reason:
        'The AWS-maintained policy restore testing requires ("Restore testing", AWS Backup guide): it covers the EC2, EBS, KMS and tagging calls of an instance restore and AWS updates it as those change.',
    });
    if (config.restoreTestInstanceRoles.length > 0) {
      // iamInstanceProfileName=UseBackedUpValue launches the test instance with the original's
      // instance profile (its SSM permissions); passing that role is the only extra the restore needs.
      this.restoreRole.addToPolicy(
        new iam.PolicyStatement({
          actions: ['iam:PassRole'],
          resources: config.restoreTestInstanceRoles.map((name) =>
            stack.formatArn({ service: 'iam', region: '', resource: 'role', resourceName: name }),
          ),
          conditions: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
        }),
      );
    }

    // Restore testing plan names: letters, digits and underscores, at most 50 characters.
    const planName = `${stack.stackName.replace(/[^A-Za-z0-9_]/g, '_')}_restore_test`.slice(-50);
    this.plan = new backup.CfnRestoreTestingPlan(this, 'Plan', {
      restoreTestingPlanName: planName,
      scheduleExpression: config.restoreTestSchedule,
      scheduleExpressionTimezone: config.scheduleTimeZone,
      startWindowHours: START_WINDOW_HOURS,
      recoveryPointSelection: {
        algorithm: 'LATEST_WITHIN_WINDOW',
        includeVaults: [vault.vault.backupVaultArn],
        recoveryPointTypes: ['SNAPSHOT'],
        selectionWindowDays: SELECTION_WINDOW_DAYS,
      },
    });
    // Conditions are matched against the tags of each instance's latest recovery point ("Restore
    // testing", Recovery point determination): AWS Backup copies the instance's opt-in tag there,
    // and this app's label excludes a crash-consistent or still unlabelled one. KeyValue keys are
    // plain tag keys (no aws:ResourceTag/ prefix: the API's pattern refuses `aws:`).
    this.selection = new backup.CfnRestoreTestingSelection(this, 'Selection', {
      // Ref is the plan name: the selection is created after the plan, as the API requires.
      restoreTestingPlanName: this.plan.ref,
      restoreTestingSelectionName: 'consistent_backup_ec2',
      protectedResourceType: 'EC2',
      iamRoleArn: this.restoreRole.roleArn,
      protectedResourceArns: ['*'],
      protectedResourceConditions: {
        stringEquals: [{ key: config.optInTagKey, value: config.optInTagValue }],
        stringNotEquals: [
          { key: RECOVERY_POINT_TAGS.consistency, value: 'crash' },
          { key: RECOVERY_POINT_TAGS.consistency, value: 'pending' },
          { key: OPTION_TAGS.restoreTest, value: 'skip' },
        ],
      },
      restoreMetadataOverrides: {
        subnetId: config.restoreTestSubnetId,
        securityGroupIds: JSON.stringify(config.restoreTestSecurityGroupIds),
        requireImdsV2: 'true',
        ...(config.restoreTestInstanceType ? { instanceType: config.restoreTestInstanceType } : {}),
        ...(config.restoreTestInstanceRoles.length > 0 ? { iamInstanceProfileName: 'UseBackedUpValue' } : {}),
      },
      validationWindowHours: config.restoreTestValidationHours,
    });

    const deadLetters = new sqs.Queue(this, 'DeadLetters', {
      retentionPeriod: Duration.days(14),
      enforceSSL: true,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
    });
    this.queue = new sqs.Queue(this, 'Events', {
      // The pace of the waits (lambda/shared/deferred-queue.ts): one look a minute.
      visibilityTimeout: Duration.seconds(60),
      retentionPeriod: Duration.days(4),
      enforceSSL: true,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      deadLetterQueue: { queue: deadLetters, maxReceiveCount: RESTORE_QUEUE_MAX_RECEIVES },
    });
    new events.Rule(this, 'RestoreJobEnded', {
      description: 'Restore jobs of the ec2-consistent-backup restore testing plan that ended',
      eventPattern: {
        source: ['aws.backup'],
        detailType: [RESTORE_JOB_DETAIL_TYPE],
        detail: {
          restoreTestingPlanArn: [this.plan.attrRestoreTestingPlanArn],
          status: [...FINAL_RESTORE_STATUSES],
        },
      },
      targets: [new eventsTargets.SqsQueue(this.queue, { retryAttempts: 8 })],
    });

    // AWS Backup delivers its events best-effort: once an hour the function catches up on the plan's jobs.
    new events.Rule(this, 'Sweep', {
      description:
        'Hourly catch-up of ec2-consistent-backup restore tests whose AWS Backup events were not delivered',
      schedule: events.Schedule.rate(Duration.hours(1)),
      targets: [
        new eventsTargets.SqsQueue(this.queue, { message: events.RuleTargetInput.fromObject(RESTORE_SWEEP) }),
      ],
    });

    this.function = new BackupFunction(this, 'Function', {
      handlerDir: 'restore-validation',
      description: 'Checks restored test instances of ec2-consistent-backup and reports the result',
      timeout: Duration.seconds(50),
      environment: {
        [RESTORE_ENV.planArn]: this.plan.attrRestoreTestingPlanArn,
        [RESTORE_ENV.documentName]: documents.names.verifyRestore,
        [RESTORE_ENV.ssmWaitMinutes]: String(SSM_WAIT_MINUTES),
        [RESTORE_ENV.commandWaitMinutes]: String(COMMAND_WAIT_MINUTES),
        [RESTORE_ENV.maxReceives]: String(RESTORE_QUEUE_MAX_RECEIVES),
      },
    });
    notifications.grantNotify(this.function, ['verify-restores']);
    this.function.addEventSource(
      new SqsEventSource(this.queue, { batchSize: 5, reportBatchItemFailures: true }),
    );
    this.grant(stack, documents);
  }

  private grant(stack: Stack, documents: Documents): void {
    const fn = this.function;
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        // None of these take a resource ARN (Service Authorization Reference: AWS Backup, SSM, EC2).
        actions: [
          'backup:DescribeRestoreJob',
          'backup:ListRestoreJobs',
          'backup:PutRestoreValidationResult',
          'ssm:DescribeInstanceInformation',
          'ssm:ListCommandInvocations',
          'ssm:GetCommandInvocation',
          'ec2:DescribeImages',
        ],
        resources: ['*'],
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ssm:SendCommand'],
        resources: [documents.arns(stack).verifyRestore],
      }),
    );
    const instances = stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' });
    // Only instances AWS Backup made for a restore test: it tags every one awsbackup-restore-test.
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ssm:SendCommand'],
        resources: [instances],
        conditions: { StringLike: { [`ssm:resourceTag/${RESTORE_TEST_TAG}`]: '*' } },
      }),
    );
    const images = stack.formatArn({ service: 'ec2', account: '', resource: 'image', resourceName: '*' });
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ec2:CreateTags'],
        resources: [images],
        conditions: { 'ForAllValues:StringEquals': { 'aws:TagKeys': [RECOVERY_POINT_TAGS.verified] } },
      }),
    );
    const role = fn.role!;
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagText(stack, instances)}]`,
      reason:
        "Test instances get their ids when AWS Backup restores them; ssm:SendCommand on instances is limited to those carrying AWS Backup's awsbackup-restore-test tag (ssm:resourceTag condition), and the document to Verify Restore.",
    });
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagText(stack, images)}]`,
      reason:
        'Recovery point AMIs get their ids when AWS Backup creates them; the statement may write only the ConsistentBackup:Verified tag (aws:TagKeys condition).',
    });
  }
}
