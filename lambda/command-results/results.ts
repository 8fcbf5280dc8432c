/**
 * command-results: the freeze's and the thaw's Run Command results, answered to the task tokens
 * that wait for them, without one GetCommandInvocation loop per instance (issue 14 item 4).
 *
 * Inputs:
 * - EventBridge "EC2 Command Invocation Status-change Notification" events for the stack's freeze and
 *   thaw documents (the rule routes them to the CommandWaiters queue). The event has no stdout, so
 *   a terminal one costs one GetCommandInvocation (stdout up to 24,000 characters), paced by a
 *   client bucket; a non-terminal one (Pending, InProgress, Delayed, Cancelling) does nothing.
 * - thaw waiters: the state machine's `sqs:sendMessage.waitForTaskToken` message on the same queue.
 * - the fallback sweep (a schedule, or any caller such as the poller): events are best effort, so
 *   every registered waiter still unanswered after 2, 4, 8 ... s is looked up, in batches
 *   (`sweepPendingCommands`).
 *
 * Why the sweep lists with ListCommandInvocations and then reads stdout with GetCommandInvocation:
 * ListCommandInvocations lists up to 50 invocations a call (filters DocumentName, InvokedAfter,
 * InvokedBefore), so the status of many pending commands costs few calls; but its command output
 * (`Details: true`, CommandPlugins[].Output) is at most 2,500 characters (botocore ssm 2014-11-06,
 * shape CommandPluginOutput, max 2500; API reference ListCommandInvocations / CommandPlugin), while
 * the documents' JSON result line can be longer (targets, volumes, hooks, warnings) and
 * GetCommandInvocation's StandardOutputContent holds 24,000 (shape StandardOutputContent). So the
 * sweep lists without details, and reads each ended command once with GetCommandInvocation, paced
 * by its own bucket: one GetCommandInvocation per command result, as with events.
 *
 * Clients, the clock and the buckets are parameters, so tests run on virtual time against fakes.
 */

import {
  GetCommandInvocationCommand,
  ListCommandInvocationsCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import {
  type AttributeValue,
  GetItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { SendTaskFailureCommand } from '@aws-sdk/client-sfn';
import { commandResultOf, isTerminalCommandStatus } from '../shared/command-result';
import {
  type AnswerDeps,
  answerCommand,
  answerWithoutCommand,
  CLAIM_STALE_MS,
  COMMAND_ID,
  CommandWaiterInputError,
  INSTANCE_ID,
  type PairingOutcome,
  type Pace,
  readStoredCommand,
  recordCommandResult,
  registerCommandWaiter,
  removePending,
} from '../shared/command-waiters';
import { type CommandKind, COORDINATION_SHARDS } from '../shared/coordination';
import { COMMAND_EVENT_DETAIL_TYPE, NON_TERMINAL_STATUSES } from './settings';

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** The stack's two documents, by name (lib/documents.ts). */
export interface CommandDocuments {
  readonly freeze: string;
  readonly thaw: string;
}

export interface CommandResultsDeps {
  readonly ddb: AnswerDeps['ddb'];
  readonly ssm: Pick<SSMClient, 'send'>;
  readonly sfn: AnswerDeps['sfn'];
  readonly table: string;
  readonly documents: CommandDocuments;
  readonly clock: Clock;
  readonly paces: {
    /** GetCommandInvocation (no published quota: a setting, lib/command-results.ts). */
    readonly getInvocation: Pace;
    /** ListCommandInvocations (no published quota). */
    readonly listInvocations: Pace;
    /** SendTaskSuccess/SendTaskFailure. */
    readonly sendTask: Pace;
  };
  readonly log?: (message: string, fields: Record<string, unknown>) => void;
}

const answerDeps = (deps: CommandResultsDeps): AnswerDeps => ({
  ddb: deps.ddb,
  sfn: deps.sfn,
  table: deps.table,
  now: () => deps.clock.now(),
  sendTaskPace: deps.paces.sendTask,
});

function errorName(err: unknown): string {
  return (err as { name?: string })?.name ?? 'Error';
}

const isThrottle = (err: unknown) => /Throttl|TooManyRequests|RateExceeded/i.test(errorName(err));

// ---- events ----

export { COMMAND_EVENT_DETAIL_TYPE, NON_TERMINAL_STATUSES };

export interface CommandEvent {
  readonly commandId: string;
  readonly instanceId: string;
  readonly documentName: string;
  readonly status: string;
  /** The event's `time` (AWS clock), when it parses. */
  readonly timeMs?: number;
}

/**
 * The fields of an "EC2 Command Invocation Status-change Notification" this function reads:
 * `detail` {command-id, document-name, instance-id, requested-date-time, status} and `time`.
 * Undefined for anything else (another event, a malformed one).
 */
export function parseCommandEvent(event: unknown): CommandEvent | undefined {
  const e = event as Record<string, unknown> | undefined;
  if (!e || e.source !== 'aws.ssm' || e['detail-type'] !== COMMAND_EVENT_DETAIL_TYPE) return undefined;
  const d = e.detail as Record<string, unknown> | undefined;
  const commandId = d?.['command-id'];
  const instanceId = d?.['instance-id'];
  const documentName = d?.['document-name'];
  const status = d?.status;
  if (
    typeof commandId !== 'string' ||
    !COMMAND_ID.test(commandId) ||
    typeof instanceId !== 'string' ||
    !INSTANCE_ID.test(instanceId) ||
    typeof documentName !== 'string' ||
    typeof status !== 'string'
  ) {
    return undefined;
  }
  const timeMs = typeof e.time === 'string' ? Date.parse(e.time) : Number.NaN;
  return { commandId, instanceId, documentName, status, ...(Number.isNaN(timeMs) ? {} : { timeMs }) };
}

export type EventOutcome =
  | { readonly action: 'ignored'; readonly reason: string }
  | { readonly action: 'not-ended-yet'; readonly status: string }
  | { readonly action: 'recorded'; readonly pairing: PairingOutcome };

/** GetCommandInvocation right after a terminal event may still say InProgress (eventual consistency). */
const EVENT_READ_TRIES = 2;
const EVENT_READ_RETRY_MS = 300;

/** A status-change event: for a terminal status of one of our documents, record the result and answer. */
export async function handleCommandEvent(deps: CommandResultsDeps, event: unknown): Promise<EventOutcome> {
  const e = parseCommandEvent(event);
  if (!e) return { action: 'ignored', reason: 'not a Run Command invocation status change' };
  if (e.documentName !== deps.documents.freeze && e.documentName !== deps.documents.thaw) {
    return { action: 'ignored', reason: `document ${e.documentName} is not ours` };
  }
  if (NON_TERMINAL_STATUSES.includes(e.status)) return { action: 'ignored', reason: `status ${e.status}` };
  // A duplicate or late event of a command whose result is stored costs no SSM call.
  const known = await deps.ddb.send(
    new GetItemCommand({
      TableName: deps.table,
      Key: { pk: { S: `CMD#${e.commandId}` }, sk: { S: 'CMD' } },
      ConsistentRead: true,
    }),
  );
  const stored = known.Item ? readStoredCommand(known.Item) : undefined;
  if (stored?.result) {
    return { action: 'recorded', pairing: await answerCommand(answerDeps(deps), stored) };
  }
  for (let attempt = 1; ; attempt += 1) {
    const ended = await readInvocation(deps, e.commandId, e.instanceId);
    if (ended.kind === 'ended') {
      const pairing = await recordCommandResult(answerDeps(deps), {
        commandId: e.commandId,
        instanceId: e.instanceId,
        result: ended.result,
        observedAtMs: Math.min(deps.clock.now(), e.timeMs ?? Number.POSITIVE_INFINITY),
      });
      return { action: 'recorded', pairing };
    }
    // The sweep looks again at any registered waiter: nothing is lost by stopping here.
    if (attempt >= EVENT_READ_TRIES) return { action: 'not-ended-yet', status: ended.status };
    await deps.clock.sleep(EVENT_READ_RETRY_MS);
  }
}

type Invocation =
  | { readonly kind: 'ended'; readonly result: ReturnType<typeof commandResultOf> & object }
  | { readonly kind: 'running'; readonly status: string };

/** One GetCommandInvocation, paced; InvocationDoesNotExist (not visible yet) is `running`. */
async function readInvocation(
  deps: CommandResultsDeps,
  commandId: string,
  instanceId: string,
): Promise<Invocation> {
  await deps.paces.getInvocation.take();
  try {
    const inv = await deps.ssm.send(
      new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
    );
    const result = commandResultOf(commandId, inv);
    return result ? { kind: 'ended', result } : { kind: 'running', status: inv.Status ?? 'Unknown' };
  } catch (err) {
    if (errorName(err) === 'InvocationDoesNotExist') return { kind: 'running', status: 'NotYetVisible' };
    if (isThrottle(err)) deps.paces.getInvocation.drain?.();
    throw err;
  }
}

// ---- thaw waiters from the queue ----

/**
 * The message the state machine sends with `sqs:sendMessage.waitForTaskToken`:
 * `{ taskToken, kind: 'thaw' | 'retried-thaw', command: <the whole SendCommand result>, instanceId,
 * execution: <name> | { name } }`. The whole SendCommand result is passed because reading
 * `Command.CommandId` in Parameters could be an uncatchable States.Runtime error.
 */
export interface WaiterMessage {
  readonly taskToken: string;
  readonly kind: CommandKind;
  readonly commandId?: string;
  readonly instanceId: string;
  readonly executionName: string;
  readonly sentAtMs?: number;
}

function toMs(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value < 1e12 ? value * 1000 : value;
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}

export function parseWaiterMessage(body: unknown): WaiterMessage {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const fail = (field: string, allowed: string): never => {
    throw new CommandWaiterInputError(
      `Invalid ${field}: got ${JSON.stringify(b[field])}; allowed: ${allowed}.`,
    );
  };
  if (typeof b.taskToken !== 'string' || b.taskToken.length < 1 || b.taskToken.length > 2048)
    fail('taskToken', '1-2048 characters');
  if (b.kind !== 'thaw' && b.kind !== 'retried-thaw') fail('kind', 'thaw, retried-thaw');
  if (typeof b.instanceId !== 'string' || !INSTANCE_ID.test(b.instanceId))
    fail('instanceId', 'i-<8 to 17 hex digits>');
  const execution = b.execution as unknown;
  const executionName =
    typeof execution === 'string' ? execution : (execution as { name?: unknown } | undefined)?.name;
  if (typeof executionName !== 'string' || executionName === '')
    fail('execution', 'the execution name, or an object with its name');
  const command = (
    b.command as { Command?: { CommandId?: unknown; RequestedDateTime?: unknown } } | undefined
  )?.Command;
  const commandId =
    typeof command?.CommandId === 'string' && command.CommandId !== '' ? command.CommandId : undefined;
  const sentAtMs = toMs(command?.RequestedDateTime);
  return {
    taskToken: b.taskToken as string,
    kind: b.kind as CommandKind,
    instanceId: b.instanceId as string,
    executionName: executionName as string,
    ...(commandId ? { commandId } : {}),
    ...(sentAtMs !== undefined ? { sentAtMs } : {}),
  };
}

/** A thaw waiter: register its token; answer at once if the result is already there. */
export async function handleWaiterMessage(
  deps: CommandResultsDeps,
  body: unknown,
  receivedAtMs?: number,
): Promise<PairingOutcome> {
  const m = parseWaiterMessage(body);
  if (!m.commandId) return answerWithoutCommand(answerDeps(deps), m.taskToken, m.kind);
  return registerCommandWaiter(
    deps.ddb,
    deps.table,
    {
      commandId: m.commandId,
      kind: m.kind,
      executionName: m.executionName,
      instanceId: m.instanceId,
      sentAtMs: m.sentAtMs ?? receivedAtMs ?? deps.clock.now(),
      taskToken: m.taskToken,
    },
    { sfn: deps.sfn, now: () => deps.clock.now(), sendTaskPace: deps.paces.sendTask },
  );
}

// ---- the fallback sweep ----

/** The delay before the next look at a waiter that has had `checks` looks: 2, 4, 8, 16, then 30 s. */
export function nextCheckDelayMs(checks: number): number {
  return Math.min(2000 * 2 ** Math.max(0, checks), 30_000);
}

/** A waiter nobody answered this long after its command was sent is dropped: its task timed out long ago. */
export const PENDING_GIVE_UP_MS = 30 * 60_000;
/** Up to this many due waiters of one document are read one by one; more are listed first. */
export const LIST_THRESHOLD = 3;
/** ListCommandInvocations' largest page (botocore: CommandMaxResults max 50). */
export const LIST_PAGE_SIZE = 50;
/**
 * InvokedAfter/InvokedBefore margin around the send times (this side's clock) for the difference
 * with SSM's RequestedDateTime. A waiter the listing misses anyway is read directly from its
 * LIST_MISSES_BEFORE_GET-th look on.
 */
export const LIST_SKEW_MS = 5_000;
export const LIST_MISSES_BEFORE_GET = 2;
/** Pages listed per document per round at most: a round stays short, the next one continues. */
export const LIST_MAX_PAGES = 20;

interface PendingEntry {
  readonly pk: string;
  readonly sk: string;
  readonly commandId: string;
  readonly instanceId: string;
  readonly kind: CommandKind;
  readonly sentAtMs: number;
  readonly nextCheckAtMs: number;
  readonly checks: number;
}

function readPending(item: Record<string, AttributeValue>): PendingEntry | undefined {
  const n = (v: AttributeValue | undefined) => (v?.N === undefined ? Number.NaN : Number(v.N));
  const entry = {
    pk: item.pk?.S ?? '',
    sk: item.sk?.S ?? '',
    commandId: item.commandId?.S ?? '',
    instanceId: item.instanceId?.S ?? '',
    kind: (item.kind?.S ?? '') as CommandKind,
    sentAtMs: n(item.sentAtMs),
    nextCheckAtMs: n(item.nextCheckAtMs),
    checks: n(item.checks),
  };
  return entry.commandId && entry.instanceId && Number.isFinite(entry.sentAtMs) ? entry : undefined;
}

export interface SweepReport {
  /** Waiters in the pending index at the start of the round. */
  readonly pending: number;
  /** Waiters due for a look. */
  readonly due: number;
  readonly answered: number;
  readonly deadTokens: number;
  /** Index entries of commands already answered (or given up), removed. */
  readonly removed: number;
  readonly listCalls: number;
  readonly getCalls: number;
  /** The earliest next look among the waiters left, if any. */
  readonly nextDueAtMs?: number;
}

/**
 * One round: every waiter due for a look is read from the table; one with its result and token but
 * no answer (an answer that failed half-way) is answered; one with no result is looked up in SSM.
 * Up to LIST_THRESHOLD of one document are read with GetCommandInvocation directly; more are
 * listed with ListCommandInvocations (by document and send-time range) and only the ended ones
 * read. Waiters still running get their next look 2, 4, 8 ... s later.
 */
export async function sweepPendingCommands(
  deps: CommandResultsDeps,
  options: { readonly maxReads?: number } = {},
): Promise<SweepReport> {
  const start = deps.clock.now();
  const maxReads = options.maxReads ?? MAX_READS_PER_ROUND;
  const entries: PendingEntry[] = [];
  for (let shard = 0; shard < COORDINATION_SHARDS; shard += 1) {
    let ExclusiveStartKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await deps.ddb.send(
        new QueryCommand({
          TableName: deps.table,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': { S: `PENDINGCMD#${shard}` } },
          ConsistentRead: true,
          ExclusiveStartKey,
        }),
      );
      for (const item of page.Items ?? []) {
        const entry = readPending(item);
        if (entry) entries.push(entry);
      }
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey);
  }
  let answered = 0;
  let deadTokens = 0;
  let removed = 0;
  let listCalls = 0;
  let getCalls = 0;
  const left: number[] = [];
  const tally = (outcome: PairingOutcome) => {
    if (outcome === 'answered') answered += 1;
    if (outcome === 'dead-token') deadTokens += 1;
  };
  const reschedule = async (entry: PendingEntry) => {
    const next = deps.clock.now() + nextCheckDelayMs(entry.checks + 1);
    left.push(next);
    await deps.ddb
      .send(
        new UpdateItemCommand({
          TableName: deps.table,
          Key: { pk: { S: entry.pk }, sk: { S: entry.sk } },
          UpdateExpression: 'SET #checks = :checks, #next = :next',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeNames: { '#checks': 'checks', '#next': 'nextCheckAtMs' },
          ExpressionAttributeValues: {
            ':checks': { N: String(entry.checks + 1) },
            ':next': { N: String(next) },
          },
        }),
      )
      .catch((err) => {
        // Answered meanwhile (the entry is gone): nothing to reschedule.
        if (errorName(err) !== 'ConditionalCheckFailedException') throw err;
      });
  };

  // Oldest first; at most maxReads looked up per round (the rest stay due for the next round), so
  // that a round stays short behind the GetCommandInvocation pace.
  const allDue = entries.filter((e) => !(e.nextCheckAtMs > start)).sort((a, b) => a.sentAtMs - b.sentAtMs);
  for (const e of entries) if (e.nextCheckAtMs > start) left.push(e.nextCheckAtMs);
  const lookups: PendingEntry[] = [];
  const due: PendingEntry[] = [];
  for (const entry of allDue) {
    if (lookups.length >= maxReads) {
      left.push(start);
      break;
    }
    due.push(entry);
    const got = await deps.ddb.send(
      new GetItemCommand({
        TableName: deps.table,
        Key: { pk: { S: `CMD#${entry.commandId}` }, sk: { S: 'CMD' } },
        ConsistentRead: true,
      }),
    );
    const item = got.Item ? readStoredCommand(got.Item) : undefined;
    const settled = item?.answerState === 'answered' || item?.answerState === 'dead';
    if (!item?.taskToken || settled || deps.clock.now() - entry.sentAtMs > PENDING_GIVE_UP_MS) {
      await removePending(deps, entry.commandId, entry.sentAtMs);
      removed += 1;
      continue;
    }
    if (item.result) {
      const claimedRecently =
        item.answerState === 'claimed' && deps.clock.now() - (item.answeredAt ?? 0) < CLAIM_STALE_MS;
      if (claimedRecently) {
        left.push((item.answeredAt ?? 0) + CLAIM_STALE_MS);
        continue;
      }
      try {
        tally(await answerCommand(answerDeps(deps), item));
      } catch (err) {
        deps.log?.('Answer failed; the next round tries again', {
          commandId: entry.commandId,
          error: String(err),
        });
        await reschedule(entry);
      }
      continue;
    }
    lookups.push(entry);
  }

  const record = async (entry: PendingEntry) => {
    getCalls += 1;
    const inv = await readInvocation(deps, entry.commandId, entry.instanceId);
    if (inv.kind !== 'ended') {
      await reschedule(entry);
      return;
    }
    tally(
      await recordCommandResult(answerDeps(deps), {
        commandId: entry.commandId,
        instanceId: entry.instanceId,
        result: inv.result,
        observedAtMs: deps.clock.now(),
      }),
    );
  };
  const each = async (list: readonly PendingEntry[], work: (e: PendingEntry) => Promise<void>) => {
    // Concurrently: the buckets set the pace, not the round trips.
    await Promise.all(
      list.map((e) =>
        work(e).catch(async (err) => {
          deps.log?.('Look-up failed; the next round tries again', {
            commandId: e.commandId,
            error: String(err),
          });
          await reschedule(e).catch(() => undefined);
        }),
      ),
    );
  };

  for (const documentName of [deps.documents.freeze, deps.documents.thaw]) {
    const mine = lookups.filter((e) => (e.kind === 'freeze') === (documentName === deps.documents.freeze));
    if (mine.length === 0) continue;
    if (mine.length <= LIST_THRESHOLD) {
      await each(mine, record);
      continue;
    }
    // Many: one listing tells which have ended; only those are read.
    const byId = new Map(mine.map((e) => [e.commandId, e]));
    const statuses = new Map<string, string>();
    const minSent = Math.min(...mine.map((e) => e.sentAtMs));
    const maxSent = Math.max(...mine.map((e) => e.sentAtMs));
    const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
    let NextToken: string | undefined;
    let pages = 0;
    try {
      do {
        await deps.paces.listInvocations.take();
        listCalls += 1;
        const page = await deps.ssm.send(
          new ListCommandInvocationsCommand({
            Filters: [
              { key: 'DocumentName', value: documentName },
              { key: 'InvokedAfter', value: iso(minSent - LIST_SKEW_MS) },
              { key: 'InvokedBefore', value: iso(maxSent + LIST_SKEW_MS) },
            ],
            MaxResults: LIST_PAGE_SIZE,
            NextToken,
          }),
        );
        for (const inv of page.CommandInvocations ?? []) {
          if (inv.CommandId && byId.has(inv.CommandId) && typeof inv.Status === 'string') {
            statuses.set(inv.CommandId, inv.Status);
          }
        }
        NextToken = page.NextToken;
        pages += 1;
      } while (NextToken && pages < LIST_MAX_PAGES && statuses.size < byId.size);
    } catch (err) {
      if (isThrottle(err)) deps.paces.listInvocations.drain?.();
      deps.log?.('ListCommandInvocations failed; reading the due waiters one by one', { error: String(err) });
      await each(mine, record);
      continue;
    }
    // Ended: read its stdout. Not listed (not visible yet, or outside the window) for a while: read
    // it directly. Listed and running: look again later.
    const readNow = (e: PendingEntry) => {
      const status = statuses.get(e.commandId);
      return status === undefined ? e.checks >= LIST_MISSES_BEFORE_GET : isTerminalCommandStatus(status);
    };
    const ended = mine.filter(readNow);
    const running = mine.filter((e) => !readNow(e));
    await each(running, reschedule);
    await each(ended, record);
  }
  return {
    pending: entries.length,
    due: due.length,
    answered,
    deadTokens,
    removed,
    listCalls,
    getCalls,
    ...(left.length ? { nextDueAtMs: Math.min(...left) } : {}),
  };
}

/**
 * Waiters looked up in SSM per round at most: 10 s of the default GetCommandInvocation pace
 * (lib/command-results.ts), so that a round of the scheduled sweep ends well inside its invocation.
 */
export const MAX_READS_PER_ROUND = 100;

/** Rounds at least this far apart, however many waiters are due. */
export const MIN_ROUND_MS = 250;

/**
 * Sweeps until `untilMs`, or until the pending index is empty: each round waits for the earliest
 * due waiter (at least MIN_ROUND_MS), so a lost event costs its waiter at most its next look.
 */
export async function runSweep(
  deps: CommandResultsDeps,
  untilMs: number,
  options: { readonly maxReads?: number } = {},
): Promise<{ rounds: number; answered: number; deadTokens: number; listCalls: number; getCalls: number }> {
  const total = { rounds: 0, answered: 0, deadTokens: 0, listCalls: 0, getCalls: 0 };
  while (deps.clock.now() < untilMs) {
    const r = await sweepPendingCommands(deps, options);
    total.rounds += 1;
    total.answered += r.answered;
    total.deadTokens += r.deadTokens;
    total.listCalls += r.listCalls;
    total.getCalls += r.getCalls;
    if (r.nextDueAtMs === undefined) break;
    const wait = Math.max(MIN_ROUND_MS, r.nextDueAtMs - deps.clock.now());
    if (deps.clock.now() + wait >= untilMs) break;
    await deps.clock.sleep(wait);
  }
  return total;
}

// ---- the queue ----

export type QueueBodyOutcome =
  | { readonly input: 'event'; readonly outcome: EventOutcome }
  | { readonly input: 'waiter'; readonly outcome: PairingOutcome }
  | { readonly input: 'rejected'; readonly reason: string };

/**
 * One message of the CommandWaiters queue: a status-change event (routed by the rule) or a thaw
 * waiter. A waiter this function cannot accept fails its task at once (SendTaskFailure
 * `CommandWaiterInvalid`), so the workflow's Catch retries the thaw instead of waiting for its
 * timeout. Throws only for what a redelivery may fix (throttling, 5xx).
 */
export async function handleQueueBody(
  deps: CommandResultsDeps,
  body: unknown,
  receivedAtMs?: number,
): Promise<QueueBodyOutcome> {
  const b = body as Record<string, unknown> | undefined;
  if (b && typeof b === 'object' && 'detail-type' in b) {
    return { input: 'event', outcome: await handleCommandEvent(deps, b) };
  }
  try {
    return { input: 'waiter', outcome: await handleWaiterMessage(deps, b, receivedAtMs) };
  } catch (err) {
    if (!(err instanceof CommandWaiterInputError)) throw err;
    const token = b?.taskToken;
    if (typeof token === 'string' && token.length >= 1 && token.length <= 2048) {
      await deps.paces.sendTask.take();
      await deps.sfn
        .send(
          new SendTaskFailureCommand({
            taskToken: token,
            error: 'CommandWaiterInvalid',
            cause: err.message.slice(0, 1000),
          }),
        )
        .catch((sendErr) => {
          if (!/TaskTimedOut|TaskDoesNotExist|InvalidToken/.test(errorName(sendErr))) throw sendErr;
        });
    }
    return { input: 'rejected', reason: err.message };
  }
}
