import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { labelQueueUrl, sqsLabelRequester } from '../shared/label-queue';
import { FREEZE_FAILURE_POLICIES, type FreezeFailurePolicy } from '../shared/options';
import { createNotifier } from '../shared/notifier';
import { type RecordOutcomeEvent, recordOutcome } from './record';
import { countThrottles } from '../shared/throttle-metrics';

function requireEnv(name: string, pattern: RegExp, allowed: string): string {
  const value = process.env[name];
  if (value === undefined || !pattern.test(value)) {
    throw new Error(`Environment variable ${name} is ${JSON.stringify(value)}; allowed: ${allowed}.`);
  }
  return value;
}

const settings = {
  freezeBudgetSeconds: Number(requireEnv('FREEZE_BUDGET_SECONDS', /^\d+$/, 'a whole number of seconds')),
  watchdogSeconds: Number(requireEnv('WATCHDOG_SECONDS', /^\d+$/, 'a whole number of seconds')),
  defaultOnFreezeFailure: requireEnv(
    'ON_FREEZE_FAILURE',
    new RegExp(`^(${FREEZE_FAILURE_POLICIES.join('|')})$`),
    FREEZE_FAILURE_POLICIES.join(' or '),
  ) as FreezeFailurePolicy,
};

const logger = new Logger();
const sink = createNotifier(process.env, {
  sns: countThrottles(new SNSClient({})),
  dynamodb: countThrottles(new DynamoDBClient({})),
});
const requestLabel = sqsLabelRequester(countThrottles(new SQSClient({})), labelQueueUrl(process.env));

export const handler = async (event: RecordOutcomeEvent) => {
  const result = await recordOutcome(event, { sink, requestLabel, settings }, new Date());
  logger.info('outcome recorded', { ...result });
  return result;
};
