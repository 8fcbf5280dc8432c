import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { Context } from 'aws-lambda';
import { createNotifier } from '../shared/notifier';
import { type DiscoveryEvent, type DiscoveryResult, runDiscovery } from './discover';
import { readSettings } from './settings';
import { countThrottles } from '../shared/throttle-metrics';

const logger = new Logger();
// Checked at cold start: a misconfigured function fails on its first invocation, loudly.
const settings = readSettings(process.env);
const sink = createNotifier(
  process.env,
  { sns: countThrottles(new SNSClient({})), dynamodb: countThrottles(new DynamoDBClient({})) },
  logger,
);

const ec2 = countThrottles(new EC2Client({ maxAttempts: 6 }));
const ssm = countThrottles(new SSMClient({ maxAttempts: 6 }));
// The fan-out retries throttling itself, with its own token bucket; SDK retries would hide the
// throttle from it and add attempts it cannot pace. Sockets allow the whole pool in flight.
const sfn = countThrottles(
  new SFNClient({
    maxAttempts: 1,
    requestHandler: {
      requestTimeout: 10_000,
      httpsAgent: { keepAlive: true, maxSockets: 2 * settings.startConcurrency },
    },
  }),
);
const lambda = countThrottles(new LambdaClient({ maxAttempts: 6 }));

export async function handler(event: DiscoveryEvent, context: Context): Promise<DiscoveryResult> {
  logger.addContext(context);
  return runDiscovery(
    event,
    { functionArn: context.invokedFunctionArn, remainingMs: () => context.getRemainingTimeInMillis() },
    { ec2, ssm, sfn, lambda, sink, logger, settings },
  );
}
