/**
 * One SQS batch of notifications: each is posted on its own (a few at a time), what may succeed
 * later is handed back to the queue, and what never can goes to the dead-letter queue at once.
 */

import type { Logger } from '@aws-lambda-powertools/logger';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSRecord } from 'aws-lambda';
import {
  alarmToInboundEvent,
  DEFAULT_RETRY,
  type DeliveryDeps,
  PermanentDeliveryError,
  postEvent,
  type RetryPolicy,
  toInboundEvent,
  topicMessageOf,
} from './forward';

export type ForwarderLogger = Pick<Logger, 'info' | 'warn' | 'error'>;

export interface BatchDeps extends DeliveryDeps {
  readonly sqs: Pick<SQSClient, 'send'>;
  readonly deadLetterQueueUrl: string;
  readonly logger: ForwarderLogger;
  readonly policy?: RetryPolicy;
  /** Posts in flight at once. */
  readonly concurrency?: number;
}

/** Outcome of one message, for the log and the tests. */
export type MessageOutcome =
  | { readonly messageId: string; readonly result: 'delivered'; readonly attempts: number }
  | { readonly messageId: string; readonly result: 'not-sent'; readonly reason: string }
  | { readonly messageId: string; readonly result: 'dead-lettered'; readonly reason: string }
  | { readonly messageId: string; readonly result: 'retry-later'; readonly reason: string };

async function forwardOne(record: SQSRecord, deps: BatchDeps): Promise<MessageOutcome> {
  const { messageId } = record;
  try {
    const message = topicMessageOf(record.body);
    const event =
      message.kind === 'notification'
        ? toInboundEvent(message.notification)
        : alarmToInboundEvent(message.alarm);
    if (!event) {
      const reason = 'an alarm state (INSUFFICIENT_DATA) that asks nothing of an operator';
      deps.logger.info('Not sent to ServiceNow', { messageId, reason });
      return { messageId, result: 'not-sent', reason };
    }
    const delivered = await postEvent(event, deps, deps.policy ?? DEFAULT_RETRY);
    deps.logger.info('Forwarded to ServiceNow', {
      messageId,
      messageKey: event.message_key,
      severity: event.severity,
      attempts: delivered.attempts,
    });
    return { messageId, result: 'delivered', attempts: delivered.attempts };
  } catch (err) {
    const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    if (!(err instanceof PermanentDeliveryError)) {
      deps.logger.warn('ServiceNow delivery failed; the queue delivers it again', { messageId, reason });
      return { messageId, result: 'retry-later', reason };
    }
    await deps.sqs.send(
      new SendMessageCommand({
        QueueUrl: deps.deadLetterQueueUrl,
        MessageBody: record.body,
        MessageAttributes: {
          reason: { DataType: 'String', StringValue: reason.slice(0, 1000) },
          sourceMessageId: { DataType: 'String', StringValue: messageId },
          ...(err.status ? { status: { DataType: 'Number', StringValue: String(err.status) } } : {}),
        },
      }),
    );
    deps.logger.error('Not deliverable to ServiceNow as it is; moved to the dead-letter queue', {
      messageId,
      reason,
    });
    return { messageId, result: 'dead-lettered', reason };
  }
}

/** Forwards a batch; only the messages to deliver again come back as failures. */
export async function forwardBatch(
  records: readonly SQSRecord[],
  deps: BatchDeps,
): Promise<SQSBatchResponse & { outcomes: MessageOutcome[] }> {
  const outcomes: MessageOutcome[] = new Array(records.length);
  let next = 0;
  const worker = async () => {
    while (next < records.length) {
      const index = next++;
      const record = records[index] as SQSRecord;
      try {
        outcomes[index] = await forwardOne(record, deps);
      } catch (err) {
        // The dead-letter queue itself refused it: keep the message where it is.
        const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        deps.logger.error('Could not move the message to the dead-letter queue; delivering it again', {
          messageId: record.messageId,
          reason,
        });
        outcomes[index] = { messageId: record.messageId, result: 'retry-later', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(deps.concurrency ?? 5, records.length) }, worker));
  return {
    outcomes,
    batchItemFailures: outcomes
      .filter((o) => o.result === 'retry-later')
      .map((o) => ({ itemIdentifier: o.messageId })),
  };
}
