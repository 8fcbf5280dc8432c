import { randomUUID } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { BackupClient } from '@aws-sdk/client-backup';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SFNClient } from '@aws-sdk/client-sfn';
import type { Context } from 'aws-lambda';
import { realClock } from '../discovery/rate';
import type { PollerWakeEvent } from '../shared/snapshot-waiters';
import { countThrottles } from '../shared/throttle-metrics';
import { type PollerRun, runPoller } from './poller';
import { settingsFromEnv } from './settings';

const logger = new Logger();
// Checked at cold start: a misconfigured poller fails on its first invocation, loudly.
const settings = settingsFromEnv(process.env, process.env.AWS_LAMBDA_FUNCTION_NAME ?? '');
// The poller paces its own calls and asks again next sweep: one SDK retry at most, so a throttled
// account is not asked three times per refusal.
const clients = {
  ddb: countThrottles(new DynamoDBClient({})),
  ec2: countThrottles(new EC2Client({ maxAttempts: 2 })),
  backup: countThrottles(new BackupClient({ maxAttempts: 2 })),
  sfn: countThrottles(new SFNClient({ maxAttempts: 2 })),
  lambda: new LambdaClient({}),
};

/** Woken by a registration, its own hand-over or the 1-minute schedule (PollerWakeEvent). */
export async function handler(event: Partial<PollerWakeEvent>, context: Context): Promise<PollerRun> {
  logger.info('Poller woken', { source: event?.source ?? 'unknown' });
  return runPoller(clients, settings, {
    clock: realClock,
    // Unique per run: an asynchronous retry of the same event keeps its awsRequestId.
    holder: `${context.awsRequestId}/${randomUUID()}`,
    remainingMs: () => context.getRemainingTimeInMillis(),
    log: (message, fields) => logger.info(message, fields ?? {}),
  });
}
