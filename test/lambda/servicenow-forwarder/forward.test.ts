import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type BatchDeps, forwardBatch } from '../../../lambda/servicenow-forwarder/batch';
import { gmtTime, retryAfterMs, toInboundEvent } from '../../../lambda/servicenow-forwarder/forward';
import { credentialsProblem, EMPTY_SECRET } from '../../../lambda/servicenow-forwarder/settings';
import type { Notification } from '../../../lambda/shared/notification';
import { buildOutcomeNotification } from '../../../lambda/shared/notifications/outcome';
import { outcome } from '../notifications/fixtures';
import { InboundEventServer, inboundEventProblems } from './inbound-event-server';

const NOW = new Date('2026-11-22T02:05:07.250Z');
const DLQ = 'https://sqs.eu-west-1.amazonaws.com/111122223333/Ec2ConsistentBackup-ServiceNowUndeliverable';

const thawFailed = buildOutcomeNotification(
  outcome({
    outcome: 'thaw-failed',
    instanceId: 'i-0a1b2c3d4e5f60718',
    instanceName: 'ledger-db-1',
    verdict: { consistency: 'application', reason: 'hooks ran', freezeMs: 90_000 },
  }),
  NOW,
) as Notification;

function sqsRecord(body: string, messageId = `m-${Math.random().toString(36).slice(2)}`): SQSRecord {
  return {
    messageId,
    receiptHandle: 'AQEB',
    body,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: '1795313107000',
      SenderId: 'AIDAEXAMPLE',
      ApproximateFirstReceiveTimestamp: '1795313107040',
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:eu-west-1:111122223333:Ec2ConsistentBackup-ServiceNowEvents',
    awsRegion: 'eu-west-1',
  };
}

const log = { info: () => undefined, warn: () => undefined, error: () => undefined };

let server: InboundEventServer;
let sqs: ReturnType<typeof mockClient>;
let sleeps: number[];

function deps(overrides: Partial<BatchDeps> = {}): BatchDeps {
  return {
    credentials: async () => ({
      instanceUrl: server.url,
      username: server.username,
      password: server.password,
    }),
    fetch,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 1,
    remainingMs: () => 60_000,
    sqs: new SQSClient({ region: 'eu-west-1' }),
    deadLetterQueueUrl: DLQ,
    logger: log,
    policy: { attempts: 4, baseDelayMs: 500, maxDelayMs: 8000, requestTimeoutMs: 2000, reserveMs: 1000 },
    ...overrides,
  };
}

beforeEach(async () => {
  server = await new InboundEventServer().start();
  sqs = mockClient(SQSClient);
  sqs.on(SendMessageCommand).resolves({ MessageId: 'dlq-1' });
  sleeps = [];
});
afterEach(async () => {
  sqs.restore();
  await server.stop();
});

describe('the stand-in checks what ServiceNow documents', () => {
  it('rejects a body that breaks a documented rule, naming each', () => {
    const event = { ...toInboundEvent(thawFailed), severity: '7', time_of_event: '2026-11-22T02:05:07Z' };
    expect(inboundEventProblems(JSON.stringify({ records: [event] }))).toEqual([
      'records[0].severity must be "0" to "5"',
      'records[0].time_of_event must be yyyy-MM-dd HH:mm:ss (GMT)',
    ]);
    expect(inboundEventProblems(JSON.stringify([event]))).toEqual(['body has no "records" array of events']);
    const long = { ...toInboundEvent(thawFailed), node: 'n'.repeat(101), additional_info: { a: 'b' } };
    expect(inboundEventProblems(JSON.stringify({ records: [long] }))).toEqual([
      'records[0].node must be a string of 1-100 characters',
      'records[0].additional_info must be stringified JSON of an object',
    ]);
  });
});

describe('forwarding a notification to the inbound event web service', () => {
  it('posts the documented request: path, basic auth, JSON headers, one record with every field in its limits', async () => {
    const result = await forwardBatch([sqsRecord(JSON.stringify(thawFailed))], deps());
    expect(result.batchItemFailures).toEqual([]);
    expect(result.outcomes[0]).toMatchObject({ result: 'delivered', attempts: 1 });
    expect(server.received).toHaveLength(1);
    const [request] = server.received;
    expect(request).toMatchObject({
      method: 'POST',
      path: '/api/global/em/jsonv2',
      status: 200,
      problems: [],
    });
    expect(request?.headers.authorization).toBe(
      `Basic ${Buffer.from('ecb.integration:pa55:word with spaces').toString('base64')}`,
    );
    expect(server.events).toEqual([
      {
        source: 'ec2-consistent-backup',
        event_class: 'ec2-consistent-backup 111122223333/eu-west-1',
        node: 'i-0a1b2c3d4e5f60718 (ledger-db-1)',
        resource: 'thaw',
        type: 'thaw-failed',
        severity: '1',
        message_key: 'ec2-consistent-backup:111122223333:eu-west-1:i-0a1b2c3d4e5f60718:thaw',
        description: thawFailed.event.description,
        time_of_event: '2026-11-22 02:05:07',
        resolution_state: 'New',
        additional_info: JSON.stringify(thawFailed.event.additional_info),
      },
    ]);
    expect(sqs.commandCalls(SendMessageCommand)).toHaveLength(0);
  });

  it('reads the notification out of an SNS envelope too (raw delivery off)', async () => {
    const envelope = { Type: 'Notification', MessageId: 'x', Message: JSON.stringify(thawFailed) };
    const result = await forwardBatch([sqsRecord(JSON.stringify(envelope))], deps());
    expect(result.outcomes[0]?.result).toBe('delivered');
    expect(server.events).toHaveLength(1);
  });

  it('retries 503 and 429 with backoff, honouring Retry-After, until ServiceNow accepts it', async () => {
    server.fail({ status: 503, retryAfter: '3' }, { status: 429 });
    const result = await forwardBatch([sqsRecord(JSON.stringify(thawFailed))], deps());
    expect(result.outcomes[0]).toMatchObject({ result: 'delivered', attempts: 3 });
    expect(server.received.map((r) => r.status)).toEqual([503, 429, 200]);
    // Full jitter at its top (random 1): 500 ms, then 1000 ms; Retry-After: 3 wins over the first.
    expect(sleeps).toEqual([3000, 1000]);
  });

  it('hands a message back to the queue when ServiceNow keeps failing, after its attempts', async () => {
    server.fail({ status: 500 }, { status: 502 }, { status: 500 }, { status: 504 });
    const record = sqsRecord(JSON.stringify(thawFailed), 'keeps-failing');
    const result = await forwardBatch([record], deps());
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: 'keeps-failing' }]);
    expect(result.outcomes[0]).toMatchObject({
      result: 'retry-later',
      reason: expect.stringContaining('504'),
    });
    expect(server.received).toHaveLength(4);
    expect(sleeps).toEqual([500, 1000, 2000]);
    expect(sqs.commandCalls(SendMessageCommand)).toHaveLength(0);
  });

  it('times out a request that hangs and retries it', async () => {
    server.fail({ hang: true });
    const policy = { attempts: 2, baseDelayMs: 10, maxDelayMs: 10, requestTimeoutMs: 300, reserveMs: 10 };
    const result = await forwardBatch([sqsRecord(JSON.stringify(thawFailed))], deps({ policy }));
    expect(result.outcomes[0]).toMatchObject({ result: 'delivered', attempts: 2 });
  });

  it('posts nothing and hands it back when the invocation has no time left', async () => {
    const result = await forwardBatch(
      [sqsRecord(JSON.stringify(thawFailed), 'late')],
      deps({ remainingMs: () => 1500 }),
    );
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: 'late' }]);
    expect(server.received).toHaveLength(0);
  });

  it('dead-letters at once what cannot succeed: wrong credentials, with what to check', async () => {
    const d = deps({
      credentials: async () => ({ instanceUrl: server.url, username: 'ecb.integration', password: 'old' }),
    });
    const result = await forwardBatch([sqsRecord(JSON.stringify(thawFailed), 'bad-auth')], d);
    expect(result.batchItemFailures).toEqual([]);
    expect(result.outcomes[0]).toMatchObject({
      result: 'dead-lettered',
      reason: expect.stringContaining('401'),
    });
    expect(server.received).toHaveLength(1);
    const sent = sqs.commandCalls(SendMessageCommand)[0]?.args[0].input;
    expect(sent).toMatchObject({ QueueUrl: DLQ, MessageBody: JSON.stringify(thawFailed) });
    expect(sent?.MessageAttributes?.reason?.StringValue).toMatch(/evt_mgmt_integration/);
    expect(sent?.MessageAttributes?.status).toEqual({ DataType: 'Number', StringValue: '401' });
    expect(sent?.MessageAttributes?.sourceMessageId?.StringValue).toBe('bad-auth');
  });

  it('dead-letters without a request while the secret is as the stack created it', async () => {
    const result = await forwardBatch(
      [sqsRecord(JSON.stringify(thawFailed))],
      deps({ credentials: async () => EMPTY_SECRET }),
    );
    expect(result.outcomes[0]).toMatchObject({
      result: 'dead-lettered',
      reason: expect.stringMatching(/secret has no instanceUrl: put \{"instanceUrl"/),
    });
    expect(server.received).toHaveLength(0);
  });

  it('dead-letters a message that is not a notification, and one that breaks a field limit, posting neither', async () => {
    const tooLong = { ...thawFailed, event: { ...thawFailed.event, node: 'x'.repeat(101) } };
    const result = await forwardBatch(
      [
        sqsRecord('not json'),
        sqsRecord(JSON.stringify({ hello: 'world' })),
        sqsRecord(JSON.stringify(tooLong)),
      ],
      deps(),
    );
    expect(result.outcomes.map((o) => o.result)).toEqual(['dead-lettered', 'dead-lettered', 'dead-lettered']);
    expect(result.outcomes[2]).toMatchObject({ reason: expect.stringContaining('node') });
    expect(server.received).toHaveLength(0);
  });

  it('keeps a message in its queue when the dead-letter queue refuses it', async () => {
    sqs.on(SendMessageCommand).rejects(new Error('AccessDenied'));
    const result = await forwardBatch([sqsRecord('not json', 'stuck')], deps());
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: 'stuck' }]);
  });

  it('delivers a whole batch, a few posts at a time, and hands back only what failed', async () => {
    server.fail({ status: 503 }, { status: 503 }, { status: 503 }, { status: 503 });
    const records = Array.from({ length: 6 }, (_, i) => sqsRecord(JSON.stringify(thawFailed), `b${i}`));
    const policy = { attempts: 1, baseDelayMs: 1, maxDelayMs: 1, requestTimeoutMs: 2000, reserveMs: 10 };
    const result = await forwardBatch(records, deps({ policy, concurrency: 3 }));
    expect(result.batchItemFailures).toHaveLength(4);
    expect(server.events).toHaveLength(2);
  });
});

/**
 * A CloudWatch alarm's state change as it reaches an SNS subscriber: the JSON CloudWatch publishes
 * (AlarmName, AlarmDescription, AWSAccountId, NewStateValue, NewStateReason, StateChangeTime with a
 * `+0000` offset, Region as a display name, AlarmArn, OldStateValue, Trigger, ...).
 */
function alarmMessage(state: 'ALARM' | 'OK' | 'INSUFFICIENT_DATA') {
  return {
    AlarmName: 'Ec2ConsistentBackup-ConsistentBackupMonitoringCriticalNotification0A1B2C3D-AbCdEf123456',
    AlarmDescription: 'A Critical notification went out: a thaw failed after its retries.',
    AWSAccountId: '111122223333',
    AlarmConfigurationUpdatedTimestamp: '2026-11-20T10:00:00.000+0000',
    NewStateValue: state,
    NewStateReason:
      'Threshold Crossed: 1 datapoint [1.0 (22/11/26 02:04:00)] was greater than or equal to the threshold (1.0).',
    StateChangeTime: '2026-11-22T02:05:07.123+0000',
    Region: 'EU (Ireland)',
    AlarmArn:
      'arn:aws:cloudwatch:eu-west-1:111122223333:alarm:Ec2ConsistentBackup-ConsistentBackupMonitoringCriticalNotification0A1B2C3D-AbCdEf123456',
    OldStateValue: state === 'OK' ? 'ALARM' : 'OK',
    OKActions: [],
    AlarmActions: ['arn:aws:sns:eu-west-1:111122223333:Ec2ConsistentBackup-Topic'],
    InsufficientDataActions: [],
    Trigger: { MetricName: 'Notifications', Namespace: 'Ec2ConsistentBackup', Statistic: 'SUM', Period: 60 },
  };
}

describe("the stack's alarms on the same topic", () => {
  it('opens a Major alert for ALARM and closes it with a Clear for OK, on one message key', async () => {
    const result = await forwardBatch(
      [sqsRecord(JSON.stringify(alarmMessage('ALARM'))), sqsRecord(JSON.stringify(alarmMessage('OK')))],
      deps({ concurrency: 1 }),
    );
    expect(result.outcomes.map((o) => o.result)).toEqual(['delivered', 'delivered']);
    expect(server.received.map((r) => r.problems)).toEqual([[], []]);
    const [open, close] = server.events;
    expect(open).toMatchObject({
      type: 'cloudwatch-alarm',
      node: '111122223333/eu-west-1',
      severity: '2',
      resolution_state: 'New',
      time_of_event: '2026-11-22 02:05:07',
    });
    expect(close).toMatchObject({ severity: '0', resolution_state: 'Closing' });
    expect(close?.message_key).toBe(open?.message_key);
    expect(String(open?.description)).toMatch(/^In ALARM: .*A Critical notification went out/);
  });

  it('does not send INSUFFICIENT_DATA, which asks nothing of an operator', async () => {
    const result = await forwardBatch([sqsRecord(JSON.stringify(alarmMessage('INSUFFICIENT_DATA')))], deps());
    expect(result.outcomes[0]?.result).toBe('not-sent');
    expect(result.batchItemFailures).toEqual([]);
    expect(server.received).toHaveLength(0);
  });
});

describe('its pieces', () => {
  it('writes time_of_event in GMT as yyyy-MM-dd HH:mm:ss from either form the schema carries', () => {
    expect(gmtTime('2026-11-22 02:05:07')).toBe('2026-11-22 02:05:07');
    expect(gmtTime('2026-11-22T02:05:07.999Z')).toBe('2026-11-22 02:05:07');
    expect(() => gmtTime('yesterday')).toThrow(/not a date and time/);
  });

  it('reads Retry-After in seconds or as a date', () => {
    expect(retryAfterMs('7')).toBe(7000);
    expect(retryAfterMs('Sun, 22 Nov 2026 02:05:17 GMT', Date.parse('2026-11-22T02:05:07Z'))).toBe(10_000);
    expect(retryAfterMs(null)).toBeUndefined();
    expect(retryAfterMs('soon')).toBeUndefined();
  });

  it('accepts only an https base URL (http only on loopback) and non-empty credentials', () => {
    const ok = { instanceUrl: 'https://example.service-now.com', username: 'u', password: 'p' };
    expect(credentialsProblem(ok)).toBeUndefined();
    expect(credentialsProblem({ ...ok, instanceUrl: 'http://example.service-now.com' })).toMatch(/not https/);
    expect(credentialsProblem({ ...ok, instanceUrl: 'http://127.0.0.1:8080' })).toBeUndefined();
    expect(
      credentialsProblem({ ...ok, instanceUrl: 'https://example.service-now.com/api/global/em/jsonv2' }),
    ).toMatch(/base URL only/);
    expect(credentialsProblem({ ...ok, password: '' })).toMatch(/no password/);
    expect(credentialsProblem('{}')).toMatch(/not a JSON object/);
  });
});
