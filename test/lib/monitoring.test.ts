import { beforeAll, describe, expect, it } from 'vitest';
import { METRIC_CATALOGUE, METRICS_NAMESPACE } from '../../lambda/shared/metrics';
import { type SynthResult, synthApp } from '../../sim/app-synth';

// biome-ignore lint/suspicious/noExplicitAny: synthesized CloudFormation JSON, asserted field by field.
type Json = any;
type Resource = { Type: string; Properties: Record<string, Json> };

function alarms(result: SynthResult): Record<string, Resource> {
  return result.template.findResources('AWS::CloudWatch::Alarm') as Record<string, Resource>;
}

function alarm(result: SynthResult, idPart: string): Resource {
  const found = Object.entries(alarms(result)).filter(([id]) => id.includes(idPart));
  expect(
    found.map(([id]) => id),
    idPart,
  ).toHaveLength(1);
  return found[0]?.[1] as Resource;
}

/** The dashboard body with every token replaced by a readable placeholder, parsed. */
function dashboard(result: SynthResult): { widgets: Json[] } {
  const [body] = Object.values(result.template.findResources('AWS::CloudWatch::Dashboard')).map(
    (d) => (d as Resource).Properties.DashboardBody,
  );
  const parts = body['Fn::Join'][1] as unknown[];
  const text = parts
    .map((p) => (typeof p === 'string' ? p : `TOKEN(${JSON.stringify(p).replace(/"/g, "'")})`))
    .join('');
  return JSON.parse(text);
}

const widget = (body: { widgets: Json[] }, title: RegExp) => {
  const found = body.widgets.filter((w) => title.test(w.properties?.title ?? ''));
  expect(
    found.map((w) => w.properties.title),
    String(title),
  ).toHaveLength(1);
  return found[0].properties;
};

describe('Monitoring: alarms', () => {
  let result: SynthResult;
  beforeAll(() => {
    result = synthApp({ serviceNowForwarder: 'true' });
  });

  it('fires on any Critical notification, from the catalogue metric', () => {
    const a = alarm(result, 'CriticalNotification');
    expect(a.Properties).toMatchObject({
      Namespace: METRICS_NAMESPACE,
      MetricName: METRIC_CATALOGUE.notifications.name,
      Dimensions: expect.arrayContaining([
        { Name: 'Severity', Value: 'Critical' },
        { Name: 'service', Value: 'ec2-consistent-backup' },
      ]),
      Statistic: 'Sum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
    });
    expect(a.Properties.AlarmDescription).toMatch(/thaw failed .* watchdog/);
  });

  it('fires on executions failed, timed out or aborted, summed', () => {
    const a = alarm(result, 'ExecutionsNotSucceeded');
    const expression = a.Properties.Metrics.find((m: Json) => m.Expression);
    expect(expression.Expression).toBe('failed + timedOut + aborted');
    const names = a.Properties.Metrics.filter((m: Json) => m.MetricStat).map(
      (m: Json) => m.MetricStat.Metric.MetricName,
    );
    expect(names.sort()).toEqual(['ExecutionsAborted', 'ExecutionsFailed', 'ExecutionsTimedOut']);
    expect(a.Properties.Threshold).toBe(1);
    expect(JSON.stringify(a.Properties.AlarmDescription)).toContain('list-executions');
  });

  it('has an alarm for every dead-letter queue of the stack, with every optional part on', () => {
    const everything = synthApp({
      serviceNowForwarder: 'true',
      copyDestinations: 'arn:aws:backup:us-east-1:444455556666:backup-vault:central=365',
      restoreTestSubnetId: 'subnet-0123456789abcdef0',
      restoreTestSecurityGroupIds: 'sg-0123456789abcdef0',
    });
    const result = everything;
    const resources = result.template.toJSON().Resources as Record<string, Resource>;
    const dlqIds = new Set<string>();
    const idOf = (arn: Json) => arn?.['Fn::GetAtt']?.[0] as string | undefined;
    for (const r of Object.values(resources)) {
      const p = r.Properties ?? {};
      if (r.Type === 'AWS::SQS::Queue' && p.RedrivePolicy)
        dlqIds.add(idOf(p.RedrivePolicy.deadLetterTargetArn) as string);
      if (r.Type === 'AWS::Scheduler::Schedule' && p.Target?.DeadLetterConfig)
        dlqIds.add(idOf(p.Target.DeadLetterConfig.Arn) as string);
      if (r.Type === 'AWS::Lambda::EventInvokeConfig' && p.DestinationConfig?.OnFailure) {
        dlqIds.add(idOf(p.DestinationConfig.OnFailure.Destination) as string);
      }
    }
    // Schedule, discovery, execution-events, command results, labels, copies, restore validation,
    // ServiceNow.
    expect(dlqIds.size).toBe(8);
    const watched = new Set(
      Object.values(alarms(result)).flatMap((a) =>
        (a.Properties.Dimensions ?? [])
          .filter((d: Json) => d.Name === 'QueueName')
          .map((d: Json) => d.Value['Fn::GetAtt'][0]),
      ),
    );
    for (const id of dlqIds) expect(watched.has(id), `an alarm on ${id}`).toBe(true);
  });

  it('alarms on a queue its reader drains when a message stays, on the others when one arrives', () => {
    const drained = alarm(result, 'DeadLettersScheduledeadletters');
    expect(drained.Properties).toMatchObject({
      MetricName: 'ApproximateAgeOfOldestMessage',
      Threshold: 600,
      Statistic: 'Maximum',
    });
    expect(JSON.stringify(drained.Properties.AlarmDescription)).toMatch(
      /dead-letters function, which turns each into a notification, is failing/,
    );
    const undeliverable = alarm(result, 'DeadLettersServiceNowundeliverable');
    expect(undeliverable.Properties).toMatchObject({
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    expect(JSON.stringify(undeliverable.Properties.AlarmDescription)).toContain('start-message-move-task');
  });

  it('fires when no run summary came for two windows plus the deadline, every hour without one breaching', () => {
    const a = alarm(result, 'NoRunSummary');
    expect(a.Properties).toMatchObject({
      MetricName: METRIC_CATALOGUE.runSummaries.name,
      Period: 3600,
      EvaluationPeriods: 52,
      DatapointsToAlarm: 52,
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
      TreatMissingData: 'breaching',
    });
    expect(a.Properties.AlarmDescription).toMatch(
      /^No run summary for 52 hours \(2 windows of cron\(0 2 \* \* \? \*\) UTC/,
    );
  });

  it('fires when the crash-consistent share of a run passes the threshold', () => {
    const a = alarm(result, 'CrashConsistentShare');
    const expression = a.Properties.Metrics.find((m: Json) => m.Expression);
    expect(expression.Expression).toBe(
      'IF(application + filesystem + crash > 0, 100 * crash / (application + filesystem + crash), 0)',
    );
    for (const m of a.Properties.Metrics.filter((x: Json) => x.MetricStat)) {
      expect(m.MetricStat.Metric.MetricName).toBe(METRIC_CATALOGUE.instancesByLabel.name);
      expect(m.MetricStat.Period).toBe(86_400);
    }
    expect(a.Properties.Threshold).toBe(10);
    expect(a.Properties.ComparisonOperator).toBe('GreaterThanThreshold');
  });

  it('sends every alarm to the notification topic, with a description an operator can act on', () => {
    for (const [id, a] of Object.entries(alarms(result))) {
      expect(a.Properties.AlarmActions, id).toEqual([{ Ref: expect.stringMatching(/NotificationsTopic/) }]);
      const text = JSON.stringify(a.Properties.AlarmDescription);
      expect(text.length, id).toBeLessThanOrEqual(1100);
      expect(text, id).toMatch(/\b(Check|Read|List|Act now|run|Each|fix)\b/i);
    }
    expect(Object.keys(alarms(result))).toHaveLength(10);
  });

  it('takes its thresholds and actions from config', () => {
    const custom = synthApp({
      alarmActions: 'arn:aws:sns:eu-west-1:111122223333:pager',
      alarmCrashSharePercent: 25,
      alarmMissedWindows: 3,
      alarmFailedExecutions: 5,
      alarmDeadLetterMessages: 3,
      serviceNowForwarder: 'true',
    });
    for (const a of Object.values(alarms(custom))) {
      expect(a.Properties.AlarmActions).toEqual(['arn:aws:sns:eu-west-1:111122223333:pager']);
    }
    expect(alarm(custom, 'CrashConsistentShare').Properties.Threshold).toBe(25);
    expect(alarm(custom, 'NoRunSummary').Properties.EvaluationPeriods).toBe(76);
    expect(alarm(custom, 'ExecutionsNotSucceeded').Properties.Threshold).toBe(5);
    expect(alarm(custom, 'DeadLettersServiceNowundeliverable').Properties.Threshold).toBe(3);
    const silent = synthApp({ alarmActions: 'none' });
    for (const a of Object.values(alarms(silent))) expect(a.Properties.AlarmActions).toBeUndefined();
  });

  it('has no missed-run alarm for a one-time schedule, and says why', () => {
    const once = synthApp({ scheduleExpression: 'at(2030-01-31T02:00:00)' });
    expect(Object.keys(alarms(once)).some((id) => id.includes('NoRunSummary'))).toBe(false);
    expect(once.stack.backup.monitoring.missedRunsAlarmSkipped).toMatch(/one-time/);
  });
});

describe('Monitoring: dashboard', () => {
  let body: { widgets: Json[] };
  let result: SynthResult;
  beforeAll(() => {
    result = synthApp({ serviceNowForwarder: 'true' });
    body = dashboard(result);
  });

  const metricsOf = (props: Json) => props.metrics as unknown[][];

  it('shows consistency per run as stacked labels, one point per window', () => {
    const w = widget(body, /^Consistency per run/);
    expect(w.stacked).toBe(true);
    expect(w.view).toBe('timeSeries');
    expect(metricsOf(w).map((m) => m.slice(0, 6))).toEqual(
      ['application', 'filesystem', 'crash', 'none'].map((l) => [
        METRICS_NAMESPACE,
        'InstancesByLabel',
        'Label',
        l,
        'service',
        'ec2-consistent-backup',
      ]),
    );
    for (const m of metricsOf(w)) expect(m[6]).toMatchObject({ period: 86_400, stat: 'Sum' });
  });

  it('shows freeze p50 and p99 over time', () => {
    const w = widget(body, /^Freeze duration/);
    const stats = metricsOf(w)
      .filter((m) => m[1] === 'FreezeDuration')
      .map((m) => (m.at(-1) as Json).stat);
    expect(stats).toEqual(['p50', 'p99']);
  });

  it('shows failures by class and exclusions by reason, from the closed sets', () => {
    expect(metricsOf(widget(body, /^Failures by class/)).map((m) => m[3])).toEqual([
      'skipped-active-job',
      'skipped-freeze-failed',
      'backup-start-failed',
      'backup-job-failed',
      'thaw-failed',
    ]);
    expect(metricsOf(widget(body, /^Exclusions by reason/))).toHaveLength(8);
  });

  it('shows throttles of every service and operation, found by a search', () => {
    const w = widget(body, /^Throttled AWS calls/);
    expect(JSON.stringify(w.metrics)).toContain(
      `SEARCH('{${METRICS_NAMESPACE},Operation,Service,service} MetricName=\\"ThrottledCalls\\"', 'Sum', 300)`,
    );
  });

  it('shows the depth of every dead-letter queue', () => {
    const w = widget(body, /^Dead-letter queues/);
    expect(metricsOf(w).map((m) => (m.at(-1) as Json).label)).toEqual([
      'Schedule dead letters',
      'Discovery failures',
      'Execution failures not notified',
      'Command results not handled',
      'Labels not written',
      'ServiceNow undeliverable',
    ]);
    for (const m of metricsOf(w)) expect(m[1]).toBe('ApproximateNumberOfMessagesVisible');
  });

  it('shows errors and p99 durations of every function', () => {
    const functions = Object.keys(result.template.findResources('AWS::Lambda::Function')).filter(
      (id) => !id.includes('LogRetention') && !id.includes('AWS679f53fac002430cb0da5b7982bd2287'),
    );
    const errors = metricsOf(widget(body, /^Lambda errors/));
    const durations = metricsOf(widget(body, /^Lambda duration/));
    expect(errors).toHaveLength(functions.length);
    expect(durations).toHaveLength(functions.length);
    expect(errors.map((m) => (m.at(-1) as Json).label).sort()).toEqual(
      [
        'command-results',
        'dead-letters',
        'discovery',
        'execution-events',
        'freeze-filesystems',
        'job-events',
        'label-writer',
        'record-outcome',
        'run-summary',
        'servicenow-forwarder',
        'snapshot-poller',
        'start-backup',
        'wait-for-command',
      ].sort(),
    );
    for (const m of durations) expect((m.at(-1) as Json).stat).toBe('p99');
  });

  it('shows execution outcomes and the alarms', () => {
    const w = widget(body, /^Workflow executions/);
    expect(metricsOf(w).map((m) => m[1])).toEqual([
      'ExecutionsSucceeded',
      'ExecutionsFailed',
      'ExecutionsTimedOut',
      'ExecutionsAborted',
    ]);
    const status = widget(body, /^Alarms$/);
    expect(status.alarms).toHaveLength(10);
  });
});
