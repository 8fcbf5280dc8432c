import { Logger } from '@aws-lambda-powertools/logger';
import { BackupClient } from '@aws-sdk/client-backup';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { processQueue } from '../shared/deferred-queue';
import { Notifier, notifierSettings } from '../shared/notifier';
import { readRestoreSettings } from './settings';
import {
  handleRestoreEvent,
  RESTORE_SWEEP,
  type RestoreDeps,
  type RestoreJobEvent,
  reportLastAttempt,
  sweepRestoreJobs,
} from './validation';
import { countThrottles } from '../shared/throttle-metrics';

const logger = new Logger();
// Checked at cold start: a misconfigured function fails on its first message, loudly.
const settings = readRestoreSettings(process.env);
const deps: RestoreDeps = {
  backup: countThrottles(new BackupClient({})),
  ssm: countThrottles(new SSMClient({})),
  ec2: countThrottles(new EC2Client({})),
  notifier: new Notifier(
    { sns: countThrottles(new SNSClient({})), dynamodb: countThrottles(new DynamoDBClient({})) },
    notifierSettings(process.env),
    logger,
  ),
  settings,
};

export async function handler(event: SQSEvent): Promise<SQSBatchResponse> {
  return processQueue(
    event,
    async (body) => {
      if ((body as { kind?: string }).kind === RESTORE_SWEEP.kind) {
        logger.info('Restore sweep done', { ...(await sweepRestoreJobs(deps)) });
        return { kind: 'done' };
      }
      const e = body as RestoreJobEvent;
      const outcome = await handleRestoreEvent(e, deps);
      if (outcome.kind === 'done' && outcome.action === 'reported') {
        logger.info('Restore test reported', {
          restoreJobId: e.detail?.restoreJobId,
          result: outcome.verdict.result,
          summary: outcome.verdict.summary,
          tagged: outcome.tagged,
          notifications: outcome.notifications.map((n) => `${n.severity} ${n.eventType}`),
        });
      } else if (outcome.kind === 'done') {
        logger.info('Restore job event ignored', { reason: outcome.reason });
      }
      return outcome.kind === 'retry' ? { kind: 'retry', reason: outcome.reason } : { kind: 'done' };
    },
    {
      maxReceives: settings.maxReceives,
      onLastAttemptError: async (body, err) => {
        // A sweep that keeps failing is not about one restore job: let it reach the dead-letter queue.
        if ((body as { kind?: string }).kind === RESTORE_SWEEP.kind) throw err;
        await reportLastAttempt(body, err, deps);
      },
      log: (message, fields) => logger.warn(message, fields),
    },
  );
}
