/**
 * The dead-letters function's environment: the contract with lib/dead-letters.ts, kept free of
 * SDK imports so the CDK app can use it.
 */

export const DEAD_LETTER_ENV = {
  discoveryFunctionArn: 'DISCOVERY_FUNCTION_ARN',
  discoveryLogGroup: 'DISCOVERY_LOG_GROUP',
  ownLogGroup: 'DEAD_LETTERS_LOG_GROUP',
} as const;

export interface DeadLetterSettings {
  readonly discoveryFunctionArn: string;
  readonly discoveryLogGroup: string;
  /** Where this function logs each message's full payload (quoted when it is too long to inline). */
  readonly ownLogGroup: string;
}

export class DeadLetterConfigError extends Error {
  override readonly name = 'DeadLetterConfigError';
}

export const FUNCTION_ARN = /^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}$/;
const LOG_GROUP = /^[A-Za-z0-9_./#-]{1,512}$/;

/** Reads and checks this function's environment; throws naming the variable and what is allowed. */
export function readDeadLetterSettings(env: NodeJS.ProcessEnv): DeadLetterSettings {
  const get = (name: string, pattern: RegExp, allowed: string): string => {
    const value = env[name];
    if (!value || !pattern.test(value)) {
      throw new DeadLetterConfigError(
        `Environment variable ${name} is ${JSON.stringify(value)}; allowed: ${allowed}.`,
      );
    }
    return value;
  };
  return {
    discoveryFunctionArn: get(
      DEAD_LETTER_ENV.discoveryFunctionArn,
      FUNCTION_ARN,
      'an unqualified Lambda function ARN',
    ),
    discoveryLogGroup: get(DEAD_LETTER_ENV.discoveryLogGroup, LOG_GROUP, 'a CloudWatch Logs group name'),
    ownLogGroup: get(DEAD_LETTER_ENV.ownLogGroup, LOG_GROUP, 'a CloudWatch Logs group name'),
  };
}
