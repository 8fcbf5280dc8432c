import { PublishCommand, type PublishCommandInput, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { type Notification, validateNotification } from '../../../lambda/shared/notification';
import { Notifier, type NotifierTiming } from '../../../lambda/shared/notifier';
import type { DiscoverySummary, ExcludedInstance, WorkflowOutcome } from '../../../lambda/shared/outcome';
import { FakeDynamoDb, type FakeDynamoDbOptions } from '../../../sim/dynamodb';

export const ACCOUNT = '111122223333';
export const REGION = 'eu-west-1';
export const TABLE = 'ecb-notifications';
export const TOPIC = `arn:aws:sns:${REGION}:${ACCOUNT}:ecb-notifications`;

export function executionArn(instanceId: string, window = '20261122T0200Z'): string {
  return `arn:aws:states:${REGION}:${ACCOUNT}:execution:ecb-workflow:${instanceId}-${window}`;
}

/** A WorkflowOutcome as record-outcome builds it, for run `runId`. */
export function outcome(
  overrides: Partial<WorkflowOutcome> & Pick<WorkflowOutcome, 'outcome' | 'instanceId'>,
): WorkflowOutcome {
  const runId = overrides.runId ?? 'run-20261122T0200Z';
  const window = overrides.window ?? '2026-11-22T02:00:00Z';
  return {
    schemaVersion: 1,
    runId,
    window,
    accountId: ACCOUNT,
    region: REGION,
    executionArn: executionArn(overrides.instanceId, runId.replace(/^run-/, '')),
    platform: 'linux',
    warnings: [],
    ...overrides,
  };
}

export function summary(overrides: Partial<DiscoverySummary> = {}): DiscoverySummary {
  return {
    runId: 'run-20261122T0200Z',
    window: '2026-11-22T02:00:00Z',
    accountId: ACCOUNT,
    region: REGION,
    discovered: 3,
    excluded: {},
    started: 3,
    alreadyRunning: 0,
    ...overrides,
  };
}

export function excluded(
  instanceId: string,
  reason: ExcludedInstance['reason'],
  detail: string,
): ExcludedInstance {
  return { instanceId, instanceName: `name-of-${instanceId}`, reason, detail };
}

/** A notifier over the fake table and a mocked SNS client that records every publish. */
export function harness(
  start = new Date('2026-11-22T02:05:00Z'),
  tableOptions: FakeDynamoDbOptions = {},
  timing?: NotifierTiming,
) {
  const table = new FakeDynamoDb(
    TABLE,
    { PendingRuns: { partitionKey: 'pending', sortKey: 'deadline' } },
    tableOptions,
  );
  const { client: dynamodb, mock: dynamodbMock } = table.install();
  const snsMock = mockClient(SNSClient);
  const published: PublishCommandInput[] = [];
  /** Publishes that fail before SNS accepts them, each with this message (failPublishes). */
  const failing: string[] = [];
  snsMock.on(PublishCommand).callsFake((input: PublishCommandInput) => {
    const failure = failing.shift();
    if (failure !== undefined) return Promise.reject(new Error(failure));
    published.push(input);
    return Promise.resolve({ MessageId: `m-${published.length}` });
  });
  let now = start;
  const clock = () => now;
  const notifier = new Notifier(
    { sns: new SNSClient({ region: REGION }), dynamodb },
    { topicArn: TOPIC, tableName: TABLE, summaryDeadlineMinutes: 240 },
    undefined,
    clock,
    timing,
  );
  return {
    table,
    dynamodbMock,
    snsMock,
    published,
    notifier,
    /** Every published message body, parsed. */
    messages: (): Notification[] => published.map((p) => JSON.parse(p.Message ?? '{}') as Notification),
    /** The next `count` publishes fail (nothing reaches the topic); later ones succeed again. */
    failPublishes(count: number, message = 'SNS is down') {
      for (let i = 0; i < count; i++) failing.push(message);
    },
    advance(minutes: number) {
      now = new Date(now.getTime() + minutes * 60_000);
    },
    at(date: string) {
      now = new Date(date);
    },
    now: clock,
  };
}

/**
 * What every published message must satisfy, whatever produced it: the schema, the limits, the
 * severity rules, and an SNS envelope that matches the body.
 */
export function expectValidPublish(input: PublishCommandInput): Notification {
  const body = JSON.parse(input.Message ?? '') as Notification;
  const problems = validateNotification(body);
  if (problems.length > 0) throw new Error(`Invalid notification: ${problems.join('; ')}`);
  if (input.TopicArn !== TOPIC) throw new Error(`Published to ${input.TopicArn}`);
  if (input.Subject !== body.subject) throw new Error('SNS subject differs from the body subject');
  const hasControlCharacter = [...(input.Subject ?? '')].some((c) => c.charCodeAt(0) < 0x20);
  if (!input.Subject || input.Subject.length > 99 || hasControlCharacter) {
    throw new Error(`Bad subject ${JSON.stringify(input.Subject)}`);
  }
  const attributes = input.MessageAttributes ?? {};
  if (attributes.severity?.StringValue !== body.severity || attributes.severity?.DataType !== 'String') {
    throw new Error('severity attribute differs from the body');
  }
  if (attributes.event_type?.StringValue !== body.eventType) throw new Error('event_type attribute differs');
  if (body.instanceId && attributes.instance_id?.StringValue !== body.instanceId) {
    throw new Error('instance_id attribute differs');
  }
  return body;
}
