/**
 * The one configuration object of ec2-consistent-backup.
 *
 * Read once from CDK context (defaults in cdk.json, `-c key=value` overrides), validated, and
 * passed down as typed props. Nothing else in lib/ reads context or process.env.
 * Every rejected value fails synth with a message naming the key, the value given and what is allowed.
 */

import { FREEZE_FAILURE_POLICIES, type FreezeFailurePolicy } from '../lambda/shared/options';

export { FREEZE_FAILURE_POLICIES, type FreezeFailurePolicy };

export interface BackupConfig {
  /** EventBridge Scheduler expression: `cron(...)`, `rate(...)` or `at(...)`. @default 'cron(0 2 * * ? *)' */
  readonly scheduleExpression: string;
  /** IANA time zone the schedule expression is read in. @default 'UTC' */
  readonly scheduleTimeZone: string;
  /** Tag key that opts an instance in. @default 'ConsistentBackup' */
  readonly optInTagKey: string;
  /** Tag value that opts an instance in. @default 'enabled' */
  readonly optInTagValue: string;
  /** Name of an existing backup vault to use; undefined creates a KMS-encrypted vault. @default undefined */
  readonly vaultName?: string;
  /** Days a recovery point is kept. @default 35 */
  readonly retentionDays: number;
  /** Days after which a recovery point moves to cold storage; undefined keeps it warm. @default undefined */
  readonly coldStorageAfterDays?: number;
  /** Longest a filesystem may stay frozen waiting for the snapshots to start. @default 60 */
  readonly freezeBudgetSeconds: number;
  /** The on-instance watchdog thaws by itself after this many seconds. @default 90 */
  readonly watchdogSeconds: number;
  /** Longest one application hook may run. @default 30 */
  readonly hookTimeoutSeconds: number;
  /** What to do when the freeze fails: back up crash-consistent and say so, or skip. @default 'crash-consistent' */
  readonly onFreezeFailure: FreezeFailurePolicy;
  /** At most this many instances sharing a group tag are frozen at the same time. @default 1 */
  readonly maxFrozenPerGroup: number;
  /** Install AwsVssComponents on Windows instances through AWS-ConfigureAWSPackage before the backup. @default false */
  readonly installVssComponents: boolean;
  /** Email addresses subscribed to the notification topic. @default [] */
  readonly notificationEmails: readonly string[];
  /** HTTPS endpoints (e.g. ServiceNow Event Management) subscribed to the notification topic. @default [] */
  readonly notificationHttpsEndpoints: readonly string[];
  /** Email addresses that receive only Critical notifications (SNS filter policy on severity). @default [] */
  readonly notificationCriticalEmails: readonly string[];
  /** Minutes without any report from discovery or an execution after which a run's summary goes out unfinished. @default 240 */
  readonly summaryDeadlineMinutes: number;
}

export const DEFAULT_CONFIG: BackupConfig = {
  scheduleExpression: 'cron(0 2 * * ? *)',
  scheduleTimeZone: 'UTC',
  optInTagKey: 'ConsistentBackup',
  optInTagValue: 'enabled',
  vaultName: undefined,
  retentionDays: 35,
  coldStorageAfterDays: undefined,
  freezeBudgetSeconds: 60,
  watchdogSeconds: 90,
  hookTimeoutSeconds: 30,
  onFreezeFailure: 'crash-consistent',
  maxFrozenPerGroup: 1,
  installVssComponents: false,
  notificationEmails: [],
  notificationHttpsEndpoints: [],
  notificationCriticalEmails: [],
  summaryDeadlineMinutes: 240,
};

/** The context keys this app reads, in the order the README documents them. */
export const CONFIG_KEYS = Object.keys(DEFAULT_CONFIG) as (keyof BackupConfig)[];

/** Credentials in a URL (`https://user:password@host`) never reach a message or a log. */
export function redactUrlCredentials(value: unknown): unknown {
  return typeof value === 'string' ? value.replace(/\/\/[^/@\s]*:[^/@\s]*@/g, '//[redacted]@') : value;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly key: string,
    readonly value: unknown,
    readonly allowed: string,
  ) {
    super(
      `Invalid configuration "${key}": got ${JSON.stringify(redactUrlCredentials(value))}; allowed: ${allowed}.`,
    );
  }
}

/** Something that answers context look-ups: a construct's `node`, or a plain map in tests. */
export interface ContextSource {
  tryGetContext(key: string): unknown;
}

/** Values that came in through `-c key=value` are strings; values from cdk.json keep their JSON type. */
function present(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '';
}

function integer(key: string, value: unknown, min: number, max: number): number {
  const n = typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(key, value, `a whole number from ${min} to ${max}`);
  }
  return n;
}

function boolean(key: string, value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new ConfigError(key, value, 'true or false');
}

function text(key: string, value: unknown, pattern: RegExp, allowed: string): string {
  if (typeof value !== 'string' || !pattern.test(value)) throw new ConfigError(key, value, allowed);
  return value;
}

function list(key: string, value: unknown, pattern: RegExp, allowed: string): string[] {
  if (!present(value)) return [];
  const items = Array.isArray(value)
    ? value
    : typeof value === 'string'
      ? value
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : [value];
  for (const item of items) {
    if (typeof item !== 'string' || !pattern.test(item)) {
      throw new ConfigError(key, item, allowed);
    }
  }
  return items as string[];
}

const SCHEDULE =
  /^(cron\([^()]+\)|rate\(\d+ (minute|minutes|hour|hours|day|days)\)|at\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\))$/;
// Tag keys: 1-128 characters; no `aws:` prefix; the characters AWS accepts across services.
const TAG_KEY = /^(?!aws:)[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$/u;
const TAG_VALUE = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,256}$/u;
const VAULT_NAME = /^[a-zA-Z0-9\-_]{2,50}$/;
const TIME_ZONE = /^(UTC|[A-Za-z]+(\/[A-Za-z0-9_+-]+){1,2})$/;
const EMAIL = /^[^\s@,]+@[^\s@,]+\.[^\s@,]+$/;
const HTTPS_URL = /^https:\/\/[^\s,]+$/;

/** Validate raw values (from context or a test) into the config object. */
export function parseConfig(raw: Partial<Record<keyof BackupConfig, unknown>>): BackupConfig {
  const get = (key: keyof BackupConfig): unknown => (present(raw[key]) ? raw[key] : DEFAULT_CONFIG[key]);

  const scheduleExpression = text(
    'scheduleExpression',
    get('scheduleExpression'),
    SCHEDULE,
    'an EventBridge Scheduler expression: cron(...), rate(N minutes|hours|days) or at(yyyy-mm-ddThh:mm:ss)',
  );
  const scheduleTimeZone = text(
    'scheduleTimeZone',
    get('scheduleTimeZone'),
    TIME_ZONE,
    'an IANA time zone name such as UTC or Europe/Paris',
  );
  if (scheduleTimeZone !== 'UTC') {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: scheduleTimeZone });
    } catch {
      throw new ConfigError(
        'scheduleTimeZone',
        scheduleTimeZone,
        'an IANA time zone name such as UTC or Europe/Paris',
      );
    }
  }
  const optInTagKey = text(
    'optInTagKey',
    get('optInTagKey'),
    TAG_KEY,
    'a tag key of 1-128 letters, digits, spaces or _ . : / = + - @, not starting with aws:',
  );
  const optInTagValue = text(
    'optInTagValue',
    get('optInTagValue'),
    TAG_VALUE,
    'a tag value of 1-256 letters, digits, spaces or _ . : / = + - @',
  );
  const vaultName = present(raw.vaultName)
    ? text(
        'vaultName',
        raw.vaultName,
        VAULT_NAME,
        'empty (create a vault) or an existing vault name of 2-50 letters, digits, - or _',
      )
    : undefined;
  const retentionDays = integer('retentionDays', get('retentionDays'), 1, 36500);
  const coldRaw = raw.coldStorageAfterDays;
  const cold = present(coldRaw) ? integer('coldStorageAfterDays', coldRaw, 0, 36500) : 0;
  const coldStorageAfterDays = cold === 0 ? undefined : cold;
  if (coldStorageAfterDays !== undefined && retentionDays < coldStorageAfterDays + 90) {
    // AWS Backup keeps a recovery point at least 90 days in cold storage.
    throw new ConfigError(
      'retentionDays',
      retentionDays,
      `at least coldStorageAfterDays + 90 (${coldStorageAfterDays + 90}) when coldStorageAfterDays is set, because AWS Backup keeps cold recovery points at least 90 days`,
    );
  }
  const freezeBudgetSeconds = integer('freezeBudgetSeconds', get('freezeBudgetSeconds'), 5, 110);
  const watchdogSeconds = integer('watchdogSeconds', get('watchdogSeconds'), 6, 300);
  if (watchdogSeconds <= freezeBudgetSeconds) {
    throw new ConfigError(
      'watchdogSeconds',
      watchdogSeconds,
      `a whole number greater than freezeBudgetSeconds (${freezeBudgetSeconds}) and at most 300`,
    );
  }
  const hookTimeoutSeconds = integer('hookTimeoutSeconds', get('hookTimeoutSeconds'), 1, 600);
  const onFreezeFailure = get('onFreezeFailure');
  if (!FREEZE_FAILURE_POLICIES.includes(onFreezeFailure as FreezeFailurePolicy)) {
    throw new ConfigError('onFreezeFailure', onFreezeFailure, FREEZE_FAILURE_POLICIES.join(' or '));
  }
  const maxFrozenPerGroup = integer('maxFrozenPerGroup', get('maxFrozenPerGroup'), 1, 1000);
  const installVssComponents = boolean('installVssComponents', get('installVssComponents'));
  const notificationEmails = list(
    'notificationEmails',
    raw.notificationEmails,
    EMAIL,
    'a comma-separated list of email addresses',
  );
  const notificationHttpsEndpoints = list(
    'notificationHttpsEndpoints',
    raw.notificationHttpsEndpoints,
    HTTPS_URL,
    'a comma-separated list of https:// URLs',
  );

  const notificationCriticalEmails = list(
    'notificationCriticalEmails',
    raw.notificationCriticalEmails,
    EMAIL,
    'a comma-separated list of email addresses',
  );
  const summaryDeadlineMinutes = integer('summaryDeadlineMinutes', get('summaryDeadlineMinutes'), 5, 2880);

  return {
    scheduleExpression,
    scheduleTimeZone,
    optInTagKey,
    optInTagValue,
    vaultName,
    retentionDays,
    coldStorageAfterDays,
    freezeBudgetSeconds,
    watchdogSeconds,
    hookTimeoutSeconds,
    onFreezeFailure: onFreezeFailure as FreezeFailurePolicy,
    maxFrozenPerGroup,
    installVssComponents,
    notificationEmails,
    notificationHttpsEndpoints,
    notificationCriticalEmails,
    summaryDeadlineMinutes,
  };
}

/** Read every key from CDK context once. */
export function readConfig(context: ContextSource): BackupConfig {
  const raw: Partial<Record<keyof BackupConfig, unknown>> = {};
  for (const key of CONFIG_KEYS) raw[key] = context.tryGetContext(key);
  return parseConfig(raw);
}
