import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import type { Context } from 'aws-lambda';
import { Notifier, notifierSettings } from '../shared/notifier';
import { countThrottles } from '../shared/throttle-metrics';
import { EXECUTION_EVENTS_ENV, type ExecutionStatusEvent, handleExecutionEvent } from './events';

const logger = new Logger();
// Checked at cold start: a misconfigured function fails loudly, and the events land in its
// on-failure queue (alarmed) until it is fixed.
const notifierConfig = notifierSettings(process.env);
const rawWatchdog = process.env[EXECUTION_EVENTS_ENV.watchdogSeconds];
const watchdogSeconds = Number(rawWatchdog);
if (!/^\d+$/.test(rawWatchdog ?? '') || watchdogSeconds < 1) {
  throw new Error(
    `Environment variable ${EXECUTION_EVENTS_ENV.watchdogSeconds} is ${JSON.stringify(rawWatchdog)}; allowed: a whole number of seconds.`,
  );
}
const dynamodb = countThrottles(new DynamoDBClient({}));
const notifier = new Notifier({ sns: countThrottles(new SNSClient({})), dynamodb }, notifierConfig, logger);

export async function handler(event: ExecutionStatusEvent, context: Context): Promise<string> {
  logger.addContext(context);
  return handleExecutionEvent(event, {
    publisher: notifier,
    dynamodb,
    tableName: notifierConfig.tableName,
    watchdogSeconds,
    logger,
  });
}
