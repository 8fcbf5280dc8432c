/**
 * How every message is put together from what its builder decides: the em_event fields, the
 * description's three parts, additional_info within its limits, the node and console links, and
 * validation against the schema (../notification.ts) before anything leaves.
 */

import {
  ADDITIONAL_INFO_KEYS,
  type AdditionalInfo,
  assertValidNotification,
  EVENT_SOURCE,
  FLEET_NODE,
  glideTime,
  LIMITS,
  messageKey,
  NOTIFICATION_SCHEMA,
  NOTIFICATION_SCHEMA_VERSION,
  type Notification,
  type NotificationEventType,
  oneLine,
  redact,
  SEVERITY_CODES,
  type Severity,
  subjectLine,
  truncate,
} from '../notification';

/** em_event.node of an instance: its id and Name tag, within the node limit. */
export function instanceNode(instanceId: string, instanceName?: string): string {
  const name = instanceName ? oneLine(instanceName) : '';
  return truncate(name ? `${instanceId} (${name})` : instanceId, LIMITS.node);
}

/** The partition an ARN is in (aws, aws-cn, aws-us-gov); aws when there is no ARN. */
export function partitionOf(arn: string | undefined): string {
  return arn?.split(':')[1] || 'aws';
}

/** The AWS console's host name for a Region and partition. */
export function consoleHost(region: string, partition: string): string {
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

/** What a builder decides; assemble() derives the rest of the message from it. */
export interface Parts {
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
  readonly info: AdditionalInfo;
  readonly now: Date;
}

function additionalInfo(info: AdditionalInfo): Record<string, string> {
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

/** The validated notification for `p`: throws NotificationSchemaError rather than send a broken one. */
export function assemble(p: Parts): Notification {
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

/** An instance as the text names it: its id, with its Name tag when it has one. */
export function describeInstance(id: string, name?: string): string {
  return name ? `${id} (${oneLine(name)})` : id;
}
