/**
 * Forwards each notification to ServiceNow Event Management's inbound event web service, so no
 * credential sits in the template (the SNS HTTPS subscription's URL would carry it).
 *
 * The request is the one ServiceNow documents in "Pushing events to the instance using web service
 * API" (Event Management, push connectors): `POST https://<instance>.service-now.com/api/global/em/jsonv2`
 * with `Content-Type` and `Accept` `application/json`, basic authentication of a user with the
 * evt_mgmt_integration role, and `{"records": [event, ...]}`, each event with source,
 * event_class, node, resource, type, severity ("0" Clear, "1" Critical ... "5" OK), message_key,
 * description, time_of_event (`yyyy-MM-dd HH:mm:ss`, GMT), resolution_state (`New` or `Closing`)
 * and additional_info as a JSON string. Field lengths follow "Event field format for event
 * collection" (the LIMITS of lambda/shared/notification.ts).
 *
 * Delivery: each message is posted on its own, retried with exponential backoff and full jitter
 * (honouring Retry-After) on 408, 429, 5xx, a timeout or a network error, while the invocation has
 * time. What still fails goes back to the queue, which redelivers it later and, after its receive
 * limit, moves it to the dead-letter queue. What can never succeed as it is (a 4xx such as 400 or
 * 401, a message that is not a notification, a secret not filled in) goes to the dead-letter queue
 * at once with the reason, so its alarm fires without waiting for the retries.
 */

import {
  EVENT_SOURCE,
  LIMITS,
  type Notification,
  NOTIFICATION_SCHEMA,
  SEVERITY_CODES,
} from '../shared/notification';
import { credentialsProblem, INBOUND_EVENT_PATH, type ServiceNowCredentials } from './settings';

/** One record of the inbound event web service's `records` array. */
export interface InboundEvent {
  readonly source: string;
  readonly event_class: string;
  readonly node: string;
  readonly resource: string;
  readonly type: string;
  readonly severity: string;
  readonly message_key: string;
  readonly description: string;
  readonly time_of_event: string;
  readonly resolution_state: 'New' | 'Closing';
  /** Stringified JSON, as the API wants it. */
  readonly additional_info: string;
}

/** Something that will fail the same way however often it is retried. */
export class PermanentDeliveryError extends Error {
  override readonly name = 'PermanentDeliveryError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Something that may work later: the queue redelivers it. */
export class TransientDeliveryError extends Error {
  override readonly name = 'TransientDeliveryError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

const SEVERITY_CODE_VALUES = new Set(Object.values(SEVERITY_CODES));

/** A CloudWatch alarm's state change as it publishes it to SNS (lib/monitoring.ts's alarms). */
export interface AlarmMessage {
  readonly AlarmName: string;
  readonly AlarmDescription?: string | null;
  readonly AWSAccountId?: string;
  readonly Region?: string;
  readonly AlarmArn?: string;
  readonly NewStateValue: 'ALARM' | 'OK' | 'INSUFFICIENT_DATA';
  readonly NewStateReason?: string;
  readonly OldStateValue?: string;
  readonly StateChangeTime?: string;
}

/** What a queue message carries: one of ours, or a state change of one of the stack's alarms. */
export type TopicMessage =
  | { readonly kind: 'notification'; readonly notification: Notification }
  | { readonly kind: 'alarm'; readonly alarm: AlarmMessage };

/** Reads an SQS message body: raw delivery, or the SNS envelope around it. */
export function topicMessageOf(body: string): TopicMessage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new PermanentDeliveryError(`The message is not JSON: ${body.slice(0, 200)}`);
  }
  const envelope = parsed as { Type?: unknown; Message?: unknown };
  if (envelope && envelope.Type === 'Notification' && typeof envelope.Message === 'string') {
    return topicMessageOf(envelope.Message);
  }
  const alarm = parsed as Partial<AlarmMessage>;
  if (typeof alarm?.AlarmName === 'string' && typeof alarm.NewStateValue === 'string') {
    return { kind: 'alarm', alarm: alarm as AlarmMessage };
  }
  const n = parsed as Partial<Notification>;
  if (n?.schema !== NOTIFICATION_SCHEMA || typeof n.event !== 'object' || n.event === null) {
    throw new PermanentDeliveryError(
      `The message is neither an ${NOTIFICATION_SCHEMA} notification nor a CloudWatch alarm: ${body.slice(0, 200)}`,
    );
  }
  return { kind: 'notification', notification: n as Notification };
}

/** The notification in a body (tests, and callers that only expect ours). */
export function notificationOf(body: string): Notification {
  const message = topicMessageOf(body);
  if (message.kind !== 'notification') throw new PermanentDeliveryError('The message is a CloudWatch alarm');
  return message.notification;
}

const cut = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 3)}...`);

/**
 * The event for an alarm's state change: ALARM opens a Major alert keyed by the alarm, OK closes it
 * (Clear, Closing); INSUFFICIENT_DATA says nothing an operator acts on, so it is not sent.
 */
export function alarmToInboundEvent(alarm: AlarmMessage): InboundEvent | undefined {
  if (alarm.NewStateValue !== 'ALARM' && alarm.NewStateValue !== 'OK') return undefined;
  const account = alarm.AWSAccountId ?? 'unknown';
  const region = alarm.AlarmArn?.split(':')[3] ?? 'unknown';
  const ok = alarm.NewStateValue === 'OK';
  return {
    source: EVENT_SOURCE,
    event_class: cut(`${EVENT_SOURCE} ${account}/${region}`, 100),
    node: cut(`${account}/${region}`, LIMITS.node),
    resource: cut(alarm.AlarmName, LIMITS.resource),
    type: 'cloudwatch-alarm',
    severity: ok ? SEVERITY_CODES.Clear : SEVERITY_CODES.Major,
    message_key: cut(`${EVENT_SOURCE}:${account}:${region}:alarm:${alarm.AlarmName}`, LIMITS.message_key),
    description: cut(
      `${ok ? 'Back to OK' : 'In ALARM'}: ${alarm.AlarmName}. ${alarm.AlarmDescription ?? ''}\n\n${alarm.NewStateReason ?? ''}`.trim(),
      LIMITS.description,
    ),
    time_of_event: gmtTime(alarm.StateChangeTime ?? new Date().toISOString()),
    resolution_state: ok ? 'Closing' : 'New',
    additional_info: JSON.stringify({
      event_type: 'cloudwatch-alarm',
      account,
      region,
      alarm_arn: alarm.AlarmArn ?? '',
      old_state: alarm.OldStateValue ?? '',
      new_state: alarm.NewStateValue,
    }),
  };
}

/** ServiceNow's `yyyy-MM-dd HH:mm:ss` in GMT, from either form the schema carries. */
export function gmtTime(timeOfEvent: string): string {
  if (/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(timeOfEvent)) return timeOfEvent;
  // CloudWatch writes `2026-11-22T02:05:07.123+0000`.
  const date = new Date(timeOfEvent.replace(/([+-]\d\d)(\d\d)$/, '$1:$2'));
  if (!/^\d{4}-\d\d-\d\dT/.test(timeOfEvent) || Number.isNaN(date.getTime())) {
    throw new PermanentDeliveryError(`time_of_event ${JSON.stringify(timeOfEvent)} is not a date and time`);
  }
  return date
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, '');
}

function within(field: string, value: unknown, max: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw new PermanentDeliveryError(
      `${field} ${JSON.stringify(value)?.slice(0, 120)} is not a string of 1-${max} characters`,
    );
  }
  return value;
}

/** The record the inbound event web service takes for this notification. */
export function toInboundEvent(n: Notification): InboundEvent {
  const e = n.event;
  const account = e.additional_info?.account ?? 'unknown';
  const region = e.additional_info?.region ?? 'unknown';
  if (!SEVERITY_CODE_VALUES.has(e.severity)) {
    throw new PermanentDeliveryError(`severity ${JSON.stringify(e.severity)} is not one of 0-5`);
  }
  if (e.resolution_state !== 'New' && e.resolution_state !== 'Closing') {
    throw new PermanentDeliveryError(
      `resolution_state ${JSON.stringify(e.resolution_state)} is not New or Closing`,
    );
  }
  return {
    source: within('source', e.source, LIMITS.source),
    // "Specific instance of the source": this deployment, one per account and region.
    event_class: within('event_class', `${EVENT_SOURCE} ${account}/${region}`.slice(0, 100), 100),
    node: within('node', e.node, LIMITS.node),
    resource: within('resource', e.resource, LIMITS.resource),
    type: within('type', e.type, LIMITS.type),
    severity: e.severity,
    message_key: within('message_key', e.message_key, LIMITS.message_key),
    description: within('description', e.description, LIMITS.description),
    time_of_event: gmtTime(within('time_of_event', e.time_of_event, LIMITS.time_of_event)),
    resolution_state: e.resolution_state,
    additional_info: JSON.stringify(e.additional_info ?? {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Posting with retries.

export interface DeliveryDeps {
  readonly credentials: () => Promise<unknown>;
  /** `fetch`, or a stand-in with the same contract. */
  readonly fetch: typeof fetch;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
  /** Milliseconds left in the invocation (Lambda's getRemainingTimeInMillis). */
  readonly remainingMs: () => number;
}

export interface RetryPolicy {
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** One request's timeout. */
  readonly requestTimeoutMs: number;
  /** Time kept back at the end of the invocation for handing failures back. */
  readonly reserveMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 4,
  baseDelayMs: 500,
  maxDelayMs: 8000,
  requestTimeoutMs: 8000,
  reserveMs: 3000,
};

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Retry-After in milliseconds (seconds or an HTTP date), when present and sensible. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

export interface Delivered {
  readonly status: number;
  readonly attempts: number;
}

/**
 * Posts one event, retrying what may succeed later. Resolves when ServiceNow accepted it; throws
 * PermanentDeliveryError or TransientDeliveryError otherwise.
 */
export async function postEvent(
  record: InboundEvent,
  deps: DeliveryDeps,
  policy: RetryPolicy = DEFAULT_RETRY,
): Promise<Delivered> {
  const secret = await deps.credentials();
  const problem = credentialsProblem(secret);
  if (problem) throw new PermanentDeliveryError(`ServiceNow secret not usable: ${problem}`);
  const credentials = secret as ServiceNowCredentials;
  const url = new URL(INBOUND_EVENT_PATH, credentials.instanceUrl).toString();
  const headers = {
    Accept: 'application/json',
    'Content-Type': 'application/json',
    Authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`,
  };
  const body = JSON.stringify({ records: [record] });
  const sleep = deps.sleep ?? realSleep;
  const random = deps.random ?? Math.random;

  let last: TransientDeliveryError | undefined;
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    if (deps.remainingMs() < policy.requestTimeoutMs + policy.reserveMs) {
      throw (
        last ??
        new TransientDeliveryError('No time left in this invocation to post; the queue redelivers it.')
      );
    }
    let retryAfter: number | undefined;
    try {
      const response = await deps.fetch(url, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(policy.requestTimeoutMs),
      });
      const text = await response.text();
      if (response.ok) return { status: response.status, attempts: attempt };
      const detail = `ServiceNow answered ${response.status} to ${url}: ${text.slice(0, 300)}`;
      if (!isRetryableStatus(response.status)) {
        const hint =
          response.status === 401 || response.status === 403
            ? ' (check the user and password in the secret, and that the user has the evt_mgmt_integration role)'
            : '';
        throw new PermanentDeliveryError(`${detail}${hint}`, response.status);
      }
      last = new TransientDeliveryError(detail, response.status);
      retryAfter = retryAfterMs(response.headers.get('retry-after'));
    } catch (err) {
      if (err instanceof PermanentDeliveryError) throw err;
      if (!(err instanceof TransientDeliveryError)) {
        const e = err as Error;
        last = new TransientDeliveryError(`Posting to ${url} failed: ${e.name}: ${e.message}`);
      }
    }
    if (attempt === policy.attempts) break;
    const backoff = random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
    const wait = Math.min(Math.max(backoff, retryAfter ?? 0), policy.maxDelayMs * 2);
    if (deps.remainingMs() < wait + policy.requestTimeoutMs + policy.reserveMs) break;
    await sleep(wait);
  }
  throw last ?? new TransientDeliveryError(`Posting to ${url} failed`);
}
