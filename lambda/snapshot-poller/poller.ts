/**
 * The shared snapshot poller (one per account and Region): it answers every snapshot waiter that
 * start-backup registered (lambda/shared/snapshot-waiters.ts) with SendTaskSuccess, once:
 * - `started` when every volume has AWS Backup's snapshot of the job, started while frozen
 *   (backup-snapshots.ts says which snapshots count);
 * - `job-failed` when the job is FAILED, ABORTED or EXPIRED before that;
 * - `budget-exceeded` at the waiter's deadline.
 *
 * Shape of a run: take the lease (or wait for a dead holder's to expire), then sweep while there is
 * work: read new waiters (Query per shard, strongly consistent, from a cursor; all of them every
 * fullReadEveryMs), ask ListBackupJobs for failed jobs every listJobsIntervalMs, DescribeSnapshots
 * for the waiters due (up to volumesPerCall volume ids per call, paced by a token bucket), decide,
 * claim (conditional write of the answer on the waiter item), SendTaskSuccess (its own bucket),
 * delete. Exit after idleExitMs with nothing to do, hand over before the function's timeout.
 *
 * Nothing is lost when a poller dies: the answer is written to the waiter item before it is sent,
 * so a successor sends that same answer again (Step Functions accepts one; a repeat gets
 * TaskTimedOut, which means "closed"); a waiter not yet claimed is decided by the successor; each
 * waiter has a deadline, and the task's own timeout routes through the thaw if even that is missed.
 */

import { type BackupClient, ListBackupJobsCommand } from '@aws-sdk/client-backup';
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type QueryCommandOutput,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { DescribeSnapshotsCommand, type EC2Client, type Snapshot } from '@aws-sdk/client-ec2';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { type SFNClient, SendTaskFailureCommand, SendTaskSuccessCommand } from '@aws-sdk/client-sfn';
import { type Clock, mapLimit, TokenBucket } from '../discovery/rate';
import {
  COORDINATION_SHARDS,
  COORDINATION_TTL_SECONDS,
  coordinationKeys,
  type SnapshotWaiterItem,
} from '../shared/coordination';
import {
  leaseKey,
  readLease,
  type StoredWaiter,
  waiterFromItem,
  wakeSnapshotPoller,
} from '../shared/snapshot-waiters';
import type { SnapshotWaitResult } from '../shared/workflow-results';
import { type BackupSnapshot, type Resolution, resolveWaiter } from './backup-snapshots';
import type { PollerSettings } from './settings';

export interface PollerClients {
  readonly ddb: Pick<DynamoDBClient, 'send'>;
  readonly ec2: Pick<EC2Client, 'send'>;
  readonly backup: Pick<BackupClient, 'send'>;
  readonly sfn: Pick<SFNClient, 'send'>;
  readonly lambda: Pick<LambdaClient, 'send'>;
}

export interface PollerContext {
  readonly clock: Clock;
  /** This invocation's id: the lease holder. */
  readonly holder: string;
  /** Milliseconds left before the function times out. */
  readonly remainingMs: () => number;
  readonly log?: (message: string, fields?: Record<string, unknown>) => void;
}

export type PollerOutcome = 'idle' | 'handed-over' | 'lease-held' | 'lease-lost';

export interface PollerRun {
  readonly outcome: PollerOutcome;
  readonly sweeps: number;
  /** Answers Step Functions accepted. */
  readonly answered: number;
  /** Waiters whose token was already closed (TaskTimedOut, TaskDoesNotExist, InvalidToken). */
  readonly gone: number;
  readonly describeCalls: number;
  readonly listJobsCalls: number;
  readonly throttled: number;
}

/** Job states after which no snapshot of the job will start. */
export const FAILED_JOB_STATES = ['FAILED', 'ABORTED', 'EXPIRED'] as const;

/** SendTaskSuccess/Failure errors meaning nobody waits for this token any more (botocore stepfunctions). */
const CLOSED_TOKEN_ERRORS = new Set(['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken']);

interface Tracked {
  readonly stored: StoredWaiter;
  /** The claimed answer, to deliver (ours or a predecessor's). */
  answer?: SnapshotWaitResult;
  /** Decided, not yet claimed. */
  decided?: SnapshotWaitResult;
  best?: Resolution;
  jobState?: string;
  nextPollAtMs: number;
  lastPolledAtMs: number;
  /** Its answer is queued or being sent. */
  answering?: boolean;
}

const keyOf = (k: { pk: string; sk: string }) => `${k.pk}\u0000${k.sk}`;

function isThrottle(err: unknown): boolean {
  const e = err as { name?: string; $retryable?: { throttling?: boolean } };
  return (
    e?.$retryable?.throttling === true ||
    [
      'RequestLimitExceeded',
      'ThrottlingException',
      'Throttling',
      'TooManyRequestsException',
      'KmsThrottlingException',
    ].includes(String(e?.name))
  );
}

function isRetryable(err: unknown): boolean {
  const e = err as { $retryable?: unknown; $metadata?: { httpStatusCode?: number }; name?: string };
  const status = e?.$metadata?.httpStatusCode ?? 0;
  return isThrottle(err) || e?.$retryable !== undefined || status >= 500 || e?.name === 'TimeoutError';
}

export function runPoller(
  clients: PollerClients,
  settings: PollerSettings,
  ctx: PollerContext,
): Promise<PollerRun> {
  return new Poller(clients, settings, ctx).run();
}

class Poller {
  private readonly tracked = new Map<string, Tracked>();
  private readonly cursors = new Array<number>(COORDINATION_SHARDS).fill(0);
  private lastFullReadMs = Number.NEGATIVE_INFINITY;
  private lastRenewMs = Number.NEGATIVE_INFINITY;
  private lastJobsCheckMs = Number.NEGATIVE_INFINITY;
  /** The answers queued so far, sent in order (answer() never rejects). */
  private answering: Promise<void> = Promise.resolve();
  private readonly ec2Bucket: TokenBucket;
  private readonly sfnBucket: TokenBucket;
  private readonly jobsBucket: TokenBucket;
  private stats = { sweeps: 0, answered: 0, gone: 0, describeCalls: 0, listJobsCalls: 0, throttled: 0 };

  constructor(
    private readonly c: PollerClients,
    private readonly s: PollerSettings,
    private readonly ctx: PollerContext,
  ) {
    // Capacity of one second's worth: a burst never exceeds the pace by more than that.
    this.ec2Bucket = new TokenBucket(s.describeSnapshotsPerSecond, s.describeSnapshotsPerSecond, ctx.clock);
    this.sfnBucket = new TokenBucket(s.sendTaskPerSecond, s.sendTaskPerSecond, ctx.clock);
    // One check's calls (one per failed state) at once; pages beyond that at the pace.
    this.jobsBucket = new TokenBucket(FAILED_JOB_STATES.length, s.listJobsPerSecond, ctx.clock);
  }

  private now(): number {
    return this.ctx.clock.now();
  }

  private async done(outcome: PollerOutcome): Promise<PollerRun> {
    await this.answering;
    this.ctx.log?.('Poller exits', { outcome, ...this.stats, waiting: this.tracked.size });
    return { outcome, ...this.stats };
  }

  async run(): Promise<PollerRun> {
    if (!(await this.acquire())) return this.done('lease-held');
    let idleSince = this.now();
    // A run that never saw a waiter exits at once: wake-ups that Lambda throttled while a poller
    // ran (reserved concurrency 1) are delivered later, each as a run of its own, and must not each
    // idle for idleExitMs. Waiting for new work is only worth it right after some.
    let sawWork = false;
    for (;;) {
      const sweepStart = this.now();
      if (this.ctx.remainingMs() < this.s.handoverMarginMs) {
        await this.answering;
        // Release first, so the next invocation takes the lease at once.
        await this.release();
        await wakeSnapshotPoller(this.c.lambda, this.s.functionName, 'handover');
        return this.done('handed-over');
      }
      if (this.now() - this.lastRenewMs >= this.s.leaseMs / 3 && !(await this.renew()))
        return this.done('lease-lost');
      await this.readWaiters(this.now() - this.lastFullReadMs >= this.s.fullReadEveryMs);
      await this.sweep();
      this.stats.sweeps += 1;
      if (this.tracked.size > 0) {
        idleSince = this.now();
        sawWork = true;
      } else if (!sawWork || this.now() - idleSince >= this.s.idleExitMs) {
        await this.answering;
        // Release, then read once more: a waiter registered before the release is found here; one
        // registered after it finds the lease stale and wakes a poller (snapshot-waiters.ts).
        await this.release();
        await this.readWaiters(true);
        if (this.tracked.size === 0) return this.done('idle');
        if (!(await this.acquire())) return this.done('lease-held');
        idleSince = this.now();
      }
      // The cadence counts from the sweep's start: time spent waiting on a bucket is not added.
      await this.ctx.clock.sleep(Math.max(1, sweepStart + this.nextDelayMs() - this.now()));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The lease.

  private leaseItem(now: number) {
    return {
      ...leaseKey(),
      holder: { S: this.ctx.holder },
      expiresAtMs: { N: String(now + this.s.leaseMs) },
      acquiredAtMs: { N: String(now) },
      expiresAt: { N: String(Math.floor(now / 1000) + COORDINATION_TTL_SECONDS) },
    };
  }

  /** Takes the lease if it is free, expired or ours; waits once for a holder's lease to expire. */
  private async acquire(): Promise<boolean> {
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const now = this.now();
      try {
        await this.c.ddb.send(
          new PutItemCommand({
            TableName: this.s.tableName,
            Item: this.leaseItem(now),
            ConditionExpression: 'attribute_not_exists(#pk) OR #expiresAtMs <= :now OR #holder = :me',
            ExpressionAttributeNames: { '#pk': 'pk', '#expiresAtMs': 'expiresAtMs', '#holder': 'holder' },
            ExpressionAttributeValues: { ':now': { N: String(now) }, ':me': { S: this.ctx.holder } },
          }),
        );
        this.lastRenewMs = now;
        this.ctx.log?.('Lease taken', { holder: this.ctx.holder });
        return true;
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException)) throw err;
      }
      const lease = await readLease(this.c.ddb, this.s.tableName);
      if (!lease) continue;
      const wait = lease.expiresAtMs - this.now();
      // A holder that renews keeps it; one that stopped (crashed, killed) loses it after leaseMs.
      if (attempt > 0 || wait > this.s.leaseMs + 1000) return false;
      this.ctx.log?.('Lease held; waiting for it to expire', { holder: lease.holder, waitMs: wait });
      await this.ctx.clock.sleep(Math.max(0, wait) + 1);
    }
    return false;
  }

  private async renew(): Promise<boolean> {
    const now = this.now();
    try {
      await this.c.ddb.send(
        new UpdateItemCommand({
          TableName: this.s.tableName,
          Key: leaseKey(),
          UpdateExpression: 'SET #expiresAtMs = :exp',
          ConditionExpression: '#holder = :me',
          ExpressionAttributeNames: { '#expiresAtMs': 'expiresAtMs', '#holder': 'holder' },
          ExpressionAttributeValues: {
            ':exp': { N: String(now + this.s.leaseMs) },
            ':me': { S: this.ctx.holder },
          },
        }),
      );
      this.lastRenewMs = now;
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        this.ctx.log?.('Lease lost to another poller', { holder: this.ctx.holder });
        return false;
      }
      // A failed renewal is not a lost lease: keep going; the lease still runs for a while.
      this.ctx.log?.('Lease renewal failed', { error: String(err) });
      return true;
    }
  }

  private async release(): Promise<void> {
    const now = this.now();
    try {
      await this.c.ddb.send(
        new UpdateItemCommand({
          TableName: this.s.tableName,
          Key: leaseKey(),
          UpdateExpression: 'SET #expiresAtMs = :now',
          ConditionExpression: '#holder = :me',
          ExpressionAttributeNames: { '#expiresAtMs': 'expiresAtMs', '#holder': 'holder' },
          ExpressionAttributeValues: { ':now': { N: String(now) }, ':me': { S: this.ctx.holder } },
        }),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Reading waiters.

  private async readWaiters(full: boolean): Promise<void> {
    const seen = new Set<string>();
    const unreadable: Record<string, AttributeValue>[] = [];
    await mapLimit([...Array(COORDINATION_SHARDS).keys()], this.s.concurrency, async (shard) => {
      const since = full ? undefined : Math.max(0, this.cursors[shard] - this.s.cursorOverlapMs);
      let start: QueryCommandOutput['LastEvaluatedKey'];
      do {
        const out: QueryCommandOutput = await this.c.ddb.send(
          new QueryCommand({
            TableName: this.s.tableName,
            KeyConditionExpression: since === undefined ? '#pk = :pk' : '#pk = :pk AND #sk > :since',
            ExpressionAttributeNames: since === undefined ? { '#pk': 'pk' } : { '#pk': 'pk', '#sk': 'sk' },
            ExpressionAttributeValues: {
              ':pk': { S: coordinationKeys.waiterShard(shard) },
              ...(since === undefined ? {} : { ':since': { S: coordinationKeys.since(since) } }),
            },
            ConsistentRead: true,
            ExclusiveStartKey: start,
          }),
        );
        for (const item of out.Items ?? []) {
          const stored = waiterFromItem(item);
          if (!stored) {
            unreadable.push(item);
            continue;
          }
          const key = keyOf(stored.key);
          seen.add(key);
          this.cursors[shard] = Math.max(this.cursors[shard], stored.waiter.registeredAtMs);
          if (this.tracked.has(key)) continue;
          this.tracked.set(key, {
            stored,
            ...(stored.answer ? { answer: stored.answer } : {}),
            nextPollAtMs: 0,
            lastPolledAtMs: 0,
          });
        }
        start = out.LastEvaluatedKey;
      } while (start);
    });
    for (const item of unreadable) await this.refuse(item);
    if (full) {
      this.lastFullReadMs = this.now();
      // Gone from the table (answered by a poller that held the lease meanwhile): forget them.
      for (const key of [...this.tracked.keys()]) if (!seen.has(key)) this.tracked.delete(key);
    }
  }

  /**
   * A waiter item the poller cannot read (registerWaiter validates, so only a foreign or damaged
   * write): its task, if it names one, fails now so that it routes through the thaw rather than
   * wait for its timeout; then the item goes.
   */
  private async refuse(item: Record<string, AttributeValue>): Promise<void> {
    const taskToken = item.taskToken?.S;
    this.ctx.log?.('Unreadable waiter item: its task is failed and the item deleted', {
      pk: item.pk?.S,
      sk: item.sk?.S,
    });
    try {
      if (taskToken) {
        await this.sfnBucket.take();
        await this.c.sfn.send(
          new SendTaskFailureCommand({
            taskToken,
            error: 'SnapshotPoller.InvalidWaiter',
            cause:
              'The snapshot waiter item could not be read (lambda/shared/snapshot-waiters.ts validates it).',
          }),
        );
      }
    } catch (err) {
      const name = String((err as { name?: string })?.name);
      if (!CLOSED_TOKEN_ERRORS.has(name)) {
        this.ctx.log?.('SendTaskFailure for an unreadable waiter failed; retried next read', {
          error: String(err),
        });
        return;
      }
    }
    if (item.pk && item.sk) {
      await this.c.ddb.send(
        new DeleteItemCommand({ TableName: this.s.tableName, Key: { pk: item.pk, sk: item.sk } }),
      );
    }
  }

  // ---------------------------------------------------------------------------------------------
  // One sweep.

  private async sweep(): Promise<void> {
    const open = () => [...this.tracked.values()].filter((t) => !t.answer && !t.decided);
    // Failed jobs are looked for beside the snapshots, on their own bucket.
    await Promise.all([this.checkFailedJobs(open()), this.pollSnapshots(open())]);

    const end = this.now();
    for (const t of open()) {
      if (end >= t.stored.waiter.deadlineMs) t.decided = this.result(t, 'budget-exceeded', end);
    }

    // Answers go out at their own pace without holding up the next sweep's DescribeSnapshots: a
    // burst of answers waits on the SendTask bucket, not the snapshot polls behind it.
    const toAnswer = [...this.tracked.values()].filter((t) => (t.answer || t.decided) && !t.answering);
    for (const t of toAnswer) t.answering = true;
    if (toAnswer.length > 0) {
      this.answering = this.answering.then(() =>
        mapLimit(toAnswer, this.s.concurrency, async (t) => {
          await this.answer(t);
          t.answering = false;
        }).then(() => undefined),
      );
    }
  }

  private async pollSnapshots(open: readonly Tracked[]): Promise<void> {
    // DescribeSnapshots for the waiters due, least recently polled first, as many calls as fit one
    // fast cadence at the paced rate (at least one): deadlines are checked between sweeps.
    const now = this.now();
    const due = open
      .filter((t) => t.nextPollAtMs <= now && now < t.stored.waiter.deadlineMs)
      .sort(
        (a, b) =>
          a.lastPolledAtMs - b.lastPolledAtMs || a.stored.waiter.deadlineMs - b.stored.waiter.deadlineMs,
      );
    const calls = Math.max(1, Math.floor((this.s.describeSnapshotsPerSecond * this.s.fastCadenceMs) / 1000));
    const batch: Tracked[] = [];
    const volumes = new Set<string>();
    for (const t of due) {
      const add = t.stored.waiter.volumeIds.filter((v) => !volumes.has(v));
      if (volumes.size + add.length > calls * this.s.volumesPerCall) break;
      for (const v of add) volumes.add(v);
      batch.push(t);
    }
    if (batch.length > 0) {
      const listed = await this.describe([...volumes]);
      const after = this.now();
      for (const t of batch) {
        const w = t.stored.waiter;
        if (w.volumeIds.some((v) => !listed.has(v))) continue; // a call failed: next sweep
        t.lastPolledAtMs = after;
        t.best = resolveWaiter(
          w.volumeIds.flatMap((v) => listed.get(v) ?? []),
          w,
          this.s.backupTagRule,
        );
        // A job found failed meanwhile keeps that answer.
        if (t.best.complete && !t.decided) t.decided = this.result(t, 'started', after);
        else if (!t.decided)
          t.nextPollAtMs =
            after - w.registeredAtMs < this.s.youngForMs ? after : after + this.s.slowCadenceMs;
      }
    }
  }

  /** Waiters younger than youngForMs are polled every fast cadence, the others every slow one. */
  private nextDelayMs(): number {
    const now = this.now();
    const waiting = [...this.tracked.values()];
    if (waiting.length === 0) return this.s.slowCadenceMs;
    if (waiting.some((t) => t.answer || t.decided)) return this.s.fastCadenceMs;
    const young = waiting.some((t) => now - t.stored.waiter.registeredAtMs < this.s.youngForMs);
    const cadence = young ? this.s.fastCadenceMs : this.s.slowCadenceMs;
    const nextDeadline = Math.min(...waiting.map((t) => t.stored.waiter.deadlineMs)) - now;
    const nextPoll = Math.min(...waiting.map((t) => t.nextPollAtMs)) - now;
    return Math.max(
      1,
      Math.min(cadence, Math.max(nextDeadline, 0), Math.max(nextPoll, this.s.fastCadenceMs)),
    );
  }

  /** Snapshots per volume, for volumes whose call succeeded (pages included). */
  private async describe(volumeIds: readonly string[]): Promise<Map<string, Snapshot[]>> {
    const chunks: string[][] = [];
    for (let i = 0; i < volumeIds.length; i += this.s.volumesPerCall) {
      chunks.push(volumeIds.slice(i, i + this.s.volumesPerCall));
    }
    const listed = new Map<string, Snapshot[]>();
    await mapLimit(chunks, this.s.concurrency, async (chunk) => {
      const found: Snapshot[] = [];
      let token: string | undefined;
      try {
        do {
          await this.ec2Bucket.take();
          this.stats.describeCalls += 1;
          const page = await this.c.ec2.send(
            new DescribeSnapshotsCommand({
              OwnerIds: ['self'],
              Filters: [
                { Name: 'volume-id', Values: chunk },
                // error snapshots never count; recoverable/recovering ones are archive states.
                { Name: 'status', Values: ['pending', 'completed'] },
              ],
              MaxResults: 1000,
              NextToken: token,
            }),
          );
          found.push(...(page.Snapshots ?? []));
          token = page.NextToken;
        } while (token);
      } catch (err) {
        if (isThrottle(err)) {
          this.stats.throttled += 1;
          this.ec2Bucket.drain();
        }
        this.ctx.log?.('DescribeSnapshots failed; these volumes are asked again next sweep', {
          error: String(err),
          volumes: chunk.length,
        });
        return;
      }
      for (const v of chunk) listed.set(v, []);
      for (const s of found) if (s.VolumeId && listed.has(s.VolumeId)) listed.get(s.VolumeId)?.push(s);
    });
    return listed;
  }

  /**
   * Failed jobs, batched for every waiter: one ListBackupJobs per failed state (and page), created
   * after the oldest waiter's job, at most every listJobsIntervalMs.
   */
  private async checkFailedJobs(open: readonly Tracked[]): Promise<void> {
    if (open.length === 0 || this.now() - this.lastJobsCheckMs < this.s.listJobsIntervalMs) return;
    this.lastJobsCheckMs = this.now();
    const byJob = new Map<string, Tracked[]>();
    for (const t of open) {
      const list = byJob.get(t.stored.waiter.backupJobId) ?? [];
      list.push(t);
      byJob.set(t.stored.waiter.backupJobId, list);
    }
    // One second earlier: CreationDate and our record of it may differ in rounding.
    const after = new Date(Math.min(...open.map((t) => t.stored.waiter.jobCreatedAtMs)) - 1000);
    for (const state of FAILED_JOB_STATES) {
      let token: string | undefined;
      try {
        do {
          await this.jobsBucket.take();
          this.stats.listJobsCalls += 1;
          const out = await this.c.backup.send(
            new ListBackupJobsCommand({
              ByState: state,
              ByCreatedAfter: after,
              ByResourceType: 'EC2',
              MaxResults: 1000,
              NextToken: token,
            }),
          );
          const decidedAt = this.now();
          for (const job of out.BackupJobs ?? []) {
            for (const t of byJob.get(job.BackupJobId ?? '') ?? []) {
              if (t.decided || t.answer) continue;
              t.jobState = job.State;
              t.decided = this.result(t, 'job-failed', decidedAt, job.StatusMessage);
            }
          }
          token = out.NextToken;
        } while (token);
      } catch (err) {
        if (isThrottle(err)) {
          this.stats.throttled += 1;
          this.jobsBucket.drain();
        }
        // Not knowing about a failed job only delays its answer until the deadline.
        this.ctx.log?.('ListBackupJobs failed', { state, error: String(err) });
        return;
      }
    }
  }

  private result(
    t: Tracked,
    status: 'started' | 'job-failed' | 'budget-exceeded',
    atMs: number,
    jobStatusMessage?: string,
  ): SnapshotWaitResult {
    const w: SnapshotWaiterItem = t.stored.waiter;
    const snapshots: readonly BackupSnapshot[] = t.best?.snapshots ?? [];
    return {
      status,
      snapshots,
      missingVolumeIds: w.volumeIds.filter((v) => !snapshots.some((s) => s.volumeId === v)),
      backupJob: { backupJobId: w.backupJobId, creationDate: new Date(w.jobCreatedAtMs).toISOString() },
      ...(t.jobState ? { jobState: t.jobState } : {}),
      ...(jobStatusMessage ? { jobStatusMessage: jobStatusMessage.slice(0, 500) } : {}),
      waitedMs: Math.max(0, atMs - w.registeredAtMs),
      answeredBy: 'poller',
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Answers: claim once, deliver, delete.

  private key(t: Tracked) {
    return { pk: { S: t.stored.key.pk }, sk: { S: t.stored.key.sk } };
  }

  private async answer(t: Tracked): Promise<void> {
    const mapKey = keyOf(t.stored.key);
    try {
      if (!t.answer) {
        const claimed = await this.claim(t, t.decided as SnapshotWaitResult);
        if (!claimed) {
          this.tracked.delete(mapKey);
          return;
        }
        t.answer = claimed;
      }
      const delivered = await this.deliver(t.stored.waiter.taskToken, t.answer);
      if (delivered === 'retry') return;
      await this.c.ddb.send(new DeleteItemCommand({ TableName: this.s.tableName, Key: this.key(t) }));
      this.tracked.delete(mapKey);
    } catch (err) {
      // DynamoDB unavailable or throttled: the waiter stays; the next sweep tries again.
      this.ctx.log?.('Answer not completed; retried next sweep', {
        execution: t.stored.waiter.executionName,
        error: String(err),
      });
    }
  }

  /** Writes the answer on the waiter item unless one is there; returns the answer that holds. */
  private async claim(t: Tracked, answer: SnapshotWaitResult): Promise<SnapshotWaitResult | undefined> {
    try {
      await this.c.ddb.send(
        new UpdateItemCommand({
          TableName: this.s.tableName,
          Key: this.key(t),
          UpdateExpression: 'SET #answer = :answer, #answeredAt = :now, #answeredBy = :me',
          ConditionExpression: 'attribute_exists(#pk) AND attribute_not_exists(#answeredAt)',
          ExpressionAttributeNames: {
            '#pk': 'pk',
            '#answer': 'answer',
            '#answeredAt': 'answeredAt',
            '#answeredBy': 'answeredBy',
          },
          ExpressionAttributeValues: {
            ':answer': { S: JSON.stringify(answer) },
            ':now': { N: String(this.now()) },
            ':me': { S: this.ctx.holder },
          },
        }),
      );
      return answer;
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
    // Claimed by another poller (its answer is the one), or answered and deleted already.
    const out = await this.c.ddb.send(
      new GetItemCommand({ TableName: this.s.tableName, Key: this.key(t), ConsistentRead: true }),
    );
    return out.Item ? waiterFromItem(out.Item)?.answer : undefined;
  }

  private async deliver(taskToken: string, answer: SnapshotWaitResult): Promise<'done' | 'retry'> {
    await this.sfnBucket.take();
    try {
      await this.c.sfn.send(new SendTaskSuccessCommand({ taskToken, output: JSON.stringify(answer) }));
      this.stats.answered += 1;
      return 'done';
    } catch (err) {
      const name = String((err as { name?: string })?.name);
      if (CLOSED_TOKEN_ERRORS.has(name)) {
        this.stats.gone += 1;
        return 'done';
      }
      if (isRetryable(err)) {
        if (isThrottle(err)) {
          this.stats.throttled += 1;
          this.sfnBucket.drain();
        }
        return 'retry';
      }
      // Refused for good (InvalidOutput, a KMS error): fail the task so it routes through the thaw
      // now instead of waiting for its timeout.
      this.ctx.log?.('SendTaskSuccess refused; failing the task', { error: String(err) });
      await this.sfnBucket.take();
      try {
        await this.c.sfn.send(
          new SendTaskFailureCommand({
            taskToken,
            error: 'SnapshotPoller.AnswerRefused',
            cause: String(err).slice(0, 1000),
          }),
        );
      } catch (failure) {
        if (isRetryable(failure)) return 'retry';
      }
      return 'done';
    }
  }
}
