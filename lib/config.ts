/**
 * The one configuration object of ec2-consistent-backup.
 *
 * Read once from CDK context (defaults in cdk.json, `-c key=value` overrides), validated, and
 * passed down as typed props. Nothing else in lib/ reads context or process.env.
 * Every rejected value fails synth with a message naming the key, the value given and what is allowed.
 */

import {
  type Api,
  type Bucket,
  parseApiRates,
  REGION_PROFILES,
  type RegionProfileSetting,
} from '../lambda/discovery/admission';
import { FREEZE_FAILURE_POLICIES, type FreezeFailurePolicy } from '../lambda/shared/options';
import { firstCronDay, parseScheduleExpression, ScheduleExpressionError } from './schedule-expression';

export { FREEZE_FAILURE_POLICIES, type FreezeFailurePolicy };

/** Vault Lock: none, governance (removable with IAM permission) or compliance (immutable after its grace time). */
export const VAULT_LOCK_MODES = ['none', 'governance', 'compliance'] as const;
export type VaultLockMode = (typeof VAULT_LOCK_MODES)[number];
/** The exact value `vaultLockComplianceConfirm` must have before a compliance-mode lock is synthesized. */
export const COMPLIANCE_CONFIRMATION = 'I-understand-this-is-irreversible';

/** A vault recovery points are copied to: another Region of this account, or a vault in another account. */
export interface CopyDestination {
  readonly vaultArn: string;
  readonly partition: string;
  readonly region: string;
  readonly accountId: string;
  readonly vaultName: string;
  /** Days the copy is kept (its own retention, independent of the source's). */
  readonly retentionDays: number;
}

/** A Region of this account where the app creates a destination vault (a small stack of its own). */
export interface CopyRegion {
  readonly region: string;
  readonly retentionDays: number;
}

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
  /**
   * Which default quotas admission paces a run to (lambda/discovery/admission.ts, docs/scale.md):
   * `large` (us-east-1, us-west-2, eu-west-1), `standard` (every other Region), or `auto` (by the
   * deployment's Region at run time). @default 'auto'
   */
  readonly regionProfile: RegionProfileSetting;
  /** Percent of every quota bucket a run may use; the rest is left to other tools and people. @default 85 */
  readonly quotaSharePercent: number;
  /**
   * Per-API quota overrides (a raised or measured quota, or a value AWS does not publish), e.g.
   * `getCommandInvocation=50/200`: rate per second and optional burst. @default {}
   */
  readonly apiRates: Readonly<Partial<Record<Api, Bucket>>>;
  /**
   * Seconds from StartBackupJob to the snapshots' start that admission plans for: each frozen
   * instance polls DescribeSnapshots while it waits, so slower starts mean fewer backups per second.
   * @default 3
   */
  readonly snapshotStartSeconds: number;
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
  /** Existing vaults (another Region and/or another account) every completed backup is copied to, each with its retention. @default [] */
  readonly copyDestinations: readonly CopyDestination[];
  /** Regions of this account where the app creates a destination vault and copies to it. @default [] */
  readonly copyRegions: readonly CopyRegion[];
  /** Vault Lock on the vaults the app creates. Compliance mode cannot be undone after its grace time. @default 'none' */
  readonly vaultLockMode: VaultLockMode;
  /** Vault Lock minimum retention; required with a lock. @default undefined */
  readonly vaultLockMinRetentionDays?: number;
  /** Vault Lock maximum retention; none when undefined. @default undefined */
  readonly vaultLockMaxRetentionDays?: number;
  /** Compliance mode: days until the lock becomes immutable (at least 3). @default 3 */
  readonly vaultLockChangeableForDays: number;
  /** Must be `I-understand-this-is-irreversible` for vaultLockMode=compliance. @default undefined */
  readonly vaultLockComplianceConfirm?: string;
  /** Subnet restore tests launch into; restore testing is off while empty. @default undefined */
  readonly restoreTestSubnetId?: string;
  /** Security groups of the restored test instances (required with a subnet). @default [] */
  readonly restoreTestSecurityGroupIds: readonly string[];
  /** AWS Backup cron expression of the restore testing plan, in scheduleTimeZone. @default 'cron(0 5 ? * SUN *)' */
  readonly restoreTestSchedule: string;
  /** Instance type of restored test instances; undefined keeps the backed-up type. @default undefined */
  readonly restoreTestInstanceType?: string;
  /** IAM role names behind the instance profiles of opted-in instances, which the restore may pass to the test instance. @default [] */
  readonly restoreTestInstanceRoles: readonly string[];
  /** Hours AWS Backup keeps a restored test instance for validation before deleting it (2-168). @default 4 */
  readonly restoreTestValidationHours: number;
  /**
   * Where the alarms (lib/monitoring.ts) send their state changes: `topic` is the notification
   * topic, an SNS topic ARN another topic; empty (`none`) keeps them on the dashboard only.
   * @default ['topic']
   */
  readonly alarmActions: readonly string[];
  /** The crash-consistent share of a window's backups (percent) above which the alarm fires. @default 10 */
  readonly alarmCrashSharePercent: number;
  /** Schedule windows without a run summary after which the alarm fires. @default 2 */
  readonly alarmMissedWindows: number;
  /** Executions failed, timed out or aborted within 5 minutes at which the alarm fires. @default 1 */
  readonly alarmFailedExecutions: number;
  /** Messages waiting in any dead-letter queue at which its alarm fires. @default 1 */
  readonly alarmDeadLetterMessages: number;
  /** Forward every notification to ServiceNow Event Management from a Lambda function (lib/servicenow.ts). @default false */
  readonly serviceNowForwarder: boolean;
  /**
   * The Secrets Manager secret holding the ServiceNow instance URL and credentials; undefined
   * creates an empty one for the operator to fill in. @default undefined
   */
  readonly serviceNowSecretName?: string;
}

export const DEFAULT_CONFIG: BackupConfig = {
  scheduleExpression: 'cron(0 2 * * ? *)',
  scheduleTimeZone: 'UTC',
  optInTagKey: 'ConsistentBackup',
  optInTagValue: 'enabled',
  vaultName: undefined,
  retentionDays: 35,
  freezeBudgetSeconds: 60,
  watchdogSeconds: 90,
  hookTimeoutSeconds: 30,
  onFreezeFailure: 'crash-consistent',
  maxFrozenPerGroup: 1,
  regionProfile: 'auto',
  quotaSharePercent: 85,
  apiRates: {},
  snapshotStartSeconds: 3,
  installVssComponents: false,
  notificationEmails: [],
  notificationHttpsEndpoints: [],
  notificationCriticalEmails: [],
  summaryDeadlineMinutes: 240,
  copyDestinations: [],
  copyRegions: [],
  vaultLockMode: 'none',
  vaultLockMinRetentionDays: undefined,
  vaultLockMaxRetentionDays: undefined,
  vaultLockChangeableForDays: 3,
  vaultLockComplianceConfirm: undefined,
  restoreTestSubnetId: undefined,
  restoreTestSecurityGroupIds: [],
  restoreTestSchedule: 'cron(0 5 ? * SUN *)',
  restoreTestInstanceType: undefined,
  restoreTestInstanceRoles: [],
  restoreTestValidationHours: 4,
  alarmActions: ['topic'],
  alarmCrashSharePercent: 10,
  alarmMissedWindows: 2,
  alarmFailedExecutions: 1,
  alarmDeadLetterMessages: 1,
  serviceNowForwarder: false,
  serviceNowSecretName: undefined,
};

/** The context keys this app reads, in the order the README documents them. */
export const CONFIG_KEYS = Object.keys(DEFAULT_CONFIG) as (keyof BackupConfig)[];

/**
 * Keys AWS Backup would ignore for EC2 recovery points: read only to refuse them, so a value that
 * would do nothing fails synth instead of being silently dropped.
 */
export const REFUSED_KEYS = ['coldStorageAfterDays'] as const;
export type RawConfig = Partial<Record<keyof BackupConfig | (typeof REFUSED_KEYS)[number], unknown>>;

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

const SCHEDULE_ALLOWED =
  'an EventBridge Scheduler expression: cron(minutes hours day-of-month month day-of-week year), rate(1 minute|hour|day or N minutes|hours|days) or at(yyyy-mm-ddThh:mm:ss)';
// Tag keys: 1-128 characters; no `aws:` prefix; the characters AWS accepts across services.
const TAG_KEY = /^(?!aws:)[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$/u;
const TAG_VALUE = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,256}$/u;
const VAULT_NAME = /^[a-zA-Z0-9\-_]{2,50}$/;
const TIME_ZONE = /^(UTC|[A-Za-z]+(\/[A-Za-z0-9_+-]+){1,2})$/;
const EMAIL = /^[^\s@,]+@[^\s@,]+\.[^\s@,]+$/;
const HTTPS_URL = /^https:\/\/[^\s,]+$/;
const REGION = '[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\\d';
const COPY_DESTINATION = new RegExp(
  `^(arn:(aws|aws-cn|aws-us-gov):backup:(${REGION}):(\\d{12}):backup-vault:([A-Za-z0-9_-]{2,50}))=(\\d{1,5})$`,
);
const COPY_REGION = new RegExp(`^(${REGION})=(\\d{1,5})$`);
const BACKUP_CRON = /^cron\([^()]+\)$/;
const SUBNET_ID = /^subnet-[0-9a-f]{8,17}$/;
const SECURITY_GROUP_ID = /^sg-[0-9a-f]{8,17}$/;
const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9]+$/;
const ROLE_NAME = /^[\w+=,.@-]{1,64}$/;
const SNS_TOPIC_ARN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/;
// Secrets Manager secret names: 1-512 of letters, digits and /_+=.@-.
const SECRET_NAME = /^[A-Za-z0-9/_+=.@-]{1,512}$/;

function scheduleExpressionOf(value: unknown, now = new Date()): string {
  if (typeof value !== 'string') throw new ConfigError('scheduleExpression', value, SCHEDULE_ALLOWED);
  try {
    const parsed = parseScheduleExpression(value);
    // Scheduler takes a cron no day matches (February 31st, a year range gone by) and never runs it.
    if (parsed.kind === 'cron' && firstCronDay(parsed.cron, now) === undefined) {
      throw new ScheduleExpressionError(
        `no day from ${now.toISOString().slice(0, 10)} to 2199 matches its day-of-month, month, day-of-week and year fields, so it would never run`,
      );
    }
  } catch (err) {
    if (err instanceof ScheduleExpressionError) {
      throw new ConfigError('scheduleExpression', value, `${SCHEDULE_ALLOWED}; here ${err.message}`);
    }
    throw err;
  }
  return value;
}

function alarmActions(value: unknown): string[] {
  const allowed =
    'topic (the notification topic), none, or a comma-separated list of topic and SNS topic ARNs';
  if (value === 'none') return [];
  const items = list('alarmActions', value, /^(topic|arn:.+)$/, allowed);
  for (const item of items) {
    if (item !== 'topic' && !SNS_TOPIC_ARN.test(item)) throw new ConfigError('alarmActions', item, allowed);
  }
  if (new Set(items).size !== items.length)
    throw new ConfigError('alarmActions', value, `${allowed}, each once`);
  return items;
}

/** Validate raw values (from context or a test) into the config object. */
export function parseConfig(raw: RawConfig): BackupConfig {
  const get = (key: keyof BackupConfig): unknown => (present(raw[key]) ? raw[key] : DEFAULT_CONFIG[key]);

  // AWS Backup's "Feature availability by resource" table lists no cold storage tier for EC2, and
  // the Lifecycle API reference says AWS Backup ignores MoveToColdStorageAfterDays for resource
  // types the table does not list: every recovery point of this app is an EC2 one (an AMI).
  const cold = raw.coldStorageAfterDays;
  if (present(cold) && cold !== 0 && cold !== '0') {
    throw new ConfigError(
      'coldStorageAfterDays',
      cold,
      '0 or unset: this app backs up EC2 instances, and AWS Backup does not move EC2 recovery points to cold storage (its Feature availability by resource table; the Lifecycle API ignores MoveToColdStorageAfterDays for such types). EBS Snapshots Archive is no way around it either: a snapshot that backs an AMI cannot be archived until the AMI is disabled or deregistered (EBS user guide, Archive an Amazon EBS snapshot), which would take the recovery point with it',
    );
  }
  const scheduleExpression = scheduleExpressionOf(get('scheduleExpression'));
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
  const admission = parseAdmission(raw, freezeBudgetSeconds);
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
  const serviceNowForwarder = boolean('serviceNowForwarder', get('serviceNowForwarder'));
  const serviceNowSecretName = present(raw.serviceNowSecretName)
    ? text(
        'serviceNowSecretName',
        raw.serviceNowSecretName,
        SECRET_NAME,
        'empty (the stack creates an empty secret) or an existing Secrets Manager secret name of 1-512 letters, digits or /_+=.@-',
      )
    : undefined;
  if (serviceNowSecretName !== undefined && !serviceNowForwarder) {
    throw new ConfigError(
      'serviceNowSecretName',
      serviceNowSecretName,
      'empty unless serviceNowForwarder is true (only the forwarder reads the secret)',
    );
  }

  const copies = parseCopies(raw);
  const lock = parseVaultLock(raw, retentionDays, vaultName, copies.copyRegions);
  const restore = parseRestoreTesting(raw);

  return {
    scheduleExpression,
    scheduleTimeZone,
    optInTagKey,
    optInTagValue,
    vaultName,
    retentionDays,
    freezeBudgetSeconds,
    watchdogSeconds,
    hookTimeoutSeconds,
    onFreezeFailure: onFreezeFailure as FreezeFailurePolicy,
    maxFrozenPerGroup,
    ...admission,
    installVssComponents,
    notificationEmails,
    notificationHttpsEndpoints,
    notificationCriticalEmails,
    summaryDeadlineMinutes,
    alarmActions: present(raw.alarmActions)
      ? alarmActions(raw.alarmActions)
      : [...DEFAULT_CONFIG.alarmActions],
    alarmCrashSharePercent: integer('alarmCrashSharePercent', get('alarmCrashSharePercent'), 1, 100),
    alarmMissedWindows: integer('alarmMissedWindows', get('alarmMissedWindows'), 1, 10),
    alarmFailedExecutions: integer('alarmFailedExecutions', get('alarmFailedExecutions'), 1, 100_000),
    alarmDeadLetterMessages: integer('alarmDeadLetterMessages', get('alarmDeadLetterMessages'), 1, 100_000),
    serviceNowForwarder,
    serviceNowSecretName,
    ...copies,
    ...lock,
    ...restore,
  };
}

type Raw = Partial<Record<keyof BackupConfig, unknown>>;

function parseAdmission(
  raw: Raw,
  freezeBudgetSeconds: number,
): Pick<BackupConfig, 'regionProfile' | 'quotaSharePercent' | 'apiRates' | 'snapshotStartSeconds'> {
  const regionProfile = present(raw.regionProfile) ? raw.regionProfile : DEFAULT_CONFIG.regionProfile;
  if (!REGION_PROFILES.includes(regionProfile as RegionProfileSetting)) {
    throw new ConfigError(
      'regionProfile',
      regionProfile,
      `${REGION_PROFILES.join(', ')} (large: the quotas of us-east-1, us-west-2 and eu-west-1; standard: those of every other Region; auto: by the Region)`,
    );
  }
  const quotaSharePercent = integer(
    'quotaSharePercent',
    present(raw.quotaSharePercent) ? raw.quotaSharePercent : DEFAULT_CONFIG.quotaSharePercent,
    1,
    100,
  );
  let apiRates: Partial<Record<Api, Bucket>> = {};
  const rates = raw.apiRates;
  if (typeof rates === 'object' && rates !== null && !Array.isArray(rates)) {
    // From cdk.json: { "getCommandInvocation": "50/200" } or { "getCommandInvocation": 50 }.
    const joined = Object.entries(rates)
      .map(([api, v]) => `${api}=${String(v)}`)
      .join(',');
    const parsed = parseApiRates(joined);
    if (typeof parsed === 'string') throw new ConfigError('apiRates', rates, parsed);
    apiRates = parsed;
  } else if (present(rates)) {
    const parsed = typeof rates === 'string' ? parseApiRates(rates) : 'a string or an object';
    if (typeof parsed === 'string') throw new ConfigError('apiRates', rates, parsed);
    apiRates = parsed;
  }
  // Beyond the freeze budget the snapshots would not start in time anyway.
  const snapshotStartSeconds = integer(
    'snapshotStartSeconds',
    present(raw.snapshotStartSeconds) ? raw.snapshotStartSeconds : DEFAULT_CONFIG.snapshotStartSeconds,
    1,
    freezeBudgetSeconds,
  );
  return {
    regionProfile: regionProfile as RegionProfileSetting,
    quotaSharePercent,
    apiRates,
    snapshotStartSeconds,
  };
}

function parseCopies(raw: Raw): Pick<BackupConfig, 'copyDestinations' | 'copyRegions'> {
  const destinationAllowed =
    'a comma-separated list of <backup vault ARN>=<retention days>, e.g. arn:aws:backup:eu-central-1:111122223333:backup-vault:dr=90, retention 1-36500';
  const copyDestinations = list(
    'copyDestinations',
    raw.copyDestinations,
    COPY_DESTINATION,
    destinationAllowed,
  ).map((item): CopyDestination => {
    const m = COPY_DESTINATION.exec(item)!;
    const retentionDays = Number(m[6]);
    if (retentionDays < 1 || retentionDays > 36500)
      throw new ConfigError('copyDestinations', item, destinationAllowed);
    return { vaultArn: m[1], partition: m[2], region: m[3], accountId: m[4], vaultName: m[5], retentionDays };
  });
  const regionAllowed =
    'a comma-separated list of <region>=<retention days>, e.g. eu-central-1=90, retention 1-36500';
  const copyRegions = list('copyRegions', raw.copyRegions, COPY_REGION, regionAllowed).map(
    (item): CopyRegion => {
      const m = COPY_REGION.exec(item)!;
      const retentionDays = Number(m[2]);
      if (retentionDays < 1 || retentionDays > 36500)
        throw new ConfigError('copyRegions', item, regionAllowed);
      return { region: m[1], retentionDays };
    },
  );
  const seen = new Set<string>();
  for (const d of copyDestinations) {
    if (seen.has(d.vaultArn))
      throw new ConfigError('copyDestinations', d.vaultArn, 'each destination vault once');
    seen.add(d.vaultArn);
  }
  const regions = new Set<string>();
  for (const r of copyRegions) {
    if (regions.has(r.region)) throw new ConfigError('copyRegions', r.region, 'each Region once');
    regions.add(r.region);
  }
  return { copyDestinations, copyRegions };
}

type LockKeys =
  | 'vaultLockMode'
  | 'vaultLockMinRetentionDays'
  | 'vaultLockMaxRetentionDays'
  | 'vaultLockChangeableForDays'
  | 'vaultLockComplianceConfirm';

/**
 * A lock rejects every backup or copy job whose retention lies outside [min, max], so the retention
 * settings of the vaults the app creates (its own and the copyRegions vaults) are checked here,
 * before anything is deployed, rather than failing each job later.
 */
function parseVaultLock(
  raw: Raw,
  retentionDays: number,
  vaultName: string | undefined,
  copyRegions: readonly CopyRegion[],
): Pick<BackupConfig, LockKeys> {
  const mode = present(raw.vaultLockMode) ? raw.vaultLockMode : DEFAULT_CONFIG.vaultLockMode;
  if (!VAULT_LOCK_MODES.includes(mode as VaultLockMode)) {
    throw new ConfigError('vaultLockMode', mode, VAULT_LOCK_MODES.join(', '));
  }
  const vaultLockMode = mode as VaultLockMode;
  const changeableRaw = present(raw.vaultLockChangeableForDays)
    ? raw.vaultLockChangeableForDays
    : DEFAULT_CONFIG.vaultLockChangeableForDays;
  // AWS Backup enforces a 72-hour cooling-off period before a compliance lock becomes immutable.
  const vaultLockChangeableForDays = integer('vaultLockChangeableForDays', changeableRaw, 3, 36500);
  if (vaultLockMode === 'none') {
    for (const key of [
      'vaultLockMinRetentionDays',
      'vaultLockMaxRetentionDays',
      'vaultLockComplianceConfirm',
    ] as const) {
      if (present(raw[key]))
        throw new ConfigError(key, raw[key], 'empty unless vaultLockMode is governance or compliance');
    }
    return { vaultLockMode, vaultLockChangeableForDays };
  }
  if (vaultName) {
    throw new ConfigError(
      'vaultLockMode',
      vaultLockMode,
      `none while vaultName is set (the app locks only the vault it creates; lock ${vaultName} with PutBackupVaultLockConfiguration yourself)`,
    );
  }
  if (!present(raw.vaultLockMinRetentionDays)) {
    throw new ConfigError(
      'vaultLockMinRetentionDays',
      raw.vaultLockMinRetentionDays,
      `a whole number from 1 to 36500 when vaultLockMode is ${vaultLockMode}`,
    );
  }
  const min = integer('vaultLockMinRetentionDays', raw.vaultLockMinRetentionDays, 1, 36500);
  const max = present(raw.vaultLockMaxRetentionDays)
    ? integer('vaultLockMaxRetentionDays', raw.vaultLockMaxRetentionDays, min, 36500)
    : undefined;
  const range =
    max === undefined
      ? `at least vaultLockMinRetentionDays (${min})`
      : `from ${min} to ${max} (the vault lock's range)`;
  if (retentionDays < min || (max !== undefined && retentionDays > max)) {
    throw new ConfigError(
      'retentionDays',
      retentionDays,
      `${range}: the lock rejects every backup job outside it`,
    );
  }
  for (const r of copyRegions) {
    if (r.retentionDays < min || (max !== undefined && r.retentionDays > max)) {
      throw new ConfigError(
        'copyRegions',
        `${r.region}=${r.retentionDays}`,
        `a retention ${range}: the destination vault carries the same lock and would reject the copy`,
      );
    }
  }
  let vaultLockComplianceConfirm: string | undefined;
  if (vaultLockMode === 'compliance') {
    if (raw.vaultLockComplianceConfirm !== COMPLIANCE_CONFIRMATION) {
      throw new ConfigError(
        'vaultLockComplianceConfirm',
        raw.vaultLockComplianceConfirm,
        `exactly ${COMPLIANCE_CONFIRMATION}: a compliance-mode lock can never be changed or removed once its ${vaultLockChangeableForDays}-day grace time ends, not even by the account root, and the vault cannot be deleted while it holds recovery points`,
      );
    }
    vaultLockComplianceConfirm = COMPLIANCE_CONFIRMATION;
  } else if (present(raw.vaultLockComplianceConfirm)) {
    throw new ConfigError(
      'vaultLockComplianceConfirm',
      raw.vaultLockComplianceConfirm,
      'empty unless vaultLockMode is compliance',
    );
  }
  return {
    vaultLockMode,
    vaultLockMinRetentionDays: min,
    vaultLockMaxRetentionDays: max,
    vaultLockChangeableForDays,
    vaultLockComplianceConfirm,
  };
}

type RestoreKeys =
  | 'restoreTestSubnetId'
  | 'restoreTestSecurityGroupIds'
  | 'restoreTestSchedule'
  | 'restoreTestInstanceType'
  | 'restoreTestInstanceRoles'
  | 'restoreTestValidationHours';

function parseRestoreTesting(raw: Raw): Pick<BackupConfig, RestoreKeys> {
  const restoreTestSubnetId = present(raw.restoreTestSubnetId)
    ? text(
        'restoreTestSubnetId',
        raw.restoreTestSubnetId,
        SUBNET_ID,
        'empty (no restore testing) or a subnet id such as subnet-0123456789abcdef0',
      )
    : undefined;
  const restoreTestSecurityGroupIds = list(
    'restoreTestSecurityGroupIds',
    raw.restoreTestSecurityGroupIds,
    SECURITY_GROUP_ID,
    'a comma-separated list of security group ids such as sg-0123456789abcdef0',
  );
  if (
    restoreTestSubnetId &&
    (restoreTestSecurityGroupIds.length < 1 || restoreTestSecurityGroupIds.length > 5)
  ) {
    throw new ConfigError(
      'restoreTestSecurityGroupIds',
      restoreTestSecurityGroupIds.join(','),
      "1 to 5 security group ids of the subnet's VPC when restoreTestSubnetId is set (the restored copy of a production instance must not get the default group)",
    );
  }
  if (!restoreTestSubnetId && restoreTestSecurityGroupIds.length > 0) {
    throw new ConfigError(
      'restoreTestSecurityGroupIds',
      restoreTestSecurityGroupIds.join(','),
      'empty unless restoreTestSubnetId is set',
    );
  }
  const restoreTestSchedule = text(
    'restoreTestSchedule',
    present(raw.restoreTestSchedule) ? raw.restoreTestSchedule : DEFAULT_CONFIG.restoreTestSchedule,
    BACKUP_CRON,
    'an AWS Backup cron expression such as cron(0 5 ? * SUN *)',
  );
  const restoreTestInstanceType = present(raw.restoreTestInstanceType)
    ? text(
        'restoreTestInstanceType',
        raw.restoreTestInstanceType,
        INSTANCE_TYPE,
        'empty (the backed-up type) or an instance type such as t3.small',
      )
    : undefined;
  const restoreTestInstanceRoles = list(
    'restoreTestInstanceRoles',
    raw.restoreTestInstanceRoles,
    ROLE_NAME,
    'a comma-separated list of IAM role names (1-64 of letters, digits and + = , . @ _ -)',
  );
  const restoreTestValidationHours = integer(
    'restoreTestValidationHours',
    present(raw.restoreTestValidationHours)
      ? raw.restoreTestValidationHours
      : DEFAULT_CONFIG.restoreTestValidationHours,
    // The check may run an hour (the document's step timeout) after up to 20 minutes of boot.
    2,
    168,
  );
  return {
    restoreTestSubnetId,
    restoreTestSecurityGroupIds,
    restoreTestSchedule,
    restoreTestInstanceType,
    restoreTestInstanceRoles,
    restoreTestValidationHours,
  };
}

/** Read every key from CDK context once. */
export function readConfig(context: ContextSource): BackupConfig {
  const raw: RawConfig = {};
  for (const key of [...CONFIG_KEYS, ...REFUSED_KEYS]) raw[key] = context.tryGetContext(key);
  return parseConfig(raw);
}
