/**
 * The label-writer function's environment: the contract with lib/labels.ts, free of SDK imports so
 * the CDK app can use it. The queue URL is LABEL_ENV.queueUrl (lambda/shared/labels.ts), which
 * record-outcome and job-events read too.
 */

import { NOTIFIER_ENV } from '../shared/notification';

export const LABEL_WRITER_ENV = {
  vaultName: 'LABEL_VAULT_NAME',
  intervalMs: 'LABEL_INTERVAL_MS',
  maxReceives: 'LABEL_MAX_RECEIVES',
} as const;

export interface LabelWriterSettings {
  /** The state table holding each job's verdict (NOTIFIER_ENV.tableName, as the notifier reads it). */
  readonly tableName: string;
  /** The vault every backup job of this app writes to: the sweep lists its completed jobs. */
  readonly vaultName: string;
  /** Least time between two CreateTags calls of one function instance. */
  readonly intervalMs: number;
  /** The queue's maxReceiveCount. */
  readonly maxReceives: number;
}

export class LabelWriterSettingsError extends Error {
  override readonly name = 'LabelWriterSettingsError';
}

/** Reads and checks the environment; throws naming the variable, its value and what is allowed. */
export function readLabelWriterSettings(env: NodeJS.ProcessEnv): LabelWriterSettings {
  const bad = (name: string, allowed: string): never => {
    throw new LabelWriterSettingsError(
      `Environment variable ${name} is ${JSON.stringify(env[name])}; allowed: ${allowed}.`,
    );
  };
  const tableName = env[NOTIFIER_ENV.tableName] ?? '';
  if (!/^[A-Za-z0-9_.-]{3,255}$/.test(tableName)) bad(NOTIFIER_ENV.tableName, 'a DynamoDB table name');
  const vaultName = env[LABEL_WRITER_ENV.vaultName] ?? '';
  if (!/^[A-Za-z0-9_-]{2,50}$/.test(vaultName)) bad(LABEL_WRITER_ENV.vaultName, 'a backup vault name');
  const intervalMs = Number(env[LABEL_WRITER_ENV.intervalMs]);
  if (!Number.isInteger(intervalMs) || intervalMs < 100 || intervalMs > 60_000) {
    bad(LABEL_WRITER_ENV.intervalMs, 'a whole number of milliseconds from 100 to 60000');
  }
  const maxReceives = Number(env[LABEL_WRITER_ENV.maxReceives]);
  if (!Number.isInteger(maxReceives) || maxReceives < 2 || maxReceives > 1000) {
    bad(LABEL_WRITER_ENV.maxReceives, "the queue's maxReceiveCount, 2 to 1000");
  }
  return { tableName, vaultName, intervalMs, maxReceives };
}
