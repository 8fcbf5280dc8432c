import { Logger } from '@aws-lambda-powertools/logger';
import { SSMClient } from '@aws-sdk/client-ssm';
import { CLIENT_CONFIG, systemClock } from '../shared/calls';
import { countThrottles } from '../shared/throttle-metrics';
import { parseWaitRequest, waitStep } from './wait';

const logger = new Logger();
const ssm = countThrottles(new SSMClient(CLIENT_CONFIG));

export const handler = async (event: unknown) => {
  const request = parseWaitRequest(event);
  logger.appendKeys({ kind: request.kind });
  const result = await waitStep(ssm, systemClock, request);
  // Without stdout, which can carry anything a hook printed.
  const command = 'confirmed' in result ? result.command : result;
  logger.info('command ended', {
    status: command.status,
    commandId: command.commandId,
    detail: result.detail,
    ...('confirmed' in result ? { confirmed: result.confirmed } : {}),
  });
  return result;
};
