import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { Notifier, notifierSettings } from '../shared/notifier';
import { processDeadLetters } from './dead-letters';
import { readDeadLetterSettings } from './settings';
import { countThrottles } from '../shared/throttle-metrics';

const logger = new Logger();
// Checked at cold start: a misconfigured function fails on its first batch, loudly, and SQS keeps
// the messages until it is fixed.
const settings = readDeadLetterSettings(process.env);
const notifierConfig = notifierSettings(process.env);
const dynamodb = countThrottles(new DynamoDBClient({}));
const notifier = new Notifier({ sns: countThrottles(new SNSClient({})), dynamodb }, notifierConfig, logger);

export async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  logger.addContext(context);
  return processDeadLetters(event.Records, {
    publisher: notifier,
    dynamodb,
    tableName: notifierConfig.tableName,
    settings,
    logger,
  });
}
