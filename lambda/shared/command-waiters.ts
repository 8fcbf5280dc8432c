/**
 * Pairing a Run Command invocation's result with the task token that waits for it, in the
 * Coordination table (lambda/shared/coordination.ts: `CMD#<commandId>` and the `PENDINGCMD#` index),
 * so that no Lambda waits per command:
 * - the token half: `registerCommandWaiter`, called by send-freeze after SendCommand and by
 *   command-results for the thaw's `sqs:sendMessage.waitForTaskToken` message;
 * - the result half: `recordCommandResult`, called by command-results when an EventBridge event or
 *   its fallback sweep finds the command ended (GetCommandInvocation's stdout, CommandResult).
 * Whichever half arrives second answers: a conditional claim (`answeredAt` absent, or a claim left
 * by a caller that died more than CLAIM_STALE_MS ago) and then SendTaskSuccess, paced by the
 * caller's client bucket. A token Step Functions no longer knows (TaskTimedOut, TaskDoesNotExist,
 * InvalidToken) means nobody waits any more: the item is marked `dead` and left alone. A claim whose
 * SendTaskSuccess failed otherwise (throttled, 5xx) is released so that a redelivery or the sweep
 * answers it. Duplicated, late and out-of-order halves are harmless: the first result is kept
 * (`if_not_exists`), a second token for an answered command changes nothing, and only one caller
 * can hold the claim.
 *
 * A `PENDINGCMD#` entry exists from a token's registration until it is answered (or dead), whether
 * or not the result is known, so the sweep finds every waiter that nobody answered: one whose event
 * was lost, and one whose answer failed half-way.
 */

import {
  type AttributeValue,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { SendTaskFailureCommand, SendTaskSuccessCommand, type SFNClient } from '@aws-sdk/client-sfn';
import { type CommandKind, COORDINATION_TTL_SECONDS, coordinationKeys } from './coordination';
import { lastJsonObject, parseFreezeOutput, parseThawOutput } from './verdict';
import {
  budgetSecondsLeft,
  type CommandResult,
  type FreezeStepResult,
  type ThawStepResult,
} from './workflow-results';

export const COMMAND_KINDS: readonly CommandKind[] = ['freeze', 'thaw', 'retried-thaw'];

/** What send-freeze knows when it sends the freeze, for the FreezeStepResult built later. */
export interface FreezeContext {
  /** The NotAfter sent to the document (ISO-8601 UTC). */
  readonly notAfter: string;
  readonly freezeBudgetSeconds: number;
  /** Seconds kept back from the budget for the thaw to reach the instance. */
  readonly thawMarginSeconds: number;
}

export interface CommandWaiterRegistration {
  readonly commandId: string;
  readonly kind: CommandKind;
  readonly executionName: string;
  readonly instanceId: string;
  /** When SendCommand returned (ms since the epoch): the sweep's delays count from it. */
  readonly sentAtMs: number;
  readonly taskToken: string;
  /** Required for a freeze: the FreezeStepResult's budget and NotAfter. */
  readonly freeze?: FreezeContext;
}

/** A registration or a result the pairing cannot accept; the message names the field and what is allowed. */
export class CommandWaiterInputError extends Error {
  override readonly name = 'CommandWaiterInputError';
}

/** Anything with a `take` that resolves when one more request may go: a client token bucket. */
export interface Pace {
  take(): Promise<void>;
  /** Forget any burst: the service throttled us. */
  drain?(): void;
}

export interface AnswerDeps {
  readonly ddb: Pick<DynamoDBClient, 'send'>;
  readonly sfn: Pick<SFNClient, 'send'>;
  readonly table: string;
  readonly now: () => number;
  /** Paces SendTaskSuccess/SendTaskFailure (Step Functions: bucket 3,000, refill 500/s per account). */
  readonly sendTaskPace: Pace;
}

/** A claim older than this is taken to be from a caller that died before it answered. */
export const CLAIM_STALE_MS = 30_000;
/** The sweep looks at a waiter first this long after its command was sent. */
export const FIRST_CHECK_MS = 2_000;

export const COMMAND_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const INSTANCE_ID = /^(i|mi)-[0-9a-f]{8,17}$/;
const EXECUTION_NAME = /^[A-Za-z0-9_.:-]{1,80}$/;

function fail(field: string, value: unknown, allowed: string): never {
  throw new CommandWaiterInputError(`Invalid ${field}: got ${JSON.stringify(value)}; allowed: ${allowed}.`);
}

/** Checks a registration, naming the first bad value and what is allowed. */
export function validateRegistration(r: CommandWaiterRegistration): CommandWaiterRegistration {
  if (typeof r.commandId !== 'string' || !COMMAND_ID.test(r.commandId))
    fail('commandId', r.commandId, 'a Run Command id (36 characters, 8-4-4-4-12 hex digits)');
  if (!COMMAND_KINDS.includes(r.kind)) fail('kind', r.kind, COMMAND_KINDS.join(', '));
  if (typeof r.executionName !== 'string' || !EXECUTION_NAME.test(r.executionName))
    fail('executionName', r.executionName, 'a Step Functions execution name (1-80 of A-Z a-z 0-9 _ . : -)');
  if (typeof r.instanceId !== 'string' || !INSTANCE_ID.test(r.instanceId))
    fail('instanceId', r.instanceId, 'i-<8 to 17 hex digits>');
  if (typeof r.sentAtMs !== 'number' || !Number.isFinite(r.sentAtMs) || r.sentAtMs <= 0)
    fail('sentAtMs', r.sentAtMs, 'milliseconds since the epoch');
  if (typeof r.taskToken !== 'string' || r.taskToken.length < 1 || r.taskToken.length > 2048)
    fail('taskToken', r.taskToken ? `${r.taskToken.length} characters` : r.taskToken, '1-2048 characters');
  if (r.kind === 'freeze') {
    const f = r.freeze;
    if (!f || typeof f !== 'object')
      fail('freeze', f, 'an object {notAfter, freezeBudgetSeconds, thawMarginSeconds} for a freeze');
    if (typeof f.notAfter !== 'string' || Number.isNaN(Date.parse(f.notAfter)))
      fail('freeze.notAfter', f.notAfter, 'an ISO-8601 time');
    if (!Number.isInteger(f.freezeBudgetSeconds) || f.freezeBudgetSeconds < 1 || f.freezeBudgetSeconds > 600)
      fail('freeze.freezeBudgetSeconds', f.freezeBudgetSeconds, 'a whole number from 1 to 600');
    if (
      typeof f.thawMarginSeconds !== 'number' ||
      f.thawMarginSeconds < 0 ||
      f.thawMarginSeconds >= f.freezeBudgetSeconds
    )
      fail('freeze.thawMarginSeconds', f.thawMarginSeconds, 'from 0 to less than freezeBudgetSeconds');
  }
  return r;
}

// ---- the stored item ----

/** The `CMD#` item as this module reads it. */
export interface StoredCommand {
  readonly commandId: string;
  readonly kind?: CommandKind;
  readonly executionName?: string;
  readonly instanceId?: string;
  readonly sentAtMs?: number;
  readonly taskToken?: string;
  readonly freeze?: FreezeContext;
  readonly result?: CommandResult;
  /** When the result was known on this side's clock (the conservative freeze time uses it). */
  readonly resultObservedAtMs?: number;
  readonly answeredAt?: number;
  readonly answerState?: 'claimed' | 'answered' | 'dead';
}

const S = (value: string): AttributeValue => ({ S: value });
const N = (value: number): AttributeValue => ({ N: String(value) });
const str = (v: AttributeValue | undefined) => v?.S;
const num = (v: AttributeValue | undefined) => (v?.N === undefined ? undefined : Number(v.N));
const json = <T>(v: AttributeValue | undefined): T | undefined => {
  if (v?.S === undefined) return undefined;
  try {
    return JSON.parse(v.S) as T;
  } catch {
    return undefined;
  }
};

export function readStoredCommand(item: Record<string, AttributeValue>): StoredCommand {
  const kind = str(item.kind);
  const state = str(item.answerState);
  return {
    commandId: str(item.commandId) ?? (str(item.pk) ?? '').replace(/^CMD#/, ''),
    kind: COMMAND_KINDS.includes(kind as CommandKind) ? (kind as CommandKind) : undefined,
    executionName: str(item.executionName),
    instanceId: str(item.instanceId),
    sentAtMs: num(item.sentAtMs),
    taskToken: str(item.taskToken),
    freeze: json<FreezeContext>(item.freeze),
    result: json<CommandResult>(item.result),
    resultObservedAtMs: num(item.resultObservedAtMs),
    answeredAt: num(item.answeredAt),
    answerState: state === 'claimed' || state === 'answered' || state === 'dead' ? state : undefined,
  };
}

const key = (commandId: string) => {
  const k = coordinationKeys.command(commandId);
  return { pk: S(k.pk), sk: S(k.sk) };
};
const pendingKey = (commandId: string, sentAtMs: number) => {
  const k = coordinationKeys.pendingCommand(commandId, sentAtMs);
  return { pk: S(k.pk), sk: S(k.sk) };
};
const expiresAt = (nowMs: number) => N(Math.floor(nowMs / 1000) + COORDINATION_TTL_SECONDS);

function errorName(err: unknown): string {
  return (err as { name?: string })?.name ?? 'Error';
}

const isConditionFailure = (err: unknown) => errorName(err) === 'ConditionalCheckFailedException';

// ---- step results ----

/**
 * `$.freeze` for a freeze command that ended: `frozen` only when the command succeeded and its
 * stdout is a `frozen` result with a freeze time; anything else was sent and did not freeze as
 * asked, and goes to the thaw (a failed freeze may have frozen something before failing).
 */
export function freezeStepResult(
  command: CommandResult,
  context: FreezeContext,
  sentAtMs: number | undefined,
  observedAtMs: number,
  nowMs: number,
): FreezeStepResult {
  const out = parseFreezeOutput(command.stdout);
  const sent = {
    commandId: command.commandId,
    ...(sentAtMs !== undefined ? { sentAtMs } : {}),
    notAfter: context.notAfter,
    command,
  };
  if (command.succeeded && out?.status === 'frozen' && out.frozenAtMs !== undefined) {
    // The instance's clock may run ahead: the budget counts from the earlier of its freeze time and
    // the moment this side knew the freeze had happened.
    const frozenAtAwsMs = Math.min(out.frozenAtMs, observedAtMs);
    const deadlineMs = frozenAtAwsMs + (context.freezeBudgetSeconds - context.thawMarginSeconds) * 1000;
    return {
      outcome: 'frozen',
      budgetSeconds: budgetSecondsLeft(deadlineMs, nowMs),
      detail: `the document froze ${out.targets.length} filesystem(s) (${out.targets.join(', ') || 'none listed'})`,
      ...sent,
      frozenAtMs: out.frozenAtMs,
      frozenAtAwsMs,
      ...(out.watchdogDeadline ? { watchdogDeadline: out.watchdogDeadline } : {}),
      ...(lastJsonObject(command.stdout)?.duplicate === true ? { duplicate: true } : {}),
    };
  }
  const why = !command.succeeded
    ? `the freeze command ended ${command.status}: ${command.detail}`
    : !out
      ? 'the freeze command succeeded but its output is not the documented freeze result'
      : out.status === 'frozen'
        ? 'the freeze result has no freeze time'
        : `the document reported ${out.status}${out.errorMessage ? `: ${out.errorMessage}` : ''}`;
  return {
    outcome: 'not-frozen',
    // Nothing is known frozen: the whole budget, for a Choice that reads it.
    budgetSeconds: Math.max(1, context.freezeBudgetSeconds),
    detail: why.slice(0, 1000),
    ...sent,
  };
}

/** `$.thaw` / `$.retriedThaw`: confirmed only by a successful command whose stdout says `thawed` with nothing failed. */
export function thawStepResult(command: CommandResult, attempt: number): ThawStepResult {
  const out = parseThawOutput(command.stdout);
  const confirmed = command.succeeded && out?.status === 'thawed' && out.failed.length === 0;
  const detail = confirmed
    ? 'the thaw document reported every filesystem thawed'
    : !command.succeeded
      ? `the thaw command ended ${command.status}: ${command.detail}`
      : !out
        ? 'the thaw command succeeded but its output is not the documented thaw result'
        : out.status !== 'thawed'
          ? 'the thaw document reported an error'
          : `the thaw document could not thaw: ${out.failed.join(', ')}`;
  return {
    confirmed,
    command,
    attempt,
    detail: detail.slice(0, 1000),
    watchdogFired: out?.watchdogFired === true,
  };
}

/** The output the waiting task gets for a command that ended. */
export function stepResultFor(item: StoredCommand, nowMs: number): FreezeStepResult | ThawStepResult {
  const result = item.result as CommandResult;
  if (item.kind === 'freeze') {
    if (!item.freeze)
      throw new CommandWaiterInputError(
        `command ${item.commandId}: a freeze waiter without its freeze context`,
      );
    return freezeStepResult(result, item.freeze, item.sentAtMs, item.resultObservedAtMs ?? nowMs, nowMs);
  }
  return thawStepResult(result, item.kind === 'retried-thaw' ? 2 : 1);
}

// ---- the halves ----

export type PairingOutcome =
  /** The token is stored; the result is not known yet. */
  | 'waiting-for-result'
  /** The result is stored; no token is registered yet. */
  | 'waiting-for-token'
  /** This call answered the task. */
  | 'answered'
  /** Someone else holds or held the claim: nothing to do. */
  | 'already-answered'
  /** Step Functions no longer knows the token: nobody waits any more. */
  | 'dead-token';

/** Deletes a waiter's entry of the pending index. */
export async function removePending(
  deps: Pick<AnswerDeps, 'ddb' | 'table'>,
  commandId: string,
  sentAtMs: number,
) {
  await deps.ddb.send(new DeleteItemCommand({ TableName: deps.table, Key: pendingKey(commandId, sentAtMs) }));
}

/**
 * The token half. Stores the token (idempotent for the same token; a no-op once answered), adds the
 * command to the pending index, and answers at once when the result is already there and `answer`
 * is given (without it the sweep answers).
 */
export async function registerCommandWaiter(
  ddb: Pick<DynamoDBClient, 'send'>,
  table: string,
  registration: CommandWaiterRegistration,
  answer?: Omit<AnswerDeps, 'ddb' | 'table'>,
): Promise<PairingOutcome> {
  const r = validateRegistration(registration);
  const nowMs = answer?.now() ?? Date.now();
  let stored: StoredCommand;
  try {
    const out = await ddb.send(
      new UpdateItemCommand({
        TableName: table,
        Key: key(r.commandId),
        UpdateExpression:
          'SET #commandId = :commandId, #kind = :kind, #executionName = :executionName, #instanceId = :instanceId, #sentAtMs = :sentAtMs, #taskToken = :taskToken, #expiresAt = :expiresAt' +
          (r.freeze ? ', #freeze = :freeze' : ''),
        ConditionExpression:
          'attribute_not_exists(#answeredAt) AND (attribute_not_exists(#taskToken) OR #taskToken = :taskToken)',
        ExpressionAttributeNames: {
          '#commandId': 'commandId',
          '#kind': 'kind',
          '#executionName': 'executionName',
          '#instanceId': 'instanceId',
          '#sentAtMs': 'sentAtMs',
          '#taskToken': 'taskToken',
          '#expiresAt': 'expiresAt',
          '#answeredAt': 'answeredAt',
          ...(r.freeze ? { '#freeze': 'freeze' } : {}),
        },
        ExpressionAttributeValues: {
          ':commandId': S(r.commandId),
          ':kind': S(r.kind),
          ':executionName': S(r.executionName),
          ':instanceId': S(r.instanceId),
          ':sentAtMs': N(r.sentAtMs),
          ':taskToken': S(r.taskToken),
          ':expiresAt': expiresAt(nowMs),
          ...(r.freeze ? { ':freeze': S(JSON.stringify(r.freeze)) } : {}),
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    stored = readStoredCommand(out.Attributes ?? {});
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
    const now = await ddb.send(
      new GetItemCommand({ TableName: table, Key: key(r.commandId), ConsistentRead: true }),
    );
    const item = readStoredCommand(now.Item ?? {});
    if (item.answeredAt !== undefined) return 'already-answered';
    throw new CommandWaiterInputError(
      `command ${r.commandId} already has another task token registered (execution ${item.executionName ?? 'unknown'}); one command has one waiter`,
    );
  }
  // The pending entry first, then the answer: if the answer fails half-way the sweep finds it.
  await ddb.send(
    new PutItemCommand({
      TableName: table,
      Item: {
        ...pendingKey(r.commandId, r.sentAtMs),
        commandId: S(r.commandId),
        kind: S(r.kind),
        instanceId: S(r.instanceId),
        sentAtMs: N(r.sentAtMs),
        nextCheckAtMs: N(r.sentAtMs + FIRST_CHECK_MS),
        checks: N(0),
        expiresAt: expiresAt(nowMs),
      },
    }),
  );
  if (!stored.result) return 'waiting-for-result';
  if (!answer) return 'waiting-for-result';
  return answerCommand({ ...answer, ddb, table }, stored);
}

export interface CommandEnd {
  readonly commandId: string;
  readonly instanceId: string;
  readonly result: CommandResult;
  /** When this side learned the result (for the conservative freeze time). */
  readonly observedAtMs: number;
}

/**
 * The result half. Keeps the first result stored (a duplicate or late one changes nothing) and
 * answers when a token is waiting and nobody answered yet.
 */
export async function recordCommandResult(deps: AnswerDeps, end: CommandEnd): Promise<PairingOutcome> {
  const nowMs = deps.now();
  const out = await deps.ddb.send(
    new UpdateItemCommand({
      TableName: deps.table,
      Key: key(end.commandId),
      UpdateExpression:
        'SET #commandId = :commandId, #instanceId = if_not_exists(#instanceId, :instanceId), #result = if_not_exists(#result, :result), #observed = if_not_exists(#observed, :observed), #expiresAt = :expiresAt',
      ExpressionAttributeNames: {
        '#commandId': 'commandId',
        '#instanceId': 'instanceId',
        '#result': 'result',
        '#observed': 'resultObservedAtMs',
        '#expiresAt': 'expiresAt',
      },
      ExpressionAttributeValues: {
        ':commandId': S(end.commandId),
        ':instanceId': S(end.instanceId),
        ':result': S(JSON.stringify(end.result)),
        ':observed': N(end.observedAtMs),
        ':expiresAt': expiresAt(nowMs),
      },
      ReturnValues: 'ALL_NEW',
    }),
  );
  const stored = readStoredCommand(out.Attributes ?? {});
  if (!stored.taskToken) return 'waiting-for-token';
  return answerCommand(deps, stored);
}

const DEAD_TOKEN = ['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken'];

/**
 * Claims the answer and sends it. Returns `already-answered` when another caller holds the claim
 * (or answered), `dead-token` when nobody waits any more; throws (after releasing the claim) when
 * SendTaskSuccess failed otherwise, so that the caller's retry or the sweep answers later.
 */
export async function answerCommand(deps: AnswerDeps, item: StoredCommand): Promise<PairingOutcome> {
  if (!item.taskToken || !item.result) return item.result ? 'waiting-for-token' : 'waiting-for-result';
  if (item.answerState === 'answered' || item.answerState === 'dead') return 'already-answered';
  const claimedAt = deps.now();
  try {
    await deps.ddb.send(
      new UpdateItemCommand({
        TableName: deps.table,
        Key: key(item.commandId),
        UpdateExpression: 'SET #answeredAt = :now, #state = :claimed',
        ConditionExpression:
          'attribute_exists(#taskToken) AND attribute_exists(#result) AND (attribute_not_exists(#answeredAt) OR (#state = :claimed AND #answeredAt < :stale))',
        ExpressionAttributeNames: {
          '#answeredAt': 'answeredAt',
          '#state': 'answerState',
          '#taskToken': 'taskToken',
          '#result': 'result',
        },
        ExpressionAttributeValues: {
          ':now': N(claimedAt),
          ':claimed': S('claimed'),
          ':stale': N(claimedAt - CLAIM_STALE_MS),
        },
      }),
    );
  } catch (err) {
    if (isConditionFailure(err)) return 'already-answered';
    throw err;
  }
  const settle = async (state: 'answered' | 'dead', error?: string) => {
    await deps.ddb.send(
      new UpdateItemCommand({
        TableName: deps.table,
        Key: key(item.commandId),
        UpdateExpression: `SET #state = :state${error ? ', #answerError = :error' : ''}`,
        ExpressionAttributeNames: {
          '#state': 'answerState',
          ...(error ? { '#answerError': 'answerError' } : {}),
        },
        ExpressionAttributeValues: { ':state': S(state), ...(error ? { ':error': S(error) } : {}) },
      }),
    );
    if (item.sentAtMs !== undefined) await removePending(deps, item.commandId, item.sentAtMs);
  };
  const release = async () => {
    await deps.ddb.send(
      new UpdateItemCommand({
        TableName: deps.table,
        Key: key(item.commandId),
        UpdateExpression: 'REMOVE #answeredAt, #state',
        ConditionExpression: '#answeredAt = :mine AND #state = :claimed',
        ExpressionAttributeNames: { '#answeredAt': 'answeredAt', '#state': 'answerState' },
        ExpressionAttributeValues: { ':mine': N(claimedAt), ':claimed': S('claimed') },
      }),
    );
  };
  let output: string;
  let step: FreezeStepResult | ThawStepResult;
  try {
    step = stepResultFor(item, deps.now());
    output = JSON.stringify(step);
  } catch (err) {
    // A waiter whose step result cannot be built: fail the task, so the workflow's Catch thaws.
    await sendTask(
      deps,
      new SendTaskFailureCommand({
        taskToken: item.taskToken,
        error: 'CommandResultUnreadable',
        cause: String(err instanceof Error ? err.message : err).slice(0, 1000),
      }),
    );
    await settle('answered', 'CommandResultUnreadable');
    return 'answered';
  }
  try {
    // The instance is thawed whoever still waits: execution-events and record-outcome read it here.
    if ('confirmed' in step && step.confirmed && item.executionName) {
      await recordThawConfirmed(deps, item.executionName, deps.now());
    }
    await sendTask(deps, new SendTaskSuccessCommand({ taskToken: item.taskToken, output }));
  } catch (err) {
    const name = errorName(err);
    if (DEAD_TOKEN.includes(name)) {
      await settle('dead', name);
      return 'dead-token';
    }
    if (name === 'InvalidOutput') {
      await sendTask(
        deps,
        new SendTaskFailureCommand({
          taskToken: item.taskToken,
          error: 'CommandResultUnsendable',
          cause: `Step Functions refused the result of command ${item.commandId} (InvalidOutput)`,
        }),
      ).catch(() => undefined);
      await settle('answered', 'InvalidOutput');
      return 'answered';
    }
    await release().catch(() => undefined);
    throw err;
  }
  await settle('answered');
  return 'answered';
}

/** `EXEC#<execution>` thawConfirmedAtMs (ExecutionFacts, lambda/shared/coordination.ts): the first confirmation stands. */
async function recordThawConfirmed(
  deps: Pick<AnswerDeps, 'ddb' | 'table'>,
  executionName: string,
  atMs: number,
) {
  const k = coordinationKeys.execution(executionName);
  await deps.ddb.send(
    new UpdateItemCommand({
      TableName: deps.table,
      Key: { pk: S(k.pk), sk: S(k.sk) },
      UpdateExpression:
        'SET #executionName = :executionName, #thawConfirmedAtMs = if_not_exists(#thawConfirmedAtMs, :at), #expiresAt = :expiresAt',
      ExpressionAttributeNames: {
        '#executionName': 'executionName',
        '#thawConfirmedAtMs': 'thawConfirmedAtMs',
        '#expiresAt': 'expiresAt',
      },
      ExpressionAttributeValues: {
        ':executionName': S(executionName),
        ':at': N(atMs),
        ':expiresAt': expiresAt(atMs),
      },
    }),
  );
}

async function sendTask(
  deps: Pick<AnswerDeps, 'sfn' | 'sendTaskPace'>,
  command: SendTaskSuccessCommand | SendTaskFailureCommand,
) {
  await deps.sendTaskPace.take();
  try {
    // biome-ignore lint/suspicious/noExplicitAny: one client call for either command
    return await deps.sfn.send(command as any);
  } catch (err) {
    if (/Throttl|TooManyRequests/i.test(errorName(err))) deps.sendTaskPace.drain?.();
    throw err;
  }
}

/**
 * Answers a waiter that can have no command: the SendCommand result the state machine passed has
 * no CommandId (`NoCommandId`, as waitForCommand in lambda/shared/command-wait.ts reports it). Nothing is stored.
 */
export async function answerWithoutCommand(
  deps: Pick<AnswerDeps, 'sfn' | 'sendTaskPace'>,
  taskToken: string,
  kind: CommandKind,
): Promise<PairingOutcome> {
  const command: CommandResult = {
    succeeded: false,
    status: 'NoCommandId',
    commandId: '',
    stdout: '',
    stderr: '',
    detail: 'SendCommand returned no Command.CommandId',
  };
  try {
    await sendTask(
      deps,
      new SendTaskSuccessCommand({
        taskToken,
        output: JSON.stringify(thawStepResult(command, kind === 'retried-thaw' ? 2 : 1)),
      }),
    );
  } catch (err) {
    if (DEAD_TOKEN.includes(errorName(err))) return 'dead-token';
    throw err;
  }
  return 'answered';
}
