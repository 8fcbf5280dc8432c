/**
 * THE notification schema of ec2-consistent-backup: every message the system publishes to SNS is
 * built here, validated here, and documented in docs/notifications.md. Nothing else decides a
 * severity, a message key or a field length.
 *
 * The body is a JSON object whose `event` maps field for field onto ServiceNow Event Management's
 * `em_event` table, so a push connector only has to copy it. Limits are ServiceNow's documented
 * field lengths ("Event field format for event collection"): source, node, type, resource 100;
 * message_key 1024; description 4000; time_of_event 40. additional_info has no documented limit;
 * we cap each value and the whole object so one huge error cause cannot crowd out the rest.
 */

import type { Consistency, ConsistencyVerdict } from './consistency';
import {
  type DiscoverySummary,
  type ExcludedInstance,
  type ExclusionReason,
  MAX_FREEZE_VOLUMES,
  type WorkflowOutcome,
} from './outcome';

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
export type ProblemClass = 'thaw' | 'backup' | 'consistency' | 'window' | 'readiness' | 'discovery';
export const PROBLEM_CLASSES: readonly ProblemClass[] = [
  'thaw',
  'backup',
  'consistency',
  'window',
  'readiness',
  // Fleet-wide, not per instance: discovery itself failed (key `...:fleet:discovery`).
  'discovery',
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
  | 'crash-consistent-fallback'
  | 'backup-warnings'
  | 'vss-fallback'
  | 'skipped-active-job'
  | 'instance-not-ready'
  | 'discovery-not-invoked'
  | 'discovery-failed'
  | 'problem-cleared'
  | 'run-summary';

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
  // Published by the state machine itself (lib/workflow.ts) when record-outcome cannot run.
  'outcome-not-recorded': { severities: ['Major'], problemClass: 'backup', title: 'Outcome not recorded' },
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
  'log_group',
  'replay_command',
] as const;
export type AdditionalInfoKey = (typeof ADDITIONAL_INFO_KEYS)[number];
type Info = Partial<Record<AdditionalInfoKey, string | number | undefined>>;

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

function oneLine(text: string): string {
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
// Keys, nodes, links.

export function messageKey(accountId: string, region: string, node: string, problemClass: string): string {
  return truncate(`${EVENT_SOURCE}:${accountId}:${region}:${node}:${problemClass}`, LIMITS.message_key);
}

function instanceNode(instanceId: string, instanceName?: string): string {
  const name = instanceName ? oneLine(instanceName) : '';
  return truncate(name ? `${instanceId} (${name})` : instanceId, LIMITS.node);
}

function partitionOf(arn: string | undefined): string {
  return arn?.split(':')[1] || 'aws';
}

function consoleHost(region: string, partition: string): string {
  if (partition === 'aws-cn') return `${region}.console.amazonaws.cn`;
  if (partition === 'aws-us-gov') return `${region}.console.amazonaws-us-gov.com`;
  return `${region}.console.aws.amazon.com`;
}

/** Step Functions console page of an execution. */
export function executionLink(region: string, executionArn: string): string {
  return `https://${consoleHost(region, partitionOf(executionArn))}/states/home?region=${region}#/v2/executions/details/${executionArn}`;
}

/** AWS Backup console page of a backup job. */
export function backupJobLink(region: string, backupJobId: string, partition = 'aws'): string {
  return `https://${consoleHost(region, partition)}/backup/home?region=${region}#/jobs/backup/details/${backupJobId}`;
}

// ---------------------------------------------------------------------------------------------
// Assembly.

interface Parts {
  readonly eventType: NotificationEventType;
  readonly severity: Severity;
  readonly accountId: string;
  readonly region: string;
  readonly node: string;
  readonly instanceId?: string;
  readonly problemClass: string;
  readonly subject: string;
  readonly happened: string;
  readonly means: string;
  readonly todo: string;
  readonly info: Info;
  readonly now: Date;
}

function additionalInfo(info: Info): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of ADDITIONAL_INFO_KEYS) {
    const value = info[key];
    if (value === undefined || value === '') continue;
    out[key] = truncate(redact(String(value)), LIMITS.additionalInfoValue);
  }
  // Shorten the longest values first until the whole fits: free text goes before identifiers.
  const byLength = Object.keys(out).sort((a, b) => out[b].length - out[a].length);
  for (const key of byLength) {
    if (JSON.stringify(out).length <= LIMITS.additionalInfoTotal) break;
    out[key] = truncate(out[key], 200);
  }
  return out;
}

function assemble(p: Parts): Notification {
  const description = truncate(
    redact(`What happened: ${p.happened}\n\nWhat it means: ${p.means}\n\nWhat to do: ${p.todo}`),
    LIMITS.description,
  );
  const notification: Notification = {
    schema: NOTIFICATION_SCHEMA,
    schemaVersion: NOTIFICATION_SCHEMA_VERSION,
    eventType: p.eventType,
    severity: p.severity,
    subject: subjectLine(`[${p.severity}] ${p.subject}`),
    ...(p.instanceId ? { instanceId: p.instanceId } : {}),
    event: {
      source: EVENT_SOURCE,
      node: truncate(p.node, LIMITS.node),
      type: p.eventType,
      resource: p.problemClass,
      severity: SEVERITY_CODES[p.severity],
      message_key: messageKey(p.accountId, p.region, p.instanceId ?? FLEET_NODE, p.problemClass),
      time_of_event: glideTime(p.now),
      resolution_state: p.severity === 'Clear' ? 'Closing' : 'New',
      description,
      additional_info: additionalInfo({
        schema_version: String(NOTIFICATION_SCHEMA_VERSION),
        event_type: p.eventType,
        account: p.accountId,
        region: p.region,
        ...p.info,
      }),
    },
  };
  assertValidNotification(notification);
  return notification;
}

function describeInstance(id: string, name?: string): string {
  return name ? `${id} (${oneLine(name)})` : id;
}

function consistencyText(verdict: ConsistencyVerdict | undefined): string {
  if (!verdict) return 'no recovery point was made this window';
  return `${verdict.consistency}-consistent (${verdict.reason}; frozen ${verdict.freezeMs} ms)`;
}

function errorText(error: WorkflowOutcome['error']): string {
  return error ? `${error.error}: ${error.cause}` : 'no error detail was reported';
}

function outcomeInfo(o: WorkflowOutcome): Info {
  return {
    instance_id: o.instanceId,
    instance_name: o.instanceName,
    platform: o.platform,
    run_id: o.runId,
    window: o.window,
    execution_arn: o.executionArn,
    console_link: executionLink(o.region, o.executionArn),
    backup_job_id: o.backupJobId,
    backup_job_link: o.backupJobId
      ? backupJobLink(o.region, o.backupJobId, partitionOf(o.executionArn))
      : undefined,
    recovery_point_arn: o.recoveryPointArn,
    consistency: o.verdict?.consistency ?? 'none',
    consistency_reason: o.verdict?.reason,
    freeze_ms: o.verdict?.freezeMs,
    watchdog_thaw_by: o.watchdogThawBy,
    warnings: o.warnings.length > 0 ? o.warnings.join(' | ') : undefined,
    error: o.error?.error,
    cause: o.error?.cause,
  };
}

// ---------------------------------------------------------------------------------------------
// Builders: one per thing the system can report.

/**
 * The notification for one workflow outcome, or undefined when there is nothing to report per
 * instance (an application- or filesystem-consistent backup is only counted in the run summary).
 */
export function buildOutcomeNotification(o: WorkflowOutcome, now: Date): Notification | undefined {
  const who = describeInstance(o.instanceId, o.instanceName);
  const base = {
    accountId: o.accountId,
    region: o.region,
    node: instanceNode(o.instanceId, o.instanceName),
    instanceId: o.instanceId,
    info: outcomeInfo(o),
    now,
  };
  const backup = consistencyText(o.verdict);
  switch (o.outcome) {
    case 'thaw-failed': {
      const by = o.watchdogThawBy ?? 'the end of its configured watchdog period';
      return assemble({
        ...base,
        eventType: 'thaw-failed',
        severity: 'Critical',
        problemClass: 'thaw',
        // The risk first: a long Name tag may cut the subject's end.
        subject: `Thaw failed, filesystems may be frozen: ${who}`,
        happened: `The thaw of the data filesystems on ${who} failed after retries (${errorText(o.error)}). Execution ${o.executionArn}.`,
        means: `Writes to a frozen filesystem block: applications on this instance may hang until it is thawed. The on-instance watchdog thaws by itself by ${by}. The backup of this window is ${backup}.`,
        todo: `Now: check whether writes to the data filesystems of ${o.instanceId} hang (probe in the background: a write to a frozen filesystem blocks). If the watchdog time has passed and writes still hang, run "fsfreeze -u <mountpoint>" as root for each data filesystem, or send the thaw document again through SSM Run Command. Then find out why the thaw command failed (SSM agent health, the instance's console output) before the next window.`,
      });
    }
    case 'backup-start-failed':
      return assemble({
        ...base,
        eventType: 'backup-start-failed',
        severity: 'Major',
        problemClass: 'backup',
        subject: `Backup not started for ${who}`,
        happened: `AWS Backup StartBackupJob failed after retries for ${who} in window ${o.window} (${errorText(o.error)}). The filesystems were thawed.`,
        means:
          'This instance has no new recovery point for this window; its latest backup is older than the schedule promises.',
        todo: 'Read the error: throttling or a quota (concurrent backup jobs) clears by itself at the next window; an AccessDenied or a missing vault or KMS grant needs the backup role or vault fixed. Start an on-demand backup if the gap matters.',
      });
    case 'skipped-freeze-failed':
      return assemble({
        ...base,
        eventType: 'skipped-freeze-failed',
        severity: 'Major',
        problemClass: 'backup',
        subject: `Backup skipped for ${who}: freeze failed`,
        happened: `The freeze failed on ${who} (${errorText(o.error)}) and its OnFreezeFailure policy is "skip", so no backup was started in window ${o.window}.`,
        means: 'This instance has no new recovery point for this window. Nothing was left frozen.',
        todo: 'Read the error and the freeze command output in the execution. Fix the failing pre-freeze hook or filesystem, or set the ConsistentBackup:OnFreezeFailure tag to crash-consistent if a crash-consistent backup is acceptable for this instance.',
      });
    case 'skipped-active-job':
      return assemble({
        ...base,
        eventType: 'skipped-active-job',
        severity: 'Warning',
        problemClass: 'window',
        subject: `Backup window skipped for ${who}: a job is still running`,
        happened: `Another AWS Backup job for ${who} was still active at window ${o.window}, so this window was skipped without freezing.`,
        means: 'No new recovery point for this window; the running job will produce one when it completes.',
        todo: 'If this repeats, the backups take longer than the schedule interval: look at the running job in the AWS Backup console and widen the schedule, or check why jobs are slow.',
      });
    case 'backup-job-failed':
      // The same notification job-events builds for this job state: published under the same
      // event id (outcomeEventId), so whichever of the two comes first is the only alert.
      return buildJobNotification(
        {
          accountId: o.accountId,
          region: o.region,
          instanceId: o.instanceId,
          instanceName: o.instanceName,
          platform: o.platform,
          executionArn: o.executionArn,
          runId: o.runId,
          window: o.window,
          backupJobId: o.backupJobId ?? 'unknown',
          recoveryPointArn: o.recoveryPointArn,
          verdict: o.verdict ?? { consistency: 'crash', reason: 'the backup job failed', freezeMs: 0 },
        },
        jobFailureState(o.backupJobState),
        o.backupJobStatusMessage,
        now,
      );
    case 'backed-up': {
      if (o.verdict && o.verdict.consistency !== 'crash') {
        if (o.warnings.length === 0) return undefined;
        return assemble({
          ...base,
          eventType: 'backup-warnings',
          severity: 'Warning',
          problemClass: 'consistency',
          subject: `Backup of ${who} is ${o.verdict.consistency}-consistent, with warnings`,
          happened: `The backup of ${who} in window ${o.window} is ${backup}, but: ${o.warnings.join('; ')}`,
          means:
            o.verdict.consistency === 'filesystem'
              ? 'The filesystems were frozen, so the recovery point is filesystem-consistent, but not application-consistent: applications were not quiesced by their hooks.'
              : 'The recovery point has the consistency stated, but something on the way did not work as configured and may fail outright next time.',
          todo: 'Read the warnings; fix the failing hook or step on the instance before the next window.',
        });
      }
      // A warning that only restates the reason would say the same thing twice in the ticket.
      const reason = (o.verdict?.reason ?? 'no verdict was recorded').replace(/\.+$/, '');
      const extra = o.warnings.filter((w) => !w.includes(reason)).map((w) => w.replace(/\.+$/, ''));
      const warnings = extra.length > 0 ? ` Warnings: ${extra.join('; ')}.` : '';
      return assemble({
        ...base,
        eventType: 'crash-consistent-fallback',
        severity: 'Warning',
        problemClass: 'consistency',
        subject: `Backup of ${who} is only crash-consistent`,
        happened: `The backup of ${who} in window ${o.window} was made without a consistent freeze: ${reason}.${warnings}`,
        means:
          'The recovery point exists but restoring it is like recovering from a power cut: databases run crash recovery and recent writes may be lost. It is tagged ConsistentBackup:Consistency=crash.',
        todo: 'Read the reason: a failed pre-freeze hook, a freeze that failed or exceeded the freeze budget, or an unmapped volume. Fix it before the next window; keep an older application-consistent recovery point until then.',
      });
    }
  }
}

function jobFailureState(state: string | undefined): 'FAILED' | 'EXPIRED' | 'ABORTED' {
  return state === 'EXPIRED' || state === 'ABORTED' ? state : 'FAILED';
}

/**
 * The de-duplication id of an outcome's notification. A job that failed while frozen shares
 * job-events' id for that job state (`job:<id>:<state>`), so record-outcome and job-events together
 * publish it once; every other outcome is one event per execution.
 */
export function outcomeEventId(o: WorkflowOutcome): string {
  if (o.outcome === 'backup-job-failed' && o.backupJobId) {
    return `job:${o.backupJobId}:${jobFailureState(o.backupJobState)}`;
  }
  return o.executionArn;
}

const EXCLUSION_ADVICE: Readonly<Record<ExclusionReason, string>> = {
  'ssm-offline':
    'Start the SSM agent or restore its network path (VPC endpoints or internet access to ssm, ssmmessages, ec2messages).',
  'ssm-not-managed':
    'Attach an instance profile with AmazonSSMManagedInstanceCore (or equivalent) and make sure the SSM agent is installed.',
  'no-ebs-volumes': 'Only EBS-backed instances can be backed up; remove the opt-in tag if this is expected.',
  'invalid-tag': 'Correct the named tag value, or remove the tag to use the defaults.',
  'unsupported-state':
    'Instances are backed up only when running or stopped; this clears once the instance settles.',
  'unsupported-platform': 'Only Linux and Windows instances are supported; remove the opt-in tag.',
  'too-many-volumes': `Detach volumes this backup does not need, or back the instance up with a plain AWS Backup plan (crash-consistent); the freeze document takes at most ${MAX_FREEZE_VOLUMES} volumes.`,
  'stagger-limit':
    "Raise maxFrozenPerGroup or split the group (ConsistentBackup:Group tag) so that every wave starts within the workflow's stagger limit.",
};

/** The Minor notification for one instance discovery left out. */
export function buildExclusionNotification(
  summary: DiscoverySummary,
  excluded: ExcludedInstance,
  now: Date,
): Notification {
  const who = describeInstance(excluded.instanceId, excluded.instanceName);
  return assemble({
    eventType: 'instance-not-ready',
    severity: 'Minor',
    accountId: summary.accountId,
    region: summary.region,
    node: instanceNode(excluded.instanceId, excluded.instanceName),
    instanceId: excluded.instanceId,
    problemClass: 'readiness',
    subject: `${who} not ready for consistent backup: ${excluded.reason}`,
    happened: `${who} is opted in but was left out of window ${summary.window}: ${excluded.detail}`,
    means: 'This instance got no backup from ec2-consistent-backup this window.',
    todo: EXCLUSION_ADVICE[excluded.reason],
    info: {
      instance_id: excluded.instanceId,
      instance_name: excluded.instanceName,
      run_id: summary.runId,
      window: summary.window,
      exclusion_reason: excluded.reason,
      error: excluded.detail,
    },
    now,
  });
}

/** What job-events knows about a backup job this app started (stored at recordOutcome). */
export interface JobContext {
  readonly accountId: string;
  readonly region: string;
  readonly instanceId: string;
  readonly instanceName?: string;
  readonly platform: 'linux' | 'windows';
  readonly executionArn: string;
  readonly runId: string;
  readonly window: string;
  readonly backupJobId: string;
  readonly recoveryPointArn?: string;
  readonly verdict: ConsistencyVerdict;
}

function jobInfo(
  job: JobContext,
  state: string,
  statusMessage: string | undefined,
  final: Consistency,
): Info {
  return {
    instance_id: job.instanceId,
    instance_name: job.instanceName,
    platform: job.platform,
    run_id: job.runId,
    window: job.window,
    execution_arn: job.executionArn,
    console_link: backupJobLink(job.region, job.backupJobId, partitionOf(job.executionArn)),
    backup_job_id: job.backupJobId,
    backup_job_state: state,
    recovery_point_arn: job.recoveryPointArn,
    consistency: final,
    consistency_reason: job.verdict.reason,
    freeze_ms: job.verdict.freezeMs,
    error: statusMessage ? `Backup job ${state}` : undefined,
    cause: statusMessage,
  };
}

/** A backup job this app started ended FAILED, EXPIRED or ABORTED (Major) or PARTIAL (Warning). */
export function buildJobNotification(
  job: JobContext,
  state: 'FAILED' | 'EXPIRED' | 'ABORTED' | 'PARTIAL',
  statusMessage: string | undefined,
  now: Date,
): Notification {
  const who = describeInstance(job.instanceId, job.instanceName);
  const status = statusMessage ? ` AWS Backup says: ${statusMessage}` : '';
  const partial = state === 'PARTIAL';
  return assemble({
    eventType: partial ? 'backup-job-partial' : 'backup-job-failed',
    severity: partial ? 'Warning' : 'Major',
    accountId: job.accountId,
    region: job.region,
    node: instanceNode(job.instanceId, job.instanceName),
    instanceId: job.instanceId,
    problemClass: 'backup',
    subject: `Backup job ${state} for ${who}`,
    happened: `Backup job ${job.backupJobId} for ${who} (window ${job.window}) ended ${state}.${status}`,
    means: partial
      ? 'A recovery point exists but does not cover every resource of the instance; restore may miss volumes.'
      : 'There is no recovery point for this window. The instance is not left frozen: the thaw never waits for the backup job.',
    todo:
      state === 'EXPIRED'
        ? 'The job did not start within its start window, usually because another job for the instance was running or the account hit its concurrent-job quota. Check the running jobs and the quota.'
        : 'Open the job in the AWS Backup console (console_link) for the full status message; fix permissions, KMS grants or snapshot limits it names; start an on-demand backup if the gap matters.',
    info: jobInfo(job, state, statusMessage, job.verdict.consistency),
    now,
  });
}

/**
 * A job completed with a status message that is not a VSS fall-back ("Completed with issues" in
 * the console): the recovery point exists, but AWS Backup says something went wrong.
 */
export function buildCompletedWithIssuesNotification(
  job: JobContext,
  statusMessage: string,
  now: Date,
): Notification {
  const who = describeInstance(job.instanceId, job.instanceName);
  return assemble({
    eventType: 'backup-job-completed-with-issues',
    severity: 'Warning',
    accountId: job.accountId,
    region: job.region,
    node: instanceNode(job.instanceId, job.instanceName),
    instanceId: job.instanceId,
    problemClass: 'backup',
    subject: `Backup job for ${who} completed with issues`,
    happened: `Backup job ${job.backupJobId} for ${who} (window ${job.window}) completed, and AWS Backup says: ${statusMessage}`,
    means: `The recovery point exists and is labelled ${job.verdict.consistency}, but AWS Backup reports a problem that may affect it.`,
    todo: 'Read the status message in the AWS Backup console (console_link); check the recovery point before relying on it.',
    info: jobInfo(job, 'COMPLETED', statusMessage, job.verdict.consistency),
    now,
  });
}

/** A Windows job completed, but AWS Backup fell back from VSS to a regular (crash-consistent) backup. */
export function buildVssFallbackNotification(
  job: JobContext,
  statusMessage: string,
  now: Date,
): Notification {
  const who = describeInstance(job.instanceId, job.instanceName);
  return assemble({
    eventType: 'vss-fallback',
    severity: 'Warning',
    accountId: job.accountId,
    region: job.region,
    node: instanceNode(job.instanceId, job.instanceName),
    instanceId: job.instanceId,
    problemClass: 'consistency',
    subject: `Windows VSS fell back on ${who}: backup is crash-consistent`,
    happened: `Backup job ${job.backupJobId} for ${who} completed with issues: ${statusMessage}`,
    means:
      'AWS Backup could not take a VSS snapshot and took a regular one instead: the recovery point is crash-consistent, and has been relabelled ConsistentBackup:Consistency=crash.',
    todo: 'Check that AwsVssComponents is installed and current, the instance profile allows ec2:CreateSnapshots and ssm:SendCommand for VSS, and the VSS writers are healthy ("vssadmin list writers"). Instance types too small for VSS are listed in the AWS Backup guide.',
    info: {
      ...jobInfo(job, 'COMPLETED', statusMessage, 'crash'),
      consistency_reason: `Windows VSS fell back to a regular backup: ${statusMessage}`,
    },
    now,
  });
}

/** An open problem, as the notifier stores it. */
export interface OpenProblem {
  readonly accountId: string;
  readonly region: string;
  readonly instanceId: string;
  readonly instanceName?: string;
  readonly problemClass: ProblemClass;
  readonly eventType: NotificationEventType;
}

/** Closes one open problem: same message_key, severity Clear. */
export function buildClearNotification(problem: OpenProblem, job: JobContext, now: Date): Notification {
  const who = describeInstance(problem.instanceId, problem.instanceName ?? job.instanceName);
  return assemble({
    eventType: 'problem-cleared',
    severity: 'Clear',
    accountId: problem.accountId,
    region: problem.region,
    node: instanceNode(problem.instanceId, problem.instanceName ?? job.instanceName),
    instanceId: problem.instanceId,
    problemClass: problem.problemClass,
    subject: `Recovered: ${who} has ${job.verdict.consistency === 'application' ? 'an' : 'a'} ${job.verdict.consistency}-consistent backup again`,
    happened: `Backup job ${job.backupJobId} for ${who} (window ${job.window}) completed ${job.verdict.consistency}-consistent.`,
    means: `The earlier "${problem.eventType}" problem no longer affects this instance's backups.`,
    todo: 'Nothing. The alert closes with this event.',
    info: {
      ...jobInfo(job, 'COMPLETED', undefined, job.verdict.consistency),
      cleared_event_type: problem.eventType,
      cleared_by: job.backupJobId,
    },
    now,
  });
}

/** The counts of one run. */
export interface RunCounts {
  readonly runId: string;
  readonly window: string;
  readonly accountId: string;
  readonly region: string;
  /** Undefined when discovery never reported (it failed): the summary says so. */
  readonly discovered?: number;
  readonly excluded: Readonly<Partial<Record<ExclusionReason, number>>>;
  readonly started?: number;
  readonly finished: number;
  readonly application: number;
  readonly filesystem: number;
  readonly fellBack: number;
  readonly skipped: number;
  readonly failed: number;
}

/** One message per run: OK when every started instance got a consistent backup, Warning otherwise. */
export function buildRunSummaryNotification(
  counts: RunCounts,
  reason: 'finished' | 'deadline',
  now: Date,
): Notification {
  const excludedTotal = Object.values(counts.excluded).reduce((a, b) => a + (b ?? 0), 0);
  const excludedText =
    excludedTotal === 0
      ? '0'
      : `${excludedTotal} (${Object.entries(counts.excluded)
          .filter(([, n]) => (n ?? 0) > 0)
          .map(([r, n]) => `${r} ${n}`)
          .join(', ')})`;
  const unfinished = counts.started === undefined ? undefined : Math.max(0, counts.started - counts.finished);
  // A summary sent by the deadline is never OK: something did not report in time.
  const clean =
    reason === 'finished' &&
    counts.failed === 0 &&
    counts.fellBack === 0 &&
    counts.skipped === 0 &&
    (unfinished ?? 1) === 0 &&
    counts.discovered !== undefined;
  const severity: Severity = clean ? 'OK' : 'Warning';
  const started = counts.started ?? 'unknown (discovery did not report)';
  const line = `discovered ${counts.discovered ?? 'unknown'}, excluded ${excludedText}, started ${started}, application-consistent ${counts.application}, filesystem-consistent ${counts.filesystem}, fell back ${counts.fellBack}, skipped ${counts.skipped}, failed ${counts.failed}`;
  const deadline =
    reason === 'deadline'
      ? ` The summary deadline passed with ${unfinished ?? 'an unknown number of'} execution(s) unfinished.`
      : '';
  return assemble({
    eventType: 'run-summary',
    severity,
    accountId: counts.accountId,
    region: counts.region,
    node: `${counts.accountId}/${counts.region}`,
    problemClass: SUMMARY_CLASS,
    subject: `Run ${counts.window}: ${counts.application + counts.filesystem}/${started} consistent, ${counts.failed} failed, ${counts.fellBack} fell back`,
    happened: `Backup run for window ${counts.window}: ${line}.${deadline}`,
    means: clean
      ? 'Every started instance has a consistent recovery point for this window.'
      : 'Some instances have no consistent recovery point for this window; each has its own notification with the reason.',
    todo: clean
      ? 'Nothing.'
      : 'Work through the per-instance alerts (Critical first). Unfinished executions are visible in the Step Functions console.',
    info: {
      run_id: counts.runId,
      window: counts.window,
      summary_reason: reason,
      discovered: counts.discovered === undefined ? 'unknown' : counts.discovered,
      excluded: JSON.stringify(counts.excluded),
      started: counts.started === undefined ? 'unknown' : counts.started,
      finished: counts.finished,
      unfinished: unfinished === undefined ? 'unknown' : unfinished,
      application_consistent: counts.application,
      filesystem_consistent: counts.filesystem,
      fell_back: counts.fellBack,
      skipped: counts.skipped,
      failed: counts.failed,
    },
    now,
  });
}

/**
 * What a dead-letter message says about a discovery invocation that never ran or did not finish
 * (lambda/dead-letters reads both queue formats into this).
 */
export interface DiscoveryFailure {
  /**
   * `not-invoked`: EventBridge Scheduler could not invoke discovery (its dead-letter queue).
   * `failed`: an asynchronous invocation of discovery failed (its on-failure destination).
   */
  readonly kind: 'not-invoked' | 'failed';
  readonly accountId: string;
  readonly region: string;
  /** The discovery function (unqualified ARN). */
  readonly functionArn: string;
  /** The window, ISO-8601 UTC, when the payload carried a valid scheduled time. */
  readonly window?: string;
  readonly runId?: string;
  readonly scheduleArn?: string;
  /** Set when the failed invocation was a hand-over: its number and where it was to resume. */
  readonly handOver?: { readonly invocation: number; readonly afterKey: string };
  /** Lambda's request id of the failed invocation (`failed` only). */
  readonly requestId?: string;
  /** Lambda's condition (RetriesExhausted, EventAgeExceeded) or Scheduler's attempt note. */
  readonly condition?: string;
  readonly error: string;
  readonly cause: string;
  /** The exact payload to invoke discovery with again, as one line of JSON. */
  readonly payload: string;
  /** When the failure was recorded, ISO-8601. */
  readonly failedAt?: string;
  /** The discovery function's log group. */
  readonly logGroupName: string;
  /** Where the dead-letters function logged the full payload when it is too long to quote. */
  readonly payloadLog: { readonly logGroupName: string; readonly messageId: string };
}

/** Payloads longer than this are not quoted in the description (it would crowd out the rest). */
export const REPLAY_PAYLOAD_INLINE_MAX = 1500;

/** `s` as one single-quoted POSIX shell word. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command that re-runs discovery with `payload`. Asynchronous (`--invocation-type Event`), as
 * Scheduler and the hand-over invoke it: a synchronous call would hold the CLI for up to 15
 * minutes, and a failure lands in the same queue again and is reported again.
 */
export function replayCommand(region: string, functionArn: string, payload: string): string {
  return `aws lambda invoke --region ${region} --function-name ${functionArn} --invocation-type Event --cli-binary-format raw-in-base64-out --payload ${shellQuote(payload)} /dev/null`;
}

// Commands in the text stand on lines of their own: punctuation glued to a quoted word would
// become part of it when pasted into a shell.
function logSearchCommand(region: string, logGroupName: string, term: string): string {
  return `aws logs filter-log-events --region ${region} --log-group-name ${shellQuote(logGroupName)} --filter-pattern ${shellQuote(`"${term}"`)}`;
}

/** One Major per failed discovery invocation, on the fleet's `discovery` key. */
export function buildDiscoveryFailureNotification(f: DiscoveryFailure, now: Date): Notification {
  const windowText = f.window
    ? `window ${f.window}`
    : 'an unknown window (the payload had no valid scheduledTime)';
  const run = f.runId ? `run ${f.runId}, ` : '';
  // Trailing periods dropped: the text goes on after it.
  const error = `${truncate(oneLine(f.error), 200)}: ${truncate(oneLine(f.cause), 600).replace(/[.\s]+$/, '')}`;
  const inline = f.payload.length <= REPLAY_PAYLOAD_INLINE_MAX;
  const command = replayCommand(f.region, f.functionArn, inline ? f.payload : '<payload>');
  const closing =
    'This alert does not close by itself: resolve it once the re-run has reported (its run summary counts the instances started).';
  const rerun =
    'Then re-run discovery for the window with the payload of the failed invocation; this is safe, because execution names are fixed per instance and window, so instances already started are found and not started twice.';
  const replay = inline
    ? `${rerun} ${closing} The command:\n${command}`
    : `${rerun} The payload is ${f.payload.length} characters, too long to quote here; the dead-letters function logged it under message id ${f.payloadLog.messageId}:\n${logSearchCommand(f.region, f.payloadLog.logGroupName, f.payloadLog.messageId)}\n${closing} The command, with that payload in place of <payload>:\n${command}`;
  const info: Info = {
    run_id: f.runId,
    window: f.window,
    function_arn: f.functionArn,
    schedule_arn: f.scheduleArn,
    request_id: f.requestId,
    invocation: f.handOver ? f.handOver.invocation : f.kind === 'failed' ? 1 : undefined,
    cursor: f.handOver?.afterKey,
    failure_condition: f.condition,
    log_group: f.logGroupName,
    error: f.error,
    cause: f.cause,
    // A cut command would run something else: only a whole one goes in.
    replay_command: inline && command.length <= LIMITS.additionalInfoValue ? command : undefined,
  };
  const base = {
    severity: 'Major' as const,
    accountId: f.accountId,
    region: f.region,
    node: `${f.accountId}/${f.region}`,
    problemClass: 'discovery' as const,
    info,
    now,
  };
  if (f.kind === 'not-invoked') {
    return assemble({
      ...base,
      eventType: 'discovery-not-invoked',
      subject: `Discovery not invoked for ${f.window ?? 'a window'}: no backups started`,
      happened: `EventBridge Scheduler could not invoke the discovery function ${f.functionArn} for ${windowText} (${run}schedule ${f.scheduleArn ?? 'unknown'}) after its retries: ${error}.${f.failedAt ? ` Recorded at ${f.failedAt}.` : ''}`,
      means:
        'Discovery did not run for this window: no opted-in instance was started, so the backup for every one of them did not happen this window, and no run summary will come for it.',
      todo: `Read the error code: AccessDenied means the schedule's role lost lambda:InvokeFunction (redeploy the stack); ResourceNotFound means the function is gone (redeploy); throttling (TooManyRequestsException) means the account's Lambda concurrency was exhausted. ${replay}`,
    });
  }
  const what = f.handOver
    ? `Hand-over invocation ${f.handOver.invocation} of discovery for ${windowText} (${run}resuming after cursor ${JSON.stringify(f.handOver.afterKey)})`
    : `The discovery run for ${windowText} (${run}first invocation)`;
  const never = f.condition === 'EventAgeExceeded';
  const logs = f.requestId
    ? `Look at the discovery function's log for request id ${f.requestId}:\n${logSearchCommand(f.region, f.logGroupName, f.requestId)}\nFix what it shows (an IAM or quota error, a timeout, an invalid tag the code rejects).`
    : `Look at the discovery function's log group ${f.logGroupName} around ${f.failedAt ?? 'the failure time'}.`;
  return assemble({
    ...base,
    eventType: 'discovery-failed',
    subject: f.handOver
      ? `Discovery hand-over ${f.handOver.invocation} failed for ${f.window ?? 'a window'}: instances not started`
      : `Discovery failed for ${f.window ?? 'a window'}: instances not started`,
    happened: never
      ? `${what} was dropped by Lambda before it ran (EventAgeExceeded: it waited in the asynchronous queue longer than its maximum event age, usually because the function was throttled). ${error}.`
      : `${what} failed${f.condition ? ` (${f.condition})` : ''}: ${error}.${f.failedAt ? ` Recorded at ${f.failedAt}.` : ''}`,
    means: f.handOver
      ? 'Instances this invocation did not start, and all those later hand-overs would have started, were not started this window: the backup for them did not happen. Instances started by this or earlier invocations run and report as usual.'
      : 'Instances this invocation did not start (all of them if it failed early, or those its error names) were not started this window: the backup for them did not happen. Instances it did start run and report as usual.',
    todo: `${logs} ${replay}`,
  });
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
