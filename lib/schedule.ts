import { Duration, TimeZone } from 'aws-cdk-lib';
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
        retryAttempts: 3,
        maxEventAge: Duration.hours(1),
        deadLetterQueue: this.deadLetterQueue,
      }),
    });
  }
}
