import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sns from 'aws-cdk-lib/aws-sns';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import {
  EXCLUSION_REASONS,
  FAILURE_CLASSES,
  LABELS,
  METRIC_CATALOGUE,
  METRICS_NAMESPACE,
  type MetricKey,
  SERVICE_NAME,
  SEVERITY_VALUES,
} from '../lambda/shared/metrics';
import type { BackupConfig } from './config';
import type { BackupFunction } from './lambda-function';
import { humanDuration, missedRunsAlarm, runPeriodSeconds, scheduleWindowSeconds } from './run-windows';

/** A dead-letter queue of the stack, with what an operator needs when it is not empty. */
export interface MonitoredDeadLetterQueue {
  readonly queue: sqs.IQueue;
  /** A short name for the alarm and the dashboard, e.g. "Schedule dead letters". */
  readonly title: string;
  /** What a message in it means. */
  readonly holds: string;
  /** What to do about it. */
  readonly todo: string;
  /**
   * A function that reads the queue and turns each message into a notification: then a message is
   * a problem only when it stays (the function could not handle it), not when it arrives.
   * @default undefined: nothing reads it, one message is already a problem
   */
  readonly drainedBy?: string;
}

export interface MonitoringProps {
  /** The validated configuration: schedule, summary deadline, alarm actions and thresholds. */
  readonly config: BackupConfig;
  /** The notification topic, the `topic` of config `alarmActions`. */
  readonly topic: sns.ITopic;
  /** The per-instance workflow. */
  readonly stateMachine: sfn.IStateMachine;
  /** Every function of the app, for the error and duration graphs. */
  readonly functions: readonly BackupFunction[];
  /** Every dead-letter queue of the stack. */
  readonly deadLetterQueues: readonly MonitoredDeadLetterQueue[];
}

/** How long a message may wait in a queue its dead-letters reader drains before it is a problem. */
const UNDRAINED_SECONDS = 600;

/**
 * The alarms and the dashboard an operator of ec2-consistent-backup needs, built from the metric
 * catalogue (lambda/shared/metrics.ts) and the services' own metrics. aws-cloudwatch L2 rather
 * than cdk-monitoring-constructs: most of what matters here is custom metrics, metric math over
 * them and alarm descriptions specific to this app, which the facade would wrap without adding
 * anything, at the cost of a dependency with its own aws-cdk-lib range.
 */
export class Monitoring extends Construct {
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly dashboard: cloudwatch.Dashboard;
  /** Seconds one point of the per-run graphs and the crash-share alarm covers. */
  readonly runPeriodSeconds: number;
  /** Why there is no missed-runs alarm, when there is none. */
  readonly missedRunsAlarmSkipped?: string;

  private readonly actions: cloudwatch.IAlarmAction[];

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const { config } = props;
    const window = scheduleWindowSeconds(config.scheduleExpression, config.scheduleTimeZone);
    this.runPeriodSeconds = runPeriodSeconds(window);
    this.actions = config.alarmActions.map(
      (action, i) =>
        new actions.SnsAction(
          action === 'topic' ? props.topic : sns.Topic.fromTopicArn(this, `AlarmTopic${i}`, action),
        ),
    );

    this.alarmOnCritical();
    this.alarmOnExecutions(props.stateMachine, config.alarmFailedExecutions);
    for (const dlq of props.deadLetterQueues) this.alarmOnDeadLetters(dlq, config.alarmDeadLetterMessages);
    const missed = missedRunsAlarm(window, config.alarmMissedWindows, config.summaryDeadlineMinutes);
    if (missed.kind === 'alarm') {
      this.alarmOnMissedRuns(missed, config);
    } else {
      this.missedRunsAlarmSkipped = missed.reason;
    }
    this.alarmOnCrashShare(config.alarmCrashSharePercent);

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.days(14),
      periodOverride: cloudwatch.PeriodOverride.INHERIT,
    });
    this.addWidgets(props);
  }

  /** A metric of the catalogue, with Powertools' service dimension and the given dimension values. */
  metric(key: MetricKey, dimensions: Record<string, string> = {}, props: cloudwatch.MetricOptions = {}) {
    const definition = METRIC_CATALOGUE[key];
    return new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: definition.name,
      dimensionsMap: { service: SERVICE_NAME, ...dimensions },
      statistic: 'Sum',
      ...props,
    });
  }

  private add(id: string, props: cloudwatch.AlarmProps): cloudwatch.Alarm {
    if ((props.alarmDescription?.length ?? 0) > 1024) {
      throw new Error(
        `Alarm ${id}: its description is ${props.alarmDescription?.length} characters; CloudWatch takes 1024.`,
      );
    }
    const alarm = new cloudwatch.Alarm(this, id, props);
    for (const action of this.actions) alarm.addAlarmAction(action);
    this.alarms.push(alarm);
    return alarm;
  }

  private alarmOnCritical(): void {
    this.add('CriticalNotification', {
      metric: this.metric('notifications', { Severity: 'Critical' }, { period: Duration.minutes(1) }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription:
        'A Critical notification went out: a thaw failed after its retries, so data filesystems of an instance may still be frozen (writes to them hang). Act now: the Critical message on the topic (subject "[Critical] Thaw failed ...") names the instance, the execution and when the on-instance watchdog thaws by itself; run the thaw document on the instance (docs/operating.md) or wait for the watchdog, then check the application.',
    });
  }

  private alarmOnExecutions(stateMachine: sfn.IStateMachine, threshold: number): void {
    const period = Duration.minutes(5);
    const ended = new cloudwatch.MathExpression({
      expression: 'failed + timedOut + aborted',
      usingMetrics: {
        failed: stateMachine.metricFailed({ period, statistic: 'Sum' }),
        timedOut: stateMachine.metricTimedOut({ period, statistic: 'Sum' }),
        aborted: stateMachine.metricAborted({ period, statistic: 'Sum' }),
      },
      label: 'Executions failed, timed out or aborted',
      period,
    });
    this.add('ExecutionsNotSucceeded', {
      metric: ended,
      threshold,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `${threshold === 1 ? 'An execution' : `${threshold} or more executions`} of the per-instance workflow failed, timed out or was aborted within 5 minutes. A failed execution whose outcome was recorded already sent its own notification (same execution ARN in additional_info). One that timed out or was aborted may have stopped while an instance was frozen: its watchdog thaws it, but check the instance. List them: aws stepfunctions list-executions --state-machine-arn ${stateMachine.stateMachineArn} --status-filter TIMED_OUT (or FAILED, ABORTED), or npx ec2-consistent-backup status.`,
    });
  }

  private alarmOnDeadLetters(dlq: MonitoredDeadLetterQueue, threshold: number): void {
    const id = `DeadLetters${dlq.title.replace(/[^A-Za-z0-9]/g, '')}`;
    const intro = `${dlq.title} (${dlq.queue.queueName}): ${dlq.holds}`;
    if (dlq.drainedBy) {
      // Its reader turns each message into a notification within seconds; a message that stays
      // means the reader could not, so the failure has reached nobody yet.
      this.add(id, {
        metric: dlq.queue.metricApproximateAgeOfOldestMessage({
          period: Duration.minutes(5),
          statistic: 'Maximum',
        }),
        threshold: UNDRAINED_SECONDS,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: `${intro} A message has waited ${UNDRAINED_SECONDS / 60} minutes: the ${dlq.drainedBy} function, which turns each into a notification, is failing (see its log group and Errors on the dashboard). ${dlq.todo}`,
      });
      return;
    }
    this.add(id, {
      metric: dlq.queue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(1),
        statistic: 'Maximum',
      }),
      threshold,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `${intro} ${threshold === 1 ? 'It is not empty.' : `It holds ${threshold} or more messages.`} ${dlq.todo}`,
    });
  }

  private alarmOnMissedRuns(
    missed: Extract<ReturnType<typeof missedRunsAlarm>, { kind: 'alarm' }>,
    config: BackupConfig,
  ) {
    const span = humanDuration(missed.coveredSeconds);
    this.add('NoRunSummary', {
      metric: this.metric('runSummaries', {}, { period: Duration.seconds(missed.periodSeconds) }),
      threshold: 1,
      evaluationPeriods: missed.evaluationPeriods,
      datapointsToAlarm: missed.evaluationPeriods,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      // No summary in a period is no data: every period of the span without one fires it.
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      alarmDescription: `No run summary for ${span}${missed.capped ? ' (capped at the 7 days a CloudWatch alarm can look back)' : ` (${config.alarmMissedWindows} windows of ${config.scheduleExpression} ${config.scheduleTimeZone} plus the ${config.summaryDeadlineMinutes}-minute summary deadline)`}: backups have stopped. Either the schedule did not invoke discovery (disabled or deleted, or its invocations failed: look for a discovery-not-invoked Major), or discovery fails before it reports (a discovery-failed Major, or the discovery function's errors on the dashboard). Check: aws scheduler list-schedules --name-prefix Ec2ConsistentBackup; then npx ec2-consistent-backup status.`,
    });
  }

  private alarmOnCrashShare(percent: number): void {
    const period = Duration.seconds(this.runPeriodSeconds);
    const label = (l: string) => this.metric('instancesByLabel', { Label: l }, { period });
    const share = new cloudwatch.MathExpression({
      expression:
        'IF(application + filesystem + crash > 0, 100 * crash / (application + filesystem + crash), 0)',
      usingMetrics: {
        application: label('application'),
        filesystem: label('filesystem'),
        crash: label('crash'),
      },
      label: 'Crash-consistent share of backups (%)',
      period,
    });
    this.add('CrashConsistentShare', {
      metric: share,
      threshold: percent,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `More than ${percent}% of the backups recorded within ${humanDuration(this.runPeriodSeconds)} (one run) are only crash-consistent (alarmCrashSharePercent). Each has a Warning crash-consistent-fallback notification with its reason; when many share one (freeze budget exceeded, freeze failed, SSM or EC2 throttling), the cause is fleet-wide: compare the dashboard's freeze duration, failures and throttled calls, and run npx ec2-consistent-backup status for the run.`,
    });
  }

  private addWidgets(props: MonitoringProps): void {
    const period = Duration.seconds(this.runPeriodSeconds);
    const hour = Duration.hours(1);
    const five = Duration.minutes(5);
    const runs = `one point per ${humanDuration(this.runPeriodSeconds)}: a run`;
    const d = this.dashboard;
    d.addWidgets(
      new cloudwatch.TextWidget({
        markdown: `# ec2-consistent-backup\nSchedule \`${props.config.scheduleExpression}\` (${props.config.scheduleTimeZone}). Metrics: namespace \`${METRICS_NAMESPACE}\` (docs/operating.md). Alarms go to ${props.config.alarmActions.length ? props.config.alarmActions.join(', ') : 'nowhere (alarmActions none)'}.`,
        width: 24,
        height: 2,
      }),
    );
    d.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24, height: 3 }),
    );
    d.addWidgets(
      new cloudwatch.GraphWidget({
        title: `Consistency per run (${runs})`,
        left: LABELS.map((l) => this.metric('instancesByLabel', { Label: l }, { period, label: l })),
        stacked: true,
        view: cloudwatch.GraphWidgetView.TIME_SERIES,
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Freeze duration p50 / p99 (ms)',
        left: [
          this.metric('freezeDuration', {}, { period: hour, statistic: 'p50', label: 'p50' }),
          this.metric('freezeDuration', {}, { period: hour, statistic: 'p99', label: 'p99' }),
        ],
        right: [
          this.metric(
            'snapshotStartLatency',
            {},
            { period: hour, statistic: 'p99', label: 'snapshot start p99' },
          ),
        ],
        width: 12,
      }),
    );
    d.addWidgets(
      new cloudwatch.GraphWidget({
        title: `Failures by class (${runs})`,
        left: FAILURE_CLASSES.map((c) => this.metric('failures', { FailureClass: c }, { period, label: c })),
        stacked: true,
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: `Exclusions by reason (${runs})`,
        left: EXCLUSION_REASONS.map((r) => this.metric('exclusions', { Reason: r }, { period, label: r })),
        stacked: true,
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Notifications by severity',
        left: SEVERITY_VALUES.map((s) =>
          this.metric('notifications', { Severity: s }, { period: hour, label: s }),
        ),
        stacked: true,
        width: 8,
      }),
    );
    d.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Throttled AWS calls by service and operation',
        left: [
          new cloudwatch.MathExpression({
            expression: `SEARCH('{${METRICS_NAMESPACE},Operation,Service,service} MetricName="${METRIC_CATALOGUE.throttledCalls.name}"', 'Sum', 300)`,
            usingMetrics: {},
            label: '',
            period: five,
          }),
        ],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Dead-letter queues: messages waiting',
        left: props.deadLetterQueues.map((q) =>
          q.queue.metricApproximateNumberOfMessagesVisible({
            period: five,
            statistic: 'Maximum',
            label: q.title,
          }),
        ),
        width: 12,
      }),
    );
    d.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Lambda errors',
        left: props.functions.map((fn) =>
          fn.metricErrors({ period: five, statistic: 'Sum', label: fn.handlerDir }),
        ),
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Lambda duration p99 (ms)',
        left: props.functions.map((fn) =>
          fn.metricDuration({ period: five, statistic: 'p99', label: fn.handlerDir }),
        ),
        width: 12,
      }),
    );
    const sm = props.stateMachine;
    d.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Workflow executions by outcome',
        left: [
          sm.metricSucceeded({ period: hour, statistic: 'Sum', label: 'succeeded' }),
          sm.metricFailed({ period: hour, statistic: 'Sum', label: 'failed' }),
          sm.metricTimedOut({ period: hour, statistic: 'Sum', label: 'timed out' }),
          sm.metricAborted({ period: hour, statistic: 'Sum', label: 'aborted' }),
        ],
        stacked: true,
        width: 24,
      }),
    );
  }
}

/** The dashboard's console link, for outputs and docs. */
export function dashboardUrl(dashboard: cloudwatch.Dashboard): string {
  const stack = Stack.of(dashboard);
  return `https://${stack.region}.console.aws.amazon.com/cloudwatch/home?region=${stack.region}#dashboards:name=${dashboard.dashboardName}`;
}
