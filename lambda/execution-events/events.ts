/**
 * Turns a failed, timed-out or aborted workflow execution into one notification, unless something
 * else already notified it: record-outcome (it marks `EXEC#<executionArn>` / `OUTCOME` in the
 * notifier's table before it notifies, and confirms the mark with `notifiedAt` once SNS took the
 * message: lambda/shared/run-ledger.ts EXECUTION_NOTIFIED) or the state machine's last resort (the
 * execution then fails with OutcomeNotRecorded, or with OutcomeAlreadyNotified when it found the
 * confirmation).
 *
 * The mark without `notifiedAt` is a claim, not proof: record-outcome may have stopped before its
 * publish (a hung call, a failed undo) or after it (a lost confirmation). The execution has ended,
 * so whoever claimed it is done: this function takes the claim over and publishes (never silent
 * beats never duplicate where both cannot be had: nothing readable tells the two cases apart).
 * Its own claim (`eventsClaimedAt`) keeps a redelivered event from publishing twice while the
 * first delivery runs; it lapses after CLAIM_LEASE_SECONDS, longer than this function can run, so
 * a delivery that died holding it does not silence the retry. A failed publish gives the claim
 * back and throws, so the asynchronous retry (and, after it, the on-failure queue) still has the
 * event; a publish that went out is confirmed with `notifiedAt`.
 */

import type { Logger } from '@aws-lambda-powertools/logger';
import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { Notification } from '../shared/notification';
import { buildExecutionFailureNotification } from '../shared/notifications/execution-failure';
import { EXECUTION_NOTIFIED, executionMarkKey } from '../shared/run-ledger';
import { inputProblems } from '../shared/workflow-input';

/** The error names of lib/workflow.ts this function reads (kept as literals: no CDK import here). */
export const WORKFLOW_ERRORS = {
  /** The last resort published its message: nothing to add. */
  outcomeNotRecorded: 'OutcomeNotRecorded',
  /** The last resort found record-outcome's confirmed notification: nothing to add. */
  outcomeAlreadyNotified: 'OutcomeAlreadyNotified',
  /** Record Outcome returned, so its notification was published and confirmed: nothing to add. */
  backupFailed: 'BackupFailed',
  /** Check Input refused the input: nothing ran, nothing froze. */
  inputRejected: 'InvalidWorkflowInput',
} as const;

export const EXECUTION_EVENTS_ENV = { watchdogSeconds: 'WATCHDOG_SECONDS' } as const;
const MARK_TTL_DAYS = 7;
/** This function's timeout (lib/execution-events.ts). */
export const EXECUTION_EVENTS_TIMEOUT_SECONDS = 30;
/** A claim of this function older than this was held by a delivery that is over. */
export const CLAIM_LEASE_SECONDS = 4 * EXECUTION_EVENTS_TIMEOUT_SECONDS;
const FINAL_FAILURES = ['FAILED', 'TIMED_OUT', 'ABORTED'] as const;
const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

/** The fields of a "Step Functions Execution Status Change" event this function reads. */
export interface ExecutionStatusEvent {
  readonly account?: string;
  readonly region?: string;
  readonly detail?: {
    readonly executionArn?: string;
    readonly status?: string;
    readonly stopDate?: number | null;
    /** The execution input as a JSON string (absent when too large for the event). */
    readonly input?: string | null;
    readonly error?: string | null;
    readonly cause?: string | null;
  };
}

export interface ExecutionEventsDeps {
  /** The notifier's publish (lambda/shared/notifier.ts): SNS with the schema's attributes. */
  readonly publisher: { publish(notification: Notification): Promise<void> };
  readonly dynamodb: Pick<DynamoDBClient, 'send'>;
  readonly tableName: string;
  readonly watchdogSeconds: number;
  readonly logger: Pick<Logger, 'info'>;
  readonly clock?: () => Date;
  /** Waits between tries of the claim (tests and the simulator pass a virtual one). */
  readonly sleep?: (ms: number) => Promise<void>;
  /** The backoff's jitter (the simulator passes a seeded one, so a schedule replays exactly). */
  readonly random?: () => number;
}

/** Tries of the claim write before publishing without it, and the full-jitter backoff between. */
export const CLAIM_RETRY = { attempts: 4, baseMs: 100, capMs: 2000 } as const;

export type ExecutionEventResult =
  | 'notified'
  /** Published although the mark could not be written: DynamoDB kept failing (never silent). */
  | 'notified-unclaimed'
  | 'not-a-failure'
  | 'notified-by-last-resort'
  | 'already-notified';

export class ExecutionEventError extends Error {
  override readonly name = 'ExecutionEventError';
}

function parseInput(text: string | null | undefined): Record<string, unknown> | undefined {
  if (!text) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export async function handleExecutionEvent(
  event: ExecutionStatusEvent,
  deps: ExecutionEventsDeps,
): Promise<ExecutionEventResult> {
  const d = event.detail ?? {};
  const status = FINAL_FAILURES.find((s) => s === d.status);
  if (!status) return 'not-a-failure';
  if (d.error === WORKFLOW_ERRORS.outcomeNotRecorded) return 'notified-by-last-resort';
  if (d.error === WORKFLOW_ERRORS.outcomeAlreadyNotified || d.error === WORKFLOW_ERRORS.backupFailed)
    return 'already-notified';
  const executionArn = str(d.executionArn);
  if (!executionArn) {
    throw new ExecutionEventError(
      `detail.executionArn is ${JSON.stringify(d.executionArn)}; allowed: a Step Functions execution ARN.`,
    );
  }
  const now = (deps.clock ?? (() => new Date()))();
  const input = parseInput(d.input);
  const rejected = d.error === WORKFLOW_ERRORS.inputRejected;
  const instanceId = str(input?.instanceId);
  const notification = buildExecutionFailureNotification(
    {
      // The event's own account and Region: the input's may be what was wrong with it.
      accountId: str(event.account) ?? executionArn.split(':')[4] ?? 'unknown',
      region: str(event.region) ?? executionArn.split(':')[3] ?? 'unknown',
      executionArn,
      status,
      error: str(d.error),
      cause: str(d.cause),
      stoppedAt: typeof d.stopDate === 'number' ? new Date(d.stopDate) : now,
      instanceId: instanceId && INSTANCE_ID.test(instanceId) ? instanceId : undefined,
      instanceName: str(input?.instanceName),
      window: str(input?.window),
      runId: str(input?.runId),
      platform: str(input?.platform),
      // Conservative: a running Linux instance whose input passed Check Input may have been frozen
      // when the execution stopped (an input too large for the event counts as passed).
      freezeMayBeHeld:
        !rejected &&
        (input === undefined || (input.platform === 'linux' && input.instanceState === 'running')),
      watchdogSeconds: deps.watchdogSeconds,
      inputProblems: rejected ? inputProblems(input ?? {}) : [],
    },
    now,
  );

  const key = executionMarkKey(executionArn);
  const claimedAt = now.toISOString();
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const claim = () =>
    deps.dynamodb.send(
      new UpdateItemCommand({
        TableName: deps.tableName,
        Key: key,
        UpdateExpression:
          'SET #claimed = :now, #by = :by, #outcome = if_not_exists(#outcome, :outcome), #ttl = if_not_exists(#ttl, :ttl)',
        // Neither confirmed by anyone nor claimed by a delivery of this event that may still run.
        ConditionExpression:
          'attribute_not_exists(#notified) AND (attribute_not_exists(#claimed) OR #claimed < :stale)',
        ExpressionAttributeNames: {
          '#claimed': 'eventsClaimedAt',
          '#by': 'notifiedBy',
          '#outcome': 'outcome',
          '#ttl': 'expiresAt',
          '#notified': EXECUTION_NOTIFIED.at,
        },
        ExpressionAttributeValues: {
          ':now': { S: claimedAt },
          ':by': { S: 'execution-events' },
          ':outcome': { S: notification.eventType },
          ':ttl': { N: String(Math.floor(now.getTime() / 1000) + MARK_TTL_DAYS * 86_400) },
          ':stale': { S: new Date(now.getTime() - CLAIM_LEASE_SECONDS * 1000).toISOString() },
        },
      }),
    );
  let claimed = false;
  for (let attempt = 1; !claimed; attempt++) {
    try {
      await claim();
      claimed = true;
    } catch (err) {
      if (
        err instanceof ConditionalCheckFailedException ||
        (err as Error)?.name === 'ConditionalCheckFailedException'
      ) {
        deps.logger.info('Outcome already notified, or being notified; not repeating it', { executionArn });
        return 'already-notified';
      }
      // DynamoDB keeps failing: nothing can say whether anyone notified this execution. Publish
      // anyway: a duplicate is the price only when someone did, and failing here would leave the
      // event to the on-failure queue, which no subscriber of the topic reads.
      if (attempt >= CLAIM_RETRY.attempts) break;
      await sleep(
        (deps.random ?? Math.random)() * Math.min(CLAIM_RETRY.capMs, CLAIM_RETRY.baseMs * 2 ** (attempt - 1)),
      );
    }
  }
  try {
    await deps.publisher.publish(notification);
  } catch (err) {
    if (!claimed) throw err;
    // Give the claim back (only ours) so the retry publishes.
    await deps.dynamodb
      .send(
        new UpdateItemCommand({
          TableName: deps.tableName,
          Key: key,
          UpdateExpression: 'REMOVE #claimed',
          ConditionExpression: '#claimed = :now',
          ExpressionAttributeNames: { '#claimed': 'eventsClaimedAt' },
          ExpressionAttributeValues: { ':now': { S: claimedAt } },
        }),
      )
      .catch(() => undefined);
    throw err;
  }
  try {
    await deps.dynamodb.send(
      new UpdateItemCommand({
        TableName: deps.tableName,
        Key: key,
        UpdateExpression: 'SET #notified = :now, #severity = :severity',
        ExpressionAttributeNames: {
          '#notified': EXECUTION_NOTIFIED.at,
          '#severity': EXECUTION_NOTIFIED.severity,
        },
        ExpressionAttributeValues: { ':now': { S: claimedAt }, ':severity': { S: notification.severity } },
      }),
    );
  } catch (err) {
    // Published: failing now would only publish again. The claim lapses after its lease; only a
    // redelivery after that would repeat the message.
    deps.logger.info('Execution failure notified; its confirmation could not be stored', {
      executionArn,
      error: (err as Error)?.name,
    });
  }
  if (!claimed) {
    deps.logger.info('Execution failure notified without its mark: DynamoDB failed every try', {
      executionArn,
    });
    return 'notified-unclaimed';
  }
  deps.logger.info('Execution failure notified', {
    executionArn,
    status,
    severity: notification.severity,
    eventType: notification.eventType,
  });
  return 'notified';
}
