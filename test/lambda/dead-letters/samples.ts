/**
 * Real message shapes of discovery's two failure queues, as the SQS event source hands them to
 * Lambda (camelCase record fields, `stringValue` attributes).
 *
 * - Scheduler: the body is the schedule's target input; the attributes are those of the
 *   "Retrieve the dead-letter event" example in the EventBridge Scheduler user guide
 *   ("Configuring a dead-letter queue for EventBridge Scheduler"): ERROR_CODE, ERROR_MESSAGE,
 *   EXECUTION_ID, EXHAUSTED_RETRY_CONDITION (MaximumRetryAttempts or MaximumEventAgeInSeconds),
 *   IS_PAYLOAD_TRUNCATED ("true"/"false"), RETRY_ATTEMPTS (a count), SCHEDULED_TIME,
 *   SCHEDULE_ARN, TARGET_ARN, all String attributes. An error Scheduler does not retry (a missing
 *   permission) comes with RETRY_ATTEMPTS 0 and no EXHAUSTED_RETRY_CONDITION, since no retry
 *   limit ended it.
 * - Lambda: the invocation record of the Lambda developer guide ("Capturing records of Lambda
 *   asynchronous invocations"): version, timestamp, requestContext, requestPayload,
 *   responseContext, responsePayload; here with discovery's own payloads and errors.
 */
import type { SQSRecord } from 'aws-lambda';
import type { DeadLetterSettings } from '../../../lambda/dead-letters/settings';

export const ACCOUNT = '111122223333';
export const REGION = 'eu-west-1';
export const FUNCTION_ARN = `arn:aws:lambda:${REGION}:${ACCOUNT}:function:Ec2ConsistentBackup-DiscoveryFunction-AbC123`;
export const SCHEDULE_ARN = `arn:aws:scheduler:${REGION}:${ACCOUNT}:schedule/default/Ec2ConsistentBackupSchedule-XyZ`;
export const SCHEDULER_QUEUE_ARN = `arn:aws:sqs:${REGION}:${ACCOUNT}:Ec2ConsistentBackup-ScheduleDeadLetterQueue-1A2B`;
export const FAILURES_QUEUE_ARN = `arn:aws:sqs:${REGION}:${ACCOUNT}:Ec2ConsistentBackup-DiscoveryFailedInvocations-3C4D`;

export const SETTINGS: DeadLetterSettings = {
  discoveryFunctionArn: FUNCTION_ARN,
  discoveryLogGroup: 'Ec2ConsistentBackup-DiscoveryFunctionLogs-5E6F',
  ownLogGroup: 'Ec2ConsistentBackup-DeadLettersFunctionLogs-7A8B',
};

function sqsRecord(
  messageId: string,
  queueArn: string,
  body: string,
  messageAttributes: SQSRecord['messageAttributes'] = {},
  sentAt = '2026-11-22T02:01:05Z',
): SQSRecord {
  return {
    messageId,
    receiptHandle: `AQEB${messageId.replace(/-/g, '')}`,
    body,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: String(Date.parse(sentAt)),
      SenderId: 'AROAEXAMPLEID:scheduler',
      ApproximateFirstReceiveTimestamp: String(Date.parse(sentAt) + 40),
    },
    messageAttributes,
    md5OfBody: '0123456789abcdef0123456789abcdef',
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: REGION,
  };
}

const attr = (value: string) => ({
  stringValue: value,
  stringListValues: [],
  binaryListValues: [],
  dataType: 'String',
});

export const SCHEDULER_EXECUTION_ID = 'ad06f0dc-5a29-4a9e-b6a7-0c1e2d3f4a5b';

/** Scheduler could not invoke discovery for the 02:00 window (its role lost lambda:InvokeFunction). */
export function schedulerDeadLetter(
  overrides: { body?: string; attributes?: SQSRecord['messageAttributes'] } = {},
) {
  return sqsRecord(
    '5f3a2b1c-0d9e-4f8a-b7c6-d5e4f3a2b1c0',
    SCHEDULER_QUEUE_ARN,
    overrides.body ?? JSON.stringify({ scheduledTime: '2026-11-22T02:00:00Z', scheduleArn: SCHEDULE_ARN }),
    overrides.attributes ?? {
      ERROR_CODE: attr('AccessDeniedException'),
      ERROR_MESSAGE: attr(
        `User: arn:aws:sts::${ACCOUNT}:assumed-role/Ec2ConsistentBackup-ScheduleInvokeRole/abc is not authorized to perform: lambda:InvokeFunction on resource: ${FUNCTION_ARN}`,
      ),
      EXECUTION_ID: attr(SCHEDULER_EXECUTION_ID),
      IS_PAYLOAD_TRUNCATED: attr('false'),
      RETRY_ATTEMPTS: attr('0'),
      SCHEDULE_ARN: attr(SCHEDULE_ARN),
      SCHEDULED_TIME: attr('2026-11-22T02:00:00Z'),
      TARGET_ARN: attr(FUNCTION_ARN),
    },
  );
}

/**
 * Scheduler retried a throttled invocation (the Region's Lambda concurrency was exhausted) until
 * its retry policy ran out: `retryAttempts: 3` in lib/schedule.ts, or its one-hour maximum age.
 */
export function schedulerRetriesExhausted(
  condition: 'MaximumRetryAttempts' | 'MaximumEventAgeInSeconds' = 'MaximumRetryAttempts',
  options: { retryAttempts?: string; truncated?: boolean; body?: string } = {},
) {
  return schedulerDeadLetter({
    body: options.body,
    attributes: {
      ERROR_CODE: attr('TooManyRequestsException'),
      ERROR_MESSAGE: attr('Rate Exceeded.'),
      EXECUTION_ID: attr('7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f'),
      EXHAUSTED_RETRY_CONDITION: attr(condition),
      IS_PAYLOAD_TRUNCATED: attr(options.truncated ? 'true' : 'false'),
      RETRY_ATTEMPTS: attr(options.retryAttempts ?? '3'),
      SCHEDULE_ARN: attr(SCHEDULE_ARN),
      SCHEDULED_TIME: attr('2026-11-22T02:00:00Z'),
      TARGET_ARN: attr(FUNCTION_ARN),
    },
  });
}

export interface CursorOverrides {
  readonly invocation?: number;
  readonly afterKey?: string;
  readonly doneBeyond?: readonly string[];
}

export function handOverPayload(c: CursorOverrides = {}) {
  return {
    scheduledTime: '2026-11-22T02:00:00Z',
    scheduleArn: SCHEDULE_ARN,
    handOver: {
      schemaVersion: 1,
      runId: 'run-20261122T0200Z',
      invocation: c.invocation ?? 3,
      afterKey: c.afterKey ?? 'db|0003|i-0a1b2c3d4e5f60718',
      boundarySlots: 2,
      doneBeyond: c.doneBeyond ?? ['i-0f1e2d3c4b5a69788'],
      totals: { discovered: 1800, started: 1790, alreadyRunning: 0, excluded: { 'ssm-offline': 10 } },
      handedOverAt: 1795313700000,
    },
  };
}

/** Lambda's invocation record for a failed asynchronous invocation of discovery. */
export function invocationRecord(
  options: {
    payload?: object;
    requestId?: string;
    condition?: 'RetriesExhausted' | 'EventAgeExceeded';
    errorType?: string;
    errorMessage?: string;
    messageId?: string;
  } = {},
): SQSRecord {
  const requestId = options.requestId ?? 'e4b46cbf-b738-4a1b-8880-a18cdf61200e';
  const condition = options.condition ?? 'RetriesExhausted';
  const record =
    condition === 'EventAgeExceeded'
      ? {
          version: '1.0',
          timestamp: '2026-11-22T03:00:07.112Z',
          requestContext: {
            requestId,
            functionArn: `${FUNCTION_ARN}:$LATEST`,
            condition,
            approximateInvokeCount: 0,
          },
          requestPayload: options.payload ?? {
            scheduledTime: '2026-11-22T02:00:00Z',
            scheduleArn: SCHEDULE_ARN,
          },
          responseContext: { statusCode: 0, executedVersion: '', functionError: '' },
          responsePayload: null,
        }
      : {
          version: '1.0',
          timestamp: '2026-11-22T02:14:58.568Z',
          requestContext: {
            requestId,
            functionArn: `${FUNCTION_ARN}:$LATEST`,
            condition,
            approximateInvokeCount: 1,
          },
          requestPayload: options.payload ?? {
            scheduledTime: '2026-11-22T02:00:00Z',
            scheduleArn: SCHEDULE_ARN,
          },
          responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
          responsePayload: {
            errorType: options.errorType ?? 'StartExecutionFailedError',
            errorMessage:
              options.errorMessage ??
              'Run run-20261122T0200Z: 3 instance(s) could not be started, e.g. i-0c1d2e3f4a5b60718: AccessDeniedException: User is not authorized to perform: states:StartExecution',
            trace: [
              'StartExecutionFailedError: Run run-20261122T0200Z: 3 instance(s) could not be started',
              '    at runDiscovery (/var/task/index.mjs:1:2345)',
            ],
          },
        };
  return sqsRecord(
    options.messageId ?? '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a',
    FAILURES_QUEUE_ARN,
    JSON.stringify(record),
    {},
    record.timestamp,
  );
}
