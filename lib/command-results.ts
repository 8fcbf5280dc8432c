import { Duration, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import {
  COMMAND_EVENT_DETAIL_TYPE,
  COMMAND_RESULTS_ENV,
  NON_TERMINAL_STATUSES,
  SWEEP_ROUND_SECONDS,
} from '../lambda/command-results/settings';
import { reservedConcurrency } from './concurrency';
import type { Documents } from './documents';
import { BackupFunction } from './lambda-function';

export interface CommandResultsProps {
  /** The stack's documents: the rule matches the freeze's and the thaw's invocations only. */
  readonly documents: Pick<Documents, 'names'>;
  /** The Coordination table (lib/coordination.ts, keys `pk`/`sk`, TTL `expiresAt`). */
  readonly table: dynamodb.ITable;
  /**
   * GetCommandInvocation calls per second across all instances of the function. SSM publishes no
   * rate for it; docs/scale.md assumes a refill of 20/s, so the default takes half of that.
   * @default 10
   */
  readonly getInvocationsPerSecond?: number;
  /**
   * ListCommandInvocations calls per second across all instances (no published rate either).
   * @default 4
   */
  readonly listInvocationsPerSecond?: number;
  /**
   * SendTaskSuccess/SendTaskFailure calls per second across all instances (Step Functions: bucket
   * 3,000, refill 500/s per account and Region, shared with the snapshot poller).
   * @default 50
   */
  readonly sendTaskPerSecond?: number;
  /**
   * How long one scheduled sweep keeps looking while waiters are pending (the schedule starts one
   * a minute).
   * @default 45
   */
  readonly sweepSeconds?: number;
}

/** Deliveries of one queue message before it goes to the dead-letter queue. */
export const COMMAND_QUEUE_MAX_RECEIVES = 5;
/** The SQS event source's maximum concurrency: Lambda's least (2). */
export const COMMAND_QUEUE_MAX_CONCURRENCY = 2;

/**
 * SSM command results for the workflow's waiting tasks, without one polling Lambda per instance
 * (issue 14 item 4; docs/fleet-design.md, command-results):
 * - an EventBridge rule on "EC2 Command Invocation Status-change Notification" events of the
 *   stack's freeze and thaw documents, terminal statuses only, delivered to the CommandWaiters
 *   queue (not to the function directly: the queue buffers a burst and bounds the function's
 *   concurrency through the event source, and what cannot be handled lands in a dead-letter queue);
 * - the same queue takes the thaw's `sqs:sendMessage.waitForTaskToken` messages;
 * - a sweep every minute (events are best effort) answers every registered waiter still unanswered
 *   2, 4, 8 ... s after its command was sent, with batched ListCommandInvocations;
 * - the command-results function (lambda/command-results) pairs results with task tokens in the
 *   Coordination table and answers them, each API paced by a client bucket.
 * Call `answersTo(stateMachine)` once the workflow exists: the queue is created first, because the
 * workflow sends to it, and the grant on the state machine comes after, so nothing is circular.
 */
export class CommandResults extends Construct {
  readonly function: BackupFunction;
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly table: dynamodb.ITable;
  readonly rule: events.Rule;
  readonly sweep: events.Rule;

  constructor(scope: Construct, id: string, props: CommandResultsProps) {
    super(scope, id);
    const reserved = reservedConcurrency('command-results');
    const rate = (name: string, value: number, max: number): number => {
      if (!(value > 0 && value <= max)) {
        throw new Error(
          `Invalid ${name}: got ${value}; allowed: more than 0 and at most ${max} calls per second.`,
        );
      }
      return value;
    };
    // Each instance paces itself; at most `reserved` run at once, so each gets its share.
    const perInstance = (total: number) => Number((total / reserved).toFixed(3));
    const getPerSecond = rate('getInvocationsPerSecond', props.getInvocationsPerSecond ?? 10, 20);
    const listPerSecond = rate('listInvocationsPerSecond', props.listInvocationsPerSecond ?? 4, 20);
    const sendTaskPerSecond = rate('sendTaskPerSecond', props.sendTaskPerSecond ?? 50, 250);
    const sweepSeconds = props.sweepSeconds ?? 45;
    if (!Number.isInteger(sweepSeconds) || sweepSeconds < 10 || sweepSeconds > 50) {
      throw new Error(
        `Invalid sweepSeconds: got ${sweepSeconds}; allowed: a whole number from 10 to 50 (a sweep starts every minute).`,
      );
    }

    this.table = props.table;

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetters', {
      retentionPeriod: Duration.days(14),
      enforceSSL: true,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter queue of the CommandWaiters queue and of the status-change rule; a queue behind it would only move the same messages.',
    });
    const functionTimeout = Duration.seconds(sweepSeconds + SWEEP_ROUND_SECONDS + 15);
    // SQS-managed keys: Step Functions and EventBridge send without a KMS grant. The visibility
    // timeout is six times the function's timeout (Lambda's guidance for SQS event sources).
    this.queue = new sqs.Queue(this, 'Waiters', {
      visibilityTimeout: Duration.seconds(functionTimeout.toSeconds() * 6),
      retentionPeriod: Duration.days(1),
      enforceSSL: true,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: COMMAND_QUEUE_MAX_RECEIVES },
    });

    this.function = new BackupFunction(this, 'Function', {
      handlerDir: 'command-results',
      description:
        'Answers the workflow tasks waiting for freeze and thaw commands from status-change events, with a batched fallback sweep',
      timeout: functionTimeout,
      environment: {
        [COMMAND_RESULTS_ENV.tableName]: this.table.tableName,
        [COMMAND_RESULTS_ENV.freezeDocument]: props.documents.names.freeze,
        [COMMAND_RESULTS_ENV.thawDocument]: props.documents.names.thaw,
        [COMMAND_RESULTS_ENV.getInvocationPerSecond]: String(perInstance(getPerSecond)),
        [COMMAND_RESULTS_ENV.listInvocationsPerSecond]: String(perInstance(listPerSecond)),
        [COMMAND_RESULTS_ENV.sendTaskPerSecond]: String(perInstance(sendTaskPerSecond)),
        [COMMAND_RESULTS_ENV.sweepSeconds]: String(sweepSeconds),
      },
    });
    const fn = this.function;
    fn.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: 10,
        maxConcurrency: COMMAND_QUEUE_MAX_CONCURRENCY,
        reportBatchItemFailures: true,
      }),
    );
    this.table.grant(
      fn,
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:Query',
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        // Neither supports resource-level permissions (service authorization reference, "Actions,
        // resources, and condition keys for AWS Systems Manager": no resource type for either).
        actions: ['ssm:GetCommandInvocation', 'ssm:ListCommandInvocations'],
        resources: ['*'],
      }),
    );
    Validations.of(fn.role as iam.IRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ssm:GetCommandInvocation and ssm:ListCommandInvocations support no resource-level permissions (service authorization reference), nor do the X-Ray actions of tracing.',
    });

    this.rule = new events.Rule(this, 'StatusChanges', {
      description:
        'Ended invocations of the ec2-consistent-backup freeze and thaw documents, for the tasks waiting for them',
      eventPattern: {
        source: ['aws.ssm'],
        detailType: [COMMAND_EVENT_DETAIL_TYPE],
        detail: {
          'document-name': [props.documents.names.freeze, props.documents.names.thaw],
          status: [{ 'anything-but': [...NON_TERMINAL_STATUSES] }],
        },
      },
      targets: [
        new targets.SqsQueue(this.queue, {
          deadLetterQueue: this.deadLetterQueue,
          retryAttempts: 185,
          maxEventAge: Duration.hours(1),
        }),
      ],
    });

    this.sweep = new events.Rule(this, 'Sweep', {
      description:
        'Looks up ec2-consistent-backup commands whose status-change event did not come (EventBridge delivers best effort)',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      // One attempt: the next minute's sweep starts anyway.
      targets: [new targets.LambdaFunction(fn, { retryAttempts: 0, deadLetterQueue: this.deadLetterQueue })],
    });
  }

  /** Lets the function answer the tasks of `stateMachine`, and only of it. */
  answersTo(stateMachine: sfn.IStateMachine): void {
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['states:SendTaskSuccess', 'states:SendTaskFailure'],
        resources: [stateMachine.stateMachineArn],
      }),
    );
  }

  /**
   * What a function that registers waiters (send-freeze) needs: the table name in its environment
   * and the writes of `registerCommandWaiter` (and its answer, when the result came first).
   */
  grantRegister(fn: BackupFunction): void {
    fn.addEnvironment(COMMAND_RESULTS_ENV.tableName, this.table.tableName);
    this.table.grant(
      fn,
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
    );
  }
}
