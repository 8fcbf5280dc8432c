import { Logger } from '@aws-lambda-powertools/logger';
import { BackupClient } from '@aws-sdk/client-backup';
import { EC2Client } from '@aws-sdk/client-ec2';
import { CLIENT_CONFIG, systemClock } from '../shared/calls';
import { countThrottles } from '../shared/throttle-metrics';
import { parseStartBackupStepRequest, startFrozenBackup, startUnfrozenBackup } from './step';

const logger = new Logger();
const backup = countThrottles(new BackupClient(CLIENT_CONFIG));
const ec2 = countThrottles(new EC2Client(CLIENT_CONFIG));

export const handler = async (event: unknown) => {
  const request = parseStartBackupStepRequest(event);
  logger.appendKeys({ mode: request.mode });
  if (request.mode === 'frozen') {
    const result = await startFrozenBackup({ ec2, backup }, systemClock, request);
    logger.info('snapshot wait ended', { ...result });
    return result;
  }
  const result = await startUnfrozenBackup(backup, systemClock, request);
  logger.info('backup job start ended', { ...result });
  return result;
};
