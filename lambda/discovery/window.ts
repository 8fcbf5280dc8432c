/**
 * The schedule window and the names derived from it. Everything here is a function of the
 * window alone, never of "now", so every retry and every hand-over of one window produces the
 * same execution names and the same inputs.
 */

export class InvalidEventError extends Error {
  override readonly name = 'InvalidEventError';
}

/** Step Functions execution names: at most 80 characters of this set. */
const EXECUTION_NAME = /^[A-Za-z0-9_-]{1,80}$/;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;

/** The window: the scheduled time truncated to the minute, so a schedule's jitter of seconds never changes it. */
export function windowFromScheduledTime(scheduledTime: unknown): Date {
  if (typeof scheduledTime !== 'string' || !ISO_UTC.test(scheduledTime)) {
    throw new InvalidEventError(
      `Invalid event "scheduledTime": got ${JSON.stringify(scheduledTime)}; allowed: an ISO-8601 time with a zone, such as 2026-11-22T02:00:00Z (EventBridge Scheduler's <aws.scheduler.scheduled-time>).`,
    );
  }
  const ms = Date.parse(scheduledTime);
  if (Number.isNaN(ms)) {
    throw new InvalidEventError(
      `Invalid event "scheduledTime": got ${JSON.stringify(scheduledTime)}; allowed: a real calendar time such as 2026-11-22T02:00:00Z.`,
    );
  }
  return new Date(Math.floor(ms / 60_000) * 60_000);
}

/** `2026-11-22T02:00:00Z` */
export function windowIso(window: Date): string {
  return window.toISOString().replace('.000Z', 'Z');
}

/** `20261122T0200Z`: compact, sortable, and legal in execution names. */
export function windowStamp(window: Date): string {
  const iso = window.toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}Z`;
}

/** One run per window; notifications group a run's outcomes by this id. */
export function runIdFor(window: Date): string {
  return `run-${windowStamp(window)}`;
}

/** `<instanceId>-<yyyymmddThhmmZ>`: the same instance and window always give the same name. */
export function executionName(instanceId: string, window: Date): string {
  const name = `${instanceId}-${windowStamp(window)}`;
  if (!EXECUTION_NAME.test(name)) {
    // Instance ids are i- plus 8 or 17 hex digits, so this only fires on a corrupted id.
    throw new InvalidEventError(`Execution name ${JSON.stringify(name)} is not a valid Step Functions name.`);
  }
  return name;
}
