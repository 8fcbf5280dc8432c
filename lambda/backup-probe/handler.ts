import { Logger } from '@aws-lambda-powertools/logger';
import { BackupClient } from '@aws-sdk/client-backup';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import {
  activeJobs,
  freeze,
  parseProbeRequest,
  startBackupJob,
  systemClock,
  waitForCommand,
  waitForSnapshots,
} from './probe';
import { countThrottles } from '../shared/throttle-metrics';

const logger = new Logger();
/**
 * Every client bounds its requests: a connection within 2 s, no socket silent for 5 s. After the
 * freeze the probe also abandons any call at the time left of the budget (probe.ts callWithin).
 * The probe retries itself, with jittered backoff and inside the budget, so the SDK does not: its
 * retries would be invisible to the budget, and a retried SendCommand (which has no idempotency
 * token) could freeze twice.
 */
export const CLIENT_CONFIG = {
  maxAttempts: 1,
  requestHandler: { connectionTimeout: 2000, requestTimeout: 5000 },
} as const;
const backup = countThrottles(new BackupClient(CLIENT_CONFIG));
const ec2 = countThrottles(new EC2Client(CLIENT_CONFIG));
const ssm = countThrottles(new SSMClient(CLIENT_CONFIG));

/** Logs how a command ended without its stdout, which can carry anything a hook printed. */
function logCommandEnd<T extends { status: string; commandId?: string; detail?: string }>(
  message: string,
  result: T,
): T {
  logger.info(message, { status: result.status, commandId: result.commandId, detail: result.detail });
  return result;
}

export const handler = async (event: unknown) => {
  const request = parseProbeRequest(event);
  logger.appendKeys({ action: request.action });
  switch (request.action) {
    case 'activeJobs': {
      const result = await activeJobs(backup, request.instanceArn);
      logger.info('active jobs', { ...result });
      return result;
    }
    case 'freeze': {
      return logCommandEnd('freeze ended', await freeze(ssm, systemClock, request));
    }
    case 'waitForCommand': {
      return logCommandEnd('command ended', await waitForCommand(ssm, systemClock, request));
    }
    case 'waitForSnapshots': {
      const result = await waitForSnapshots({ ec2, backup }, systemClock, request);
      logger.info('snapshot wait ended', { ...result });
      return result;
    }
    case 'startBackupJob': {
      const result = await startBackupJob(backup, systemClock, request);
      logger.info('backup job started', { ...result });
      return result;
    }
  }
};
