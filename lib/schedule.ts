import * as iam from 'aws-cdk-lib/aws-iam';
import { Duration, Stack, TimeZone, Validations } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { BackupConfig } from './config';

export interface ScheduleProps {
  readonly config: BackupConfig;
  /** The discovery function the schedule invokes. */
  readonly discovery: lambda.IFunction;
}

/**
 * EventBridge Scheduler invokes discovery once per window. The scheduled time is passed in, so
 * every retry of the same window produces the same execution names and starts no duplicate.
 * Invocations that still fail after the retries land in a dead-letter queue.
 */
export class Schedule extends Construct {
  readonly schedule: scheduler.Schedule;
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: ScheduleProps) {
    super(scope, id);
    const { config } = props;
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter queue of the schedule target; a DLQ of a DLQ would only move the same messages.',
    });
    const role = new iam.Role(this, 'InvokeRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
      description: 'EventBridge Scheduler invokes the discovery function',
    });
    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: 'Starts a consistent-backup run for every opted-in EC2 instance',
      schedule: scheduler.ScheduleExpression.expression(
        config.scheduleExpression,
        TimeZone.of(config.scheduleTimeZone),
      ),
      target: new targets.LambdaInvoke(props.discovery, {
        input: scheduler.ScheduleTargetInput.fromObject({
          scheduledTime: scheduler.ContextAttribute.scheduledTime,
          scheduleArn: scheduler.ContextAttribute.scheduleArn,
        }),
        role,
        retryAttempts: 3,
        maxEventAge: Duration.hours(1),
        deadLetterQueue: this.deadLetterQueue,
      }),
    });
    // The target grants lambda:InvokeFunction on the function and its qualified ARNs (`<arn>:*`,
    // versions and aliases); the function has no aliases, so this is the one function.
    const fnLogicalId = Stack.of(this).getLogicalId(props.discovery.node.defaultChild as lambda.CfnFunction);
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${fnLogicalId}.Arn>:*]`,
      reason:
        'Qualified ARNs of the discovery function only (versions/aliases), added by the Scheduler target grant.',
    });
  }
}
