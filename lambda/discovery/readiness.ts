import { DescribeInstanceInformationCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { type Clock, realClock, TokenBucket } from './rate';

/** What SSM knows about a running instance. Absent from the map: not a managed node. */
export interface SsmReadiness {
  /** Online, ConnectionLost or Inactive. */
  readonly pingStatus: string;
  /** Linux, Windows or MacOS. */
  readonly platformType?: string;
  readonly platformName?: string;
  readonly agentVersion?: string;
}

/** The invocation stopped looking up readiness before this batch was sent. */
export class ReadinessCancelledError extends Error {
  override readonly name = 'ReadinessCancelledError';
  constructor() {
    super('Readiness lookup cancelled: the invocation is handing over');
  }
}

/** DescribeInstanceInformation returns at most 50 items a call; one call per 50 ids needs no paging in practice. */
export const SSM_BATCH = 50;

async function describeBatch(ssm: SSMClient, ids: readonly string[], bucket: TokenBucket) {
  const found = new Map<string, SsmReadiness>();
  let nextToken: string | undefined;
  do {
    await bucket.take();
    const page = await ssm.send(
      new DescribeInstanceInformationCommand({
        Filters: [{ Key: 'InstanceIds', Values: [...ids] }],
        MaxResults: SSM_BATCH,
        NextToken: nextToken,
      }),
    );
    for (const info of page.InstanceInformationList ?? []) {
      if (!info.InstanceId) continue;
      found.set(info.InstanceId, {
        pingStatus: info.PingStatus ?? 'Unknown',
        ...(info.PlatformType ? { platformType: info.PlatformType } : {}),
        ...(info.PlatformName ? { platformName: info.PlatformName } : {}),
        ...(info.AgentVersion ? { agentVersion: info.AgentVersion } : {}),
      });
    }
    nextToken = page.NextToken || undefined;
  } while (nextToken);
  return found;
}

/**
 * One batch, tolerating SSM's InvalidInstanceId: when SSM refuses a batch because one id is unknown
 * to it, each id is asked alone, and the ones SSM still refuses are simply not managed nodes.
 */
async function describeBatchTolerant(ssm: SSMClient, ids: readonly string[], bucket: TokenBucket) {
  try {
    return await describeBatch(ssm, ids, bucket);
  } catch (err) {
    if ((err as { name?: string }).name !== 'InvalidInstanceId') throw err;
    if (ids.length === 1) return new Map<string, SsmReadiness>();
    const merged = new Map<string, SsmReadiness>();
    for (const id of ids) {
      for (const [k, v] of await describeBatchTolerant(ssm, [id], bucket)) merged.set(k, v);
    }
    return merged;
  }
}

/**
 * Looks up readiness for running instances in batches of 50, in the order given, at most
 * `concurrency` batches at once and paced by a token bucket. Lookups run ahead of the fan-out:
 * `get(id)` resolves when that id's batch is back, so starting executions never waits for the
 * whole fleet's readiness.
 */
export class ReadinessLookup {
  private readonly batches = new Map<string, Promise<Map<string, SsmReadiness>>>();
  private stopped = false;
  calls = 0;

  constructor(
    ssm: SSMClient,
    ids: readonly string[],
    options: { ratePerSecond: number; concurrency: number; clock?: Clock },
  ) {
    const clock = options.clock ?? realClock;
    const bucket = new TokenBucket(Math.max(1, options.ratePerSecond), options.ratePerSecond, clock);
    const chunks: string[][] = [];
    for (let i = 0; i < ids.length; i += SSM_BATCH) chunks.push(ids.slice(i, i + SSM_BATCH));
    const slots: (() => void)[] = [];
    let running = 0;
    const acquire = async () => {
      if (running < options.concurrency) {
        running++;
        return;
      }
      await new Promise<void>((resolve) => slots.push(resolve));
    };
    const release = () => {
      const next = slots.shift();
      if (next) next();
      else running--;
    };
    for (const chunk of chunks) {
      const promise = (async () => {
        await acquire();
        try {
          if (this.stopped) throw new ReadinessCancelledError();
          this.calls++;
          return await describeBatchTolerant(ssm, chunk, bucket);
        } finally {
          release();
        }
      })();
      // A batch nobody awaits (after a hand-over) must not surface as an unhandled rejection.
      promise.catch(() => undefined);
      for (const id of chunk) this.batches.set(id, promise);
    }
  }

  /** Readiness of one id given to the constructor; undefined when SSM does not manage it. */
  async get(id: string): Promise<SsmReadiness | undefined> {
    const batch = this.batches.get(id);
    if (!batch) throw new Error(`Readiness of ${id} was never requested`);
    return (await batch).get(id);
  }

  /** No further batches are sent (the invocation is handing over). */
  stop(): void {
    this.stopped = true;
  }

  /** Everything at once, for the dry-run plan. */
  async all(): Promise<Map<string, SsmReadiness>> {
    const merged = new Map<string, SsmReadiness>();
    for (const batch of new Set(this.batches.values())) for (const [k, v] of await batch) merged.set(k, v);
    return merged;
  }
}
