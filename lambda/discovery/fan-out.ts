import { StartExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import { type Clock, fullJitterDelay, isRetryable, isThrottle, type TokenBucket } from './rate';

/**
 * One StartExecution, retried until it is done or the invocation must hand over.
 *
 * - `started`: this call created the execution.
 * - `already-running`: an execution of that name exists (a retried or overlapping run of the same
 *   window). Step Functions answers ExecutionAlreadyExists when it is closed or its input differs,
 *   and answers success with the original start date when it is still running with the same
 *   input; a start date from before our first attempt therefore means it was not ours.
 * - `failed`: a non-retryable error (a configuration fault such as AccessDenied), or a server
 *   fault that outlived the attempts.
 * - `gave-up`: still throttled when the invocation ran short of time; the next invocation retries
 *   it under the same name, so it is never dropped and never doubled.
 */
export type StartResult =
  | { readonly kind: 'started' | 'already-running'; readonly attempts: number; readonly throttled: number }
  | { readonly kind: 'failed'; readonly error: Error; readonly attempts: number; readonly throttled: number }
  | { readonly kind: 'gave-up'; readonly attempts: number; readonly throttled: number };

export interface StartOptions {
  readonly sfn: SFNClient;
  readonly stateMachineArn: string;
  readonly bucket: TokenBucket;
  readonly clock: Clock;
  readonly random: () => number;
  readonly retryBaseMs: number;
  readonly retryCapMs: number;
  /** True once the invocation must stop starting and hand over. */
  readonly shouldStop: () => boolean;
}

/** Server faults get this many attempts; throttling is retried for as long as time allows. */
export const MAX_FAULT_ATTEMPTS = 8;
/**
 * Clock skew allowed between this function and Step Functions when reading startDate. Both keep
 * time through Amazon's time sync service, so a skew near a second would already be a fault; a
 * retry of the same window is seconds to minutes later and still reads as "already running".
 */
export const START_DATE_TOLERANCE_MS = 250;

export async function startExecution(name: string, input: string, o: StartOptions): Promise<StartResult> {
  const firstSentAt = o.clock.now();
  let attempts = 0;
  let throttled = 0;
  let faults = 0;
  for (;;) {
    await o.bucket.take();
    attempts++;
    try {
      const res = await o.sfn.send(
        new StartExecutionCommand({ stateMachineArn: o.stateMachineArn, name, input }),
      );
      const startedAt = res.startDate ? new Date(res.startDate).getTime() : firstSentAt;
      const kind = startedAt < firstSentAt - START_DATE_TOLERANCE_MS ? 'already-running' : 'started';
      return { kind, attempts, throttled };
    } catch (err) {
      const e = err as Error;
      if (e?.name === 'ExecutionAlreadyExists') return { kind: 'already-running', attempts, throttled };
      if (!isRetryable(err)) return { kind: 'failed', error: e, attempts, throttled };
      if (isThrottle(err)) {
        throttled++;
        // Someone else shares the quota: forget the burst we thought we had.
        o.bucket.drain();
      } else if (++faults >= MAX_FAULT_ATTEMPTS) {
        return { kind: 'failed', error: e, attempts, throttled };
      }
      if (o.shouldStop()) return { kind: 'gave-up', attempts, throttled };
      await o.clock.sleep(fullJitterDelay(attempts - 1, o.retryBaseMs, o.retryCapMs, o.random));
      if (o.shouldStop()) return { kind: 'gave-up', attempts, throttled };
    }
  }
}
