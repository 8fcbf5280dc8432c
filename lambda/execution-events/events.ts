/**
 * Turns a failed, timed-out or aborted workflow execution into one notification, unless something
 * else already notified it: record-outcome (it marks `EXEC#<executionArn>` / `OUTCOME` in the
 * notifier's table before it notifies, lambda/shared/notifier.ts) or the state machine's last
 * resort (the execution then fails with OutcomeNotRecorded). This function claims the same mark
 * before it publishes, so an outcome is notified once whoever comes first, and a redelivered event
 * finds the mark and sends nothing. A failed publish gives the mark back and throws, so the
 * asynchronous retry (and, after it, the on-failure queue) still has the event.
 */

import type { Logger } from '@aws-lambda-powertools/logger';
import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { Notification } from '../shared/notification';
import { buildExecutionFailureNotification } from '../shared/notifications/execution-failure';
import { inputProblems } from '../shared/workflow-input';

/** The error names of lib/workflow.ts this function reads (kept as literals: no CDK import here). */
export const WORKFLOW_ERRORS = {
  /** The last resort published its message: nothing to add. */
  outcomeNotRecorded: 'OutcomeNotRecorded',
  /** Check Input refused the input: nothing ran, nothing froze. */
  inputRejected: 'InvalidWorkflowInput',
} as const;

export const EXECUTION_EVENTS_ENV = { watchdogSeconds: 'WATCHDOG_SECONDS' } as const;
const MARK_TTL_DAYS = 7;
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
}

export type ExecutionEventResult =
  | 'notified'
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

  const key = { pk: { S: `EXEC#${executionArn}` }, sk: { S: 'OUTCOME' } };
  try {
    await deps.dynamodb.send(
      new PutItemCommand({
        TableName: deps.tableName,
        Item: {
          ...key,
          outcome: { S: notification.eventType },
          notifiedBy: { S: 'execution-events' },
          ...(str(input?.runId) ? { runId: { S: str(input?.runId) as string } } : {}),
          expiresAt: { N: String(Math.floor(now.getTime() / 1000) + MARK_TTL_DAYS * 86_400) },
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
  } catch (err) {
    if (
      err instanceof ConditionalCheckFailedException ||
      (err as Error)?.name === 'ConditionalCheckFailedException'
    ) {
      deps.logger.info('Outcome already recorded and notified; not repeating it', { executionArn });
      return 'already-notified';
    }
    throw err;
  }
  try {
    await deps.publisher.publish(notification);
  } catch (err) {
    // Give the mark back so the retry publishes.
    await deps.dynamodb.send(new DeleteItemCommand({ TableName: deps.tableName, Key: key }));
    throw err;
  }
  deps.logger.info('Execution failure notified', {
    executionArn,
    status,
    severity: notification.severity,
    eventType: notification.eventType,
  });
  return 'notified';
}
