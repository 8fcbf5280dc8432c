/**
 * Turns the messages of discovery's two failure queues into notifications, so a window that was
 * not (or not fully) started reaches the operator instead of sitting in SQS for 14 days:
 *
 * - EventBridge Scheduler's dead-letter queue: the body is the schedule's target input (the
 *   payload discovery would have received); message attributes say why (`ERROR_CODE`,
 *   `ERROR_MESSAGE`, `EXECUTION_ID`, `EXHAUSTED_RETRY_CONDITION`, `RETRY_ATTEMPTS`,
 *   `IS_PAYLOAD_TRUNCATED`, `SCHEDULE_ARN`, `SCHEDULED_TIME`, `TARGET_ARN`: the names of the
 *   "Retrieve the dead-letter event" example in the EventBridge Scheduler user guide,
 *   "Configuring a dead-letter queue for EventBridge Scheduler").
 * - discovery's on-failure destination: the body is Lambda's invocation record (`version`,
 *   `timestamp`, `requestContext` with requestId / functionArn / condition / approximateInvokeCount,
 *   `requestPayload`, `responseContext`, `responsePayload` with errorType / errorMessage).
 *
 * Each message becomes one Major notification, published once: a mark per failed invocation in
 * the notifier's table makes a redelivered message (or a duplicate record of the same request) a
 * no-op. A message that cannot be read is still reported, with its raw body, rather than retried
 * forever.
 */

import type { Logger } from '@aws-lambda-powertools/logger';
import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { SQSBatchResponse, SQSRecord } from 'aws-lambda';
import { runIdFor, windowFromScheduledTime, windowIso } from '../discovery/window';
import type { Notification } from '../shared/notification';
import {
  buildDiscoveryFailureNotification,
  type DiscoveryFailure,
} from '../shared/notifications/discovery-failure';
import { type DeadLetterSettings, FUNCTION_ARN } from './settings';

/** Both queues keep messages 14 days; a mark must outlive any redelivery. */
export const MARK_TTL_DAYS = 15;

// ---------------------------------------------------------------------------------------------
// Reading the two formats.

/** A failure as read from one SQS message, with the id that makes its notification unique. */
export interface DeadLetter {
  readonly failure: DiscoveryFailure;
  /** The failed invocation: Lambda's request id, Scheduler's execution id, else the SQS message id. */
  readonly eventId: string;
}

type Json = Record<string, unknown>;

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** `arn:aws:lambda:eu-west-1:111122223333:function:name:$LATEST` without the qualifier. */
function unqualified(functionArn: string | undefined): string | undefined {
  if (!functionArn) return undefined;
  const parts = functionArn.split(':');
  const arn = parts.slice(0, 7).join(':');
  return FUNCTION_ARN.test(arn) ? arn : undefined;
}

function windowOf(scheduledTime: unknown): { window?: string; runId?: string } {
  try {
    const window = windowFromScheduledTime(scheduledTime);
    return { window: windowIso(window), runId: runIdFor(window) };
  } catch {
    return {};
  }
}

function handOverOf(payload: Json): DiscoveryFailure['handOver'] {
  const cursor = payload.handOver;
  if (!isObject(cursor)) return undefined;
  const invocation = cursor.invocation;
  return {
    invocation: typeof invocation === 'number' && Number.isInteger(invocation) ? invocation : 0,
    afterKey: typeof cursor.afterKey === 'string' ? cursor.afterKey : '',
  };
}

/** Account and region of the queue the message came from (`arn:aws:sqs:<region>:<account>:<name>`). */
function queueOrigin(record: SQSRecord): { accountId: string; region: string } {
  const parts = (record.eventSourceARN ?? '').split(':');
  return { region: parts[3] || record.awsRegion || 'unknown', accountId: parts[4] || 'unknown' };
}

function sentAt(record: SQSRecord): string | undefined {
  const ms = Number(record.attributes?.SentTimestamp);
  return Number.isFinite(ms) && ms > 0 ? new Date(ms).toISOString() : undefined;
}

function attribute(record: SQSRecord, name: string): string | undefined {
  return str(record.messageAttributes?.[name]?.stringValue);
}

function isInvocationRecord(body: unknown): body is Json {
  return isObject(body) && isObject(body.requestContext) && 'requestPayload' in body;
}

/** Scheduler's own account of its delivery; fields it did not send stay undefined. */
function schedulerDelivery(record: SQSRecord): DiscoveryFailure['delivery'] {
  const attempts = attribute(record, 'RETRY_ATTEMPTS');
  const truncated = attribute(record, 'IS_PAYLOAD_TRUNCATED');
  const delivery = {
    exhaustedRetryCondition: attribute(record, 'EXHAUSTED_RETRY_CONDITION'),
    retryAttempts: attempts !== undefined && /^\d+$/.test(attempts) ? Number(attempts) : undefined,
    payloadTruncated: truncated === 'true' ? true : truncated === 'false' ? false : undefined,
  };
  return Object.values(delivery).some((v) => v !== undefined) ? delivery : undefined;
}

function isSchedulerDeadLetter(record: SQSRecord): boolean {
  return ['ERROR_CODE', 'SCHEDULE_ARN', 'EXECUTION_ID'].some((name) => attribute(record, name));
}

/** Reads one message of either queue. Never throws: an unreadable message is reported as such. */
export function readDeadLetter(record: SQSRecord, settings: DeadLetterSettings): DeadLetter {
  const origin = queueOrigin(record);
  const common = {
    ...origin,
    logGroupName: settings.discoveryLogGroup,
    payloadLog: { logGroupName: settings.ownLogGroup, messageId: record.messageId },
  };
  const body = parseJson(record.body);

  if (isInvocationRecord(body)) {
    const context = body.requestContext as Json;
    const response = isObject(body.responsePayload) ? body.responsePayload : {};
    const responseContext = isObject(body.responseContext) ? body.responseContext : {};
    const requestPayload = body.requestPayload;
    const payload = isObject(requestPayload) ? requestPayload : {};
    const requestId = str(context.requestId);
    const condition = str(context.condition);
    const attempts =
      typeof context.approximateInvokeCount === 'number' ? context.approximateInvokeCount : undefined;
    return {
      eventId: requestId ? `invocation:${requestId}` : `sqs:${record.messageId}`,
      failure: {
        ...common,
        kind: 'failed',
        functionArn: unqualified(str(context.functionArn)) ?? settings.discoveryFunctionArn,
        ...windowOf(payload.scheduledTime),
        scheduleArn: str(payload.scheduleArn),
        handOver: handOverOf(payload),
        requestId,
        condition:
          condition && attempts !== undefined ? `${condition} after ${attempts} attempt(s)` : condition,
        error:
          str(response.errorType) ??
          str(responseContext.functionError) ??
          (condition === 'EventAgeExceeded' ? 'EventAgeExceeded' : 'UnknownError'),
        cause:
          str(response.errorMessage) ??
          (condition === 'EventAgeExceeded'
            ? 'The function never ran for this event, so there is no error message.'
            : 'Lambda recorded no error message for this invocation.'),
        payload: JSON.stringify(requestPayload ?? {}),
        failedAt: str(body.timestamp),
      },
    };
  }

  if (isSchedulerDeadLetter(record)) {
    const scheduledTime = attribute(record, 'SCHEDULED_TIME');
    const scheduleArn = attribute(record, 'SCHEDULE_ARN');
    const delivery = schedulerDelivery(record);
    // A truncated body is a cut-off copy of the target input: never replay it.
    const input = isObject(body) && !delivery?.payloadTruncated ? body : undefined;
    // The body is the schedule's target input; rebuild it from the attributes only if it is not there.
    const payload = input?.scheduledTime
      ? input
      : {
          scheduledTime: scheduledTime ?? input?.scheduledTime,
          scheduleArn: scheduleArn ?? input?.scheduleArn,
        };
    const executionId = attribute(record, 'EXECUTION_ID');
    return {
      eventId: executionId ? `schedule:${executionId}` : `sqs:${record.messageId}`,
      failure: {
        ...common,
        kind: 'not-invoked',
        functionArn: unqualified(attribute(record, 'TARGET_ARN')) ?? settings.discoveryFunctionArn,
        ...windowOf(payload.scheduledTime),
        scheduleArn: str(payload.scheduleArn) ?? scheduleArn,
        error: attribute(record, 'ERROR_CODE') ?? 'UnknownError',
        cause: attribute(record, 'ERROR_MESSAGE') ?? 'EventBridge Scheduler gave no error message.',
        delivery,
        payload: JSON.stringify(payload),
        failedAt: sentAt(record),
      },
    };
  }

  const input = isObject(body) ? body : {};
  return {
    eventId: `sqs:${record.messageId}`,
    failure: {
      ...common,
      kind: 'failed',
      functionArn: settings.discoveryFunctionArn,
      ...windowOf(input.scheduledTime),
      scheduleArn: str(input.scheduleArn),
      handOver: handOverOf(input),
      error: 'UnreadableDeadLetter',
      cause: `The message is neither a Lambda invocation record nor an EventBridge Scheduler dead-letter event. Body: ${record.body}`,
      payload: isObject(body) ? JSON.stringify(body) : record.body,
      failedAt: sentAt(record),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Publishing once.

/** Powertools' logger, or anything with the same two methods (tests). */
export type DeadLetterLogger = Pick<Logger, 'info' | 'error'>;

export interface DeadLetterDeps {
  /** The notifier's publish (lambda/shared/notifier.ts): SNS with the schema's attributes. */
  readonly publisher: { publish(notification: Notification): Promise<void> };
  readonly dynamodb: Pick<DynamoDBClient, 'send'>;
  readonly tableName: string;
  readonly settings: DeadLetterSettings;
  readonly logger: DeadLetterLogger;
  readonly clock?: () => Date;
}

/** Publishes the message's notification unless it was published before. True when this call did. */
export async function notifyOnce(letter: DeadLetter, deps: DeadLetterDeps): Promise<boolean> {
  const now = (deps.clock ?? (() => new Date()))();
  const notification = buildDiscoveryFailureNotification(letter.failure, now);
  const key = { pk: { S: `DEADLETTER#${letter.eventId}` }, sk: { S: 'NOTIFIED' } };
  try {
    await deps.dynamodb.send(
      new PutItemCommand({
        TableName: deps.tableName,
        Item: {
          ...key,
          messageKey: { S: notification.event.message_key },
          eventType: { S: notification.eventType },
          notifiedAt: { S: now.toISOString() },
          expiresAt: { N: String(Math.floor(now.getTime() / 1000) + MARK_TTL_DAYS * 86_400) },
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
  } catch (err) {
    if (
      err instanceof ConditionalCheckFailedException ||
      (err as Error)?.name === 'ConditionalCheckFailedException'
    ) {
      deps.logger.info('Dead letter already notified; not repeating it', { eventId: letter.eventId });
      return false;
    }
    throw err;
  }
  try {
    await deps.publisher.publish(notification);
  } catch (err) {
    // Give the mark back so the redelivery publishes.
    await deps.dynamodb.send(new DeleteItemCommand({ TableName: deps.tableName, Key: key }));
    throw err;
  }
  return true;
}

/**
 * One SQS batch: each message is read, logged with its full payload, and notified once. Failures
 * are reported per message, so only those come back (the event source mapping uses
 * ReportBatchItemFailures).
 */
export async function processDeadLetters(
  records: readonly SQSRecord[],
  deps: DeadLetterDeps,
): Promise<SQSBatchResponse> {
  const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
  for (const record of records) {
    try {
      const letter = readDeadLetter(record, deps.settings);
      // The log line the notification points to when the payload is too long to quote.
      deps.logger.info('Discovery dead letter', {
        messageId: record.messageId,
        queue: record.eventSourceARN,
        eventId: letter.eventId,
        kind: letter.failure.kind,
        window: letter.failure.window,
        error: letter.failure.error,
        payload: letter.failure.payload,
      });
      await notifyOnce(letter, deps);
    } catch (err) {
      deps.logger.error('Could not notify a dead letter; SQS will deliver it again', {
        messageId: record.messageId,
        error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
      });
      batchItemFailures.push({ itemIdentifier: record.messageId });
    }
  }
  return { batchItemFailures };
}
