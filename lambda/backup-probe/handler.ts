import { Logger } from '@aws-lambda-powertools/logger';
import { BackupClient } from '@aws-sdk/client-backup';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import {
  activeJobs,
  freeze,
  parseProbeRequest,
  systemClock,
  waitForCommand,
  waitForSnapshots,
} from './probe';
import { countThrottles } from '../shared/throttle-metrics';

const logger = new Logger();
// The probe loops itself with jittered backoff; SDK retries inside a 1 s poll would only add latency.
const backup = countThrottles(new BackupClient({ maxAttempts: 2 }));
const ec2 = countThrottles(new EC2Client({ maxAttempts: 2 }));
const ssm = countThrottles(new SSMClient({ maxAttempts: 2 }));

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
  }
};
