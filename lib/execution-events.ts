import { Duration, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { EXECUTION_EVENTS_ENV, EXECUTION_EVENTS_TIMEOUT_SECONDS } from '../lambda/execution-events/events';
import type { BackupConfig } from './config';
import { BackupFunction } from './lambda-function';
import type { Notifications } from './notifications';

export interface ExecutionEventsProps {
  readonly config: BackupConfig;
  /** The per-instance workflow whose own failures are watched. */
  readonly stateMachine: sfn.IStateMachine;
  readonly notifications: Pick<Notifications, 'topic' | 'topicKey' | 'table' | 'environment'>;
}

/** The execution statuses that end a workflow without its outcome necessarily being notified. */
export const WATCHED_STATUSES = ['FAILED', 'TIMED_OUT', 'ABORTED'] as const;

/**
 * Nothing fails silently: an EventBridge rule on the workflow's own "Step Functions Execution
 * Status Change" events (FAILED, TIMED_OUT, ABORTED) invokes the execution-events function, which
 * notifies through the one schema every such execution nobody else notified
 * (lambda/execution-events). Events it could not handle, after the asynchronous retries, and
 * events EventBridge could not deliver land in one queue that Monitoring alarms on.
 */
export class ExecutionEvents extends Construct {
  readonly function: BackupFunction;
  readonly rule: events.Rule;
  /** Failed deliveries and invocations; a message here is a failure nobody was told about. */
  readonly failures: sqs.Queue;

  constructor(scope: Construct, id: string, props: ExecutionEventsProps) {
    super(scope, id);
    const { notifications } = props;
    this.function = new BackupFunction(this, 'Function', {
      handlerDir: 'execution-events',
      description: 'Notifies workflow executions that failed, timed out or were aborted unnotified',
      // Below its claim's lease (lambda/execution-events/events.ts CLAIM_LEASE_SECONDS).
      timeout: Duration.seconds(EXECUTION_EVENTS_TIMEOUT_SECONDS),
      environment: {
        ...notifications.environment,
        [EXECUTION_EVENTS_ENV.watchdogSeconds]: String(props.config.watchdogSeconds),
      },
    });
    const fn = this.function;
    // Narrower than Notifications.grantNotify: the function publishes and claims, gives back or
    // confirms the execution's outcome mark (conditional UpdateItem); it reads nothing and updates
    // no problem, job or run.
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
        actions: ['dynamodb:UpdateItem'],
        resources: [notifications.table.tableArn],
      }),
    );

    this.failures = new sqs.Queue(this, 'Failures', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.failures).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter queue of the execution-events rule and the failure destination of its function; a queue behind it would only move the same events.',
    });
    // A repeat is harmless (the once-only mark), so retry the function's own failures.
    fn.configureAsyncInvoke({
      retryAttempts: 2,
      maxEventAge: Duration.hours(6),
      onFailure: new destinations.SqsDestination(this.failures),
    });

    this.rule = new events.Rule(this, 'Rule', {
      description: 'Failed, timed-out and aborted executions of the ec2-consistent-backup workflow',
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: {
          status: [...WATCHED_STATUSES],
          stateMachineArn: [props.stateMachine.stateMachineArn],
        },
      },
      targets: [
        new targets.LambdaFunction(fn, {
          deadLetterQueue: this.failures,
          retryAttempts: 185,
          maxEventAge: Duration.hours(24),
        }),
      ],
    });
  }
}
