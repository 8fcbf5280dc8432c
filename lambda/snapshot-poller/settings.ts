/**
 * The snapshot poller's settings: environment variables set by lib/coordination.ts, read and
 * validated once at start. Every rate is client-side pacing kept well under the account's quota,
 * which DLM, other tools and operators share (QUOTAS.md).
 */

import { COORDINATION_TABLE_ENV } from '../shared/coordination';
import { BACKUP_TAG_RULES, type BackupTagRule } from './backup-snapshots';

export const POLLER_ENV = {
  tableName: COORDINATION_TABLE_ENV,
  describeSnapshotsPerSecond: 'DESCRIBE_SNAPSHOTS_PER_SECOND',
  sendTaskPerSecond: 'SEND_TASK_PER_SECOND',
  listJobsPerSecond: 'LIST_BACKUP_JOBS_PER_SECOND',
  backupTagRule: 'BACKUP_TAG_RULE',
} as const;

export interface PollerSettings {
  readonly tableName: string;
  /** The function to invoke when handing over (its own name). */
  readonly functionName: string;
  /**
   * DescribeSnapshots calls per second (every page is a call). EC2 refills 20/s for the whole
   * account (bucket 100): 10 leaves half of it to everything else.
   */
  readonly describeSnapshotsPerSecond: number;
  /** Values in one `volume-id` filter: 200 is the limit observed for EC2 filters (not published). */
  readonly volumesPerCall: number;
  /**
   * SendTaskSuccess/Failure calls per second. Step Functions refills 500/s (300/s outside the
   * largest Regions) for the account; the freeze and thaw callbacks share it.
   */
  readonly sendTaskPerSecond: number;
  /** ListBackupJobs calls per second (AWS Backup publishes no rate: conservative). */
  readonly listJobsPerSecond: number;
  /** Failed jobs are looked for at most this often. */
  readonly listJobsIntervalMs: number;
  readonly leaseMs: number;
  /** Exit after this long with no waiter. */
  readonly idleExitMs: number;
  /** Hand over to a fresh invocation when less than this is left of the function's timeout. */
  readonly handoverMarginMs: number;
  /** Sweep cadence while any waiter is younger than youngForMs; a snapshot usually starts in 1-3 s. */
  readonly fastCadenceMs: number;
  readonly slowCadenceMs: number;
  readonly youngForMs: number;
  /** Every this often, all shards are read in full (a waiter registered with a skewed clock). */
  readonly fullReadEveryMs: number;
  /** New waiters are read from this long before the newest one seen (clocks and in-flight puts). */
  readonly cursorOverlapMs: number;
  /** Calls in flight at once (DescribeSnapshots pages, answers): the buckets still bound the rates. */
  readonly concurrency: number;
  readonly backupTagRule: BackupTagRule;
}

export const DEFAULT_POLLER_SETTINGS: Omit<PollerSettings, 'tableName' | 'functionName'> = {
  describeSnapshotsPerSecond: 10,
  volumesPerCall: 200,
  sendTaskPerSecond: 100,
  listJobsPerSecond: 2,
  listJobsIntervalMs: 2000,
  leaseMs: 10_000,
  idleExitMs: 30_000,
  handoverMarginMs: 20_000,
  fastCadenceMs: 200,
  slowCadenceMs: 1000,
  youngForMs: 10_000,
  fullReadEveryMs: 10_000,
  cursorOverlapMs: 5_000,
  concurrency: 8,
  backupTagRule: 'required',
};

function rate(env: Record<string, string | undefined>, name: string, fallback: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!(Number.isFinite(value) && value > 0 && value <= max)) {
    throw new Error(
      `Invalid ${name}: got ${JSON.stringify(raw)}; allowed: a number above 0 and at most ${max}.`,
    );
  }
  return value;
}

/** Reads the settings from the environment; throws naming the variable, the value and what is allowed. */
export function settingsFromEnv(
  env: Record<string, string | undefined>,
  functionName: string,
): PollerSettings {
  const tableName = env[POLLER_ENV.tableName];
  if (!tableName) throw new Error(`Missing environment variable ${POLLER_ENV.tableName}.`);
  if (!functionName) throw new Error('Missing the function name (AWS_LAMBDA_FUNCTION_NAME).');
  const rule = env[POLLER_ENV.backupTagRule] || DEFAULT_POLLER_SETTINGS.backupTagRule;
  if (!(BACKUP_TAG_RULES as readonly string[]).includes(rule)) {
    throw new Error(
      `Invalid ${POLLER_ENV.backupTagRule}: got ${JSON.stringify(rule)}; allowed: ${BACKUP_TAG_RULES.join(', ')}.`,
    );
  }
  return {
    ...DEFAULT_POLLER_SETTINGS,
    tableName,
    functionName,
    // At most 20: EC2's refill for the whole account.
    describeSnapshotsPerSecond: rate(env, POLLER_ENV.describeSnapshotsPerSecond, 10, 20),
    sendTaskPerSecond: rate(env, POLLER_ENV.sendTaskPerSecond, 100, 500),
    listJobsPerSecond: rate(env, POLLER_ENV.listJobsPerSecond, 2, 20),
    backupTagRule: rule as BackupTagRule,
  };
}
