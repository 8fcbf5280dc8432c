import { CfnOutput, Duration, SecretValue, Stack, Token, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { EMPTY_SECRET, FORWARDER_ENV } from '../lambda/servicenow-forwarder/settings';
import { BackupFunction } from './lambda-function';

export interface ServiceNowForwarderProps {
  /** The notification topic whose every message is forwarded. */
  readonly topic: sns.ITopic;
  /**
   * An existing Secrets Manager secret holding `{"instanceUrl", "username", "password"}`.
   * @default undefined: the stack creates one with empty values for the operator to fill in
   */
  readonly secretName?: string;
  /**
   * Deliveries of one message (each with its own retries) before it moves to the dead-letter queue.
   * @default 5
   */
  readonly maxReceiveCount?: number;
}

/** One invocation: a batch of 5 posted 5 at a time, each with up to 4 attempts of 8 s and backoff. */
const FUNCTION_TIMEOUT = Duration.seconds(60);

/**
 * Forwards every notification to ServiceNow Event Management's inbound event web service
 * (lambda/servicenow-forwarder) with credentials read from Secrets Manager at run time, so neither
 * the template nor the SNS subscription carries them. The topic feeds a queue; what the function
 * cannot deliver, after its own retries and the queue's redeliveries, or at once when it can never
 * succeed, lands in a dead-letter queue (lib/monitoring.ts alarms on its depth).
 */
export class ServiceNowForwarder extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly function: BackupFunction;
  readonly secret: secretsmanager.ISecret;

  constructor(scope: Construct, id: string, props: ServiceNowForwarderProps) {
    super(scope, id);
    const maxReceiveCount = props.maxReceiveCount ?? 5;
    if (!Number.isInteger(maxReceiveCount) || maxReceiveCount < 1 || maxReceiveCount > 100) {
      throw new Error(
        `Invalid maxReceiveCount: got ${maxReceiveCount}; allowed: a whole number from 1 to 100.`,
      );
    }

    this.deadLetterQueue = new sqs.Queue(this, 'Undeliverable', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter queue of the ServiceNow forwarder; a DLQ of a DLQ would only move the same messages.',
    });
    this.queue = new sqs.Queue(this, 'Events', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // Lambda's guidance for SQS event sources: at least six times the function timeout, so a
      // message is not delivered again while an invocation may still be working on it.
      visibilityTimeout: Duration.seconds(FUNCTION_TIMEOUT.toSeconds() * 6),
      // Long enough to ride out a ServiceNow outage over a weekend.
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount },
    });
    // Raw delivery: the body is the notification itself (the function also reads an envelope).
    props.topic.addSubscription(new subscriptions.SqsSubscription(this.queue, { rawMessageDelivery: true }));

    const stack = Stack.of(this);
    this.secret = props.secretName
      ? secretsmanager.Secret.fromSecretNameV2(this, 'Credentials', props.secretName)
      : new secretsmanager.Secret(this, 'Credentials', {
          description:
            'ServiceNow instance URL and evt_mgmt_integration credentials for ec2-consistent-backup: fill in instanceUrl, username, password',
          // Empty values, not a credential: the operator writes the real ones (docs/servicenow.md).
          secretStringValue: SecretValue.unsafePlainText(JSON.stringify(EMPTY_SECRET)),
        });
    if (!props.secretName) {
      Validations.of(this.secret).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason:
          'The password is that of a ServiceNow user and changes in ServiceNow: Secrets Manager cannot rotate it without a ServiceNow-side rotation function. Whoever changes it writes the new value here; the forwarder reads the secret again every five minutes.',
      });
    }

    this.function = new BackupFunction(this, 'Function', {
      handlerDir: 'servicenow-forwarder',
      description: 'Forwards ec2-consistent-backup notifications to ServiceNow Event Management',
      timeout: FUNCTION_TIMEOUT,
      environment: {
        [FORWARDER_ENV.secretArn]: this.secret.secretArn,
        [FORWARDER_ENV.deadLetterQueueUrl]: this.deadLetterQueue.queueUrl,
      },
    });
    // Only the value, not DescribeSecret or anything else grantRead would add. A secret named in
    // config is matched with the six characters Secrets Manager appends to every secret's ARN.
    const secretArn = props.secretName ? `${this.secret.secretArn}-??????` : this.secret.secretArn;
    this.function.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [secretArn] }),
    );
    if (props.secretName) {
      Validations.of(this.function.role as iam.Role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:${nagPseudo(stack.region, 'Region')}:${nagPseudo(stack.account, 'AccountId')}:secret:${props.secretName}-??????]`,
        reason:
          'A secret named in config is known by name only; its ARN ends in six characters Secrets Manager chose, which "-??????" matches and nothing longer.',
      });
    }
    this.deadLetterQueue.grantSendMessages(this.function);
    // Two pollers at most: ServiceNow sees a few requests at a time, however many notifications come.
    this.function.addEventSource(
      new SqsEventSource(this.queue, { batchSize: 5, reportBatchItemFailures: true, maxConcurrency: 2 }),
    );

    new CfnOutput(this, 'SecretArn', {
      description: 'Secret the ServiceNow forwarder reads: {"instanceUrl","username","password"}',
      value: this.secret.secretArn,
    });
  }
}

/** How cdk-nag writes a region or account in a finding: a pseudo parameter when it is a token. */
function nagPseudo(value: string, name: string): string {
  return Token.isUnresolved(value) ? `<AWS::${name}>` : value;
}
