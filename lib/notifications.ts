import { Duration, RemovalPolicy, type Stack, Token, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import {
  BACKUP_JOB_DETAIL_TYPE,
  FINAL_JOB_STATES,
  NOTIFIER_ENV,
  PENDING_RUNS_INDEX,
} from '../lambda/shared/notification';
import { type NotifierOperation, tableActions } from '../lambda/shared/notifier-permissions';
import type { BackupConfig } from './config';
import { BackupFunction } from './lambda-function';
import type { Vault } from './vault';

/**
 * Config keys this construct reads when lib/config.ts has them (proposed to the lead); until then
 * the props below, or their defaults, apply.
 */
interface NotificationConfigKeys {
  readonly notificationCriticalEmails?: readonly string[];
  readonly summaryDeadlineMinutes?: number;
}

export interface NotificationsProps {
  /** The validated configuration (lib/config.ts): `notificationEmails`, `notificationHttpsEndpoints`. */
  readonly config: BackupConfig;
  /** The vault whose backup jobs job-events finalizes. */
  readonly vault: Vault;
  /**
   * Email addresses that receive only Critical notifications (a thaw that failed), through a
   * subscription filter policy on the `severity` attribute.
   * @default config `notificationCriticalEmails` when present, else []
   */
  readonly criticalEmails?: readonly string[];
  /**
   * How long a run may go without any report (from discovery or an execution) before its summary
   * goes out unfinished. Keep it above the longest pause between two blast-radius waves.
   * @default config `summaryDeadlineMinutes` when present, else Duration.hours(4)
   */
  readonly summaryDeadline?: Duration;
  /**
   * How often the deadline sweep looks for overdue runs.
   * @default Duration.minutes(15)
   */
  readonly sweepInterval?: Duration;
}

/**
 * Everything that becomes a ServiceNow ticket or an email: one KMS-encrypted SNS topic carrying
 * the one message schema (lambda/shared/notification.ts), the state table for de-duplication,
 * Clear and run summaries, the job-events function that finalizes backup jobs, and the
 * run-summary sweep that sends overdue summaries.
 */
export class Notifications extends Construct {
  readonly topic: sns.Topic;
  readonly topicKey: kms.Key;
  readonly table: dynamodb.Table;
  readonly jobEvents: BackupFunction;
  readonly runSummary: BackupFunction;
  readonly jobEventsRule: events.Rule;
  /** Environment variables a function needs to notify (grantNotify adds them). */
  readonly environment: Record<string, string>;

  constructor(scope: Construct, id: string, props: NotificationsProps) {
    super(scope, id);
    const { config, vault } = props;
    const keys = config as BackupConfig & NotificationConfigKeys;
    const summaryDeadline =
      props.summaryDeadline ??
      (keys.summaryDeadlineMinutes !== undefined
        ? Duration.minutes(keys.summaryDeadlineMinutes)
        : Duration.hours(4));
    const criticalEmails = props.criticalEmails ?? keys.notificationCriticalEmails ?? [];
    // SNS keeps one subscription per topic and endpoint: the same address in both lists would be
    // one subscription owned by two resources, with the Critical-only filter applying to both.
    const both = criticalEmails.filter((e) => config.notificationEmails.includes(e));
    if (both.length > 0) {
      throw new Error(
        `Invalid notificationCriticalEmails: ${JSON.stringify(both)} also in notificationEmails; allowed: each address in one list only (notificationEmails already receives Critical).`,
      );
    }
    const deadlineMinutes = summaryDeadline.toMinutes();
    if (!Number.isInteger(deadlineMinutes) || deadlineMinutes < 5 || deadlineMinutes > 2880) {
      throw new Error(
        `Invalid summaryDeadline: got ${summaryDeadline.toHumanString()}; allowed: whole minutes from 5 minutes to 48 hours.`,
      );
    }

    this.topicKey = new kms.Key(this, 'TopicKey', {
      description: 'Encrypts the ec2-consistent-backup notification topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'ec2-consistent-backup notifications',
      masterKey: this.topicKey,
      enforceSSL: true,
    });

    for (const email of config.notificationEmails) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(email));
    }
    for (const email of criticalEmails) {
      this.topic.addSubscription(
        new subscriptions.EmailSubscription(email, {
          filterPolicy: { severity: sns.SubscriptionFilter.stringFilter({ allowlist: ['Critical'] }) },
        }),
      );
    }
    for (const url of config.notificationHttpsEndpoints) {
      // Raw delivery stays off: ServiceNow's connector reads the SNS envelope (Type, Message, ...).
      this.topic.addSubscription(
        new subscriptions.UrlSubscription(url, {
          protocol: sns.SubscriptionProtocol.HTTPS,
          rawMessageDelivery: false,
        }),
      );
    }

    this.table = new dynamodb.Table(this, 'State', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiresAt',
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // Only open problems and recent runs: losing it on stack deletion loses no backup.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Sparse: only runs whose summary is not sent yet carry `pending`.
    this.table.addGlobalSecondaryIndex({
      indexName: PENDING_RUNS_INDEX,
      partitionKey: { name: 'pending', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'deadline', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.KEYS_ONLY,
    });

    this.environment = {
      [NOTIFIER_ENV.topicArn]: this.topic.topicArn,
      [NOTIFIER_ENV.tableName]: this.table.tableName,
      [NOTIFIER_ENV.summaryDeadlineMinutes]: String(deadlineMinutes),
    };

    this.jobEvents = new BackupFunction(this, 'JobEvents', {
      handlerDir: 'job-events',
      description: 'Finalizes backup jobs of ec2-consistent-backup: label, VSS fall-back, failure, Clear',
      timeout: Duration.minutes(1),
    });
    this.grantNotify(this.jobEvents, ['finalize-jobs']);
    // A Windows job is VSS only when DescribeBackupJob's BackupType says WindowsVSS (job-events'
    // backupTypeOf). The action has no resource-level permissions (service authorization reference).
    this.jobEvents.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['backup:DescribeBackupJob'], resources: ['*'] }),
    );
    Validations.of(this.jobEvents.role!).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'backup:DescribeBackupJob supports no resource-level permissions (service authorization reference), nor do the X-Ray actions of tracing.',
    });
    // No ec2:CreateTags: job-events asks the label-writer (lib/labels.ts) for the label, which
    // grants its requesters sqs:SendMessage on the label queue.

    this.jobEventsRule = new events.Rule(this, 'JobEventsRule', {
      description: 'Final states of AWS Backup jobs in the ec2-consistent-backup vault',
      eventPattern: {
        source: ['aws.backup'],
        detailType: [BACKUP_JOB_DETAIL_TYPE],
        detail: { backupVaultName: [vault.vault.backupVaultName], state: [...FINAL_JOB_STATES] },
      },
      targets: [new eventsTargets.LambdaFunction(this.jobEvents, { retryAttempts: 4 })],
    });

    this.runSummary = new BackupFunction(this, 'RunSummary', {
      handlerDir: 'run-summary',
      description: 'Sends the summary of ec2-consistent-backup runs whose deadline passed',
      timeout: Duration.minutes(1),
    });
    this.grantNotify(this.runSummary, ['sweep-runs']);
    // A rate sweep rather than one schedule per run: no scheduler permissions to hand out, and a
    // query of a sparse index that is empty almost every time costs nearly nothing.
    new events.Rule(this, 'RunSummarySweep', {
      description: 'Sends overdue ec2-consistent-backup run summaries',
      schedule: events.Schedule.rate(props.sweepInterval ?? Duration.minutes(15)),
      targets: [new eventsTargets.LambdaFunction(this.runSummary, { retryAttempts: 2 })],
    });
  }

  /**
   * Lets `fn` notify: the environment variables createNotifier reads, sns:Publish on the topic
   * (with the KMS key use that needs), and the DynamoDB actions of the notifier operations its
   * handler performs (lambda/shared/notifier-permissions.ts), on the table or the index they touch.
   */
  grantNotify(fn: lambda.Function, operations: readonly NotifierOperation[]): void {
    for (const [key, value] of Object.entries(this.environment)) fn.addEnvironment(key, value);
    fn.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['sns:Publish'], resources: [this.topic.topicArn] }),
    );
    // What SNS needs from a publisher of an encrypted topic, only for this topic's messages.
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: [this.topicKey.keyArn],
        conditions: { StringEquals: { 'kms:EncryptionContext:aws:sns:topicArn': this.topic.topicArn } },
      }),
    );
    const actions = tableActions(operations);
    if (actions.table.length > 0) {
      fn.addToRolePolicy(
        new iam.PolicyStatement({ actions: actions.table, resources: [this.table.tableArn] }),
      );
    }
    if (actions.pendingRunsIndex.length > 0) {
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: actions.pendingRunsIndex,
          resources: [`${this.table.tableArn}/index/${PENDING_RUNS_INDEX}`],
        }),
      );
    }
  }
}

/** How cdk-nag writes an ARN in a finding: pseudo parameters as <AWS::Name>, concrete values as is. */
export function nagText(stack: Stack, arn: string): string {
  const pseudo = (value: string, name: string) => (Token.isUnresolved(value) ? `<AWS::${name}>` : value);
  return arn
    .replace(stack.partition, '<AWS::Partition>')
    .replace(stack.region, pseudo(stack.region, 'Region'))
    .replace(stack.account, pseudo(stack.account, 'AccountId'));
}
