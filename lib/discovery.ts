import { Duration, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import {
  DEFAULT_GROUP_SLACK_SECONDS,
  DEFAULT_MARGIN_SECONDS,
  DEFAULT_MAX_STAGGER_SECONDS,
  DEFAULT_UNGROUPED_SLACK_SECONDS,
} from '../lambda/discovery/stagger';
import { freezePathConcurrency } from './concurrency';
import type { BackupConfig } from './config';
import { BackupFunction } from './lambda-function';
import type { Notifications } from './notifications';

export interface DiscoveryProps {
  /** The validated configuration (lib/config.ts). */
  readonly config: BackupConfig;
  /** The per-instance workflow; discovery may only start executions of it. */
  readonly stateMachine: sfn.IStateMachine;
  /** Where excluded instances and the run summary are reported. */
  readonly notifications: Notifications;
  /**
   * StartExecution pacing, to match an account whose quota was raised or is shared with other
   * workloads.
   * @default the documented standard-workflow quota of the region (1,300 burst and 300/s in
   * us-east-1, us-west-2 and eu-west-1; 800 and 150/s elsewhere), chosen at run time
   */
  readonly startExecutionQuota?: { readonly burst: number; readonly ratePerSecond: number };
  /**
   * How long after its wave's start a grouped instance may still begin its freeze; the gap
   * between waves is this plus hookTimeoutSeconds, watchdogSeconds and a minute.
   * @default Duration.minutes(15)
   */
  readonly groupStartSlack?: Duration;
  /**
   * The workflow's longest allowed wait before an execution's startAt (pass the Workflow's
   * `maxStagger`): group members whose wave would start later are excluded as `stagger-limit`
   * instead of being started into an execution that could time out while frozen.
   * @default Duration.seconds(DEFAULT_MAX_STAGGER_SECONDS), the Workflow's own default (14 days)
   */
  readonly maxStagger?: Duration;
}

/**
 * The discovery function: finds opted-in instances, checks their readiness, and starts one
 * workflow execution per ready instance with a deterministic name, paced to the StartExecution
 * quota, staggered per group, handing over to itself when time runs short.
 */
export class Discovery extends Construct {
  readonly function: BackupFunction;
  /** Invocations that failed (a start that could not be made, a hand-over that could not be sent). */
  readonly failedInvocations: sqs.Queue;

  constructor(scope: Construct, id: string, props: DiscoveryProps) {
    super(scope, id);
    const { config } = props;
    const quota = props.startExecutionQuota;
    this.function = new BackupFunction(this, 'Function', {
      handlerDir: 'discovery',
      description: 'Finds opted-in EC2 instances and starts one consistent-backup execution per instance',
      // The Lambda maximum: 100,000 starts at 300/s take about 6 minutes; the rest is margin
      // before the hand-over.
      timeout: Duration.minutes(15),
      // Memory buys CPU: the fan-out keeps 64 TLS requests in flight.
      memorySize: 1024,
      environment: {
        STATE_MACHINE_ARN: props.stateMachine.stateMachineArn,
        OPT_IN_TAG_KEY: config.optInTagKey,
        OPT_IN_TAG_VALUE: config.optInTagValue,
        ON_FREEZE_FAILURE: config.onFreezeFailure,
        MAX_FROZEN_PER_GROUP: String(config.maxFrozenPerGroup),
        WATCHDOG_SECONDS: String(config.watchdogSeconds),
        HOOK_TIMEOUT_SECONDS: String(config.hookTimeoutSeconds),
        GROUP_SLACK_SECONDS: String(props.groupStartSlack?.toSeconds() ?? DEFAULT_GROUP_SLACK_SECONDS),
        UNGROUPED_SLACK_SECONDS: String(DEFAULT_UNGROUPED_SLACK_SECONDS),
        WAVE_MARGIN_SECONDS: String(DEFAULT_MARGIN_SECONDS),
        MAX_STAGGER_SECONDS: String(props.maxStagger?.toSeconds() ?? DEFAULT_MAX_STAGGER_SECONDS),
        HANDOVER_RESERVE_SECONDS: '60',
        // Admission (lambda/discovery/admission.ts): the profile resolves by Region at run time.
        REGION_PROFILE: config.regionProfile,
        QUOTA_SHARE_PERCENT: String(config.quotaSharePercent),
        SNAPSHOT_START_SECONDS: String(config.snapshotStartSeconds),
        API_RATES: Object.entries(config.apiRates)
          .map(([api, b]) => `${api}=${b.ratePerSecond}/${b.burst}`)
          .join(','),
        RESERVED_CONCURRENCY: freezePathConcurrency(),
        ...(quota
          ? { START_BURST: String(quota.burst), START_RATE_PER_SECOND: String(quota.ratePerSecond) }
          : {}),
      },
    });
    const fn = this.function;
    const role = fn.role as iam.Role;

    fn.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ListOptedInInstancesAndReadiness',
        actions: ['ec2:DescribeInstances', 'ssm:DescribeInstanceInformation'],
        resources: ['*'],
      }),
    );
    props.stateMachine.grantStartExecution(fn);
    props.notifications.grantNotify(fn, ['record-discovery']);

    // The hand-over re-invokes this function. A statement in the role's default policy would make
    // the function depend on a policy that names the function: a separate policy breaks the cycle.
    new iam.Policy(this, 'HandOverPolicy', {
      roles: [role],
      statements: [
        new iam.PolicyStatement({
          sid: 'HandOverToItself',
          actions: ['lambda:InvokeFunction'],
          resources: [fn.functionArn],
        }),
      ],
    });

    this.failedInvocations = new sqs.Queue(this, 'FailedInvocations', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    // No automatic retry: a replayed invocation would hand over a second time and run two chains
    // in parallel. Transient API errors are retried inside the invocation; what still fails lands
    // here with its event, and replaying that event is safe (deterministic names).
    fn.configureAsyncInvoke({
      retryAttempts: 0,
      maxEventAge: Duration.hours(1),
      onFailure: new destinations.SqsDestination(this.failedInvocations),
    });

    Validations.of(this.failedInvocations).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the failure destination of the discovery function; a dead-letter queue behind it would only move the same events.',
    });
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ec2:DescribeInstances and ssm:DescribeInstanceInformation are list actions without resource types in the Service Authorization Reference, so they only accept "*"; X-Ray tracing (xray:PutTraceSegments, xray:PutTelemetryRecords) likewise.',
    });
  }
}
