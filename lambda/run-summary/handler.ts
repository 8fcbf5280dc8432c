import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import { Notifier, notifierSettings } from '../shared/notifier';
import { countThrottles } from '../shared/throttle-metrics';

const logger = new Logger();
// Checked at cold start: a misconfigured function fails on its first invocation, loudly.
const settings = notifierSettings(process.env);
const notifier = new Notifier(
  { sns: countThrottles(new SNSClient({})), dynamodb: countThrottles(new DynamoDBClient({})) },
  settings,
  logger,
);

/**
 * The deadline sweep, invoked by a rate schedule: sends the summary of every run whose executions
 * did not all report before the deadline (a run that finished has already sent its own).
 */
export async function handler(): Promise<{ summariesSent: string[] }> {
  const summariesSent = await notifier.sweepOverdueRuns();
  if (summariesSent.length > 0) logger.info('Overdue run summaries sent', { runIds: summariesSent });
  return { summariesSent };
}
