/**
 * Work that must wait for something AWS does later (a label landing on an AMI, a restored instance
 * coming Online in Systems Manager, a command finishing) without a function idling for it: the
 * EventBridge event goes to an SQS queue, the function handles each message, and a message whose
 * work is not possible yet is reported as a batch item failure, so SQS delivers it again after the
 * queue's visibility timeout. The pace is the visibility timeout; the number of tries is bounded by
 * the queue's maxReceiveCount, after which SQS moves the message to the dead-letter queue.
 *
 * Handlers bound their own waiting well below maxReceiveCount and then act anyway (copy with the
 * label as it is, report TIMED_OUT). An error on the last delivery goes to `onLastAttemptError`,
 * which notifies, so no message reaches the dead-letter queue unreported.
 */

import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';

export type QueueOutcome =
  | { readonly kind: 'done'; readonly detail?: unknown }
  | { readonly kind: 'retry'; readonly reason: string };

export interface QueueOptions {
  /** The queue's maxReceiveCount: the delivery with this count is the last. */
  readonly maxReceives: number;
  /** Called instead of failing the last delivery; if it throws, the message goes to the dead-letter queue. */
  readonly onLastAttemptError: (body: unknown, error: unknown, record: SQSRecord) => Promise<void>;
  readonly log?: (message: string, fields: Record<string, unknown>) => void;
}

/** 1 for the first delivery (SQS's ApproximateReceiveCount). */
export function attemptOf(record: SQSRecord): number {
  const n = Number(record.attributes?.ApproximateReceiveCount);
  return Number.isInteger(n) && n > 0 ? n : 1;
}

export async function processQueue(
  event: SQSEvent,
  handle: (body: unknown, attempt: number, record: SQSRecord) => Promise<QueueOutcome>,
  options: QueueOptions,
): Promise<SQSBatchResponse> {
  const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
  for (const record of event.Records ?? []) {
    const attempt = attemptOf(record);
    let body: unknown;
    try {
      body = JSON.parse(record.body);
    } catch {
      // Not ours to retry: SQS would deliver the same bytes again.
      options.log?.('Queue message is not JSON; dropped', { messageId: record.messageId });
      continue;
    }
    try {
      const outcome = await handle(body, attempt, record);
      if (outcome.kind === 'retry') {
        options.log?.('Not possible yet; SQS delivers it again', {
          messageId: record.messageId,
          attempt,
          reason: outcome.reason,
        });
        batchItemFailures.push({ itemIdentifier: record.messageId });
      }
    } catch (err) {
      if (attempt >= options.maxReceives) {
        try {
          await options.onLastAttemptError(body, err, record);
          continue;
        } catch (notifyError) {
          options.log?.('Last attempt failed and could not be reported', {
            messageId: record.messageId,
            error: String(notifyError),
          });
        }
      } else {
        options.log?.('Failed; SQS delivers it again', {
          messageId: record.messageId,
          attempt,
          error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
        });
      }
      batchItemFailures.push({ itemIdentifier: record.messageId });
    }
  }
  return { batchItemFailures };
}

/** Throttling and service-side errors are worth another delivery; the rest are answers. */
export function isRetryableAwsError(err: unknown): boolean {
  const e = err as { name?: string; $retryable?: unknown; $metadata?: { httpStatusCode?: number } };
  if (e?.$retryable) return true;
  if ((e?.$metadata?.httpStatusCode ?? 0) >= 500) return true;
  return [
    'ThrottlingException',
    'Throttling',
    'TooManyRequestsException',
    'RequestLimitExceeded',
    'ServiceUnavailableException',
    'InternalServerError',
    'InternalFailure',
    'LimitExceededException',
  ].includes(e?.name ?? '');
}
