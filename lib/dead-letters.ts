import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DEAD_LETTER_ENV } from '../lambda/dead-letters/settings';
import { BackupFunction } from './lambda-function';
import type { Notifications } from './notifications';

export interface DeadLettersProps {
  /** Where the notifications go (topic, its key, the table holding the once-only marks). */
  readonly notifications: Notifications;
  /** The discovery function whose failures the queues hold: named in the replay command and log search. */
  readonly discoveryFunction: BackupFunction;
  /** EventBridge Scheduler's dead-letter queue of the discovery schedule (lib/schedule.ts). */
  readonly scheduleDeadLetterQueue: sqs.IQueue;
  /** The discovery function's on-failure destination for asynchronous invocations (lib/discovery.ts). */
  readonly discoveryFailures: sqs.IQueue;
  /**
   * Messages per invocation. Each message is one notification; a small batch keeps a slow publish
   * from holding many messages invisible.
   * @default 5
   */
  readonly batchSize?: number;
}

/**
 * Reads discovery's two failure queues and turns every message into one Major notification in
 * the one schema (lambda/dead-letters): without it a window that was never started would sit in
 * SQS unseen. The queues stay SQS-managed encrypted, which Lambda's event source polling reads
 * without any KMS grant.
 */
export class DeadLetters extends Construct {
  readonly function: BackupFunction;

  constructor(scope: Construct, id: string, props: DeadLettersProps) {
    super(scope, id);
    const { notifications, discoveryFunction } = props;
    const batchSize = props.batchSize ?? 5;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10) {
      throw new Error(`Invalid batchSize: got ${batchSize}; allowed: a whole number from 1 to 10.`);
    }

    this.function = new BackupFunction(this, 'Function', {
      handlerDir: 'dead-letters',
      description: 'Notifies discovery invocations that failed or were never made (its dead-letter queues)',
      // Lambda refuses an SQS event source whose visibility timeout (30 s, the queues' default) is
      // shorter than the function timeout. One publish per message needs far less.
      timeout: Duration.seconds(30),
      environment: {
        ...notifications.environment,
        [DEAD_LETTER_ENV.discoveryFunctionArn]: discoveryFunction.functionArn,
        [DEAD_LETTER_ENV.discoveryLogGroup]: discoveryFunction.logGroupRef.logGroupName,
      },
    });
    const fn = this.function;
    fn.addEnvironment(DEAD_LETTER_ENV.ownLogGroup, fn.logGroupRef.logGroupName);

    // Narrower than Notifications.grantNotify: this function only publishes and writes or removes
    // its own once-only marks; it never reads or updates problems, jobs or runs.
    fn.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['sns:Publish'], resources: [notifications.topic.topicArn] }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: [notifications.topicKey.keyArn],
        conditions: {
          StringEquals: { 'kms:EncryptionContext:aws:sns:topicArn': notifications.topic.topicArn },
        },
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:PutItem', 'dynamodb:DeleteItem'],
        resources: [notifications.table.tableArn],
      }),
    );

    // The event source grants receive, delete, visibility change, attribute and URL reads on each
    // queue, and nothing else. Two concurrent pollers at most: failures come a few per window.
    for (const queue of [props.scheduleDeadLetterQueue, props.discoveryFailures]) {
      fn.addEventSource(
        new SqsEventSource(queue, { batchSize, reportBatchItemFailures: true, maxConcurrency: 2 }),
      );
    }
  }
}
