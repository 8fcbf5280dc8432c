/**
 * The copy-jobs function's environment: the contract with lib/copies.ts, free of SDK imports so
 * the CDK app can use it.
 */

export const COPY_ENV = {
  sourceVaultName: 'SOURCE_VAULT_NAME',
  backupRoleArn: 'BACKUP_ROLE_ARN',
  destinations: 'COPY_DESTINATIONS',
  labelWaitMinutes: 'LABEL_WAIT_MINUTES',
  maxReceives: 'MAX_RECEIVES',
} as const;

export interface CopyTarget {
  readonly vaultArn: string;
  readonly retentionDays: number;
}

export interface CopySettings {
  readonly sourceVaultName: string;
  readonly backupRoleArn: string;
  readonly destinations: readonly CopyTarget[];
  /** How long after a job completes a copy waits for the final label on the source AMI. */
  readonly labelWaitMinutes: number;
  /** The queue's maxReceiveCount. */
  readonly maxReceives: number;
}

export class CopySettingsError extends Error {
  override readonly name = 'CopySettingsError';
}

const VAULT_ARN = /^arn:aws[a-z-]*:backup:[a-z0-9-]+:\d{12}:backup-vault:[A-Za-z0-9_-]{2,50}$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;

/** Reads and checks the environment; throws naming the variable, its value and what is allowed. */
export function readCopySettings(env: NodeJS.ProcessEnv): CopySettings {
  const bad = (name: string, allowed: string): never => {
    throw new CopySettingsError(
      `Environment variable ${name} is ${JSON.stringify(env[name])}; allowed: ${allowed}.`,
    );
  };
  const sourceVaultName = env[COPY_ENV.sourceVaultName] ?? '';
  if (!/^[A-Za-z0-9_-]{2,50}$/.test(sourceVaultName)) bad(COPY_ENV.sourceVaultName, 'a backup vault name');
  const backupRoleArn = env[COPY_ENV.backupRoleArn] ?? '';
  if (!ROLE_ARN.test(backupRoleArn)) bad(COPY_ENV.backupRoleArn, 'an IAM role ARN');
  let destinations: CopyTarget[] = [];
  try {
    destinations = JSON.parse(env[COPY_ENV.destinations] ?? '') as CopyTarget[];
  } catch {
    bad(COPY_ENV.destinations, 'a JSON array of {vaultArn, retentionDays}');
  }
  if (
    !Array.isArray(destinations) ||
    destinations.length === 0 ||
    !destinations.every(
      (d) =>
        typeof d?.vaultArn === 'string' &&
        VAULT_ARN.test(d.vaultArn) &&
        Number.isInteger(d.retentionDays) &&
        d.retentionDays >= 1 &&
        d.retentionDays <= 36500,
    )
  ) {
    bad(
      COPY_ENV.destinations,
      'a non-empty JSON array of {vaultArn: backup vault ARN, retentionDays: 1-36500}',
    );
  }
  const labelWaitMinutes = Number(env[COPY_ENV.labelWaitMinutes]);
  if (!Number.isInteger(labelWaitMinutes) || labelWaitMinutes < 0 || labelWaitMinutes > 120) {
    bad(COPY_ENV.labelWaitMinutes, 'a whole number of minutes from 0 to 120');
  }
  const maxReceives = Number(env[COPY_ENV.maxReceives]);
  if (!Number.isInteger(maxReceives) || maxReceives < 2 || maxReceives > 1000) {
    bad(COPY_ENV.maxReceives, "the queue's maxReceiveCount, 2 to 1000");
  }
  return { sourceVaultName, backupRoleArn, destinations, labelWaitMinutes, maxReceives };
}
