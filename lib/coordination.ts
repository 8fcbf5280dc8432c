import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { COORDINATION_TABLE_ENV } from '../lambda/shared/coordination';
import { type PollerWakeEvent, SNAPSHOT_POLLER_FUNCTION_ENV } from '../lambda/shared/snapshot-waiters';
import type { BackupTagRule } from '../lambda/snapshot-poller/backup-snapshots';
import { POLLER_ENV } from '../lambda/snapshot-poller/settings';
import { BackupFunction } from './lambda-function';

/** EC2 DescribeSnapshots refills 20 per second for the whole account (QUOTAS.md). */
export const DESCRIBE_SNAPSHOTS_REFILL_PER_SECOND = 20;

export interface CoordinationProps {
  /**
   * DescribeSnapshots calls per second the poller takes at most. The account's refill is 20/s,
   * shared with DLM, other tools and operators.
   * @default 10
   */
  readonly describeSnapshotsPerSecond?: number;
  /**
   * SendTaskSuccess/Failure calls per second the poller takes at most (Step Functions refills 500/s
   * in the largest Regions, 300/s elsewhere; the freeze and thaw callbacks share it).
   * @default 100
   */
  readonly sendTaskPerSecond?: number;
  /**
   * When a snapshot without AWS Backup's `aws:backup:source-resource` tag may end a freeze
   * (lambda/snapshot-poller/backup-snapshots.ts): `required` never counts an untagged one.
   * @default 'required'
   */
  readonly backupTagRule?: BackupTagRule;
}

/**
 * What the functions that answer the workflow's task tokens share: the Coordination table
 * (lambda/shared/coordination.ts), and the shared snapshot poller (lambda/snapshot-poller), one per
 * account and Region (reserved concurrency 1, a lease in the table), woken by each registration
 * that finds its lease stale and, as a safety net, every minute.
 */
export class Coordination extends Construct {
  readonly table: dynamodb.Table;
  readonly poller: BackupFunction;

  constructor(scope: Construct, id: string, props: CoordinationProps = {}) {
    super(scope, id);
    const describeSnapshotsPerSecond = props.describeSnapshotsPerSecond ?? 10;
    if (
      !(
        describeSnapshotsPerSecond > 0 &&
        describeSnapshotsPerSecond <= DESCRIBE_SNAPSHOTS_REFILL_PER_SECOND / 2
      )
    ) {
      throw new Error(
        `Invalid describeSnapshotsPerSecond: got ${describeSnapshotsPerSecond}; allowed: more than 0 and at most ${DESCRIBE_SNAPSHOTS_REFILL_PER_SECOND / 2} (half of EC2 DescribeSnapshots' refill of ${DESCRIBE_SNAPSHOTS_REFILL_PER_SECOND} per second, which the whole account shares).`,
      );
    }
    const sendTaskPerSecond = props.sendTaskPerSecond ?? 100;
    if (!(sendTaskPerSecond > 0 && sendTaskPerSecond <= 250)) {
      throw new Error(
        `Invalid sendTaskPerSecond: got ${sendTaskPerSecond}; allowed: more than 0 and at most 250 (half of Step Functions' largest SendTask refill, 500 per second).`,
      );
    }

    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiresAt',
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // Task tokens and waits of executions in flight, gone within a day (TTL): nothing to keep.
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.poller = new BackupFunction(this, 'SnapshotPoller', {
      handlerDir: 'snapshot-poller',
      description:
        'Answers every ec2-consistent-backup snapshot wait: AWS Backup snapshots started, job failed or budget spent (one per account and Region)',
      // It hands over to a fresh invocation 20 s before this, and exits after 30 s without work.
      timeout: Duration.minutes(15),
      memorySize: 512,
      environment: {
        [POLLER_ENV.tableName]: this.table.tableName,
        [POLLER_ENV.describeSnapshotsPerSecond]: String(describeSnapshotsPerSecond),
        [POLLER_ENV.sendTaskPerSecond]: String(sendTaskPerSecond),
        [POLLER_ENV.backupTagRule]: props.backupTagRule ?? 'required',
      },
    });
    const fn = this.poller;
    // A wake-up older than a poller's lifetime is no longer worth a run: the schedule covers it.
    fn.configureAsyncInvoke({ maxEventAge: Duration.minutes(15), retryAttempts: 2 });

    // Lease, waiters: read, claimed, deleted (lambda/snapshot-poller/poller.ts).
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:Query',
        ],
        resources: [this.table.tableArn],
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        // No resource-level permissions for either (Service Authorization Reference, EC2 and AWS Backup).
        actions: ['ec2:DescribeSnapshots', 'backup:ListBackupJobs'],
        resources: ['*'],
      }),
    );
    // Its own hand-over: a separate policy, since the function's default policy cannot name the
    // function's own ARN (the function depends on that policy).
    new iam.Policy(this, 'SnapshotPollerHandOver', {
      roles: [fn.role as iam.IRole],
      statements: [
        new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [fn.functionArn] }),
      ],
    });
    Validations.of(fn.role as iam.IRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ec2:DescribeSnapshots and backup:ListBackupJobs support no resource-level permissions (Service Authorization Reference), nor do the X-Ray actions of tracing.',
    });

    // The safety net: a waiter registered while no poller runs and whose wake-up was lost is
    // answered within a minute (its task's own timeout routes through the thaw if even that fails).
    const wake: PollerWakeEvent = { source: 'schedule' };
    new events.Rule(this, 'SnapshotPollerSchedule', {
      description: 'Starts the ec2-consistent-backup snapshot poller every minute if it is not running',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [
        new eventsTargets.LambdaFunction(fn, {
          event: events.RuleTargetInput.fromObject(wake),
          // The next minute's event replaces a missed one.
          retryAttempts: 0,
          maxEventAge: Duration.minutes(1),
        }),
      ],
    });
  }

  /**
   * Lets the poller answer the tokens of this state machine's tasks. A policy of its own, added
   * after both exist: the state machine's definition will name the start-backup function, which
   * names the poller (grantRegisterWaiter), so the poller's default policy cannot name the state
   * machine without a dependency cycle.
   */
  grantAnswerTasks(stateMachine: sfn.IStateMachine): void {
    new iam.Policy(this, 'SnapshotPollerAnswers', {
      roles: [this.poller.role as iam.IRole],
      statements: [
        new iam.PolicyStatement({
          actions: ['states:SendTaskSuccess', 'states:SendTaskFailure'],
          resources: [stateMachine.stateMachineArn],
        }),
      ],
    });
  }

  /**
   * For the function that registers snapshot waiters (start-backup): write a waiter, read the
   * lease, wake the poller; and the environment naming the table and the poller.
   */
  grantRegisterWaiter(fn: lambda.Function): void {
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:PutItem', 'dynamodb:GetItem'],
        resources: [this.table.tableArn],
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [this.poller.functionArn] }),
    );
    fn.addEnvironment(COORDINATION_TABLE_ENV, this.table.tableName);
    fn.addEnvironment(SNAPSHOT_POLLER_FUNCTION_ENV, this.poller.functionName);
  }
}
