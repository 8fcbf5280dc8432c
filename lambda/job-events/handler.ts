import { Logger } from '@aws-lambda-powertools/logger';
import { BackupClient, DescribeBackupJobCommand } from '@aws-sdk/client-backup';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { labelQueueUrl, sqsLabelRequester } from '../shared/label-queue';
import { Notifier, notifierSettings } from '../shared/notifier';
import { countThrottles } from '../shared/throttle-metrics';
import { type BackupJobStateChangeEvent, handleJobEvent, type JobEventResult } from './job-events';

const logger = new Logger();
// Checked at cold start: a misconfigured function fails on its first event, loudly.
const settings = notifierSettings(process.env);
const backup = countThrottles(new BackupClient({}));
const requestLabel = sqsLabelRequester(countThrottles(new SQSClient({})), labelQueueUrl(process.env));
const notifier = new Notifier(
  { sns: countThrottles(new SNSClient({})), dynamodb: countThrottles(new DynamoDBClient({})) },
  settings,
  logger,
);

export async function handler(event: BackupJobStateChangeEvent): Promise<JobEventResult> {
  const result = await handleJobEvent(event, {
    notifier,
    requestLabel,
    backupTypeOf: async (id) =>
      (await backup.send(new DescribeBackupJobCommand({ BackupJobId: id }))).BackupType,
  });
  if (result.action === 'ignored') logger.info('Backup job event ignored', { reason: result.reason });
  else {
    logger.info('Backup job finalized', {
      backupJobId: result.job.backupJobId,
      state: result.state,
      consistency: result.finalVerdict.consistency,
      labelRequested: result.labelRequested,
      notifications: result.notifications.map((n) => `${n.severity} ${n.eventType}`),
    });
  }
  return result;
}
