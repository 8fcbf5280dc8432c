import { Logger } from '@aws-lambda-powertools/logger';
import { BackupClient, DescribeBackupJobCommand } from '@aws-sdk/client-backup';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SNSClient } from '@aws-sdk/client-sns';
import { Notifier, notifierSettings } from '../shared/notifier';
import { tagRecoveryPoint } from '../shared/recovery-point';
import { type BackupJobStateChangeEvent, handleJobEvent, type JobEventResult } from './job-events';
import { countThrottles } from '../shared/throttle-metrics';

const logger = new Logger();
// Checked at cold start: a misconfigured function fails on its first event, loudly.
const settings = notifierSettings(process.env);
const ec2 = countThrottles(new EC2Client({}));
const backup = countThrottles(new BackupClient({}));
const notifier = new Notifier(
  { sns: countThrottles(new SNSClient({})), dynamodb: countThrottles(new DynamoDBClient({})) },
  settings,
  logger,
);

export async function handler(event: BackupJobStateChangeEvent): Promise<JobEventResult> {
  const result = await handleJobEvent(event, {
    notifier,
    labelRecoveryPoint: (arn, verdict) => tagRecoveryPoint({ ec2 }, arn, verdict),
    backupTypeOf: async (id) =>
      (await backup.send(new DescribeBackupJobCommand({ BackupJobId: id }))).BackupType,
  });
  if (result.action === 'ignored') logger.info('Backup job event ignored', { reason: result.reason });
  else {
    logger.info('Backup job finalized', {
      backupJobId: result.job.backupJobId,
      state: result.state,
      consistency: result.finalVerdict.consistency,
      notifications: result.notifications.map((n) => `${n.severity} ${n.eventType}`),
    });
  }
  return result;
}
