/**
 * The simulated account and Region of the fleet benchmark: every API the run calls behind a token
 * bucket that refuses what exceeds it (as AWS does: RequestLimitExceeded for EC2,
 * ThrottlingException for SSM, AWS Backup and Step Functions), state transitions behind a bucket
 * that delays them (Step Functions throttles transitions by slowing executions down), and Lambda
 * concurrency (the Region's 1,000 and each function's reserved concurrency) that refuses an
 * invocation beyond it with TooManyRequestsException. Instances freeze and thaw on the virtual
 * clock; the on-instance watchdog thaws by itself.
 *
 * What each fake returns follows the API references (and botocore's service models):
 * - DescribeSnapshots: SnapshotId, VolumeId, StartTime, State (`pending` from the start).
 * - StartBackupJob: BackupJobId, CreationDate, IsParent, and no RecoveryPointArn: the API
 *   reference returns it only for EFS and Advanced DynamoDB, not for EC2.
 * - DescribeBackupJob: BackupJobId, State. ListBackupJobs: BackupJobs.
 * - SendCommand: Command {CommandId, Status, ...}; GetCommandInvocation: Status, StatusDetails,
 *   ResponseCode, StandardOutputContent, StandardErrorContent; InvocationDoesNotExist right after
 *   SendCommand.
 */

import type { Api, Bucket } from '../../lambda/discovery/admission';
import type { Clock } from './virtual-clock';

export class ThrottleError extends Error {
  readonly $metadata = { httpStatusCode: 400 };
  readonly $retryable = { throttling: true };
  constructor(name: string, api: string) {
    super(`Rate exceeded (${api})`);
    this.name = name;
  }
}

class CallError extends Error {
  readonly $metadata = { httpStatusCode: 400 };
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** A service-side bucket: a call without a token is refused. */
export class ServiceBucket {
  private tokens: number;
  private last: number;
  calls = 0;
  throttled = 0;

  constructor(
    readonly bucket: Bucket,
    private readonly clock: Clock,
  ) {
    this.tokens = bucket.burst;
    this.last = clock.now();
  }

  take(): boolean {
    const now = this.clock.now();
    this.tokens = Math.min(
      this.bucket.burst,
      this.tokens + ((now - this.last) / 1000) * this.bucket.ratePerSecond,
    );
    this.last = now;
    this.calls++;
    if (this.tokens < 1) {
      this.throttled++;
      return false;
    }
    this.tokens -= 1;
    return true;
  }
}

/** Step Functions' state transitions: a transition without a token waits for one (reservation order). */
export class TransitionBucket {
  private tokens: number;
  private last: number;
  delayed = 0;
  total = 0;
  /** Transitions per whole second of virtual time. */
  readonly perSecond = new Map<number, number>();

  constructor(
    readonly bucket: Bucket,
    private readonly clock: Clock,
  ) {
    this.tokens = bucket.burst;
    this.last = clock.now();
  }

  async take(): Promise<void> {
    const now = this.clock.now();
    this.tokens = Math.min(
      this.bucket.burst,
      this.tokens + ((now - this.last) / 1000) * this.bucket.ratePerSecond,
    );
    this.last = now;
    this.tokens -= 1;
    this.total++;
    let at = now;
    if (this.tokens < 0) {
      this.delayed++;
      const wait = Math.ceil((-this.tokens / this.bucket.ratePerSecond) * 1000);
      at = now + wait;
      await this.clock.sleep(wait);
    }
    const s = Math.floor(at / 1000);
    this.perSecond.set(s, (this.perSecond.get(s) ?? 0) + 1);
  }

  peakPerSecond(): number {
    let peak = 0;
    for (const n of this.perSecond.values()) peak = Math.max(peak, n);
    return peak;
  }
}

/** Lambda concurrency: the Region's pool and each function's reserved concurrency. */
export class LambdaPool {
  private inUse = 0;
  peak = 0;
  readonly byFunction = new Map<
    string,
    { inUse: number; peak: number; refused: number; invocations: number }
  >();

  constructor(
    readonly regionLimit: number,
    readonly reserved: Readonly<Record<string, number>>,
  ) {}

  /** Runs `work` in one execution environment, or throws TooManyRequestsException. */
  async invoke<T>(fn: string, work: () => Promise<T>): Promise<T> {
    const f = this.byFunction.get(fn) ?? { inUse: 0, peak: 0, refused: 0, invocations: 0 };
    this.byFunction.set(fn, f);
    const cap = this.reserved[fn] ?? this.regionLimit;
    f.invocations++;
    if (f.inUse >= cap || this.inUse >= this.regionLimit) {
      f.refused++;
      throw new CallError('Lambda.TooManyRequestsException', `Rate Exceeded (${fn})`);
    }
    f.inUse++;
    this.inUse++;
    f.peak = Math.max(f.peak, f.inUse);
    this.peak = Math.max(this.peak, this.inUse);
    try {
      return await work();
    } finally {
      f.inUse--;
      this.inUse--;
    }
  }

  refused(): number {
    let n = 0;
    for (const f of this.byFunction.values()) n += f.refused;
    return n;
  }
}

const DELIVERY_MS = 250;
const VISIBLE_MS = 120;
const FREEZE_MS = 800;
const THAW_MS = 50;

interface Command {
  readonly id: string;
  readonly doc: 'freeze' | 'thaw';
  readonly instanceId: string;
  readonly sentAt: number;
  doneAt: number;
  status: 'Success' | 'Failed';
  stdout: string;
}

export interface SimInstance {
  readonly id: string;
  readonly volumeIds: readonly string[];
  frozenAt?: number;
  thawedAt?: number;
  watchdogFired: boolean;
  jobCreatedAt?: number;
  /** When AWS Backup's snapshots start, per volume. */
  snapshotStarts?: number[];
  busyUntil: number;
}

export interface FleetAwsOptions {
  readonly clock: Clock;
  readonly random: () => number;
  readonly buckets: Readonly<Record<Api, Bucket>>;
  readonly watchdogSeconds: number;
  /** Seconds from StartBackupJob to the snapshots' start: a sample per job. */
  readonly snapshotDelay: () => number;
}

/** Every API the run calls, as `send(command)` clients the real code takes. */
export class FleetAws {
  readonly apis: Record<Api, ServiceBucket>;
  readonly transitions: TransitionBucket;
  readonly instances = new Map<string, SimInstance>();
  private readonly commands = new Map<string, Command>();
  private seq = 0;
  /** Lambda invocations in flight per function, counted by LambdaPool. */

  constructor(private readonly o: FleetAwsOptions) {
    const apis = {} as Record<Api, ServiceBucket>;
    for (const [api, b] of Object.entries(o.buckets) as [Api, Bucket][])
      apis[api] = new ServiceBucket(b, o.clock);
    this.apis = apis;
    this.transitions = new TransitionBucket(o.buckets.stateTransitions, o.clock);
  }

  addInstance(id: string, volumeIds: readonly string[]): void {
    this.instances.set(id, { id, volumeIds, watchdogFired: false, busyUntil: 0 });
  }

  private now(): number {
    return this.o.clock.now();
  }

  /** Time-driven state of an instance: the watchdog thaws by itself. */
  private settle(i: SimInstance): void {
    if (i.frozenAt !== undefined && i.thawedAt === undefined) {
      const at = i.frozenAt + this.o.watchdogSeconds * 1000;
      if (this.now() >= at) {
        i.thawedAt = at;
        i.watchdogFired = true;
      }
    }
  }

  private check(api: Api, error: string): void {
    if (!this.apis[api].take()) throw new ThrottleError(error, api);
  }

  sendCommand(
    doc: 'freeze' | 'thaw',
    instanceId: string,
    notAfter?: string,
  ): { Command: Record<string, unknown> } {
    const i = this.instances.get(instanceId);
    if (!i) throw new CallError('InvalidInstanceId', instanceId);
    const id = `cmd-${(++this.seq).toString(16).padStart(8, '0')}`;
    const sentAt = this.now();
    // The agent runs one command at a time, in arrival order.
    const start = Math.max(sentAt + DELIVERY_MS, i.busyUntil);
    const cmd: Command = { id, doc, instanceId, sentAt, doneAt: start, status: 'Success', stdout: '' };
    if (doc === 'freeze') {
      if (notAfter !== undefined && start > Date.parse(notAfter)) {
        cmd.status = 'Failed';
        cmd.doneAt = start + 30;
        cmd.stdout = JSON.stringify({
          schemaVersion: 1,
          action: 'freeze',
          status: 'error',
          error: { code: 'not-after', message: `arrived after NotAfter ${notAfter}` },
        });
      } else {
        const frozenAt = start + FREEZE_MS;
        cmd.doneAt = frozenAt + 30;
        if (i.frozenAt === undefined) i.frozenAt = frozenAt;
        cmd.stdout = JSON.stringify({
          schemaVersion: 1,
          action: 'freeze',
          status: 'frozen',
          frozenAt: new Date(frozenAt).toISOString(),
          frozenAtMs: frozenAt,
          targets: [
            { mountpoint: '/data', fstype: 'xfs', source: '/dev/nvme1n1', volumeIds: [i.volumeIds.at(-1)] },
          ],
          hooksConfigured: false,
          hooks: [],
          watchdog: {
            seconds: this.o.watchdogSeconds,
            deadline: new Date(frozenAt + this.o.watchdogSeconds * 1000).toISOString(),
          },
        });
      }
    } else {
      cmd.doneAt = start + THAW_MS;
    }
    i.busyUntil = cmd.doneAt;
    this.commands.set(id, cmd);
    return {
      Command: {
        CommandId: id,
        DocumentName: doc,
        Status: 'Pending',
        RequestedDateTime: new Date(sentAt).toISOString(),
      },
    };
  }

  /** The thaw happens on the instance when the command starts: settle it when observed. */
  private runThaw(cmd: Command, i: SimInstance): void {
    if (cmd.stdout !== '' || this.now() < cmd.doneAt - THAW_MS) return;
    const at = cmd.doneAt - THAW_MS;
    if (
      i.frozenAt !== undefined &&
      i.thawedAt === undefined &&
      i.frozenAt + this.o.watchdogSeconds * 1000 <= at
    ) {
      i.thawedAt = i.frozenAt + this.o.watchdogSeconds * 1000;
      i.watchdogFired = true;
    }
    const frozenNow = i.frozenAt !== undefined && i.frozenAt <= at && i.thawedAt === undefined;
    if (frozenNow) i.thawedAt = at;
    cmd.stdout = JSON.stringify({
      schemaVersion: 1,
      action: 'thaw',
      status: 'thawed',
      thawedAtMs: at,
      freezeMs: frozenNow && i.frozenAt !== undefined ? at - i.frozenAt : 0,
      watchdogFired: i.watchdogFired,
      thawed: frozenNow ? ['/data'] : [],
      notFrozen: frozenNow ? [] : ['/data'],
      failed: [],
    });
  }

  /** Settle every thaw that has happened by now (the benchmark calls this at the end). */
  settleAll(): void {
    for (const cmd of this.commands.values()) {
      const i = this.instances.get(cmd.instanceId) as SimInstance;
      if (cmd.doc === 'thaw') this.runThaw(cmd, i);
    }
    for (const i of this.instances.values()) this.settle(i);
  }

  readonly ssm = {
    send: async (command: {
      constructor: { name: string };
      input: Record<string, unknown>;
    }): Promise<unknown> => {
      const name = command.constructor.name;
      if (name === 'SendCommandCommand') {
        this.check('sendCommand', 'ThrottlingException');
        const input = command.input as { InstanceIds: string[]; Parameters: Record<string, string[]> };
        return this.sendCommand('freeze', input.InstanceIds[0], input.Parameters.NotAfter?.[0]);
      }
      if (name === 'GetCommandInvocationCommand') {
        this.check('getCommandInvocation', 'ThrottlingException');
        const cmd = this.commands.get(String(command.input.CommandId));
        if (!cmd || this.now() < cmd.sentAt + VISIBLE_MS)
          throw new CallError('InvocationDoesNotExist', 'not yet');
        const i = this.instances.get(cmd.instanceId) as SimInstance;
        if (cmd.doc === 'thaw') this.runThaw(cmd, i);
        this.settle(i);
        if (this.now() < cmd.doneAt) return { Status: 'InProgress', StatusDetails: 'InProgress' };
        return {
          Status: cmd.status,
          StatusDetails: cmd.status,
          ResponseCode: cmd.status === 'Success' ? 0 : 1,
          StandardOutputContent: cmd.stdout,
          StandardErrorContent: cmd.status === 'Success' ? '' : 'freeze: error',
        };
      }
      throw new Error(`fleet sim: unexpected SSM ${name}`);
    },
  };

  readonly backup = {
    send: async (command: {
      constructor: { name: string };
      input: Record<string, unknown>;
    }): Promise<unknown> => {
      const name = command.constructor.name;
      if (name === 'ListBackupJobsCommand') {
        this.check('listBackupJobs', 'ThrottlingException');
        return { BackupJobs: [] };
      }
      if (name === 'StartBackupJobCommand') {
        // Called by start-backup through the SDK: the SDK's error names, not Step Functions'.
        if (!this.apis.startBackupJob.take())
          throw new ThrottleError('ThrottlingException', 'startBackupJob');
        return this.startJob(String(command.input.ResourceArn).split('/')[1]);
      }
      if (name === 'DescribeBackupJobCommand') {
        this.check('describeBackupJob', 'ThrottlingException');
        const id = String(command.input.BackupJobId);
        const i = this.instances.get(id.replace(/^job-/, ''));
        const age = i?.jobCreatedAt === undefined ? 0 : this.now() - i.jobCreatedAt;
        return { BackupJobId: id, State: age < 500 ? 'CREATED' : 'RUNNING' };
      }
      throw new Error(`fleet sim: unexpected Backup ${name}`);
    },
  };

  readonly ec2 = {
    send: async (command: {
      constructor: { name: string };
      input: Record<string, unknown>;
    }): Promise<unknown> => {
      const name = command.constructor.name;
      if (name === 'DescribeSnapshotsCommand') {
        this.check('describeSnapshots', 'RequestLimitExceeded');
        const filters = command.input.Filters as { Name: string; Values: string[] }[];
        const wanted = new Set(filters.find((f) => f.Name === 'volume-id')?.Values ?? []);
        const snapshots: unknown[] = [];
        for (const v of wanted) {
          const i = this.instances.get(instanceOfVolume(v));
          const k = i?.volumeIds.indexOf(v) ?? -1;
          const at = i?.snapshotStarts?.[k];
          if (at !== undefined && at <= this.now()) {
            snapshots.push({
              SnapshotId: `snap-${v.slice(4)}`,
              VolumeId: v,
              StartTime: new Date(at),
              State: 'pending',
            });
          }
        }
        return { Snapshots: snapshots };
      }
      if (name === 'CreateTagsCommand') {
        this.check('createTags', 'RequestLimitExceeded');
        return {};
      }
      throw new Error(`fleet sim: unexpected EC2 ${name}`);
    },
  };

  /** StartBackupJob's effect and response (the caller has taken the token). */
  private startJob(instanceId: string): Record<string, unknown> {
    const i = this.instances.get(instanceId) as SimInstance;
    if (i.jobCreatedAt === undefined) {
      i.jobCreatedAt = this.now();
      const delay = this.o.snapshotDelay() * 1000;
      i.snapshotStarts = i.volumeIds.map((_, k) => this.now() + delay + k * 150);
    }
    // No RecoveryPointArn: StartBackupJob returns it only for EFS and Advanced DynamoDB.
    return {
      BackupJobId: `job-${instanceId}`,
      CreationDate: new Date(i.jobCreatedAt).toISOString(),
      IsParent: false,
    };
  }

  /** Step Functions' Send Thaw Command task (CallAwsService ssm:sendCommand). */
  sendThaw(instanceId: string): { Command: Record<string, unknown> } {
    if (!this.apis.sendCommand.take()) throw new ThrottleError('Ssm.ThrottlingException', 'sendCommand');
    return this.sendCommand('thaw', instanceId);
  }
}

/** Volume ids of the simulated fleet encode their instance: vol-<instance hex>-<n> is not valid, so keep a map. */
const volumeOwner = new Map<string, string>();
export function volumesFor(instanceId: string, count: number): string[] {
  const hex = instanceId.replace(/^i-/, '');
  const out: string[] = [];
  for (let k = 0; k < count; k++) {
    const v = `vol-${hex.slice(-16)}${k.toString(16)}`;
    volumeOwner.set(v, instanceId);
    out.push(v);
  }
  return out;
}
function instanceOfVolume(v: string): string {
  return volumeOwner.get(v) ?? '';
}

/**
 * The SDK's standard retry strategy, as a handler's client with `maxAttempts` runs it: a throttled
 * call is retried after a random delay up to 2^attempt x 500 ms (100 ms for other transient
 * errors), each retry spending another token.
 */
export function withSdkRetries(
  client: { send: (c: never) => Promise<unknown> },
  maxAttempts: number,
  clock: Clock,
  random: () => number,
): { send: (c: never) => Promise<unknown> } {
  return {
    send: async (command: never) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await client.send(command);
        } catch (err) {
          const throttle = (err as { $retryable?: { throttling?: boolean } }).$retryable?.throttling === true;
          if (!throttle || attempt >= maxAttempts) throw err;
          await clock.sleep(Math.floor(Math.min(20_000, random() * 2 ** attempt * 500)));
        }
      }
    },
  };
}
