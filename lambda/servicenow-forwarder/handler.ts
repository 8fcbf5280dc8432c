import { Logger } from '@aws-lambda-powertools/logger';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { forwardBatch } from './batch';
import { readForwarderSettings } from './settings';
import { countThrottles } from '../shared/throttle-metrics';

const logger = new Logger();
// Checked at cold start: a misconfigured function fails its first batch, loudly, and the queue
// keeps the messages.
const settings = readForwarderSettings(process.env);
const secrets = countThrottles(new SecretsManagerClient({}));
const sqs = countThrottles(new SQSClient({}));

// The secret is read again after five minutes, so a corrected password is picked up without a
// deployment, and a burst of events costs one read.
const SECRET_TTL_MS = 5 * 60_000;
let cached: { value: unknown; readAt: number } | undefined;

async function credentials(): Promise<unknown> {
  if (cached && Date.now() - cached.readAt < SECRET_TTL_MS) return cached.value;
  const result = await secrets.send(new GetSecretValueCommand({ SecretId: settings.secretArn }));
  let value: unknown;
  try {
    value = JSON.parse(result.SecretString ?? '');
  } catch {
    value = undefined;
  }
  cached = { value, readAt: Date.now() };
  return value;
}

export async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  logger.addContext(context);
  const { batchItemFailures } = await forwardBatch(event.Records, {
    credentials,
    fetch,
    remainingMs: () => context.getRemainingTimeInMillis(),
    sqs,
    deadLetterQueueUrl: settings.deadLetterQueueUrl,
    logger,
  });
  return { batchItemFailures };
}
