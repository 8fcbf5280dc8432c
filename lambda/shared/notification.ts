/**
 * THE notification schema of ec2-consistent-backup: what a valid message is (fields, severities,
 * problem classes, ServiceNow's field limits, the severity rules) and the text helpers every message
 * uses. Each message family is built by a file of its own under ./notifications/ (outcome,
 * exclusion, backup-job, clear, run-summary, discovery-failure), all through
 * ./notifications/assemble.ts, which validates every message against this file before it leaves.
 * docs/notifications.md documents it. Nothing else decides a severity, a message key or a field
 * length.
 *
 * The body is a JSON object whose `event` maps field for field onto ServiceNow Event Management's
 * `em_event` table, so a push connector only has to copy it. Limits are ServiceNow's documented
 * field lengths ("Event field format for event collection"): source, node, type, resource 100;
 * message_key 1024; description 4000; time_of_event 40. additional_info has no documented limit;
 * we cap each value and the whole object so one huge error cause cannot crowd out the rest.
 */

export const NOTIFICATION_SCHEMA = 'ec2-consistent-backup.notification';
export const NOTIFICATION_SCHEMA_VERSION = 1;
/** em_event.source of every event. */
export const EVENT_SOURCE = 'ec2-consistent-backup';

export type Severity = 'Critical' | 'Major' | 'Minor' | 'Warning' | 'OK' | 'Clear';
export const SEVERITIES: readonly Severity[] = ['Critical', 'Major', 'Minor', 'Warning', 'OK', 'Clear'];
/** em_event.severity stores a number; these are ServiceNow's codes. */
export const SEVERITY_CODES: Readonly<Record<Severity, string>> = {
  Clear: '0',
  Critical: '1',
  Major: '2',
  Minor: '3',
  Warning: '4',
  OK: '5',
};

/**
 * The last part of a message key. One open ServiceNow alert per instance and class: repeated
 * failures of the same kind update it, and a Clear with the same key closes it.
 */
export type ProblemClass =
  | 'thaw'
  | 'backup'
  | 'consistency'
  | 'window'
  | 'readiness'
  | 'discovery'
  | 'copy'
  | 'verification';
export const PROBLEM_CLASSES: readonly ProblemClass[] = [
  'thaw',
  'backup',
  'consistency',
  'window',
  'readiness',
  // Fleet-wide, not per instance: discovery itself failed (key `...:fleet:discovery`).
  'discovery',
  // Copies to other Regions or accounts, and restore verification (notifications/protection.ts).
  'copy',
  'verification',
];
/** The run summary is one alert per account and region, updated by every run. */
export const SUMMARY_CLASS = 'run-summary';
export const FLEET_NODE = 'fleet';

export type NotificationEventType =
  | 'thaw-failed'
  | 'backup-start-failed'
  | 'skipped-freeze-failed'
  | 'backup-job-failed'
  | 'backup-job-partial'
  | 'backup-job-completed-with-issues'
  | 'outcome-not-recorded'
  | 'execution-failed'
  | 'crash-consistent-fallback'
  | 'backup-warnings'
  | 'vss-fallback'
  | 'skipped-active-job'
  | 'instance-not-ready'
  | 'discovery-not-invoked'
  | 'discovery-failed'
  | 'problem-cleared'
  | 'run-summary'
  | 'copy-failed'
  | 'copy-not-started'
  | 'restore-verification-failed'
  | 'restore-verification-inconclusive';

interface Rule {
  /** Severities this event type may carry. */
  readonly severities: readonly Severity[];
  /** The problem class it opens; undefined for Clear (class of the cleared key) and the summary. */
  readonly problemClass?: ProblemClass;
  readonly title: string;
}

/** The severity rules, in one table. Tests check every built message against it. */
export const SEVERITY_RULES: Readonly<Record<NotificationEventType, Rule>> = {
  'thaw-failed': { severities: ['Critical'], problemClass: 'thaw', title: 'Thaw failed' },
  'backup-start-failed': { severities: ['Major'], problemClass: 'backup', title: 'Backup not started' },
  'skipped-freeze-failed': {
    severities: ['Major'],
    problemClass: 'backup',
    title: 'Backup skipped: freeze failed',
  },
  'backup-job-failed': { severities: ['Major'], problemClass: 'backup', title: 'Backup job failed' },
  'backup-job-partial': { severities: ['Warning'], problemClass: 'backup', title: 'Backup job partial' },
  'backup-job-completed-with-issues': {
    severities: ['Warning'],
    problemClass: 'backup',
    title: 'Backup job completed with issues',
  },
  // Published by the state machine itself (lib/workflow/last-resort.ts) when record-outcome cannot
  // run and no freeze may be held; when one may be, it publishes thaw-failed (Critical) instead.
  'outcome-not-recorded': { severities: ['Major'], problemClass: 'backup', title: 'Outcome not recorded' },
  // From lambda/execution-events: an execution FAILED, TIMED_OUT or ABORTED without any other
  // message for it (record-outcome and the last resort did not notify). Critical cases of it (a
  // freeze may be held) are thaw-failed.
  'execution-failed': { severities: ['Major'], problemClass: 'backup', title: 'Backup workflow failed' },
  'crash-consistent-fallback': {
    severities: ['Warning'],
    problemClass: 'consistency',
    title: 'Backup fell back to crash-consistent',
  },
  'backup-warnings': {
    severities: ['Warning'],
    problemClass: 'consistency',
    title: 'Backup made with warnings',
  },
  'vss-fallback': { severities: ['Warning'], problemClass: 'consistency', title: 'Windows VSS fell back' },
  'skipped-active-job': { severities: ['Warning'], problemClass: 'window', title: 'Backup window skipped' },
  'instance-not-ready': { severities: ['Minor'], problemClass: 'readiness', title: 'Instance not ready' },
  // From the dead-letter queues (lambda/dead-letters): a window, or the rest of it, was not started.
  'discovery-not-invoked': {
    severities: ['Major'],
    problemClass: 'discovery',
    title: 'Discovery not invoked',
  },
  'discovery-failed': { severities: ['Major'], problemClass: 'discovery', title: 'Discovery failed' },
  'problem-cleared': { severities: ['Clear'], title: 'Recovered' },
  'run-summary': { severities: ['OK', 'Warning'], title: 'Run summary' },
  // Built in notifications/protection.ts (lambda/copy-jobs, lambda/restore-validation).
  'copy-failed': { severities: ['Major'], problemClass: 'copy', title: 'Backup copy failed' },
  'copy-not-started': { severities: ['Major'], problemClass: 'copy', title: 'Backup copy not started' },
  'restore-verification-failed': {
    severities: ['Major'],
    problemClass: 'verification',
    title: 'Restore verification failed',
  },
  'restore-verification-inconclusive': {
    severities: ['Warning'],
    problemClass: 'verification',
    title: 'Restore verification could not run',
  },
};

/**
 * The deployment contract between lib/notifications.ts and the functions that notify, kept here so
 * the CDK app can import it without pulling in SDK clients.
 */
export const NOTIFIER_ENV = {
  topicArn: 'NOTIFICATION_TOPIC_ARN',
  tableName: 'NOTIFICATION_TABLE_NAME',
  summaryDeadlineMinutes: 'SUMMARY_DEADLINE_MINUTES',
} as const;
/** The sparse index of runs whose summary is not sent yet (partition `pending`, sort `deadline`). */
export const PENDING_RUNS_INDEX = 'PendingRuns';
/** AWS Backup's EventBridge detail-type for backup job state changes. */
export const BACKUP_JOB_DETAIL_TYPE = 'Backup Job State Change';
/** The states after which a backup job changes no more. */
export const FINAL_JOB_STATES = ['COMPLETED', 'FAILED', 'EXPIRED', 'ABORTED', 'PARTIAL'] as const;

export const LIMITS = {
  // SNS: "less than 100 characters long", no line breaks or control characters.
  subject: 99,
  source: 100,
  node: 100,
  type: 100,
  resource: 100,
  message_key: 1024,
  description: 4000,
  time_of_event: 40,
  additionalInfoValue: 1000,
  additionalInfoTotal: 8000,
} as const;

/** The em_event fields we send. additional_info is an object of strings; the connector serializes it. */
export interface EmEvent {
  readonly source: string;
  readonly node: string;
  readonly type: string;
  readonly resource: string;
  readonly severity: string;
  readonly message_key: string;
  /**
   * UTC, `yyyy-MM-dd HH:mm:ss` (the GlideDateTime form). The state machine's own fallback message
   * can only produce ISO-8601 (`...T...Z`); the connector script normalizes both.
   */
  readonly time_of_event: string;
  /** `New` opens or updates an alert, `Closing` closes it (sent with Clear). */
  readonly resolution_state: 'New' | 'Closing';
  readonly description: string;
  readonly additional_info: Readonly<Record<string, string>>;
}

export interface Notification {
  readonly schema: typeof NOTIFICATION_SCHEMA;
  readonly schemaVersion: typeof NOTIFICATION_SCHEMA_VERSION;
  readonly eventType: NotificationEventType;
  readonly severity: Severity;
  /** Also the SNS subject: one line, at most 99 characters (SNS requires fewer than 100). */
  readonly subject: string;
  /** The instance, absent for the run summary. */
  readonly instanceId?: string;
  readonly event: EmEvent;
}

/** The keys additional_info may carry, so a subscriber can rely on their names. */
export const ADDITIONAL_INFO_KEYS = [
  'schema_version',
  'event_type',
  'account',
  'region',
  'instance_id',
  'instance_name',
  'platform',
  'run_id',
  'window',
  'execution_arn',
  'console_link',
  'backup_job_id',
  'backup_job_state',
  'backup_job_link',
  'recovery_point_arn',
  'consistency',
  'consistency_reason',
  'freeze_ms',
  'watchdog_thaw_by',
  'warnings',
  'error',
  'cause',
  'exclusion_reason',
  'cleared_event_type',
  'cleared_by',
  'summary_reason',
  'discovered',
  'excluded',
  'started',
  'finished',
  'unfinished',
  'application_consistent',
  'filesystem_consistent',
  'fell_back',
  'skipped',
  'failed',
  'function_arn',
  'request_id',
  'schedule_arn',
  'invocation',
  'cursor',
  'failure_condition',
  'retry_attempts',
  'exhausted_retry_condition',
  'payload_truncated',
  'log_group',
  'replay_command',
  'copy_job_id',
  'copy_job_state',
  'destination_vault_arn',
  'destination_recovery_point_arn',
  'copies_started',
  'copies_completed',
  'copies_failed',
  'restore_job_id',
  'restored_instance_id',
  'verification_result',
  'verification_detail',
] as const;
export type AdditionalInfoKey = (typeof ADDITIONAL_INFO_KEYS)[number];
/** additional_info before assembly: values may be numbers or missing; assemble() turns them into strings. */
export type AdditionalInfo = Partial<Record<AdditionalInfoKey, string | number | undefined>>;

export class NotificationSchemaError extends Error {
  override readonly name = 'NotificationSchemaError';
  constructor(readonly problems: readonly string[]) {
    super(`Notification does not match schema v${NOTIFICATION_SCHEMA_VERSION}: ${problems.join('; ')}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Text hygiene: no secrets, length limits with a visible truncation mark.

const SECRET_PATTERNS: readonly [RegExp, string][] = [
  // Basic-auth credentials in a URL (an SNS HTTPS endpoint carries them).
  [/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@:]+:[^\s/@]+@/gi, '$1[redacted]@'],
  // AWS access key ids.
  [/\b(AKIA|ASIA)[A-Z0-9]{16}\b/g, '[redacted-access-key]'],
  [/\bBearer\s+[A-Za-z0-9._~+/-]+=*/g, 'Bearer [redacted]'],
  // key=value or "key": "value" pairs whose name says secret.
  [
    /\b(password|passwd|secret|token|api[_-]?key|authorization|x-amz-security-token)(["']?\s*[:=]\s*["']?)[^\s"',;&]+/gi,
    '$1$2[redacted]',
  ],
];

/** Removes credentials from free text that came from elsewhere (errors, causes, status messages). */
export function redact(text: string): string {
  let out = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/** Cuts `text` to at most `max` characters, ending with a mark saying how much was cut. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let cut = max;
  let mark = '';
  // The mark's own length depends on how much is cut; two passes settle it.
  for (let i = 0; i < 2; i++) {
    mark = ` …[truncated ${text.length - cut} chars]`;
    cut = Math.max(0, max - mark.length);
  }
  return text.slice(0, cut) + mark;
}

/** `text` on one line: line breaks and runs of blanks become one space. */
export function oneLine(text: string): string {
  return text
    .replace(/[\r\n\t]+/g, ' ')
    .replace(/\s{2,}/g, ' ')
    .trim();
}

/** The SNS subject: one line of at most 99 characters (SNS requires fewer than 100). */
export function subjectLine(text: string): string {
  // SNS subjects must be ASCII-printable-ish; keep to what any mail client shows.
  const clean = oneLine(text).replace(/[^\x20-\x7E]/g, '?');
  return clean.length <= LIMITS.subject ? clean : `${clean.slice(0, LIMITS.subject - 3)}...`;
}

/** ServiceNow's GlideDateTime form, in UTC. */
export function glideTime(date: Date): string {
  return date
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, '');
}

// ---------------------------------------------------------------------------------------------
// Message keys: one open alert per instance (or the fleet) and problem class.

export function messageKey(accountId: string, region: string, node: string, problemClass: string): string {
  return truncate(`${EVENT_SOURCE}:${accountId}:${region}:${node}:${problemClass}`, LIMITS.message_key);
}

// ---------------------------------------------------------------------------------------------
// Validation.

// Account and region are checked for shape only: a record-outcome that could not learn them says
// "unknown", and that message must still go out.
const KEY_PATTERN = new RegExp(
  `^${EVENT_SOURCE}:[A-Za-z0-9-]+:[A-Za-z0-9-]+:(i-[0-9a-f]{8,17}|${FLEET_NODE}):(${[...PROBLEM_CLASSES, SUMMARY_CLASS].join('|')})$`,
);
const TIME_PATTERN = /^\d{4}-\d\d-\d\d( \d\d:\d\d:\d\d|T\d\d:\d\d:\d\d(\.\d{1,9})?Z)$/;

function containsSecret(text: string): boolean {
  return redact(text) !== text;
}

/** Every way `n` breaks the schema, the limits or the severity rules; empty when it is valid. */
export function validateNotification(n: Notification): string[] {
  const problems: string[] = [];
  const bad = (field: string, value: unknown, allowed: string) =>
    problems.push(`${field} is ${JSON.stringify(value)}; allowed: ${allowed}`);
  if (n.schema !== NOTIFICATION_SCHEMA) bad('schema', n.schema, NOTIFICATION_SCHEMA);
  if (n.schemaVersion !== NOTIFICATION_SCHEMA_VERSION) bad('schemaVersion', n.schemaVersion, '1');
  const rule = SEVERITY_RULES[n.eventType];
  if (!rule) {
    bad('eventType', n.eventType, Object.keys(SEVERITY_RULES).join(', '));
    return problems;
  }
  if (!rule.severities.includes(n.severity)) bad('severity', n.severity, rule.severities.join(' or '));
  const e = n.event;
  if (e.severity !== SEVERITY_CODES[n.severity])
    bad('event.severity', e.severity, SEVERITY_CODES[n.severity]);
  if (e.source !== EVENT_SOURCE) bad('event.source', e.source, EVENT_SOURCE);
  if (e.type !== n.eventType) bad('event.type', e.type, n.eventType);
  if (rule.problemClass && e.resource !== rule.problemClass)
    bad('event.resource', e.resource, rule.problemClass);
  if (n.eventType === 'run-summary' && e.resource !== SUMMARY_CLASS)
    bad('event.resource', e.resource, SUMMARY_CLASS);
  if (n.eventType === 'problem-cleared' && !(PROBLEM_CLASSES as readonly string[]).includes(e.resource)) {
    bad('event.resource', e.resource, PROBLEM_CLASSES.join(', '));
  }
  if (e.resolution_state !== (n.severity === 'Clear' ? 'Closing' : 'New')) {
    bad('event.resolution_state', e.resolution_state, n.severity === 'Clear' ? 'Closing' : 'New');
  }
  for (const field of [
    'source',
    'node',
    'type',
    'resource',
    'message_key',
    'description',
    'time_of_event',
  ] as const) {
    const value = e[field];
    if (typeof value !== 'string' || value.length === 0) bad(`event.${field}`, value, 'a non-empty string');
    else if (value.length > LIMITS[field])
      bad(`event.${field}`, `${value.length} characters`, `at most ${LIMITS[field]}`);
  }
  if (!KEY_PATTERN.test(e.message_key)) {
    bad(
      'event.message_key',
      e.message_key,
      `${EVENT_SOURCE}:<account>:<region>:<instance id|fleet>:<problem class>`,
    );
  }
  if (n.instanceId && !e.message_key.includes(`:${n.instanceId}:`)) {
    bad('event.message_key', e.message_key, `a key naming instance ${n.instanceId}`);
  }
  if (!TIME_PATTERN.test(e.time_of_event))
    bad('event.time_of_event', e.time_of_event, 'yyyy-MM-dd HH:mm:ss (UTC)');
  if (typeof n.subject !== 'string' || n.subject.length === 0 || n.subject.length > LIMITS.subject) {
    bad('subject', n.subject, `one line of 1-${LIMITS.subject} characters`);
  } else if (/[\r\n]/.test(n.subject)) bad('subject', n.subject, 'a single line');
  if (typeof e.additional_info !== 'object' || e.additional_info === null) {
    bad('event.additional_info', e.additional_info, 'an object of string values');
  } else {
    for (const [key, value] of Object.entries(e.additional_info)) {
      if (!(ADDITIONAL_INFO_KEYS as readonly string[]).includes(key)) {
        bad(`event.additional_info.${key}`, key, ADDITIONAL_INFO_KEYS.join(', '));
      }
      if (typeof value !== 'string') bad(`event.additional_info.${key}`, value, 'a string');
      else if (value.length > LIMITS.additionalInfoValue) {
        bad(
          `event.additional_info.${key}`,
          `${value.length} characters`,
          `at most ${LIMITS.additionalInfoValue}`,
        );
      }
    }
    for (const key of ['account', 'region', 'event_type', 'schema_version'] as const) {
      if (!e.additional_info[key]) bad(`event.additional_info.${key}`, undefined, 'present');
    }
    if (JSON.stringify(e.additional_info).length > LIMITS.additionalInfoTotal) {
      bad('event.additional_info', 'its JSON', `at most ${LIMITS.additionalInfoTotal} characters`);
    }
  }
  const text = [n.subject, e.node, e.description, ...Object.values(e.additional_info ?? {})].join('\n');
  if (containsSecret(text)) bad('text', 'a credential-like value', 'no secrets (they are redacted)');
  return problems;
}

export function assertValidNotification(n: Notification): void {
  const problems = validateNotification(n);
  if (problems.length > 0) throw new NotificationSchemaError(problems);
}

/** SNS message attributes subscribers filter on (all String). */
export function messageAttributes(
  n: Notification,
): Record<string, { DataType: 'String'; StringValue: string }> {
  return {
    severity: { DataType: 'String', StringValue: n.severity },
    event_type: { DataType: 'String', StringValue: n.eventType },
    ...(n.instanceId ? { instance_id: { DataType: 'String', StringValue: n.instanceId } } : {}),
  };
}
