/**
 * A small simulated AWS for running the synthesized state machine locally, on a virtual clock:
 * - one instance (sim/instance-model.ts) whose SSM agent receives commands late, out of order or
 *   never, may die after freezing, and runs the Freeze and Thaw documents as
 *   ssm-documents/scripts do; its timeline (frozen from when to when, thawed by whom) is the truth
 *   the fault invariants are checked against;
 * - AWS Backup jobs (one per idempotency token) whose snapshots start after a delay;
 * - SNS, which records every message it accepted, and the real notifier (lambda/shared/notifier.ts)
 *   over the fake table (sim/dynamodb.ts), so "published once" means what SNS received;
 * - faults on every call: throttling, errors, timeouts and delays, errors returned after the
 *   call took effect, calls that hang until the Lambda's timeout, services down for a while or for
 *   the whole run, odd payloads in every task's response and in the execution input.
 * The Lambda task states run the real freeze-filesystems, start-backup, wait-for-command and
 * record-outcome logic against these fakes. Two
 * engines run the definition: aws-local-stepfunctions (the reference) and sim/asl-interpreter.ts
 * (fast enough for 10,000 fault schedules); test/workflow/faults.test.ts checks they agree.
 */

import { StateMachine } from 'aws-local-stepfunctions';
import { freezeStep, parseFreezeStepRequest } from '../lambda/freeze-filesystems/step';
import { type ExecutionResult, recordOutcome } from '../lambda/record-outcome/record';
import type { Clock } from '../lambda/shared/calls';
import {
  parseStartBackupStepRequest,
  startFrozenBackup,
  startUnfrozenBackup,
} from '../lambda/start-backup/step';
import { parseWaitRequest, waitStep } from '../lambda/wait-for-command/wait';
import { Notifier } from '../lambda/shared/notifier';
import type { LabelRequest } from '../lambda/shared/labels';
import type { OutcomeSink, WorkflowOutcome } from '../lambda/shared/outcome';
import type { WorkflowInput } from '../lambda/shared/workflow-input';
import { runAsl } from './asl-interpreter';
import type { Asl } from './asl';
import { FakeDynamoDb } from './dynamodb';
import {
  deliverBackupJobFailure,
  deliverExecutionStatusChange,
  type ExecutionEventsDelivery,
  type JobEventsDelivery,
} from './execution-events';
import {
  type Delivery,
  type FreezeBehaviour,
  type FreezeEpisode,
  Instance,
  type InstanceDocument,
} from './instance-model';

export const WINDOW = '2026-11-22T02:00:00Z';
const WINDOW_MS = Date.parse(WINDOW);
/** The AMI of the recovery point, which DescribeBackupJob names once the job has completed. */
export const IMAGE_ARN = 'arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0';
export const TOPIC_ARN = 'arn:aws:sns:eu-west-1:111122223333:ecb-notifications';
const TABLE = 'ecb-notifications';

export type Fault =
  | { readonly kind: 'throttle' }
  | { readonly kind: 'error' }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'delay'; readonly ms: number }
  /** The call took effect, then a 5xx (or a socket timeout) came back. */
  | { readonly kind: 'error-after-effect' }
  | { readonly kind: 'timeout-after-effect' }
  /** The call never returns: the Lambda calling it is ended by its timeout. */
  | { readonly kind: 'hang' }
  /** The call succeeds, but its response is odd (fields missing or of the wrong type). */
  | { readonly kind: 'odd-payload'; readonly variant: number };

/** Decides the fault for the n-th call (0-based) of an operation. */
export type FaultPlan = (op: string, call: number) => Fault | undefined;

/** Services that can be down: every call to them fails with a 5xx during [from, until). */
export type Service = 'ssm' | 'backup' | 'ec2' | 'sns' | 'lambda' | 'dynamodb';
export interface Outage {
  readonly service: Service;
  /** Milliseconds after the start of the run. */
  readonly fromMs: number;
  /** Milliseconds after the start of the run; null: until the end. */
  readonly untilMs: number | null;
}

export interface Scenario {
  readonly platform?: 'linux' | 'windows';
  readonly instanceState?: 'running' | 'stopped';
  readonly volumeIds?: readonly string[];
  readonly onFreezeFailure?: 'crash-consistent' | 'skip';
  readonly hooksConfigured?: boolean;
  /** What the freeze document does once it runs; 'not-delivered': the agent never receives it. */
  readonly freezeResult?: FreezeBehaviour | 'not-delivered';
  /** Time the freeze document takes before the filesystems are frozen (hooks, sync). */
  readonly freezeMs?: number;
  /** The first n thaw commands fail on the instance. */
  readonly thawFailures?: number;
  /** How each command reaches the agent (delay, never). */
  readonly delivery?: (doc: InstanceDocument, n: number) => Delivery;
  /** The agent dies right after the first freeze, before reporting it. */
  readonly agentDiesAfterFreeze?: { readonly downMs: number | null };
  /** Snapshots start this long after StartBackupJob; undefined: never. */
  readonly snapshotDelayMs?: number | null;
  /** The job fails this long after it starts. */
  readonly jobFailsAfterMs?: number;
  readonly activeJob?: boolean;
  readonly faults?: FaultPlan;
  readonly outages?: readonly Outage[];
  readonly freezeBudgetSeconds?: number;
  readonly watchdogSeconds?: number;
  /** Change the execution input (malformed input tests). */
  readonly mutateInput?: (input: Record<string, unknown>) => Record<string, unknown>;
}

export interface CallRecord {
  readonly op: string;
  readonly at: number;
  readonly fault?: Fault['kind'];
}

/** A message SNS accepted. */
export interface PublishedMessage {
  readonly at: number;
  readonly via: 'notifier' | 'last-resort' | 'execution-events';
  readonly subject?: string;
  // biome-ignore lint/suspicious/noExplicitAny: the SNS message is free-form JSON.
  readonly message: any;
  readonly attributes: Readonly<Record<string, string>>;
}

/** What a run did, for assertions. */
export interface RunReport {
  readonly status: 'SUCCEEDED' | 'FAILED';
  readonly error?: string;
  readonly output?: ExecutionResult;
  readonly recordOutput?: ExecutionResult;
  /** Outcomes the sink (the notifier) accepted. */
  readonly outcomes: readonly WorkflowOutcome[];
  /** The last-resort Publish task's inputs that SNS accepted. */
  // biome-ignore lint/suspicious/noExplicitAny: the SNS message is free-form JSON.
  readonly publishes: readonly any[];
  /** Every message SNS accepted, from the notifier and the last resort. */
  readonly sns: readonly PublishedMessage[];
  readonly calls: readonly CallRecord[];
  readonly statesEntered: readonly string[];
  readonly transitions: number;
  /** When each freeze SendCommand took effect (whatever its caller was told). */
  readonly freezeSentAt: readonly number[];
  /** The Parameters of every freeze SendCommand, as freeze-filesystems sent them. */
  readonly freezeParameters: readonly Record<string, unknown>[];
  /** When each thaw SendCommand took effect (a failed SendCommand is not here). */
  readonly thawSentAt: readonly number[];
  /** The instance's timeline: every period its filesystems were frozen. */
  readonly episodes: readonly FreezeEpisode[];
  /** First episode, for the named scenarios. */
  readonly frozenAt?: number;
  readonly thawedAt?: number;
  readonly watchdogFired: boolean;
  readonly jobStartedAt?: number;
  readonly jobCompletesAt?: number;
  readonly snapshotStarts: readonly number[];
  readonly imageTags: Readonly<Record<string, string>>;
  /** The label requests record-outcome made (the label lands once the job has completed). */
  readonly labelRequests: readonly LabelRequest[];
  readonly startedAt: number;
  readonly endedAt: number;
  /** What the execution-events function did with the execution's status change (sim/execution-events.ts). */
  readonly executionEvents: ExecutionEventsDelivery;
  /** What the job-events function did with the backup job's FAILED state change, when it failed. */
  readonly jobEvents?: JobEventsDelivery;
}

const JOB_DURATION_MS = 20 * 60_000;
/** The Lambda functions' own timeouts are at most their task's timeout; a hang ends there. */
const DEFAULT_TASK_TIMEOUT_S = 60;

class SimError extends Error {
  $metadata: { httpStatusCode: number };
  constructor(name: string, message: string, status = 400) {
    super(message);
    this.name = name;
    this.$metadata = { httpStatusCode: status };
  }
}

/** Thrown by a call that never returns; the Lambda wrapper turns it into the task's timeout. */
class Hang extends Error {
  override readonly name = 'SimHang';
}

type ErrorNames = { throttle: string; error: string; timeout: string };

/** Odd versions of a response: fields missing, of the wrong type, or no object at all. */
function oddPayload(value: unknown, variant: number): unknown {
  const pick = variant % 5;
  if (pick === 0) return {};
  if (pick === 1) return null;
  if (pick === 2) return 'garbage';
  if (typeof value !== 'object' || value === null) return { unexpected: true };
  const o = JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 0) return { unexpected: true };
  const k = keys[variant % keys.length];
  if (pick === 3) delete o[k];
  else o[k] = typeof o[k] === 'string' ? 42 : 'garbage';
  return o;
}

export class Sim implements Clock {
  t = WINDOW_MS;

  now(): number {
    return this.t;
  }
  readonly s: Required<
    Omit<
      Scenario,
      | 'faults'
      | 'jobFailsAfterMs'
      | 'snapshotDelayMs'
      | 'mutateInput'
      | 'delivery'
      | 'agentDiesAfterFreeze'
      | 'outages'
    >
  > &
    Scenario;
  readonly instance: Instance;
  readonly calls: CallRecord[] = [];
  readonly outcomes: WorkflowOutcome[] = [];
  // biome-ignore lint/suspicious/noExplicitAny: free-form SNS message.
  readonly publishes: any[] = [];
  readonly sns: PublishedMessage[] = [];
  readonly imageTags: Record<string, string> = {};
  readonly freezeParameters: Record<string, unknown>[] = [];
  readonly freezeSent: number[] = [];
  readonly thawSent: number[] = [];
  /** Backup jobs by idempotency token. */
  readonly jobs = new Map<string, { id: string; startedAt: number; vault: string; role: string }>();
  readonly labelRequests: LabelRequest[] = [];
  jobStartedAt?: number;
  readonly table = new FakeDynamoDb(TABLE, { PendingRuns: { partitionKey: 'pending', sortKey: 'deadline' } });
  /** Charge 1 s of virtual time before a call that follows a faulted one (engines whose retry waits are zeroed). */
  chargeRetries = true;
  private readonly counts = new Map<string, number>();
  private readonly startMs = WINDOW_MS;

  constructor(scenario: Scenario) {
    this.s = {
      platform: 'linux',
      instanceState: 'running',
      volumeIds: ['vol-0aaaaaaaaaaaaaaa1', 'vol-0aaaaaaaaaaaaaaa2'],
      onFreezeFailure: 'crash-consistent',
      hooksConfigured: true,
      freezeResult: 'frozen',
      freezeMs: 800,
      thawFailures: 0,
      activeJob: false,
      freezeBudgetSeconds: 60,
      watchdogSeconds: 90,
      ...scenario,
    };
    const notDelivered = this.s.freezeResult === 'not-delivered';
    const delivery = this.s.delivery;
    this.instance = new Instance({
      freeze: notDelivered ? 'frozen' : (this.s.freezeResult as FreezeBehaviour),
      freezeMs: this.s.freezeMs,
      thawFailures: this.s.thawFailures,
      delivery: (doc, n) =>
        doc === 'freeze' && notDelivered ? { delayMs: null } : (delivery?.(doc, n) ?? { delayMs: 250 }),
      ...(this.s.agentDiesAfterFreeze ? { agentDiesAfterFreeze: this.s.agentDiesAfterFreeze } : {}),
      commandTimeoutMs: 5 * 60_000,
    });
    this.instance.hooksConfigured = this.s.hooksConfigured;
  }

  sleep(ms: number): Promise<void> {
    this.t += Math.max(0, ms);
    return Promise.resolve();
  }

  /** Whether the Lambda service is down now (the execution-events model's invocations). */
  lambdaDown(): boolean {
    return this.down('lambda');
  }

  /** The time limits of the calls in flight (callWithin's timers), as virtual deadlines. */
  private readonly limits: number[] = [];

  /**
   * callWithin's timer on the virtual clock: a call that would take longer than its limit (a slow
   * answer, a socket timeout) is cut at the limit, as the real timer aborts it, and its caller gets
   * CallTimedOut (see `call`). `done` never resolves by itself: the cut happens inside the call.
   */
  timer(ms: number): { readonly done: Promise<void>; cancel(): void } {
    const deadline = this.t + Math.max(0, ms);
    this.limits.push(deadline);
    return {
      done: new Promise<void>(() => undefined),
      cancel: () => {
        const i = this.limits.indexOf(deadline);
        if (i >= 0) this.limits.splice(i, 1);
      },
    };
  }

  /** Advance by a call's duration; past the innermost limit, stop there and abandon the call. */
  private spend(ms: number, op: string, tookEffect: () => void): void {
    const limit = this.limits.length ? Math.min(...this.limits) : Infinity;
    if (this.t + ms <= limit) {
      this.t += ms;
      return;
    }
    this.t = Math.max(this.t, limit);
    tookEffect();
    throw new SimError('CallTimedOut', `${op}: no answer within its limit; the request was abandoned`);
  }

  private down(service: Service): boolean {
    const at = this.t - this.startMs;
    return (this.s.outages ?? []).some(
      (o) => o.service === service && at >= o.fromMs && (o.untilMs === null || at < o.untilMs),
    );
  }

  /**
   * Count the call, apply its fault and the service's outage; run `effect` when the call takes
   * effect, and return what the caller receives.
   */
  call<T>(op: string, names: ErrorNames, effect: () => T): T {
    const n = this.counts.get(op) ?? 0;
    this.counts.set(op, n + 1);
    if (this.chargeRetries) this.chargeRetry(op);
    this.t += 40;
    const service = op.split('.')[0] === 'sfn' ? serviceOfTask(op) : (op.split('.')[0] as Service);
    let f = this.s.faults?.(op, n);
    if (!f && this.down(service)) f = { kind: 'error' };
    this.calls.push({ op, at: this.t, ...(f ? { fault: f.kind } : {}) });
    if (!f) return effect();
    switch (f.kind) {
      case 'delay':
        // Cut at the caller's limit: the caller cannot tell whether it took effect; here it did.
        this.spend(f.ms, op, () => settle(effect()));
        return effect();
      case 'throttle':
        throw new SimError(names.throttle, `${op} throttled`, 400);
      case 'error':
        throw new SimError(names.error, `${op} failed`, 500);
      case 'timeout':
        this.spend(10_000, op, () => undefined);
        throw new SimError(names.timeout, `${op} timed out`);
      case 'error-after-effect':
        settle(effect());
        throw new SimError(names.error, `${op} failed after it took effect`, 500);
      case 'timeout-after-effect':
        settle(effect());
        this.spend(10_000, op, () => undefined);
        throw new SimError(names.timeout, `${op} timed out after it took effect`);
      case 'hang':
        throw new Hang(op);
      case 'odd-payload': {
        const answer = effect();
        // The fake table answers asynchronously: the odd payload replaces what it resolves to.
        if (answer instanceof Promise)
          return answer.then((a) => oddPayload(a, (f as { variant: number }).variant)) as T;
        return oddPayload(answer, f.variant) as T;
      }
    }
  }

  // ---- SSM ----
  private sendCommand(doc: InstanceDocument, parameters: Record<string, unknown>): Record<string, unknown> {
    const at = this.t;
    if (doc === 'freeze') {
      this.freezeSent.push(at);
      this.freezeParameters.push(parameters);
    }
    if (doc === 'thaw') this.thawSent.push(at);
    const id = this.instance.send(doc, parameters, at);
    return {
      Command: {
        CommandId: id,
        DocumentName: doc,
        Status: 'Pending',
        RequestedDateTime: new Date(at).toISOString(),
      },
    };
  }

  // ---- Backup ----
  get jobCompletesAt(): number | undefined {
    return this.jobStartedAt === undefined ? undefined : this.jobStartedAt + JOB_DURATION_MS;
  }

  jobState(): string {
    if (this.jobStartedAt === undefined) return 'NONE';
    const t = this.t - this.jobStartedAt;
    if (this.s.jobFailsAfterMs !== undefined && t >= this.s.jobFailsAfterMs) return 'FAILED';
    if (t >= JOB_DURATION_MS) return 'COMPLETED';
    return t < 500 ? 'CREATED' : 'RUNNING';
  }

  snapshotStarts(): number[] {
    const delay = this.s.snapshotDelayMs;
    if (this.jobStartedAt === undefined || delay === null || delay === undefined) return [];
    const starts = this.s.volumeIds.map((_, i) => (this.jobStartedAt as number) + delay + i * 150);
    const failAt =
      this.s.jobFailsAfterMs !== undefined ? this.jobStartedAt + this.s.jobFailsAfterMs : Infinity;
    return starts.filter((t) => t < failAt);
  }

  /**
   * StartBackupJob's response for an EC2 resource: BackupJobId, CreationDate, IsParent. No
   * RecoveryPointArn: the AWS Backup API reference (StartBackupJob, response elements) says it is
   * returned only for EFS and Advanced DynamoDB resources; for EC2 it is read from
   * DescribeBackupJob once the job has completed. A retry with the same IdempotencyToken returns
   * the job it created (the token's purpose, same page).
   */
  private startBackupJob(input: Record<string, unknown>): Record<string, unknown> {
    const token = String(input.IdempotencyToken ?? `none-${this.jobs.size}`);
    let job = this.jobs.get(token);
    if (!job) {
      job = {
        id: `job-${(this.jobs.size + 1).toString().padStart(4, '0')}`,
        startedAt: this.t,
        vault: String(input.BackupVaultName ?? ''),
        role: String(input.IamRoleArn ?? ''),
      };
      this.jobs.set(token, job);
      if (this.jobStartedAt === undefined) this.jobStartedAt = this.t;
    }
    return { BackupJobId: job.id, CreationDate: new Date(job.startedAt).toISOString(), IsParent: false };
  }

  // ---- SDK clients for the real workflow functions, record-outcome and notifier logic ----
  readonly ssmClient = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      const name = command.constructor.name;
      const names = {
        throttle: 'ThrottlingException',
        error: 'InternalServerError',
        timeout: 'TimeoutError',
      };
      if (name === 'SendCommandCommand') {
        return this.call('ssm.SendCommand', names, () =>
          this.sendCommand('freeze', command.input.Parameters as Record<string, unknown>),
        );
      }
      if (name === 'GetCommandInvocationCommand') {
        return this.call('ssm.GetCommandInvocation', names, () =>
          this.instance.invocation(String(command.input.CommandId), this.t),
        );
      }
      throw new Error(`sim: unexpected SSM ${name}`);
    },
  };

  readonly backupClient = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      const name = command.constructor.name;
      const names = {
        throttle: 'ThrottlingException',
        error: 'ServiceUnavailableException',
        timeout: 'TimeoutError',
      };
      if (name === 'ListBackupJobsCommand') {
        // ListBackupJobs' BackupJobs (API reference, BackupJob): id, vault, role, creation date and
        // state of every job of the resource that matches the filters.
        return this.call('backup.ListBackupJobs', names, () => {
          const input = command.input as {
            ByState?: string;
            ByCreatedAfter?: Date;
            ByBackupVaultName?: string;
          };
          const listed: Record<string, unknown>[] = [];
          if (this.s.activeJob && (input.ByState === undefined || input.ByState === 'RUNNING')) {
            const created = new Date(WINDOW_MS - 3_600_000);
            if (!input.ByCreatedAfter || created > input.ByCreatedAfter)
              listed.push({
                BackupJobId: 'job-earlier',
                State: 'RUNNING',
                BackupVaultName: 'Default',
                IamRoleArn: 'arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole',
                CreationDate: created,
              });
          }
          const state = this.jobState();
          for (const job of this.jobs.values()) {
            if (input.ByState !== undefined && input.ByState !== state) continue;
            if (input.ByCreatedAfter && job.startedAt <= input.ByCreatedAfter.getTime()) continue;
            if (input.ByBackupVaultName && input.ByBackupVaultName !== job.vault) continue;
            listed.push({
              BackupJobId: job.id,
              State: state,
              BackupVaultName: job.vault,
              IamRoleArn: job.role,
              CreationDate: new Date(job.startedAt),
            });
          }
          return { BackupJobs: listed };
        });
      }
      if (name === 'StartBackupJobCommand') {
        return this.call('backup.StartBackupJob', names, () => this.startBackupJob(command.input));
      }
      if (name === 'DescribeBackupJobCommand') {
        return this.call('backup.DescribeBackupJob', names, () => {
          const state = this.jobState();
          // DescribeBackupJob names the recovery point once the job has completed (API reference).
          return {
            BackupJobId: command.input.BackupJobId,
            State: state,
            ...(state === 'COMPLETED' ? { RecoveryPointArn: IMAGE_ARN } : {}),
          };
        });
      }
      throw new Error(`sim: unexpected Backup ${name}`);
    },
  };

  readonly ec2Client = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      const name = command.constructor.name;
      const names = { throttle: 'RequestLimitExceeded', error: 'InternalError', timeout: 'TimeoutError' };
      if (name === 'DescribeSnapshotsCommand') {
        return this.call('ec2.DescribeSnapshots', names, () => {
          const yesterday = WINDOW_MS - 86_400_000;
          const old = this.s.volumeIds.map((v, i) => ({
            SnapshotId: `snap-0old${i}`,
            VolumeId: v,
            StartTime: new Date(yesterday),
            State: 'completed',
          }));
          const fresh = this.snapshotStarts()
            .map((t, i) => ({ t, i }))
            .filter(({ t }) => t <= this.t)
            .map(({ t, i }) => ({
              SnapshotId: `snap-0new${i}`,
              VolumeId: this.s.volumeIds[i],
              StartTime: new Date(t),
              State: 'pending',
            }));
          return { Snapshots: [...old, ...fresh] };
        });
      }
      if (name === 'CreateTagsCommand') {
        return this.call('ec2.CreateTags', names, () => {
          for (const t of command.input.Tags as { Key: string; Value: string }[])
            this.imageTags[t.Key] = t.Value;
          return {};
        });
      }
      throw new Error(`sim: unexpected EC2 ${name}`);
    },
  };

  /** SNS: records each message it accepts. */
  readonly snsClient = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      if (command.constructor.name !== 'PublishCommand') throw new Error('sim: unexpected SNS call');
      return this.call(
        'sns.Publish',
        { throttle: 'ThrottledException', error: 'InternalErrorException', timeout: 'TimeoutError' },
        () => {
          this.accept('notifier', command.input);
          return { MessageId: `m-${this.sns.length}` };
        },
      );
    },
  };

  accept(via: PublishedMessage['via'], input: Record<string, unknown>): void {
    const raw = input.Message;
    let message: unknown = raw;
    if (typeof raw === 'string') {
      try {
        message = JSON.parse(raw);
      } catch {
        message = raw;
      }
    }
    const attrs = (input.MessageAttributes ?? {}) as Record<string, { StringValue?: string }>;
    this.sns.push({
      at: this.t,
      via,
      subject: typeof input.Subject === 'string' ? input.Subject : undefined,
      message,
      attributes: Object.fromEntries(
        Object.entries(attrs).map(([k, v]) => [k, String(v?.StringValue ?? '')]),
      ),
    });
  }

  /** The fake table, called directly (no SDK middleware): thousands of runs make many calls. */
  readonly dynamodbClient = {
    send: async (command: { constructor: { name: string }; input: never }) => {
      const names = {
        throttle: 'ProvisionedThroughputExceededException',
        error: 'InternalServerError',
        timeout: 'TimeoutError',
      };
      const t = this.table;
      return this.call('dynamodb.' + command.constructor.name.replace(/Command$/, ''), names, () => {
        switch (command.constructor.name) {
          case 'GetItemCommand':
            return t.get(command.input);
          case 'PutItemCommand':
            return t.put(command.input);
          case 'UpdateItemCommand':
            return t.update(command.input);
          case 'DeleteItemCommand':
            return t.delete(command.input);
          case 'QueryCommand':
            return t.query(command.input);
          case 'TransactWriteItemsCommand':
            return t.transact(command.input);
          default:
            throw new Error(`sim: unexpected DynamoDB ${command.constructor.name}`);
        }
      });
    },
  };

  readonly notifier = new Notifier(
    { sns: this.snsClient as never, dynamodb: this.dynamodbClient as never },
    { topicArn: TOPIC_ARN, tableName: TABLE, summaryDeadlineMinutes: 240 },
    undefined,
    () => new Date(this.t),
    // Its backoff after a conflict or throttling waits on the virtual clock, not on the wall clock:
    // thousands of schedules with DynamoDB faults would otherwise sleep for real.
    {
      random: (() => {
        let x = 0x2545f491;
        return () => {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          return (x >>> 0) / 2 ** 32;
        };
      })(),
      // One macrotask, so that a transaction the table still holds (an effect whose answer was
      // lost) commits before the retry, as it would during a real backoff.
      sleep: (ms: number) => {
        this.t += ms;
        return new Promise<void>((resolve) => setImmediate(resolve));
      },
    },
  );

  /** The real notifier; an outcome is listed once the notifier accepted it. */
  readonly sink: OutcomeSink = {
    recordOutcome: async (o) => {
      await this.notifier.recordOutcome(o);
      this.outcomes.push(o);
    },
    recordDiscovery: async () => {
      throw new Error('sim: discovery is not part of the workflow');
    },
  };

  /** Retry intervals are zeroed for aws-local-stepfunctions; charge them to the virtual clock. */
  chargeRetry(op: string): void {
    const previous = this.calls.filter((c) => c.op === op).at(-1);
    if (previous?.fault && previous.fault !== 'delay' && previous.fault !== 'odd-payload') this.t += 1000;
  }

  /** The last-resort Publish task and the SendCommand/StartBackupJob tasks of the state machine. */
  taskEffect(op: string, input: Record<string, unknown>): unknown {
    switch (op) {
      case 'sfn.SendThaw':
        return this.sendCommand('thaw', (input.Parameters ?? {}) as Record<string, unknown>);
      case 'sfn.InstallVss':
        return this.sendCommand('other', (input.Parameters ?? {}) as Record<string, unknown>);
      case 'sfn.Publish':
        this.accept('last-resort', input);
        this.publishes.push(input);
        return { MessageId: `m-${this.sns.length}` };
      case 'sfn.ReadOutcomeMark': {
        // The dynamodb:getItem integration answers as GetItem does: the item's projected
        // attributes, no Item at all when there is none (DynamoDB API reference, GetItem).
        const { Item } = this.table.get(input as never);
        const wanted = String(input.ProjectionExpression ?? '')
          .split(',')
          .map((a) => a.trim())
          .filter(Boolean);
        if (!Item) return {};
        return {
          Item: wanted.length
            ? Object.fromEntries(Object.entries(Item).filter(([k]) => wanted.includes(k)))
            : Item,
        };
      }
      default:
        throw new Error(`sim: unknown task ${op}`);
    }
  }
}

function serviceOfTask(op: string): Service {
  if (op === 'sfn.Publish') return 'sns';
  if (op === 'sfn.ReadOutcomeMark') return 'dynamodb';
  return 'ssm';
}

export function workflowInput(s: Sim): WorkflowInput {
  return {
    schemaVersion: 1,
    runId: 'run-20261122T0200Z',
    window: WINDOW,
    accountId: '111122223333',
    region: 'eu-west-1',
    instanceId: 'i-0123456789abcdef0',
    instanceArn: 'arn:aws:ec2:eu-west-1:111122223333:instance/i-0123456789abcdef0',
    instanceName: 'db-1',
    platform: s.s.platform,
    instanceState: s.s.instanceState,
    volumeIds: s.s.volumeIds,
    volumeDevices: s.s.volumeIds.map((v, i) => `${v}=/dev/nvme${i + 1}n1`),
    startAt: WINDOW,
    notAfter: '2026-11-22T02:15:00Z',
    options: { include: '', exclude: '', onFreezeFailure: s.s.onFreezeFailure },
  };
}

export const EXECUTION_NAME = 'i-0123456789abcdef0-20261122T0200Z';
const EXECUTION_ARN = `arn:aws:states:eu-west-1:111122223333:execution:Workflow:${EXECUTION_NAME}`;

function sfnError(name: string, message = name): Error {
  const e = new Error(message);
  e.name = name;
  return e;
}

/** Building a StateMachine validates the definition: do it once per definition, not per run. */
const machines = new WeakMap<Asl, StateMachine>();

export interface RunOptions {
  /**
   * aws-local-stepfunctions (default; the reference, retry waits zeroed and charged 1 s per
   * faulted call) or sim/asl-interpreter.ts (retry waits, backoff and jitter on the virtual clock).
   * 'interpreter-compat' times retries like the reference, to compare the two engines.
   */
  readonly engine?: 'aws-local-stepfunctions' | 'interpreter' | 'interpreter-compat';
}

/** Run the definition once against a fresh simulated AWS. */
export async function runScenario(
  asl: Asl,
  scenario: Scenario,
  seed = 1,
  options: RunOptions = {},
): Promise<RunReport & { sim: Sim }> {
  const engine = options.engine ?? 'aws-local-stepfunctions';
  const sim = new Sim(scenario);
  sim.chargeRetries = engine !== 'interpreter';
  let rnd = seed >>> 0 || 1;
  const random = () => {
    rnd = (Math.imul(rnd, 1664525) + 1013904223) >>> 0;
    return rnd / 2 ** 32;
  };
  const settings = {
    freezeBudgetSeconds: sim.s.freezeBudgetSeconds,
    watchdogSeconds: sim.s.watchdogSeconds,
    defaultOnFreezeFailure: 'crash-consistent' as const,
  };
  const startedAt = sim.t;
  const timeouts = new Map<string, number>();
  /** TimeoutSecondsPath of a state, read from the task's payload, which carries the same path. */
  const timeoutPaths = new Map<string, string>();
  const collect = (states: Asl['States']) => {
    for (const [n, st] of Object.entries(states)) {
      if (st.TimeoutSeconds) timeouts.set(n, st.TimeoutSeconds);
      if (typeof st.TimeoutSecondsPath === 'string') timeoutPaths.set(n, st.TimeoutSecondsPath);
      for (const b of st.Branches ?? []) collect(b.States);
    }
  };
  collect(asl.States);
  const timeoutOf = (state: string, input: unknown): number => {
    const path = timeoutPaths.get(state);
    if (path) {
      let v: unknown = input;
      for (const key of path.replace(/^\$\./, '').split('.')) v = (v as Record<string, unknown>)?.[key];
      if (typeof v === 'number' && v >= 1) return v;
    }
    return timeouts.get(state) ?? DEFAULT_TASK_TIMEOUT_S;
  };

  /**
   * A Lambda task: invocation-level faults, then the real logic. A timeout means the function
   * ran (its effects happened) but did not answer in time; a hung SDK call inside it ends the
   * invocation at the task's timeout.
   */
  const lambdaTask = (state: string, run: (input: unknown) => Promise<unknown>) => async (input: unknown) => {
    const op = `lambda.${state}`;
    const n = sim.calls.filter((c) => c.op === op).length;
    if (sim.chargeRetries) sim.chargeRetry(op);
    const invokedAt = sim.t;
    sim.t += 60;
    let f = sim.s.faults?.(op, n);
    if (
      !f &&
      (sim.s.outages ?? []).some(
        (o) =>
          o.service === 'lambda' &&
          sim.t - startedAt >= o.fromMs &&
          (o.untilMs === null || sim.t - startedAt < o.untilMs),
      )
    ) {
      f = { kind: 'error' };
    }
    sim.calls.push({ op, at: sim.t, ...(f ? { fault: f.kind } : {}) });
    if (f?.kind === 'throttle') throw sfnError('Lambda.TooManyRequestsException');
    if (f?.kind === 'error') throw sfnError('Lambda.ServiceException');
    if (f?.kind === 'delay') sim.t += f.ms;
    const timeoutMs = timeoutOf(state, input) * 1000;
    let result: unknown;
    try {
      result = await run(input);
    } catch (err) {
      if (err instanceof Hang) {
        sim.t = Math.max(sim.t, invokedAt + timeoutMs);
        throw sfnError('States.Timeout', `${state} hung in ${err.message}`);
      }
      if (f?.kind === 'timeout' || f?.kind === 'timeout-after-effect' || f?.kind === 'hang') {
        // The task's timeout ends the wait for an answer, never later than the timeout.
        sim.t = Math.max(sim.t, Math.min(sim.t + 5_000, invokedAt + timeoutMs));
        throw sfnError('States.Timeout');
      }
      throw sfnError((err as Error).name || 'Error', (err as Error).message);
    }
    if (f?.kind === 'timeout' || f?.kind === 'timeout-after-effect' || f?.kind === 'hang') {
      // The answer is lost and the task times out: at its timeout (a hang), or up to 5 s after the
      // function ended, never later than the timeout.
      sim.t = Math.max(
        sim.t,
        f.kind === 'hang' ? invokedAt + timeoutMs : Math.min(sim.t + 5_000, invokedAt + timeoutMs),
      );
      throw sfnError('States.Timeout');
    }
    if (f?.kind === 'error-after-effect')
      throw sfnError('Lambda.ServiceException', 'the function ran; the response was lost');
    const out = JSON.parse(JSON.stringify(result ?? null));
    return f?.kind === 'odd-payload' ? oddPayload(out, f.variant) : out;
  };
  /** A CallAwsService task: Step Functions names the errors `<Service>.<Exception>`. */
  const sdkTask = (op: string, service: string) => async (input: unknown) => {
    const names = {
      throttle: `${service}.ThrottlingException`,
      error:
        service === 'Backup'
          ? 'Backup.ServiceUnavailableException'
          : service === 'SNS'
            ? 'SNS.InternalErrorException'
            : `${service}.InternalServerErrorException`,
      timeout: 'States.Timeout',
    };
    try {
      return JSON.parse(
        JSON.stringify(
          sim.call(op, names, () => sim.taskEffect(op, input as Record<string, unknown>)) ?? null,
        ),
      );
    } catch (err) {
      if (err instanceof Hang) {
        sim.t += (timeouts.get(op) ?? 20) * 1000;
        throw sfnError('States.Timeout');
      }
      throw err;
    }
  };

  const waitForCommand = (state: string) =>
    lambdaTask(state, async (i) => waitStep(sim.ssmClient, sim, parseWaitRequest(i), random));
  const startUnfrozen = (state: string, vss: boolean) =>
    lambdaTask(state, async (i) => {
      const r = parseStartBackupStepRequest(i);
      if (r.mode === 'frozen' || (r.mode === 'windows-vss') !== vss) throw new Error(`wrong mode ${r.mode}`);
      return startUnfrozenBackup(sim.backupClient, sim, r, random);
    });
  const handlers: Record<string, (input: unknown) => Promise<unknown>> = {
    'Freeze Filesystems': lambdaTask('Freeze Filesystems', async (i) =>
      freezeStep({ ssm: sim.ssmClient, backup: sim.backupClient }, sim, parseFreezeStepRequest(i), random),
    ),
    'Start Backup Job': lambdaTask('Start Backup Job', async (i) => {
      const r = parseStartBackupStepRequest(i);
      if (r.mode !== 'frozen') throw new Error(`wrong mode ${r.mode}`);
      return startFrozenBackup({ ec2: sim.ec2Client, backup: sim.backupClient }, sim, r, random);
    }),
    'Wait For Thaw Command': waitForCommand('Wait For Thaw Command'),
    'Wait For Retried Thaw': waitForCommand('Wait For Retried Thaw'),
    'Wait For VSS Components': waitForCommand('Wait For VSS Components'),
    'Send Thaw Command': sdkTask('sfn.SendThaw', 'Ssm'),
    'Retry Thaw Command': sdkTask('sfn.SendThaw', 'Ssm'),
    'Install VSS Components': sdkTask('sfn.InstallVss', 'Ssm'),
    'Start Backup Job Without Freeze': startUnfrozen('Start Backup Job Without Freeze', false),
    'Start Windows VSS Backup Job': startUnfrozen('Start Windows VSS Backup Job', true),
    'Record Outcome': lambdaTask('Record Outcome', async (i) =>
      recordOutcome(
        i as Parameters<typeof recordOutcome>[0],
        {
          sink: sim.sink,
          requestLabel: async (request) => {
            sim.labelRequests.push(request);
          },
          settings,
        },
        new Date(sim.t),
      ),
    ),
    'Publish Unrecorded Outcome': sdkTask('sfn.Publish', 'SNS'),
    'Read Outcome Mark': sdkTask('sfn.ReadOutcomeMark', 'DynamoDB'),
  };

  const input = workflowInput(sim) as unknown as Record<string, unknown>;
  const executionInput = scenario.mutateInput ? scenario.mutateInput(input) : input;
  const statesEntered: string[] = [];
  let recordOutput: ExecutionResult | undefined;
  let status: RunReport['status'] = 'SUCCEEDED';
  let output: ExecutionResult | undefined;
  let error: string | undefined;
  /** The execution's error name and cause, as its status change event carries them. */
  let failure: { error?: string; cause?: string } = {};

  if (engine === 'aws-local-stepfunctions') {
    const zeroWaits = Object.fromEntries(
      Object.entries(asl.States)
        .filter(([, st]) => st.Type === 'Wait')
        .map(([n]) => [n, 0]),
    );
    const retried = Object.fromEntries(
      allNames(asl)
        .filter((n) => n.retry)
        .map((n) => [n.name, 0]),
    );
    let machine = machines.get(asl);
    if (!machine) {
      // Validate once; a Parallel state builds a StateMachine for its branch on every run, and
      // validating that again each time (an ajv schema compile) would dominate the run time.
      new StateMachine(asl as never, { validationOptions: { checkArn: false, checkPaths: false } });
      machine = new StateMachine(asl as never, { validationOptions: { noValidate: true } });
      machines.set(asl, machine);
    }
    const recording = Object.fromEntries(
      Object.entries(handlers).map(([n, h]) => [
        n,
        async (i: unknown) => {
          const out = await h(i);
          if (n === 'Record Outcome') recordOutput = out as ExecutionResult;
          return out;
        },
      ]),
    );
    const execution = machine.run(executionInput as never, {
      overrides: {
        taskResourceLocalHandlers: recording as never,
        waitTimeOverrides: zeroWaits,
        retryIntervalOverrides: retried,
      },
      context: {
        Execution: { Id: EXECUTION_ARN, Name: EXECUTION_NAME, StartTime: new Date(startedAt).toISOString() },
        State: { EnteredTime: new Date(startedAt).toISOString(), Name: 'x' },
      },
    });
    const drain = (async () => {
      for await (const ev of execution.eventLogs) {
        if (ev.type === 'StateEntered') statesEntered.push(ev.state.name);
      }
    })();
    try {
      output = (await execution.result) as unknown as ExecutionResult;
    } catch (err) {
      status = 'FAILED';
      error = String((err as Error).message ?? err);
      const caught = (err as { cause?: { name?: string; message?: string } }).cause;
      failure = { error: caught?.name, cause: caught?.message };
    }
    await drain;
  } else {
    const r = await runAsl(asl, executionInput, {
      handlers: Object.fromEntries(
        Object.entries(handlers).map(([n, h]) => [
          n,
          async (i: unknown) => {
            const out = await h(i);
            if (n === 'Record Outcome') recordOutput = out as ExecutionResult;
            return out;
          },
        ]),
      ),
      execution: { Id: EXECUTION_ARN, Name: EXECUTION_NAME },
      now: () => sim.t,
      sleep: (ms) => {
        if (engine === 'interpreter') sim.t += Math.max(0, ms);
      },
      // The engine's retry jitter draws from its own sequence, so the functions' polls see the same
      // numbers under either engine.
      random: (() => {
        let j = (seed ^ 0x27d4eb2d) >>> 0 || 1;
        return () => {
          j = (Math.imul(j, 1664525) + 1013904223) >>> 0;
          return j / 2 ** 32;
        };
      })(),
      onStateEntered: (n) => statesEntered.push(n),
    });
    status = r.status;
    output = r.output as ExecutionResult | undefined;
    if (r.status === 'FAILED') error = `${r.error}: ${r.cause}`;
    if (r.status === 'FAILED') failure = { error: r.error, cause: r.cause };
  }
  const endedAt = sim.t;
  // Let every command already sent arrive and run, and the watchdog fire if nothing thawed.
  sim.instance.settle(sim.t);
  // ---- execution-events (lastresort): production's EventBridge rule on the execution's own
  // FAILED/TIMED_OUT/ABORTED status, delivered to the real lambda/execution-events logic.
  const executionEvents = await deliverExecutionStatusChange(
    sim,
    { status, executionArn: EXECUTION_ARN, ...failure, input: executionInput, stoppedAt: endedAt },
    { topicArn: TOPIC_ARN, tableName: TABLE, draw: random() },
  );
  // A job that fails (perhaps after the execution ended) reaches the real job-events logic.
  const firstJob = [...sim.jobs.values()][0];
  const jobEvents =
    firstJob && sim.s.jobFailsAfterMs !== undefined
      ? await deliverBackupJobFailure(
          sim,
          {
            backupJobId: firstJob.id,
            failedAt: firstJob.startedAt + sim.s.jobFailsAfterMs,
            resourceArn: String(input.instanceArn),
          },
          { draw: random() },
        )
      : undefined;
  // ---- end of execution-events
  const episodes = sim.instance.episodes;
  const first = episodes[0];
  return {
    sim,
    status,
    error,
    output,
    recordOutput,
    outcomes: sim.outcomes,
    publishes: sim.publishes,
    sns: sim.sns,
    calls: sim.calls,
    statesEntered,
    transitions: statesEntered.length,
    freezeSentAt: sim.freezeSent,
    freezeParameters: sim.freezeParameters,
    thawSentAt: sim.thawSent,
    episodes,
    frozenAt: first?.frozenFrom,
    thawedAt: first?.frozenUntil,
    watchdogFired: episodes.some((e) => e.thawedBy === 'watchdog'),
    jobStartedAt: sim.jobStartedAt,
    jobCompletesAt: sim.jobCompletesAt,
    snapshotStarts: sim.snapshotStarts(),
    imageTags: sim.imageTags,
    labelRequests: sim.labelRequests,
    startedAt,
    endedAt,
    executionEvents,
    jobEvents,
  };
}

// biome-ignore lint/suspicious/noExplicitAny: ASL.
function allNames(asl: { States: Record<string, any> }): { name: string; retry: boolean }[] {
  return Object.entries(asl.States).flatMap(([name, st]) => [
    { name, retry: Array.isArray(st.Retry) && st.Retry.length > 0 },
    // biome-ignore lint/suspicious/noExplicitAny: ASL.
    ...((st.Branches ?? []) as any[]).flatMap((b) => allNames(b)),
  ]);
}

/**
 * An effect that took place although the caller gets an error: the fake table's transactions are
 * asynchronous, and what they would have answered (a cancellation, say) is lost with the response,
 * as it is in AWS. Only the rejection is swallowed, never the effect.
 */
function settle(result: unknown): void {
  if (
    result !== null &&
    typeof result === 'object' &&
    typeof (result as Promise<unknown>).then === 'function'
  )
    (result as Promise<unknown>).then(undefined, () => undefined);
}
