/**
 * Counts throttled AWS API calls (ThrottledCalls, lambda/shared/metrics.ts) with one line per
 * client: `const ec2 = countThrottles(new EC2Client({}))`.
 *
 * The middleware sits in the deserialize step, inside the SDK's retry loop, so it sees every
 * attempt: a call refused twice and then served counts 2. What counts as throttling is the SDK's
 * own classification (`isThrottlingError` of @smithy/core: HTTP 429, the throttling error codes
 * such as RequestLimitExceeded or ThrottlingException, or the model's throttling trait), the same
 * test its retry strategy uses to back off.
 */

import { isThrottlingError } from '@smithy/core/retry';
import type { DeserializeMiddleware, HandlerExecutionContext, MetadataBearer } from '@smithy/types';
import { emitThrottled } from './metrics';

/** Any SDK v3 client: what the middleware needs of it. */
interface WithMiddleware {
  readonly middlewareStack: {
    add(middleware: DeserializeMiddleware<object, MetadataBearer>, options: Record<string, unknown>): void;
  };
}

export const THROTTLE_MIDDLEWARE_NAME = 'ec2ConsistentBackupThrottleMetrics';

/** `EC2Client` → `EC2`, `SFNClient` → `SFN`: the service, as low-cardinality dimension value. */
export function serviceOf(context: HandlerExecutionContext): string {
  return (context.clientName ?? 'unknown').replace(/Client$/, '') || 'unknown';
}

function throttleCounter(): DeserializeMiddleware<object, MetadataBearer> {
  return (next, context) => async (args) => {
    try {
      return await next(args);
    } catch (err) {
      if (err && typeof err === 'object' && isThrottlingError(err as never)) {
        emitThrottled(serviceOf(context), (context.commandName ?? 'unknown').replace(/Command$/, ''));
      }
      throw err;
    }
  };
}

/** Adds the throttle counter to `client` and returns it, so it wraps the constructor call. */
export function countThrottles<C extends WithMiddleware>(client: C): C {
  client.middlewareStack.add(throttleCounter(), {
    step: 'deserialize',
    // Outside the deserializer (same step, higher priority): it sees the modelled error it throws.
    priority: 'high',
    name: THROTTLE_MIDDLEWARE_NAME,
    override: true,
  });
  return client;
}
