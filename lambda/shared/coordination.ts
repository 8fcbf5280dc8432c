/**
 * The Coordination table: what the functions that answer the workflow's task tokens share, so that
 * no Lambda waits per instance and nothing is lost when one of them restarts.
 *
 * One DynamoDB table (on demand, TTL attribute `expiresAt`), keys `pk`/`sk` (strings):
 * - `CMD#<commandId>` / `CMD`: one Run Command invocation the workflow waits for. send-freeze writes
 *   it with the task token when it sends a freeze; command-results writes the token of a thaw (from
 *   the CommandWaiters queue) and the command's result (from an event or the poller's sweep).
 *   Whichever half arrives second answers the token, once (`answeredAt`).
 * - `PENDINGCMD#<shard>` / `<sentAtMs:13>#<commandId>`: the index of commands with no result yet,
 *   which the poller sweeps when events are late (EventBridge delivers SSM events best effort).
 * - `WAITER#<shard>` / `<registeredAtMs:13>#<executionName>`: a snapshot waiter, from start-backup.
 * - `EXEC#<executionName>` / `EXEC`: per-execution facts a later step may need when the state lost
 *   them (the backup job a timed-out task created, the freeze command id, whether a thaw was
 *   confirmed), for record-outcome and execution-events.
 * - `LEASE` / `POLLER`: the poller's lease (one poller per account and Region).
 */

import type { CommandResult } from './workflow-results';

/** Environment variable naming the table, for every function that uses it. */
export const COORDINATION_TABLE_ENV = 'COORDINATION_TABLE_NAME';

/** Partitions per index, so that no one partition takes every write of a run. */
export const COORDINATION_SHARDS = 8;

/** How long items live after their last write: a day covers any execution's freeze path. */
export const COORDINATION_TTL_SECONDS = 24 * 3600;

export type CommandKind = 'freeze' | 'thaw' | 'retried-thaw';

export interface CommandItem {
  readonly commandId: string;
  readonly kind: CommandKind;
  readonly executionName: string;
  readonly instanceId: string;
  readonly sentAtMs: number;
  /** The task token waiting for this command's result, once known. */
  readonly taskToken?: string;
  /** The command's end, once known (terminal status). */
  readonly result?: CommandResult;
  /** Set once the token was answered (or found dead): nobody answers twice. */
  readonly answeredAt?: number;
}

export interface SnapshotWaiterItem {
  readonly taskToken: string;
  readonly executionName: string;
  readonly instanceId: string;
  readonly volumeIds: readonly string[];
  readonly backupJobId: string;
  /** The job's CreationDate (AWS clock): only snapshots starting at or after it can be this job's. */
  readonly jobCreatedAtMs: number;
  /** FreezeStepResult.frozenAtAwsMs. */
  readonly frozenAtAwsMs: number;
  /** A snapshot starting at or after this was not taken while frozen (the watchdog may have thawed). */
  readonly watchdogExpiresAtMs: number;
  /** Answer `budget-exceeded` at this moment: frozenAtAwsMs + budget - thaw margin. */
  readonly deadlineMs: number;
  readonly registeredAtMs: number;
}

/**
 * The poller's lease (`LEASE` / `POLLER`): one poller per account and Region holds it, renewing it
 * every sweep. A poller that finds it expired takes it over; a registration that finds it expired
 * (or missing) wakes the poller. All the poller's state is in the table, so nothing is lost when the
 * holder dies: its successor reads every waiter again.
 */
export interface PollerLease {
  /** Who holds it: the holder's invocation id. */
  readonly holder: string;
  /** The lease is the holder's until this moment (its own clock); renewed each sweep. */
  readonly expiresAtMs: number;
  readonly acquiredAtMs: number;
}

/** How long a lease lasts without renewal: a dead poller's successor waits at most this long. */
export const POLLER_LEASE_MS = 10_000;

/**
 * A registration treats a lease expiring within this margin as stale and wakes the poller anyway:
 * a live poller renews every sweep (at most every POLLER_LEASE_MS / 3), so a lease this close to
 * its end belongs to a poller that stopped or is about to; an extra wake-up costs one Invoke.
 */
export const LEASE_STALE_MARGIN_MS = 2_000;

export interface ExecutionFacts {
  readonly executionName: string;
  readonly freezeCommandId?: string;
  readonly backupJobId?: string;
  readonly jobCreatedAtMs?: number;
  readonly frozenAtAwsMs?: number;
  readonly watchdogDeadline?: string;
  readonly thawConfirmedAtMs?: number;
}

/** A stable shard for a key (FNV-1a), so retries of one execution hit the same partition. */
export function shardOf(key: string, shards = COORDINATION_SHARDS): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i += 1) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % shards;
}

const ms13 = (ms: number) => String(Math.max(0, Math.floor(ms))).padStart(13, '0');

export const coordinationKeys = {
  command: (commandId: string) => ({ pk: `CMD#${commandId}`, sk: 'CMD' }),
  pendingCommand: (commandId: string, sentAtMs: number) => ({
    pk: `PENDINGCMD#${shardOf(commandId)}`,
    sk: `${ms13(sentAtMs)}#${commandId}`,
  }),
  waiter: (executionName: string, registeredAtMs: number) => ({
    pk: `WAITER#${shardOf(executionName)}`,
    sk: `${ms13(registeredAtMs)}#${executionName}`,
  }),
  /** The partition key of one shard of the waiter index, for the poller's Query. */
  waiterShard: (shard: number) => `WAITER#${shard}`,
  execution: (executionName: string) => ({ pk: `EXEC#${executionName}`, sk: 'EXEC' }),
  pollerLease: () => ({ pk: 'LEASE', sk: 'POLLER' }),
  /** The sort-key lower bound for items of an index registered at or after `sinceMs`. */
  since: (sinceMs: number) => ms13(sinceMs),
} as const;
