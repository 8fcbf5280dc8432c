import { Duration, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { LABEL_WRITER_ENV } from '../lambda/label-writer/settings';
import { LABEL_ENV, LABEL_SWEEP } from '../lambda/shared/labels';
import { NOTIFIER_ENV } from '../lambda/shared/notification';
import { RECOVERY_POINT_TAGS } from '../lambda/shared/tags';
import { BackupFunction } from './lambda-function';
import { type Notifications, nagText } from './notifications';
import type { Vault } from './vault';

/** EC2 CreateTags: bucket 100, refill 10 per second, per account and Region (docs QUOTAS). */
export const CREATE_TAGS_REFILL_PER_SECOND = 10;

export interface LabelsProps {
  /** The vault whose completed jobs the sweep lists. */
  readonly vault: Vault;
  /** The state table holding each job's verdict (read with GetItem). */
  readonly notifications: Notifications;
  /** Functions that request labels: record-outcome (verdict recorded) and job-events (job ended). */
  readonly requesters: readonly lambda.Function[];
  /**
   * CreateTags calls per second the labels may take at most, across all label-writer instances.
   * The account's refill is 10 per second, shared with everything else that tags (DLM, other
   * tools, the copies and restore tests of this app), so the default leaves more than half of it.
   * @default 4
   */
  readonly labelsPerSecond?: number;
  /**
   * Label-writer instances at most (the SQS event source's maximum concurrency; 2 is Lambda's
   * least). Each spaces its CreateTags calls by maxConcurrency / labelsPerSecond seconds.
   * @default 2
   */
  readonly maxConcurrency?: number;
  /**
   * Label requests per invocation.
   * @default 10
   */
  readonly batchSize?: number;
  /**
   * How often the sweep looks for recovery points still `pending` after their job completed.
   * @default Duration.hours(1)
   */
  readonly sweepInterval?: Duration;
}

/** Deliveries of one message before it goes to the dead-letter queue (5 minutes apart). */
export const LABEL_QUEUE_MAX_RECEIVES = 5;

/**
 * The final consistency label on every recovery point, paced to EC2's CreateTags quota: one queue
 * of label requests (lambda/shared/labels.ts) fed by record-outcome, job-events and an hourly
 * sweep, read by the label-writer function (lambda/label-writer) with bounded concurrency, and its
 * dead-letter queue, alarmed by lib/monitoring.ts.
 */
export class Labels extends Construct {
  readonly function: BackupFunction;
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  /** Least milliseconds between two CreateTags calls of one label-writer instance. */
  readonly intervalMs: number;
  readonly maxConcurrency: number;
  readonly batchSize: number;

  constructor(scope: Construct, id: string, props: LabelsProps) {
    super(scope, id);
    const { vault, notifications } = props;
    const stack = Stack.of(this);
    const labelsPerSecond = props.labelsPerSecond ?? 4;
    if (!(labelsPerSecond > 0 && labelsPerSecond <= CREATE_TAGS_REFILL_PER_SECOND / 2)) {
      throw new Error(
        `Invalid labelsPerSecond: got ${labelsPerSecond}; allowed: more than 0 and at most ${CREATE_TAGS_REFILL_PER_SECOND / 2} (half of EC2 CreateTags' refill of ${CREATE_TAGS_REFILL_PER_SECOND} per second, which the whole account shares).`,
      );
    }
    this.maxConcurrency = props.maxConcurrency ?? 2;
    if (!Number.isInteger(this.maxConcurrency) || this.maxConcurrency < 2 || this.maxConcurrency > 10) {
      throw new Error(
        `Invalid maxConcurrency: got ${this.maxConcurrency}; allowed: a whole number from 2 (Lambda's least for an SQS event source) to 10.`,
      );
    }
    this.batchSize = props.batchSize ?? 10;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1 || this.batchSize > 10) {
      throw new Error(`Invalid batchSize: got ${this.batchSize}; allowed: a whole number from 1 to 10.`);
    }
    this.intervalMs = Math.ceil((1000 * this.maxConcurrency) / labelsPerSecond);

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetters', {
      retentionPeriod: Duration.days(14),
      enforceSSL: true,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
    });
    // SQS-managed keys: the functions and EventBridge send without a KMS grant. The visibility
    // timeout is the pace of retries and must exceed the function's timeout.
    this.queue = new sqs.Queue(this, 'Requests', {
      visibilityTimeout: Duration.minutes(5),
      retentionPeriod: Duration.days(4),
      enforceSSL: true,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: LABEL_QUEUE_MAX_RECEIVES },
    });

    this.function = new BackupFunction(this, 'Function', {
      handlerDir: 'label-writer',
      description:
        'Writes the final consistency label on the AMI of each completed ec2-consistent-backup job, paced',
      // A batch takes batchSize x interval; a sweep queues up to thousands of requests, ten per call.
      timeout: Duration.minutes(2),
      environment: {
        [NOTIFIER_ENV.tableName]: notifications.table.tableName,
        [LABEL_ENV.queueUrl]: this.queue.queueUrl,
        [LABEL_WRITER_ENV.vaultName]: vault.vault.backupVaultName,
        [LABEL_WRITER_ENV.intervalMs]: String(this.intervalMs),
        [LABEL_WRITER_ENV.maxReceives]: String(LABEL_QUEUE_MAX_RECEIVES),
      },
    });
    const fn = this.function;
    // The event source is the function's only trigger: maxConcurrency bounds the instances, and
    // with them the CreateTags rate, without reserving any of the Region's concurrency.
    fn.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: this.batchSize,
        maxConcurrency: this.maxConcurrency,
        reportBatchItemFailures: true,
      }),
    );
    this.queue.grantSendMessages(fn);
    for (const requester of props.requesters) {
      this.queue.grantSendMessages(requester);
      requester.addEnvironment(LABEL_ENV.queueUrl, this.queue.queueUrl);
    }

    // AWS Backup delivers its events best effort: the sweep asks again for every completed job
    // whose recovery point still reads pending.
    new events.Rule(this, 'Sweep', {
      description:
        'Hourly sweep for ec2-consistent-backup recovery points still labelled pending after their job completed',
      schedule: events.Schedule.rate(props.sweepInterval ?? Duration.hours(1)),
      targets: [
        new eventsTargets.SqsQueue(this.queue, { message: events.RuleTargetInput.fromObject(LABEL_SWEEP) }),
      ],
    });

    this.grant(fn, stack, notifications);
  }

  private grant(fn: BackupFunction, stack: Stack, notifications: Notifications): void {
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        // No resource-level permissions (Service Authorization Reference, AWS Backup and EC2).
        actions: ['backup:DescribeBackupJob', 'backup:ListBackupJobs', 'ec2:DescribeImages'],
        resources: ['*'],
      }),
    );
    // Reads the verdict record-outcome stored (Notifier.getJob); never writes, never publishes.
    fn.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['dynamodb:GetItem'], resources: [notifications.table.tableArn] }),
    );
    // EC2 image ARNs carry no account. Only AMIs AWS Backup made for this app's jobs (they carry the
    // label tag from StartBackupJob's recovery point tags), and only the three label tags.
    const images = stack.formatArn({ service: 'ec2', account: '', resource: 'image', resourceName: '*' });
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ec2:CreateTags'],
        resources: [images],
        conditions: {
          StringLike: { [`aws:ResourceTag/${RECOVERY_POINT_TAGS.consistency}`]: '*' },
          'ForAllValues:StringEquals': {
            'aws:TagKeys': [
              RECOVERY_POINT_TAGS.consistency,
              RECOVERY_POINT_TAGS.reason,
              RECOVERY_POINT_TAGS.freezeMs,
            ],
          },
        },
      }),
    );
    const role = fn.role as iam.IRole;
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagText(stack, images)}]`,
      reason:
        'Recovery point AMIs get their ids only when AWS Backup creates them; ec2:CreateTags is limited to AMIs already carrying the ConsistentBackup:Consistency tag and to the three label tag keys.',
    });
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'backup:DescribeBackupJob, backup:ListBackupJobs and ec2:DescribeImages support no resource-level permissions (service authorization reference), nor do the X-Ray actions of tracing.',
    });
  }
}
