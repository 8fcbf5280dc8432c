/**
 * How the workflow's functions call AWS inside a time limit: the clock they run on (a parameter, so
 * tests and simulators run on virtual time), one call abandoned at its limit (callWithin), the
 * error classes that decide a retry (throttled: refused, safe to send again; ambiguous: may have
 * taken effect, look it up first), and jittered backoff and poll schedules.
 */

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
  /**
   * A timer that bounds one call: `done` resolves after `ms` unless `cancel` came first. Optional:
   * without it only the SDK's own request timeout (CLIENT_CONFIG) bounds a call that hangs.
   */
  timer?(ms: number): { readonly done: Promise<void>; cancel(): void };
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  timer: (ms) => {
    let handle: ReturnType<typeof setTimeout> | undefined;
    const done = new Promise<void>((resolve) => {
      handle = setTimeout(resolve, ms);
    });
    return { done, cancel: () => clearTimeout(handle) };
  },
};

/**
 * The SDK client settings of every function on the freeze path: a connection within 2 s, no socket
 * silent for 5 s, and no SDK retries. The functions retry themselves, with jittered backoff and
 * inside the freeze budget: the SDK's retries would be invisible to the budget, and a retried
 * SendCommand (which has no idempotency token) could freeze twice.
 */
export const CLIENT_CONFIG = {
  maxAttempts: 1,
  requestHandler: { connectionTimeout: 2000, requestTimeout: 5000 },
} as const;

/**
 * A call got no answer within its time limit and was abandoned (its request aborted). Ambiguous: the
 * request may have reached AWS and taken effect.
 */
export class CallTimedOut extends Error {
  override readonly name = 'CallTimedOut';
}

/**
 * Runs one SDK call, abandoning it after `ms`: the request is aborted through its signal and the
 * caller gets CallTimedOut at that moment, whatever the connection does. This is what keeps a hung
 * call inside the freeze budget; the clients' requestTimeout (CLIENT_CONFIG) is the second line.
 */
export async function callWithin<T>(
  clock: Clock,
  ms: number,
  call: (abortSignal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const limit = Math.max(0, Math.round(ms));
  const timer = clock.timer?.(limit);
  try {
    let answer: Promise<T>;
    try {
      answer = Promise.resolve(call(controller.signal));
    } catch (err) {
      answer = Promise.reject(err);
    }
    if (!timer) return await answer;
    // The losing side must not become an unhandled rejection.
    answer.catch(() => undefined);
    return await Promise.race([
      answer,
      timer.done.then((): never => {
        controller.abort();
        throw new CallTimedOut(`no answer within ${limit} ms; the request was abandoned`);
      }),
    ]);
  } finally {
    timer?.cancel();
  }
}

/**
 * Time limits of one call (ms). A poll is abandoned after POLL_CALL_MS and simply polled again; a
 * call that may change something (SendCommand, StartBackupJob) gets a little longer, and an
 * abandoned one is resolved by a look-up, never by a blind resend. After the freeze every limit is
 * also cut to the time left of the budget.
 */
export const POLL_CALL_MS = 3000;
export const MUTATING_CALL_MS = 5000;

/** A request a function could not accept; the message names the field and what is allowed. */
export class StepInputError extends Error {
  override readonly name = 'StepInputError';
}

export function errorName(err: unknown): string {
  return err instanceof Error ? err.name : 'Error';
}

/** Errors worth another try inside the same invocation: throttling, 5xx, network, a call abandoned. */
export function isTransient(err: unknown): boolean {
  const e = err as { name?: string; $retryable?: unknown; $metadata?: { httpStatusCode?: number } };
  if (e?.$retryable) return true;
  if ((e?.$metadata?.httpStatusCode ?? 0) >= 500) return true;
  return /Throttl|RequestLimitExceeded|TooManyRequests|ServiceUnavailable|InternalServer|InternalError|TimeoutError|RequestTimeout|CallTimedOut|AbortError|ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|NetworkingError/i.test(
    errorName(err),
  );
}

/** The request was refused before it did anything: throttling. Safe to send again. */
export function isThrottle(err: unknown): boolean {
  return /Throttl|TooManyRequests|RequestLimitExceeded|SlowDown/i.test(errorName(err));
}

/**
 * A failure after which the request may still have taken effect: a 5xx, a timeout, a network error,
 * a call abandoned. Not throttling (refused), not a 4xx (rejected).
 */
export function isAmbiguous(err: unknown): boolean {
  return isTransient(err) && !isThrottle(err);
}

/** Full jitter: a random delay up to base·2^attempt, capped. */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  return Math.round(random() * Math.min(capMs, baseMs * 2 ** attempt));
}

/**
 * When to poll next: every `fastMs` for the first `fastForMs` of a wait (while the answer is most
 * likely to arrive and every poll shortens a freeze), every `slowMs` after, each delay within
 * ±`jitter` of its base so that executions started in the same second do not poll in lockstep.
 */
export interface PollSchedule {
  readonly fastMs: number;
  readonly fastForMs: number;
  readonly slowMs: number;
  /** Fraction of the base delay, e.g. 0.2 for ±20 %. */
  readonly jitter: number;
}

/** The delay before the next poll, `elapsedMs` into the wait; `slowOnly` after a throttle. */
export function pollDelayMs(
  schedule: PollSchedule,
  elapsedMs: number,
  random: () => number,
  slowOnly = false,
): number {
  const base = !slowOnly && elapsedMs < schedule.fastForMs ? schedule.fastMs : schedule.slowMs;
  return Math.round(base * (1 - schedule.jitter + 2 * schedule.jitter * random()));
}

/** A Date or an ISO string as epoch ms; undefined for anything else. */
export function toMs(value: unknown): number | undefined {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}

/** Validation helpers: each names the field, the value and what is allowed. */
export function positive(field: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > max) {
    throw new StepInputError(
      `Invalid ${field}: got ${JSON.stringify(value)}; allowed: a number from 0 to ${max}.`,
    );
  }
  return value;
}

export function matching(
  e: Record<string, unknown>,
  field: string,
  pattern: RegExp,
  allowed: string,
): string {
  const value = e[field];
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw new StepInputError(`Invalid ${field}: got ${JSON.stringify(value)}; allowed: ${allowed}.`);
  }
  return value;
}

export const VOLUME_ID = /^vol-[0-9a-f]{8,17}$/;
export const INSTANCE_ID = /^(i|mi)-[0-9a-f]{8,17}$/;
export const INSTANCE_ARN = /^arn:aws[a-z-]*:ec2:[a-z0-9-]+:\d{12}:instance\/i-[0-9a-f]+$/;
export const EXECUTION_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
