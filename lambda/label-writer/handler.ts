import { Logger } from '@aws-lambda-powertools/logger';
import { BackupClient } from '@aws-sdk/client-backup';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import type { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { processQueue } from '../shared/deferred-queue';
import { labelQueueUrl, sendLabelRequests } from '../shared/label-queue';
import { LABEL_SWEEP, parseLabelMessage } from '../shared/labels';
import { DEFAULT_SUMMARY_DEADLINE_MINUTES, Notifier } from '../shared/notifier';
import { countThrottles } from '../shared/throttle-metrics';
import { intervalPacer, type LabelWriterDeps, sweepPendingLabels, writeLabel } from './label-writer';
import { readLabelWriterSettings } from './settings';

const logger = new Logger();
// Checked at cold start: a misconfigured function fails on its first message, loudly.
const settings = readLabelWriterSettings(process.env);
const queueUrl = labelQueueUrl(process.env);
// Only getJob is used: the function reads stored verdicts and never publishes, so it has no topic
// and no SNS client (nor sns:Publish, lib/labels.ts).
const neverPublishes = {
  send: async () => {
    throw new Error('the label-writer never publishes');
  },
} as unknown as SNSClient;
const jobs = new Notifier(
  { sns: neverPublishes, dynamodb: countThrottles(new DynamoDBClient({})) },
  { topicArn: '', tableName: settings.tableName, summaryDeadlineMinutes: DEFAULT_SUMMARY_DEADLINE_MINUTES },
  logger,
);
const sqs = countThrottles(new SQSClient({}));
const deps: LabelWriterDeps = {
  backup: countThrottles(new BackupClient({})),
  ec2: countThrottles(new EC2Client({})),
  jobs,
  // Module scope: the spacing holds across the invocations this instance serves.
  pace: intervalPacer(settings.intervalMs),
};

export async function handler(event: SQSEvent): Promise<SQSBatchResponse> {
  return processQueue(
    event,
    async (body) => {
      const message = parseLabelMessage(body);
      if (message.kind === LABEL_SWEEP.kind) {
        const result = await sweepPendingLabels({
          ...deps,
          vaultName: settings.vaultName,
          send: (requests) => sendLabelRequests(sqs, queueUrl, requests),
        });
        logger.info('Label sweep done', { ...result, requested: result.requested.length });
        return { kind: 'done' };
      }
      const result = await writeLabel(message, deps);
      logger.info(result.action === 'labelled' ? 'Label written' : 'Label not written', {
        ...result,
        cause: message.cause,
      });
      return { kind: 'done' };
    },
    {
      maxReceives: settings.maxReceives,
      // To the dead-letter queue, whose alarm is the report (lib/labels.ts); the hourly sweep
      // requests the label again while the recovery point still reads pending.
      onLastAttemptError: async (_body, err) => {
        logger.error('Last delivery failed; the message goes to the dead-letter queue', {
          error: String(err),
        });
        throw err;
      },
      log: (message, fields) => logger.warn(message, fields),
    },
  );
}
