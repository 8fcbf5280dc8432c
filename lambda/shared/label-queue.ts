/**
 * Sends label requests (lambda/shared/labels.ts) to the label queue: one message per request, or
 * batches of ten (SQS's SendMessageBatch limit) for the sweep.
 */

import { SendMessageBatchCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { LABEL_ENV, type LabelRequest, type RequestLabel } from './labels';

export class LabelQueueConfigError extends Error {
  override readonly name = 'LabelQueueConfigError';
}

/** The queue URL from the environment; throws naming the variable and what it must hold. */
export function labelQueueUrl(env: NodeJS.ProcessEnv): string {
  const value = env[LABEL_ENV.queueUrl];
  if (!value || !/^https:\/\/\S+\/\d{12}\/\S+$/.test(value)) {
    throw new LabelQueueConfigError(
      `Environment variable ${LABEL_ENV.queueUrl} is ${JSON.stringify(value)}; allowed: the URL of the label queue (https://sqs.<region>.amazonaws.com/<account>/<name>).`,
    );
  }
  return value;
}

export function sqsLabelRequester(sqs: Pick<SQSClient, 'send'>, queueUrl: string): RequestLabel {
  return async (request) => {
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(request) }));
  };
}

/** Sends many requests, ten per call; throws if any entry failed, after trying them all. */
export async function sendLabelRequests(
  sqs: Pick<SQSClient, 'send'>,
  queueUrl: string,
  requests: readonly LabelRequest[],
): Promise<number> {
  const failed: string[] = [];
  for (let i = 0; i < requests.length; i += 10) {
    const chunk = requests.slice(i, i + 10);
    const out = await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: chunk.map((r, k) => ({ Id: String(k), MessageBody: JSON.stringify(r) })),
      }),
    );
    for (const f of out.Failed ?? [])
      failed.push(`${chunk[Number(f.Id)]?.backupJobId}: ${f.Code} ${f.Message ?? ''}`);
  }
  if (failed.length > 0) {
    throw new Error(
      `Could not queue ${failed.length} of ${requests.length} label requests: ${failed.slice(0, 5).join('; ')}`,
    );
  }
  return requests.length;
}
