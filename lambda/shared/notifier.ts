/**
 * The OutcomeSink behind every notification: turns outcomes and discovery results into messages
 * (lambda/shared/notifications/), publishes them to SNS, and keeps the little state that
 * de-duplication, Clear and the run summary need in one DynamoDB table.
 *
 * Table items (pk / sk), all with an `expiresAt` TTL (epoch seconds):
 * - `INSTANCE#<id>` / `PROBLEM#<class>`: an open problem (its message_key). Deleted by a Clear.
 *   TTL 90 days, renewed by every repeat: a problem nobody fixed for 90 days stops being tracked.
 * - `JOB#<backupJobId>` / `JOB`: the verdict of a backup job this app started, for job-events.
 *   TTL 7 days, longer than any EC2 backup job runs.
 * - `EXEC#<executionArn>` / `OUTCOME`: marks an outcome as counted (and on which shard), so a
 *   retried record-outcome neither counts nor notifies twice; `notifiedAt` / `notifiedSeverity`
 *   confirm that its notification went out (EXECUTION_NOTIFIED). TTL 7 days.
 * - `RUN#<runId>` / `RUN`: what discovery reported and, until its summary is sent, `pending` and
 *   `deadline`, which put it in the sparse `PendingRuns` index the deadline sweep reads. TTL 30 days.
 * - `RUN#<runId>` / `COUNT#<nn>`: the run's counters, sharded so that outcomes ending together do
 *   not contend for one item (lambda/shared/run-ledger.ts). TTL 30 days.
 * - `COUNTED#<key>` / `COUNTED`: marks one copy counter update as done (countCopy), so a repeated
 *   event never counts twice. TTL 30 days, as long as the run it counts for.
 */

import type { Logger } from '@aws-lambda-powertools/logger';
import {
  ConditionalCheckFailedException,
  type AttributeValue,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  TransactionCanceledException,
  TransactionConflictException,
  TransactWriteItemsCommand,
  type TransactWriteItemsCommandInput,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { emitExclusion, emitOutcome, emitPublished } from './metrics';
import type { Consistency } from './consistency';
import {
  messageAttributes,
  NOTIFIER_ENV,
  type Notification,
  PENDING_RUNS_INDEX,
  type ProblemClass,
  SEVERITY_RULES,
} from './notification';
import { buildClearNotification, type OpenProblem } from './notifications/clear';
import { buildExclusionNotification } from './notifications/exclusion';
import { buildOutcomeNotification, outcomeEventId } from './notifications/outcome';
import { buildRunSummaryNotification } from './notifications/run-summary';
import type { JobContext } from './notifications/backup-job';
import type {
  DiscoverySummary,
  ExcludedInstance,
  OutcomeKind,
  OutcomeSink,
  WorkflowOutcome,
} from './outcome';
import {
  EXECUTION_NOTIFIED,
  executionMarkKey,
  executionMarkPk,
  RUN_COUNTER_SHARDS,
  RUN_SK,
  type RunCounter,
  type RunView,
  runCounts,
  runFinished,
  runPk,
  shardSk,
  viewRun,
} from './run-ledger';

const ENV = NOTIFIER_ENV;
const DAY_S = 24 * 3600;
export const TTL_DAYS = { problem: 90, job: 7, execution: 7, run: 30 } as const;
/** The run-summary counters lambda/copy-jobs updates. */
export type CopyCounter = 'copiesStarted' | 'copiesCompleted' | 'copiesFailed';
export const DEFAULT_SUMMARY_DEADLINE_MINUTES = 240;
/** Parallel publishes when discovery reports many excluded instances at once. */
const PUBLISH_CONCURRENCY = 16;
/**
 * A transaction DynamoDB cancelled for a conflict (or throttling) is tried again, up to this many
 * times in all, after a full-jitter exponential backoff: random(0, min(cap, base x 2^n)) ms.
 * 10 attempts wait at most about 4 s in all, well inside record-outcome's 70 s task timeout.
 */
export const TRANSACTION_RETRY = { attempts: 10, baseMs: 20, capMs: 1000 } as const;

/** Retries of the write that confirms a publish (any error but a condition failure). */
export const CONFIRM_RETRY = { attempts: 4, baseMs: 50, capMs: 1000 } as const;

/** SNS took the outcome's notification, but the mark saying so could not be written. */
export class NotificationUnconfirmedError extends Error {
  override readonly name = 'NotificationUnconfirmedError';
}

export interface NotifierSettings {
  readonly topicArn: string;
  readonly tableName: string;
  /** Minutes without any report (discovery or outcome) after which the summary goes out unfinished. */
  readonly summaryDeadlineMinutes: number;
}

/** Powertools' logger, or anything with the same two methods (tests). */
export type NotifierLogger = Pick<Logger, 'info' | 'warn'>;

export interface NotifierClients {
  readonly sns: Pick<SNSClient, 'send'>;
  readonly dynamodb: Pick<DynamoDBClient, 'send'>;
}

export class NotifierConfigError extends Error {
  override readonly name = 'NotifierConfigError';
}

/** Read the notifier's settings from a function's environment; throws naming the variable. */
export function notifierSettings(env: NodeJS.ProcessEnv): NotifierSettings {
  const topicArn = env[ENV.topicArn];
  if (!topicArn || !/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/.test(topicArn)) {
    throw new NotifierConfigError(
      `Environment variable ${ENV.topicArn} is ${JSON.stringify(topicArn)}; allowed: an SNS topic ARN.`,
    );
  }
  const tableName = env[ENV.tableName];
  if (!tableName || !/^[A-Za-z0-9_.-]{3,255}$/.test(tableName)) {
    throw new NotifierConfigError(
      `Environment variable ${ENV.tableName} is ${JSON.stringify(tableName)}; allowed: a DynamoDB table name.`,
    );
  }
  const rawDeadline = env[ENV.summaryDeadlineMinutes];
  const summaryDeadlineMinutes =
    rawDeadline === undefined || rawDeadline === '' ? DEFAULT_SUMMARY_DEADLINE_MINUTES : Number(rawDeadline);
  if (
    !Number.isInteger(summaryDeadlineMinutes) ||
    summaryDeadlineMinutes < 5 ||
    summaryDeadlineMinutes > 2880
  ) {
    throw new NotifierConfigError(
      `Environment variable ${ENV.summaryDeadlineMinutes} is ${JSON.stringify(rawDeadline)}; allowed: a whole number of minutes from 5 to 2880.`,
    );
  }
  return { topicArn, tableName, summaryDeadlineMinutes };
}

/** The OutcomeSink record-outcome and discovery use (lambda/shared/outcome.ts). */
export function createNotifier(
  env: NodeJS.ProcessEnv,
  clients: { sns: SNSClient; dynamodb: DynamoDBClient },
  logger?: NotifierLogger,
): Notifier {
  return new Notifier(clients, notifierSettings(env), logger);
}

// ---------------------------------------------------------------------------------------------
// Attribute value helpers: the table is small and flat, so plain AttributeValues beat a dependency.

type Item = Record<string, AttributeValue>;
const S = (value: string): AttributeValue => ({ S: value });
const N = (value: number): AttributeValue => ({ N: String(value) });
const str = (item: Item | undefined, key: string): string | undefined => item?.[key]?.S;
const num = (item: Item | undefined, key: string): number | undefined =>
  item?.[key]?.N !== undefined ? Number(item[key].N) : undefined;

/** Which run-summary counter an outcome increments. */
export function outcomeCounter(
  outcome: OutcomeKind,
  consistency: Consistency | undefined,
): 'application' | 'filesystem' | 'fellBack' | 'skipped' | 'failed' {
  switch (outcome) {
    case 'backed-up':
      return consistency === 'application'
        ? 'application'
        : consistency === 'filesystem'
          ? 'filesystem'
          : 'fellBack';
    case 'skipped-active-job':
    case 'skipped-freeze-failed':
      return 'skipped';
    case 'backup-start-failed':
    case 'backup-job-failed':
    case 'thaw-failed':
      return 'failed';
  }
}

/**
 * Whether a completed backup job proves the instance healthy, so its open problems are cleared.
 * The issue asks for "application-consistent"; a filesystem-consistent backup with no warnings
 * counts too, because that is the best an instance without application hooks (or a stopped one)
 * can get, and its tickets would otherwise never close. A pre-freeze hook that failed leaves a
 * warning, so that filesystem label does not count.
 */
export function provesRecovery(job: StoredJob, finalConsistency: Consistency): boolean {
  if (job.outcome !== 'backed-up' || job.warningCount > 0) return false;
  return finalConsistency === 'application' || finalConsistency === 'filesystem';
}

/**
 * Warnings that say something was not done yet rather than that the backup is worse: record-outcome
 * could not write the label because the recovery point did not exist yet, and job-events writes it
 * at completion (and fails loudly if it cannot). They neither raise a Warning nor block a Clear.
 */
export function isDeferredLabelWarning(warning: string): boolean {
  return /^Could not label recovery point\b/.test(warning);
}

/** The warnings that mean the backup degraded. */
export function degradingWarnings(warnings: readonly string[]): string[] {
  return warnings.filter((w) => !isDeferredLabelWarning(w));
}

/** A backup job as recordOutcome stored it. */
export interface StoredJob extends JobContext {
  readonly outcome: OutcomeKind;
  readonly warningCount: number;
  readonly recordedAt: string;
  readonly finalState?: string;
}

/** A condition was not met: the answer to a question the write asked, never retried. */
export function isConditionFailure(err: unknown): boolean {
  if (err instanceof ConditionalCheckFailedException) return true;
  if (err instanceof TransactionCanceledException) {
    return (err.CancellationReasons ?? []).some((r) => r.Code === 'ConditionalCheckFailed');
  }
  const name = (err as { name?: string } | undefined)?.name;
  return name === 'ConditionalCheckFailedException';
}

/** Cancellation reasons that say "not now" rather than "no" (API reference, TransactWriteItems). */
const RETRYABLE_CANCELLATIONS = new Set([
  'TransactionConflict',
  'ThrottlingError',
  'ProvisionedThroughputExceeded',
]);

/**
 * A write refused because another transaction held one of its items (or for throughput), which
 * the SDK's retry strategy does not retry: a TransactionCanceledException whose reasons are all
 * `None` or retryable (a ConditionalCheckFailed among them makes it a condition failure), or the
 * TransactionConflictException a single-item write gets.
 */
export function isRetryableCancellation(err: unknown): boolean {
  const name = (err as { name?: string } | undefined)?.name;
  if (err instanceof TransactionConflictException || name === 'TransactionConflictException') return true;
  if (!(err instanceof TransactionCanceledException) && name !== 'TransactionCanceledException') return false;
  const codes = ((err as TransactionCanceledException).CancellationReasons ?? []).map(
    (r) => r.Code ?? 'None',
  );
  return (
    codes.some((c) => RETRYABLE_CANCELLATIONS.has(c)) &&
    codes.every((c) => c === 'None' || RETRYABLE_CANCELLATIONS.has(c))
  );
}

/** Randomness and waiting, injectable so that tests can count and need not wait. */
export interface NotifierTiming {
  readonly random: () => number;
  readonly sleep: (ms: number) => Promise<void>;
}
const REAL_TIMING: NotifierTiming = {
  random: Math.random,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++];
      try {
        await work(item);
      } catch (err) {
        errors.push(err);
      }
    }
  });
  await Promise.all(runners);
  // Every item was tried; the caller still learns that some failed (and the Lambda retries).
  if (errors.length > 0) throw errors[0];
}

export class Notifier implements OutcomeSink {
  /** Transactions tried again after a conflict or throttling, since this notifier was made. */
  readonly retries = { transactions: 0 };

  constructor(
    private readonly clients: NotifierClients,
    readonly settings: NotifierSettings,
    private readonly logger?: NotifierLogger,
    private readonly clock: () => Date = () => new Date(),
    private readonly timing: NotifierTiming = REAL_TIMING,
  ) {}

  // -------------------------------------------------------------------------------------------
  // OutcomeSink

  async recordOutcome(outcome: WorkflowOutcome): Promise<void> {
    const now = this.clock();
    const counter = outcomeCounter(outcome.outcome, outcome.verdict?.consistency);
    const deltas = (sign: 1 | -1) => ({ completed: sign, [counter]: sign });
    const mark = executionMarkKey(outcome.executionArn);
    let shard = 0;
    // Count and mark in one transaction: a retried call finds the mark and does nothing twice.
    try {
      await this.transact(() => {
        shard = this.pickShard();
        return [
          {
            Put: {
              TableName: this.settings.tableName,
              Item: {
                ...mark,
                outcome: S(outcome.outcome),
                runId: S(outcome.runId),
                shard: N(shard),
                expiresAt: N(this.ttl(now, TTL_DAYS.execution)),
              },
              ConditionExpression: 'attribute_not_exists(pk)',
            },
          },
          { Update: this.shardUpdate(outcome.runId, shard, deltas(1), now, true) },
        ];
      });
    } catch (err) {
      if (isConditionFailure(err)) {
        // Counted already. The mark is only a claim until EXECUTION_NOTIFIED confirms the publish:
        // an earlier attempt that stopped in between (its Lambda timed out, or DynamoDB failed after
        // SNS took the message) left the notification undone or unconfirmed, so this attempt does it.
        if (!(await this.executionNotified(outcome.executionArn))) {
          await this.notifyOutcome(outcome, now);
        } else {
          this.logger?.info('Outcome already recorded; ignoring the repeat', {
            executionArn: outcome.executionArn,
          });
        }
        // The first attempt may have failed after notifying but before checking the run: check again.
        await this.finishRunIfDone(outcome.runId, outcome);
        return;
      }
      throw err;
    }

    try {
      await this.notifyOutcome(outcome, now);
    } catch (err) {
      // A publish that SNS accepted stays counted and marked: the mark's retry re-drives only the
      // confirmation (and, unavoidably, the publish: see notifyOutcome).
      if (!(err instanceof NotificationUnconfirmedError)) {
        // Undo the mark and the count so the retry of this call redoes everything.
        await this.transact(() => [
          { Delete: { TableName: this.settings.tableName, Key: mark } },
          { Update: this.shardUpdate(outcome.runId, shard, deltas(-1), now, false) },
        ]);
      }
      throw err;
    }
    emitOutcome(outcome);
    await this.finishRunIfDone(outcome.runId, outcome);
  }

  /**
   * Whether the execution's outcome mark says its notification went out (or needed none). Called
   * when the mark's write found it there: an answer without it is not an answer to decide on.
   */
  async executionNotified(executionArn: string): Promise<boolean> {
    const found = await this.clients.dynamodb.send(
      new GetItemCommand({
        TableName: this.settings.tableName,
        Key: executionMarkKey(executionArn),
        ConsistentRead: true,
      }),
    );
    const item = (found as { Item?: unknown } | null | undefined)?.Item as Item | undefined;
    if (typeof item !== 'object' || item === null || str(item, 'pk') !== executionMarkPk(executionArn)) {
      throw new Error(
        `The outcome mark of ${executionArn} exists (its write's condition said so) but GetItem returned ${JSON.stringify(found)}; not deciding on that answer.`,
      );
    }
    return str(item, EXECUTION_NOTIFIED.at) !== undefined;
  }

  /**
   * Stores the job's verdict, publishes the outcome's notification (the problem item de-duplicates
   * it per event; this execution may take over its own earlier claim), then confirms on the
   * execution's mark that it went out, with the severity it had. Between the publish and the
   * confirmation nothing can tell whether SNS took the message: a confirmation that fails after
   * retries throws NotificationUnconfirmedError, and whoever comes next (a retry of record-outcome,
   * the state machine's last resort, the execution-events function) publishes again. Never silent
   * beats never duplicate here because both cannot be had: SNS Publish has no idempotency key.
   */
  private async notifyOutcome(outcome: WorkflowOutcome, now: Date): Promise<void> {
    if (outcome.backupJobId && outcome.verdict) await this.putJob(outcome, now);
    const notification = buildOutcomeNotification(
      { ...outcome, warnings: degradingWarnings(outcome.warnings) },
      now,
    );
    if (notification)
      await this.notifyProblem(
        notification,
        outcome.instanceName,
        outcomeEventId(outcome),
        now,
        `record-outcome:${outcome.executionArn}`,
      );
    try {
      await this.persist(() =>
        this.clients.dynamodb.send(
          new UpdateItemCommand({
            TableName: this.settings.tableName,
            Key: executionMarkKey(outcome.executionArn),
            UpdateExpression: `SET ${EXECUTION_NOTIFIED.at} = :now, ${EXECUTION_NOTIFIED.severity} = :severity`,
            ConditionExpression: 'attribute_exists(pk)',
            ExpressionAttributeValues: {
              ':now': S(now.toISOString()),
              ':severity': S(notification?.severity ?? EXECUTION_NOTIFIED.nothing),
            },
          }),
        ),
      );
    } catch (err) {
      if (isConditionFailure(err)) return;
      throw new NotificationUnconfirmedError(
        `The outcome of ${outcome.executionArn} was notified, but its confirmation could not be stored: ${(err as Error)?.name ?? 'Error'}: ${(err as Error)?.message ?? String(err)}`,
      );
    }
  }

  /** A single write after SNS took a message: tried a few times, since failing it costs a duplicate. */
  private async persist(write: () => Promise<unknown>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await write();
        return;
      } catch (err) {
        if (isConditionFailure(err) || attempt >= CONFIRM_RETRY.attempts) throw err;
        const ceiling = Math.min(CONFIRM_RETRY.capMs, CONFIRM_RETRY.baseMs * 2 ** (attempt - 1));
        await this.timing.sleep(this.timing.random() * ceiling);
      }
    }
  }

  async recordDiscovery(summary: DiscoverySummary, excluded: readonly ExcludedInstance[]): Promise<void> {
    const now = this.clock();
    await pool(excluded, PUBLISH_CONCURRENCY, async (instance) => {
      const notification = buildExclusionNotification(summary, instance, now);
      // One Minor per instance and run, however often discovery is retried for the window.
      if (await this.notifyProblem(notification, instance.instanceName, `run:${summary.runId}`, now))
        emitExclusion(instance.reason);
    });
    const deadline = new Date(now.getTime() + this.settings.summaryDeadlineMinutes * 60_000).toISOString();
    // A report with instances handed over is not the run's last: the run cannot finish on it.
    const last = (summary.handedOver ?? 0) <= 0;
    await this.clients.dynamodb.send(
      new UpdateItemCommand({
        TableName: this.settings.tableName,
        Key: { pk: S(`RUN#${summary.runId}`), sk: S('RUN') },
        // Each report carries the run's totals so far, and a retried discovery for the same window
        // sees every execution (started + already running): the latest report is the truth.
        UpdateExpression: `SET accountId = :account, #region = :region, #window = :window, discovered = :discovered, excluded = :excluded, expected = :expected, ${last ? 'discoveryRecordedAt = :now, ' : ''}deadline = :deadline, expiresAt = :ttl`,
        ExpressionAttributeNames: { '#region': 'region', '#window': 'window' },
        ExpressionAttributeValues: {
          ':account': S(summary.accountId),
          ':region': S(summary.region),
          ':window': S(summary.window),
          ':discovered': N(summary.discovered),
          ':excluded': S(JSON.stringify(summary.excluded)),
          ':expected': N(summary.started + summary.alreadyRunning),
          ...(last ? { ':now': S(now.toISOString()) } : {}),
          ':deadline': S(deadline),
          ':ttl': N(this.ttl(now, TTL_DAYS.run)),
        },
      }),
    );
    await this.finishRunIfDone(summary.runId);
  }

  // -------------------------------------------------------------------------------------------
  // Problems, de-duplication and Clear

  /**
   * Opens (or refreshes) the instance's problem of this class and publishes the notification once
   * per `eventId`. Returns false when this event was already published.
   */
  async notifyProblem(
    notification: Notification,
    instanceName: string | undefined,
    eventId: string,
    now: Date,
    /**
     * Who claims the event. A claim for the same event by the same claimant is taken over: only a
     * caller whose earlier attempt is certainly over passes one (record-outcome's retry: Step
     * Functions retries the task only once the invocation ended), so a publish that attempt
     * claimed and never made is made now rather than never.
     */
    claimant?: string,
  ): Promise<boolean> {
    const problemClass = SEVERITY_RULES[notification.eventType].problemClass;
    if (!notification.instanceId || !problemClass) {
      throw new Error(`notifyProblem needs an instance problem; got event type ${notification.eventType}`);
    }
    const key = { pk: S(`INSTANCE#${notification.instanceId}`), sk: S(`PROBLEM#${problemClass}`) };
    let previousEventId: string | undefined;
    try {
      const result = await this.clients.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.settings.tableName,
          Key: key,
          UpdateExpression: `SET messageKey = :key, eventType = :type, severity = :severity, problemClass = :class, instanceId = :instance, accountId = :account, #region = :region, instanceName = :name, openedAt = if_not_exists(openedAt, :now), lastSeenAt = :now, lastEventId = :eventId, expiresAt = :ttl${claimant ? ', claimedBy = :claimant' : ''} ADD occurrences :one${claimant ? '' : ' REMOVE claimedBy'}`,
          ConditionExpression: `attribute_not_exists(lastEventId) OR lastEventId <> :eventId${claimant ? ' OR claimedBy = :claimant' : ''}`,
          ExpressionAttributeNames: { '#region': 'region' },
          ExpressionAttributeValues: {
            ':key': S(notification.event.message_key),
            ':type': S(notification.eventType),
            ':severity': S(notification.severity),
            ':class': S(problemClass),
            ':instance': S(notification.instanceId),
            ':account': S(notification.event.additional_info.account),
            ':region': S(notification.event.additional_info.region),
            ':name': S(instanceName ?? ''),
            ':now': S(now.toISOString()),
            ':eventId': S(eventId),
            ':ttl': N(this.ttl(now, TTL_DAYS.problem)),
            ':one': N(1),
            ...(claimant ? { ':claimant': S(claimant) } : {}),
          },
          ReturnValues: 'UPDATED_OLD',
        }),
      );
      previousEventId = str(result.Attributes, 'lastEventId');
    } catch (err) {
      if (isConditionFailure(err)) {
        this.logger?.info('Notification already sent for this event; not repeating it', {
          messageKey: notification.event.message_key,
          eventId,
        });
        return false;
      }
      throw err;
    }
    try {
      await this.publish(notification);
    } catch (err) {
      // Give the event id back so a retry publishes; the problem itself stays open.
      await this.clients.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.settings.tableName,
          Key: key,
          UpdateExpression: previousEventId
            ? 'SET lastEventId = :previous ADD occurrences :minusOne'
            : 'REMOVE lastEventId ADD occurrences :minusOne',
          ExpressionAttributeValues: {
            ':minusOne': N(-1),
            ...(previousEventId ? { ':previous': S(previousEventId) } : {}),
          },
        }),
      );
      throw err;
    }
    return true;
  }

  /** The instance's open problems, read consistently: a Clear is decided on what is really open. */
  async openProblems(instanceId: string): Promise<(OpenProblem & { lastSeenAt: string })[]> {
    const problems: (OpenProblem & { lastSeenAt: string })[] = [];
    let startKey: Item | undefined;
    do {
      const page = await this.clients.dynamodb.send(
        new QueryCommand({
          TableName: this.settings.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': S(`INSTANCE#${instanceId}`), ':prefix': S('PROBLEM#') },
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        problems.push({
          accountId: str(item, 'accountId') ?? '',
          region: str(item, 'region') ?? '',
          instanceId,
          instanceName: str(item, 'instanceName') || undefined,
          problemClass: str(item, 'problemClass') as ProblemClass,
          eventType: str(item, 'eventType') as OpenProblem['eventType'],
          lastSeenAt: str(item, 'lastSeenAt') ?? '',
        });
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return problems;
  }

  /**
   * Sends a Clear for each problem of the job's instance that was last seen before the job's
   * outcome was recorded (a newer problem is not disproved by an older backup). Returns what it sent.
   *
   * The Clear is published before the problem is deleted: a publish that fails leaves the problem
   * open, so the retry (job-events gives its claim back) finds it and sends the Clear. The price is
   * at-least-once: when the delete fails after a successful publish, the retry sends the Clear again,
   * which closes nothing twice; a lost Clear would leave the ServiceNow alert open forever.
   */
  async clearProblems(job: StoredJob): Promise<Notification[]> {
    const now = this.clock();
    const sent: Notification[] = [];
    for (const problem of await this.openProblems(job.instanceId)) {
      if (!(problem.lastSeenAt <= job.recordedAt)) continue;
      const clear = buildClearNotification(problem, job, now);
      await this.publish(clear);
      sent.push(clear);
      await this.deleteProblemAsSeen(job.instanceId, problem.problemClass, problem.lastSeenAt);
    }
    return sent;
  }

  /**
   * Closes one open problem of an instance (copy and verification problems close on their own
   * success, not on a backup's): publishes the Clear `build` makes from it, then deletes it, as
   * clearProblems does. Returns the Clear, or undefined when no such problem was open.
   */
  async clearProblem(
    instanceId: string,
    problemClass: ProblemClass,
    build: (problem: OpenProblem) => Notification,
  ): Promise<Notification | undefined> {
    const key = { pk: S(`INSTANCE#${instanceId}`), sk: S(`PROBLEM#${problemClass}`) };
    const found = await this.clients.dynamodb.send(
      new GetItemCommand({ TableName: this.settings.tableName, Key: key, ConsistentRead: true }),
    );
    const item = found.Item;
    if (!item) return undefined;
    const clear = build({
      accountId: str(item, 'accountId') ?? '',
      region: str(item, 'region') ?? '',
      instanceId,
      instanceName: str(item, 'instanceName') || undefined,
      problemClass,
      eventType: str(item, 'eventType') as OpenProblem['eventType'],
    });
    await this.publish(clear);
    await this.deleteProblemAsSeen(instanceId, problemClass, str(item, 'lastSeenAt') ?? '');
    return clear;
  }

  /**
   * Deletes a problem whose Clear went out, but only as it was read: one refreshed meanwhile was
   * seen again after the success that cleared it, and stays open (its own message followed).
   */
  private async deleteProblemAsSeen(
    instanceId: string,
    problemClass: ProblemClass,
    lastSeenAt: string,
  ): Promise<void> {
    try {
      await this.clients.dynamodb.send(
        new DeleteItemCommand({
          TableName: this.settings.tableName,
          Key: { pk: S(`INSTANCE#${instanceId}`), sk: S(`PROBLEM#${problemClass}`) },
          ConditionExpression: 'lastSeenAt = :seen',
          ExpressionAttributeValues: { ':seen': S(lastSeenAt) },
        }),
      );
    } catch (err) {
      if (isConditionFailure(err)) {
        this.logger?.info('Problem seen again while its Clear was sent; it stays open', {
          instanceId,
          problemClass,
        });
        return;
      }
      throw err;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Backup jobs

  private async putJob(o: WorkflowOutcome, now: Date): Promise<void> {
    const verdict = o.verdict!;
    await this.clients.dynamodb.send(
      new UpdateItemCommand({
        TableName: this.settings.tableName,
        Key: { pk: S(`JOB#${o.backupJobId}`), sk: S('JOB') },
        // region, window and consistency are DynamoDB reserved words.
        UpdateExpression:
          'SET accountId = :account, #region = :region, instanceId = :instance, instanceName = :name, platform = :platform, executionArn = :execution, runId = :run, #window = :window, recoveryPointArn = :rp, #consistency = :consistency, reason = :reason, freezeMs = :freezeMs, outcome = :outcome, warningCount = :warnings, recordedAt = :now, expiresAt = :ttl',
        ExpressionAttributeNames: { '#region': 'region', '#window': 'window', '#consistency': 'consistency' },
        ExpressionAttributeValues: {
          ':account': S(o.accountId),
          ':region': S(o.region),
          ':instance': S(o.instanceId),
          ':name': S(o.instanceName ?? ''),
          ':platform': S(o.platform),
          ':execution': S(o.executionArn),
          ':run': S(o.runId),
          ':window': S(o.window),
          ':rp': S(o.recoveryPointArn ?? ''),
          ':consistency': S(verdict.consistency),
          ':reason': S(verdict.reason),
          ':freezeMs': N(verdict.freezeMs),
          ':outcome': S(o.outcome),
          ':warnings': N(degradingWarnings(o.warnings).length),
          ':now': S(now.toISOString()),
          ':ttl': N(this.ttl(now, TTL_DAYS.job)),
        },
      }),
    );
  }

  /** The stored verdict of a backup job this app started; undefined for anyone else's job. */
  async getJob(backupJobId: string): Promise<StoredJob | undefined> {
    const result = await this.clients.dynamodb.send(
      new GetItemCommand({
        TableName: this.settings.tableName,
        Key: { pk: S(`JOB#${backupJobId}`), sk: S('JOB') },
        ConsistentRead: true,
      }),
    );
    const item = result.Item;
    if (!item) return undefined;
    return {
      accountId: str(item, 'accountId') ?? '',
      region: str(item, 'region') ?? '',
      instanceId: str(item, 'instanceId') ?? '',
      instanceName: str(item, 'instanceName') || undefined,
      platform: str(item, 'platform') === 'windows' ? 'windows' : 'linux',
      executionArn: str(item, 'executionArn') ?? '',
      runId: str(item, 'runId') ?? '',
      window: str(item, 'window') ?? '',
      backupJobId,
      recoveryPointArn: str(item, 'recoveryPointArn') || undefined,
      verdict: {
        consistency: (str(item, 'consistency') ?? 'crash') as Consistency,
        reason: str(item, 'reason') ?? '',
        freezeMs: num(item, 'freezeMs') ?? 0,
      },
      outcome: (str(item, 'outcome') ?? 'backed-up') as OutcomeKind,
      warningCount: num(item, 'warningCount') ?? 0,
      recordedAt: str(item, 'recordedAt') ?? '',
      finalState: str(item, 'finalState'),
    };
  }

  /** Marks the job's final state once; false when another delivery of the event got there first. */
  async claimFinalState(backupJobId: string, state: string): Promise<boolean> {
    try {
      await this.clients.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.settings.tableName,
          Key: { pk: S(`JOB#${backupJobId}`), sk: S('JOB') },
          UpdateExpression: 'SET finalState = :state',
          ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(finalState)',
          ExpressionAttributeValues: { ':state': S(state) },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** Gives the claim back when handling failed, so EventBridge's retry handles the event. */
  async releaseFinalState(backupJobId: string): Promise<void> {
    await this.clients.dynamodb.send(
      new UpdateItemCommand({
        TableName: this.settings.tableName,
        Key: { pk: S(`JOB#${backupJobId}`), sk: S('JOB') },
        UpdateExpression: 'REMOVE finalState',
      }),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Run summary

  /** A random shard: outcomes ending together spread over the run's counters (run-ledger.ts). */
  private pickShard(): number {
    return Math.min(RUN_COUNTER_SHARDS - 1, Math.floor(this.timing.random() * RUN_COUNTER_SHARDS));
  }

  /**
   * Adds `deltas` to one counter shard of the run. An outcome's report also records when it came,
   * which keeps the summary's deadline away while waves are still finishing (sweepOverdueRuns).
   */
  private shardUpdate(
    runId: string,
    shard: number,
    deltas: Partial<Record<RunCounter, number>>,
    now: Date,
    report: boolean,
  ) {
    const entries = Object.entries(deltas);
    return {
      TableName: this.settings.tableName,
      Key: { pk: S(runPk(runId)), sk: S(shardSk(shard)) },
      UpdateExpression: `SET expiresAt = if_not_exists(expiresAt, :ttl)${report ? ', lastReportAt = :now' : ''} ADD ${entries.map((_, i) => `#c${i} :d${i}`).join(', ')}`,
      ExpressionAttributeNames: Object.fromEntries(entries.map(([name], i) => [`#c${i}`, name])),
      ExpressionAttributeValues: {
        ':ttl': N(this.ttl(now, TTL_DAYS.run)),
        ...(report ? { ':now': S(now.toISOString()) } : {}),
        ...Object.fromEntries(entries.map(([, delta], i) => [`:d${i}`, N(delta as number)])),
      },
    };
  }

  /**
   * Sends a TransactWriteItems, and sends it again while DynamoDB cancels it for a conflict or
   * throttling, which the SDK does not retry: after a full-jitter backoff, and with `build` called
   * anew, so that a counter update can move to another shard. A condition failure, or anything
   * else, is thrown at once.
   */
  private async transact(build: () => TransactWriteItemsCommandInput['TransactItems']): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.clients.dynamodb.send(new TransactWriteItemsCommand({ TransactItems: build() }));
        return;
      } catch (err) {
        if (!isRetryableCancellation(err) || attempt >= TRANSACTION_RETRY.attempts) throw err;
        this.retries.transactions++;
        const ceiling = Math.min(TRANSACTION_RETRY.capMs, TRANSACTION_RETRY.baseMs * 2 ** (attempt - 1));
        await this.timing.sleep(this.timing.random() * ceiling);
      }
    }
  }

  /**
   * The run summary's copy counters (lambda/copy-jobs): adds one to `counter` of run `runId`, once per
   * `onceKey` however often the event that causes it is delivered. Returns false for a repeat.
   */
  async countCopy(runId: string, counter: CopyCounter, onceKey: string): Promise<boolean> {
    const now = this.clock();
    try {
      await this.transact(() => [
        {
          Put: {
            TableName: this.settings.tableName,
            Item: {
              pk: S(`COUNTED#${onceKey}`),
              sk: S('COUNTED'),
              expiresAt: N(this.ttl(now, TTL_DAYS.run)),
            },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        { Update: this.shardUpdate(runId, this.pickShard(), { [counter]: 1 }, now, false) },
      ]);
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** The run's item collection, read consistently: the run item and its counter shards, summed. */
  async readRun(runId: string): Promise<RunView> {
    const items: Item[] = [];
    let startKey: Item | undefined;
    do {
      const page = await this.clients.dynamodb.send(
        new QueryCommand({
          TableName: this.settings.tableName,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': S(runPk(runId)) },
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      items.push(...(page.Items ?? []));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return viewRun(items);
  }

  /**
   * Puts the run in the deadline sweep's index unless its summary is out, and sends the summary once
   * every expected execution has reported. `seed` (an outcome) creates the run item when discovery
   * has not reported yet. True when this call sent the summary.
   *
   * Every reporter writes first and reads the run's collection after, consistently: whichever
   * write completes last is followed by a read that sees every count, so some reporter sees the run
   * finished, and the conditional claim in sendSummary lets exactly one of them send.
   */
  async finishRunIfDone(
    runId: string,
    seed?: Pick<WorkflowOutcome, 'accountId' | 'region' | 'window'>,
  ): Promise<boolean> {
    const view = await this.readRun(runId);
    if (str(view.run, 'summarySentAt')) return false;
    if (str(view.run, 'pending') === undefined && (view.run || seed)) await this.markPending(runId, seed);
    if (!runFinished(view)) return false;
    return this.sendSummary(runId, 'finished', view);
  }

  /** The deadline sweep: sends the summary of every run whose deadline passed. Returns the run ids. */
  async sweepOverdueRuns(): Promise<string[]> {
    const now = this.clock();
    const sent: string[] = [];
    let startKey: Item | undefined;
    do {
      const page = await this.clients.dynamodb.send(
        new QueryCommand({
          TableName: this.settings.tableName,
          IndexName: PENDING_RUNS_INDEX,
          KeyConditionExpression: 'pending = :pending AND deadline <= :now',
          ExpressionAttributeValues: { ':pending': S('RUN'), ':now': S(now.toISOString()) },
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        const runId = str(item, 'pk')?.replace(/^RUN#/, '');
        if (!runId) continue;
        const view = await this.readRun(runId);
        // Outcomes report on the shards, not on the run item: the deadline runs from the latest.
        const due = view.lastReportAt
          ? new Date(
              Date.parse(view.lastReportAt) + this.settings.summaryDeadlineMinutes * 60_000,
            ).toISOString()
          : undefined;
        if (due && due > now.toISOString() && !str(view.run, 'summarySentAt')) {
          await this.pushDeadline(runId, due);
          continue;
        }
        if (await this.sendSummary(runId, 'deadline', view)) sent.push(runId);
        else await this.dropPending(runId);
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return sent;
  }

  private async pushDeadline(runId: string, deadline: string): Promise<void> {
    try {
      await this.clients.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.settings.tableName,
          Key: { pk: S(runPk(runId)), sk: S(RUN_SK) },
          UpdateExpression: 'SET deadline = :deadline',
          ConditionExpression: 'attribute_exists(pending) AND attribute_not_exists(summarySentAt)',
          ExpressionAttributeValues: { ':deadline': S(deadline) },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  private async dropPending(runId: string): Promise<void> {
    try {
      await this.clients.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.settings.tableName,
          Key: { pk: S(runPk(runId)), sk: S(RUN_SK) },
          UpdateExpression: 'REMOVE pending',
          ConditionExpression: 'attribute_exists(summarySentAt)',
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  /**
   * Puts the run in the deadline sweep's index, unless its summary is already out. With `seed`, an
   * outcome that came before discovery creates the run item with what a summary needs. Written once
   * per run (while `pending` is missing), not once per outcome: the run item is no hot item.
   */
  private async markPending(
    runId: string,
    seed?: Pick<WorkflowOutcome, 'accountId' | 'region' | 'window'>,
  ): Promise<void> {
    const now = this.clock();
    const deadline = new Date(now.getTime() + this.settings.summaryDeadlineMinutes * 60_000).toISOString();
    try {
      await this.clients.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.settings.tableName,
          Key: { pk: S(runPk(runId)), sk: S(RUN_SK) },
          UpdateExpression: seed
            ? 'SET pending = :pending, deadline = if_not_exists(deadline, :deadline), accountId = if_not_exists(accountId, :account), #region = if_not_exists(#region, :region), #window = if_not_exists(#window, :window), expiresAt = if_not_exists(expiresAt, :ttl)'
            : 'SET pending = :pending, deadline = if_not_exists(deadline, :deadline)',
          ConditionExpression: seed
            ? 'attribute_not_exists(summarySentAt)'
            : 'attribute_exists(pk) AND attribute_not_exists(summarySentAt)',
          ...(seed ? { ExpressionAttributeNames: { '#region': 'region', '#window': 'window' } } : {}),
          ExpressionAttributeValues: {
            ':pending': S('RUN'),
            ':deadline': S(deadline),
            ...(seed
              ? {
                  ':account': S(seed.accountId),
                  ':region': S(seed.region),
                  ':window': S(seed.window),
                  ':ttl': N(this.ttl(now, TTL_DAYS.run)),
                }
              : {}),
          },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  /**
   * Claims the run's summary (only one reporter wins) and publishes it with the counts of `view`.
   * A finished run is claimed only as it was read: a discovery report meanwhile changes what
   * "finished" means, and the next reporter decides again.
   */
  private async sendSummary(runId: string, reason: 'finished' | 'deadline', view: RunView): Promise<boolean> {
    const now = this.clock();
    const asRead: { condition: string; values: Item } =
      reason === 'finished'
        ? {
            condition: ' AND discoveryRecordedAt = :recorded AND expected = :expected',
            values: {
              ':recorded': S(str(view.run, 'discoveryRecordedAt') ?? ''),
              ':expected': N(num(view.run, 'expected') ?? -1),
            },
          }
        : { condition: '', values: {} };
    try {
      await this.clients.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.settings.tableName,
          Key: { pk: S(runPk(runId)), sk: S(RUN_SK) },
          UpdateExpression: 'SET summarySentAt = :now, summaryReason = :reason REMOVE pending',
          ConditionExpression: `attribute_exists(pk) AND attribute_not_exists(summarySentAt)${asRead.condition}`,
          ExpressionAttributeValues: { ':now': S(now.toISOString()), ':reason': S(reason), ...asRead.values },
        }),
      );
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
    try {
      await this.publish(buildRunSummaryNotification(runCounts(runId, view), reason, now));
    } catch (err) {
      // Un-send, so the next outcome or the sweep tries again.
      await this.clients.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.settings.tableName,
          Key: { pk: S(runPk(runId)), sk: S(RUN_SK) },
          UpdateExpression: 'SET pending = :pending REMOVE summarySentAt, summaryReason',
          ExpressionAttributeValues: { ':pending': S('RUN') },
        }),
      );
      throw err;
    }
    this.logger?.info('Run summary sent', { runId, reason });
    return true;
  }

  // -------------------------------------------------------------------------------------------

  async publish(notification: Notification): Promise<void> {
    await this.clients.sns.send(
      new PublishCommand({
        TopicArn: this.settings.topicArn,
        Subject: notification.subject,
        Message: JSON.stringify(notification),
        MessageAttributes: messageAttributes(notification),
      }),
    );
    emitPublished(notification);
    this.logger?.info('Notification published', {
      eventType: notification.eventType,
      severity: notification.severity,
      messageKey: notification.event.message_key,
    });
  }

  private ttl(now: Date, days: number): number {
    return Math.floor(now.getTime() / 1000) + days * DAY_S;
  }
}
