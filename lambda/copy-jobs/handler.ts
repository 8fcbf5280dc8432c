import { Logger } from '@aws-lambda-powertools/logger';
import { BackupClient } from '@aws-sdk/client-backup';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SNSClient } from '@aws-sdk/client-sns';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { processQueue } from '../shared/deferred-queue';
import { Notifier, notifierSettings } from '../shared/notifier';
import {
  type BackupEvent,
  COPY_JOB_DETAIL_TYPE,
  COPY_SWEEP,
  type CopyDeps,
  handleCopyJobEvent,
  reportLastAttempt,
  startCopies,
  sweepCopies,
} from './copies';
import { readCopySettings } from './settings';
import { countThrottles } from '../shared/throttle-metrics';

const logger = new Logger();
// Checked at cold start: a misconfigured function fails on its first message, loudly.
const settings = readCopySettings(process.env);
const notifier = new Notifier(
  { sns: countThrottles(new SNSClient({})), dynamodb: countThrottles(new DynamoDBClient({})) },
  notifierSettings(process.env),
  logger,
);
const regional = new Map<string, EC2Client>();
const deps: CopyDeps = {
  backup: countThrottles(new BackupClient({})),
  ec2: countThrottles(new EC2Client({})),
  ec2In: (region) => {
    const client = regional.get(region) ?? countThrottles(new EC2Client({ region }));
    regional.set(region, client);
    return client;
  },
  notifier,
  settings,
};

/** One queue carries both event kinds: backup jobs that completed, and copy jobs that ended. */
export async function handler(event: SQSEvent): Promise<SQSBatchResponse> {
  return processQueue(
    event,
    async (body) => {
      const e = body as BackupEvent;
      if ((body as { kind?: string }).kind === COPY_SWEEP.kind) {
        logger.info('Copy sweep done', { ...(await sweepCopies(deps)) });
        return { kind: 'done' };
      }
      if (e['detail-type'] === COPY_JOB_DETAIL_TYPE) {
        const result = await handleCopyJobEvent(e, deps);
        logger.info('Copy job event handled', { copyJobId: e.detail?.copyJobId, ...result });
        return { kind: 'done' };
      }
      const result = await startCopies(e, deps);
      logger.info('Backup job event handled', { backupJobId: e.detail?.backupJobId, ...result });
      return result.action === 'waiting' ? { kind: 'retry', reason: result.reason } : { kind: 'done' };
    },
    {
      maxReceives: settings.maxReceives,
      onLastAttemptError: async (body, err) => {
        logger.error('Last delivery failed; reporting it', { error: String(err) });
        const kind = (body as { kind?: string }).kind;
        if ((body as BackupEvent)['detail-type'] !== COPY_JOB_DETAIL_TYPE && kind !== COPY_SWEEP.kind) {
          await reportLastAttempt(body, err, deps);
        } else {
          throw err;
        }
      },
      log: (message, fields) => logger.warn(message, fields),
    },
  );
}
