/**
 * The restore-validation function's environment: the contract with lib/restore-testing.ts, free of
 * SDK imports so the CDK app can use it.
 */

export const RESTORE_ENV = {
  planArn: 'RESTORE_TESTING_PLAN_ARN',
  documentName: 'VERIFY_DOCUMENT_NAME',
  ssmWaitMinutes: 'SSM_WAIT_MINUTES',
  commandWaitMinutes: 'COMMAND_WAIT_MINUTES',
  maxReceives: 'MAX_RECEIVES',
} as const;

export interface RestoreValidationSettings {
  readonly planArn: string;
  readonly documentName: string;
  /** How long after the restore completed the test instance may take to come Online in SSM. */
  readonly ssmWaitMinutes: number;
  /** How long after it was sent the check may run (the document's step timeout plus delivery). */
  readonly commandWaitMinutes: number;
  readonly maxReceives: number;
}

export class RestoreSettingsError extends Error {
  override readonly name = 'RestoreSettingsError';
}

export function readRestoreSettings(env: NodeJS.ProcessEnv): RestoreValidationSettings {
  const get = (name: string, pattern: RegExp, allowed: string): string => {
    const value = env[name];
    if (!value || !pattern.test(value)) {
      throw new RestoreSettingsError(
        `Environment variable ${name} is ${JSON.stringify(value)}; allowed: ${allowed}.`,
      );
    }
    return value;
  };
  const whole = (name: string, max: number, unit: string): number => {
    const n = Number(get(name, /^[1-9]\d{0,4}$/, `a whole number of ${unit} from 1 to ${max}`));
    if (n > max) {
      throw new RestoreSettingsError(`Environment variable ${name} is "${n}"; allowed: 1 to ${max} ${unit}.`);
    }
    return n;
  };
  return {
    planArn: get(
      RESTORE_ENV.planArn,
      /^arn:aws[a-z-]*:backup:[a-z0-9-]+:\d{12}:restore-testing-plan:[A-Za-z0-9_-]{1,120}$/,
      'a restore testing plan ARN',
    ),
    documentName: get(RESTORE_ENV.documentName, /^[A-Za-z0-9_.-]{3,128}$/, 'an SSM document name'),
    ssmWaitMinutes: whole(RESTORE_ENV.ssmWaitMinutes, 120, 'minutes'),
    commandWaitMinutes: whole(RESTORE_ENV.commandWaitMinutes, 600, 'minutes'),
    maxReceives: whole(RESTORE_ENV.maxReceives, 1000, 'receives'),
  };
}
