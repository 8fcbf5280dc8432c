import { Logger } from '@aws-lambda-powertools/logger';
import { BackupClient } from '@aws-sdk/client-backup';
import { SSMClient } from '@aws-sdk/client-ssm';
import { CLIENT_CONFIG, systemClock } from '../shared/calls';
import { countThrottles } from '../shared/throttle-metrics';
import { freezeStep, parseFreezeStepRequest } from './step';

const logger = new Logger();
const backup = countThrottles(new BackupClient(CLIENT_CONFIG));
const ssm = countThrottles(new SSMClient(CLIENT_CONFIG));

export const handler = async (event: unknown) => {
  const request = parseFreezeStepRequest(event);
  const result = await freezeStep({ ssm, backup }, systemClock, request);
  // Without stdout, which can carry anything a hook printed.
  logger.info('freeze step ended', {
    outcome: result.outcome,
    commandId: result.commandId,
    status: result.command?.status,
    detail: result.detail,
    budgetSeconds: result.budgetSeconds,
  });
  return result;
};
