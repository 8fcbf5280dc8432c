import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { realClock, TokenBucket } from '../discovery/rate';
import { countThrottles } from '../shared/throttle-metrics';
import { type CommandResultsDeps, handleCommandEvent, handleQueueBody, runSweep } from './results';
import { readCommandResultsSettings, SWEEP_ROUND_SECONDS } from './settings';

const logger = new Logger();
// Checked at cold start: a misconfigured function fails on its first message, loudly.
const settings = readCommandResultsSettings(process.env);
// Module scope: each bucket paces every invocation this instance serves. The construct divides the
// app's budget for each API by the reserved concurrency, so all instances together stay within it.
const bucket = (perSecond: number) => new TokenBucket(Math.max(1, perSecond), perSecond, realClock);
const deps: CommandResultsDeps = {
  ddb: countThrottles(new DynamoDBClient({})),
  ssm: countThrottles(new SSMClient({})),
  sfn: countThrottles(new SFNClient({})),
  table: settings.tableName,
  documents: { freeze: settings.freezeDocument, thaw: settings.thawDocument },
  clock: realClock,
  paces: {
    getInvocation: bucket(settings.getInvocationPerSecond),
    listInvocations: bucket(settings.listInvocationsPerSecond),
    sendTask: bucket(settings.sendTaskPerSecond),
  },
  log: (message, fields) => logger.warn(message, fields),
};

type Input = SQSEvent | { readonly 'detail-type'?: string; readonly [key: string]: unknown };

/**
 * The CommandWaiters queue (events and thaw waiters, records handled concurrently, each failure
 * reported alone), a status-change event delivered directly, or the sweep's schedule.
 */
export async function handler(event: Input): Promise<SQSBatchResponse | undefined> {
  if ('Records' in event && Array.isArray(event.Records)) {
    const failures: SQSBatchResponse['batchItemFailures'] = [];
    await Promise.all(
      (event as SQSEvent).Records.map(async (record) => {
        let body: unknown;
        try {
          body = JSON.parse(record.body);
        } catch {
          logger.error('Queue message is not JSON; dropped', { messageId: record.messageId });
          return;
        }
        try {
          const sentAt = Number(record.attributes?.SentTimestamp);
          const result = await handleQueueBody(deps, body, Number.isFinite(sentAt) ? sentAt : undefined);
          logger.info('Handled', { messageId: record.messageId, ...result });
        } catch (err) {
          logger.warn('Failed; SQS delivers it again', { messageId: record.messageId, error: String(err) });
          failures.push({ itemIdentifier: record.messageId });
        }
      }),
    );
    return { batchItemFailures: failures };
  }
  if ((event as { 'detail-type'?: unknown })['detail-type'] === 'Scheduled Event') {
    const result = await runSweep(deps, realClock.now() + settings.sweepSeconds * 1000, {
      // A round reads no more than its pace allows in SWEEP_ROUND_SECONDS: it ends inside the timeout.
      maxReads: Math.max(1, Math.floor(settings.getInvocationPerSecond * SWEEP_ROUND_SECONDS)),
    });
    logger.info('Sweep done', result);
    return undefined;
  }
  const result = await handleCommandEvent(deps, event);
  logger.info('Event handled', result);
  return undefined;
}
