/**
 * Snapshot waiters: how start-backup hands its task token to the shared snapshot poller
 * (lambda/snapshot-poller), and how both read and write a waiter item of the Coordination table
 * (lambda/shared/coordination.ts).
 *
 * start-backup, once its backup job exists:
 *   const { wakePoller } = await registerWaiter(ddb, table, waiter, Date.now());
 *   if (wakePoller) await wakeSnapshotPoller(lambdaClient, pollerFunctionName);
 *
 * The order is what makes a waiter impossible to strand: the waiter is written first, then the
 * lease is read (strongly consistent). The poller, before it exits idle, releases its lease and
 * then reads every shard once more (strongly consistent). Either the registration's lease read
 * comes after the release (it sees a stale lease and wakes the poller), or it comes before, and
 * then the waiter was written before the release and the poller's last read finds it.
 */

import {
  type AttributeValue,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import {
  COORDINATION_TTL_SECONDS,
  coordinationKeys,
  LEASE_STALE_MARGIN_MS,
  type PollerLease,
  type SnapshotWaiterItem,
} from './coordination';
import type { SnapshotWaitResult } from './workflow-results';

type Item = Record<string, AttributeValue>;

/** Environment variable naming the poller function, for the functions that register waiters. */
export const SNAPSHOT_POLLER_FUNCTION_ENV = 'SNAPSHOT_POLLER_FUNCTION_NAME';

/** The payload the poller is woken with (a registration, its own hand-over, the schedule). */
export interface PollerWakeEvent {
  readonly source: 'registration' | 'handover' | 'schedule';
}

const VOLUME_ID = /^vol-[0-9a-f]{8,17}$/;
const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
/** Step Functions task tokens: 1-2,048 characters (botocore stepfunctions SendTaskSuccessInput.taskToken). */
const MAX_TOKEN_LENGTH = 2048;

/** Checks a waiter before it is stored: the poller must be able to answer every waiter it reads. */
export function validateWaiter(w: SnapshotWaiterItem): void {
  const fail = (field: string, value: unknown, allowed: string): never => {
    throw new Error(`Invalid snapshot waiter ${field}: got ${JSON.stringify(value)}; allowed: ${allowed}.`);
  };
  if (typeof w.taskToken !== 'string' || w.taskToken.length < 1 || w.taskToken.length > MAX_TOKEN_LENGTH)
    fail('taskToken', w.taskToken, `a string of 1 to ${MAX_TOKEN_LENGTH} characters`);
  if (typeof w.executionName !== 'string' || !/^[^\s#]{1,80}$/.test(w.executionName))
    fail(
      'executionName',
      w.executionName,
      'a Step Functions execution name (1-80 characters, no # or spaces)',
    );
  if (!INSTANCE_ID.test(String(w.instanceId))) fail('instanceId', w.instanceId, 'an instance id i-...');
  if (!Array.isArray(w.volumeIds) || w.volumeIds.length === 0 || !w.volumeIds.every((v) => VOLUME_ID.test(v)))
    fail('volumeIds', w.volumeIds, 'a non-empty list of volume ids vol-...');
  if (new Set(w.volumeIds).size !== w.volumeIds.length) fail('volumeIds', w.volumeIds, 'no volume twice');
  if (typeof w.backupJobId !== 'string' || w.backupJobId.length === 0)
    fail('backupJobId', w.backupJobId, 'the BackupJobId of the job start-backup started');
  for (const field of [
    'jobCreatedAtMs',
    'frozenAtAwsMs',
    'watchdogExpiresAtMs',
    'deadlineMs',
    'registeredAtMs',
  ] as const) {
    if (!Number.isSafeInteger(w[field]) || w[field] <= 0) fail(field, w[field], 'epoch milliseconds');
  }
  if (w.deadlineMs > w.watchdogExpiresAtMs)
    fail('deadlineMs', w.deadlineMs, `at most watchdogExpiresAtMs (${w.watchdogExpiresAtMs})`);
}

/** The waiter as a Coordination table item. */
export function waiterToItem(w: SnapshotWaiterItem): Item {
  const key = coordinationKeys.waiter(w.executionName, w.registeredAtMs);
  const n = (v: number) => ({ N: String(v) });
  return {
    pk: { S: key.pk },
    sk: { S: key.sk },
    taskToken: { S: w.taskToken },
    executionName: { S: w.executionName },
    instanceId: { S: w.instanceId },
    volumeIds: { L: w.volumeIds.map((v) => ({ S: v })) },
    backupJobId: { S: w.backupJobId },
    jobCreatedAtMs: n(w.jobCreatedAtMs),
    frozenAtAwsMs: n(w.frozenAtAwsMs),
    watchdogExpiresAtMs: n(w.watchdogExpiresAtMs),
    deadlineMs: n(w.deadlineMs),
    registeredAtMs: n(w.registeredAtMs),
    expiresAt: n(Math.floor(w.registeredAtMs / 1000) + COORDINATION_TTL_SECONDS),
  };
}

/** A waiter item as the poller reads it: the waiter, and the answer already claimed for it, if any. */
export interface StoredWaiter {
  readonly waiter: SnapshotWaiterItem;
  readonly key: { readonly pk: string; readonly sk: string };
  /** Set once a poller claimed the waiter: the one answer it will ever get. */
  readonly answer?: SnapshotWaitResult;
}

/** Reads a waiter item; undefined when it is not one (the poller skips and logs it). */
export function waiterFromItem(item: Item): StoredWaiter | undefined {
  const s = (name: string) => item[name]?.S;
  const n = (name: string) => (item[name]?.N === undefined ? Number.NaN : Number(item[name]?.N));
  const pk = s('pk');
  const sk = s('sk');
  const volumeIds = item.volumeIds?.L?.map((v) => v.S ?? '') ?? [];
  const waiter: SnapshotWaiterItem = {
    taskToken: s('taskToken') ?? '',
    executionName: s('executionName') ?? '',
    instanceId: s('instanceId') ?? '',
    volumeIds,
    backupJobId: s('backupJobId') ?? '',
    jobCreatedAtMs: n('jobCreatedAtMs'),
    frozenAtAwsMs: n('frozenAtAwsMs'),
    watchdogExpiresAtMs: n('watchdogExpiresAtMs'),
    deadlineMs: n('deadlineMs'),
    registeredAtMs: n('registeredAtMs'),
  };
  if (!pk || !sk) return undefined;
  try {
    validateWaiter(waiter);
  } catch {
    return undefined;
  }
  const answerText = s('answer');
  let answer: SnapshotWaitResult | undefined;
  if (answerText) {
    try {
      answer = JSON.parse(answerText) as SnapshotWaitResult;
    } catch {
      answer = undefined;
    }
  }
  return { waiter, key: { pk, sk }, ...(answer ? { answer } : {}) };
}

export interface RegisterResult {
  /** False when this waiter was already registered (a retried registration): nothing was written. */
  readonly created: boolean;
  /** The poller's lease is missing or stale: invoke the poller (wakeSnapshotPoller). */
  readonly wakePoller: boolean;
  readonly lease?: PollerLease;
}

/**
 * Stores a snapshot waiter (idempotent: a retry with the same execution and registeredAtMs writes
 * nothing), then reads the poller's lease, strongly consistent, to say whether the poller must be
 * woken. Throws on an invalid waiter, naming the field.
 */
export async function registerWaiter(
  ddb: Pick<DynamoDBClient, 'send'>,
  table: string,
  waiter: SnapshotWaiterItem,
  nowMs: number,
): Promise<RegisterResult> {
  validateWaiter(waiter);
  let created = true;
  try {
    await ddb.send(
      new PutItemCommand({
        TableName: table,
        Item: waiterToItem(waiter),
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
  } catch (err) {
    if (!(err instanceof ConditionalCheckFailedException)) throw err;
    created = false;
  }
  const lease = await readLease(ddb, table);
  return { created, wakePoller: leaseIsStale(lease, nowMs), ...(lease ? { lease } : {}) };
}

/** The poller's lease, read strongly consistent; undefined when there is none. */
export async function readLease(
  ddb: Pick<DynamoDBClient, 'send'>,
  table: string,
): Promise<PollerLease | undefined> {
  const out = await ddb.send(new GetItemCommand({ TableName: table, Key: leaseKey(), ConsistentRead: true }));
  return leaseFromItem(out.Item);
}

export function leaseKey(): Item {
  const key = coordinationKeys.pollerLease();
  return { pk: { S: key.pk }, sk: { S: key.sk } };
}

export function leaseFromItem(item: Item | undefined): PollerLease | undefined {
  const holder = item?.holder?.S;
  const expiresAtMs = Number(item?.expiresAtMs?.N);
  if (!holder || !Number.isFinite(expiresAtMs)) return undefined;
  return { holder, expiresAtMs, acquiredAtMs: Number(item?.acquiredAtMs?.N ?? 0) };
}

/** No lease, or one that ends within LEASE_STALE_MARGIN_MS: nobody may be polling. */
export function leaseIsStale(lease: PollerLease | undefined, nowMs: number): boolean {
  return !lease || lease.expiresAtMs - nowMs <= LEASE_STALE_MARGIN_MS;
}

/**
 * Wakes the poller: an asynchronous Invoke (InvocationType Event), so the caller never waits for
 * it. With reserved concurrency 1 a wake-up while a poller runs is throttled and retried by Lambda
 * (asynchronous invocation), and then finds the lease held and returns at once.
 */
export async function wakeSnapshotPoller(
  lambda: Pick<LambdaClient, 'send'>,
  functionName: string,
  source: PollerWakeEvent['source'] = 'registration',
): Promise<void> {
  const event: PollerWakeEvent = { source };
  await lambda.send(
    new InvokeCommand({
      FunctionName: functionName,
      InvocationType: 'Event',
      Payload: new TextEncoder().encode(JSON.stringify(event)),
    }),
  );
}
