/**
 * Client-side pacing: a token bucket that mirrors a service's own throttle, a concurrency limit,
 * and exponential backoff with full jitter for what gets throttled anyway.
 */

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
};

/**
 * Token bucket by reservation: each take() books the next free token and sleeps until it is due,
 * so concurrent callers are served in order instead of all waking together and racing.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly capacity: number,
    private readonly ratePerSecond: number,
    private readonly clock: Clock = realClock,
    /** Tokens available at once. @default capacity (a full bucket) */
    initialTokens?: number,
  ) {
    if (!(capacity >= 1) || !(ratePerSecond > 0)) {
      throw new RangeError(
        `TokenBucket needs capacity >= 1 and rate > 0; got ${capacity} and ${ratePerSecond}`,
      );
    }
    this.tokens = Math.max(0, Math.min(capacity, initialTokens ?? capacity));
    this.last = clock.now();
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.ratePerSecond);
    this.last = now;
  }

  /** Resolves when the caller may send one request. */
  async take(): Promise<void> {
    this.refill();
    this.tokens -= 1;
    if (this.tokens >= 0) return;
    await this.clock.sleep((-this.tokens / this.ratePerSecond) * 1000);
  }

  /**
   * The service said we were too fast (it shares the quota with other callers): give up any burst
   * we believed we had, so the next requests come at the refill rate.
   */
  drain(): void {
    this.refill();
    if (this.tokens > 0) this.tokens = 0;
  }
}

/** At most `limit` of the given tasks run at once; results keep their order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Exponential backoff with full jitter: uniform in [0, min(cap, base·2^attempt)). */
export function fullJitterDelay(
  attempt: number,
  baseMs: number,
  capMs: number,
  random: () => number,
): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** attempt));
}

/** Errors worth another try: throttling, server faults, and the network. */
export function isRetryable(err: unknown): boolean {
  if (isThrottle(err)) return true;
  const e = err as { name?: string; $fault?: string; $retryable?: unknown; code?: string };
  if (e?.$fault === 'server' || e?.$retryable) return true;
  const transient = [
    'InternalServerError',
    'InternalFailure',
    'ServiceUnavailable',
    'ServiceUnavailableException',
    'TimeoutError',
    'RequestTimeout',
    'RequestTimeoutException',
    'KmsThrottlingException',
  ];
  if (e?.name && transient.includes(e.name)) return true;
  return ['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ECONNREFUSED', 'EAI_AGAIN'].includes(e?.code ?? '');
}

export function isThrottle(err: unknown): boolean {
  const e = err as { name?: string; $retryable?: { throttling?: boolean } };
  return (
    e?.$retryable?.throttling === true ||
    ['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded'].includes(
      e?.name ?? '',
    )
  );
}
