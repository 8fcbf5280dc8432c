/**
 * Fakes of the AWS APIs the snapshot poller calls (lambda/snapshot-poller), on a clock (a
 * VirtualClock in tests), returning only what the APIs return. Each `send` answers through a
 * promise, like an SDK client, so they run under sim/fleet/virtual-clock.ts.
 *
 * Sources (botocore 1.43.11's service models, whose documentation is the API reference text):
 * - EC2 DescribeSnapshots (ec2/2016-11-15): request OwnerIds, Filters, MaxResults, NextToken;
 *   result Snapshots[] and NextToken. Snapshot members returned here: SnapshotId, VolumeId, State
 *   (pending | completed | error | recoverable | recovering), StartTime, Progress, OwnerId,
 *   Description, VolumeSize, Encrypted, Tags. Filter names `volume-id` and `status`; values of one
 *   filter OR, filters AND. MaxResults 5-1,000, not with SnapshotIds (the earlier model's text,
 *   docs/aws-facts.md §2.1). At most 200 values in one filter, refused with `FilterLimitExceeded`
 *   ("The maximum number of filter values specified on a single call is 200"): not in the model;
 *   the limit observed for EC2 filters (docs/aws-facts.md §2.1, apache/druid#1954).
 *   Throttling: `RequestLimitExceeded` from a bucket of 100 refilled at 20/s per API action (EC2
 *   developer guide, "Request throttling for the Amazon EC2 API"; QUOTAS.md).
 *   What AWS Backup's own EC2 snapshots look like (Description from CreateImage, the
 *   `aws:backup:source-resource` tag) is lambda/snapshot-poller/backup-snapshots.ts's evidence.
 * - AWS Backup ListBackupJobs (backup/2018-11-15): ByState, ByCreatedAfter, ByResourceType,
 *   MaxResults (1-1,000), NextToken; BackupJobs[] of BackupJob (BackupJobId, BackupVaultName,
 *   ResourceArn, ResourceType, CreationDate, State, StatusMessage, ...). No RecoveryPointArn is
 *   returned for a job that is not COMPLETED (unknown before then: docs/aws-facts.md §1.1).
 * - Step Functions SendTaskSuccess / SendTaskFailure (stepfunctions/2016-11-23): errors
 *   TaskDoesNotExist, InvalidOutput (Success only), InvalidToken ("The provided token is not
 *   valid"), TaskTimedOut ("The task token has either expired or the task associated with the
 *   token has already been closed"), Kms*. A second answer to a closed task is TaskTimedOut.
 * - Lambda Invoke: InvocationType Event returns StatusCode 202.
 */

import {
  type BackupJob,
  ListBackupJobsCommand,
  type ListBackupJobsCommandInput,
} from '@aws-sdk/client-backup';
import {
  DescribeSnapshotsCommand,
  type DescribeSnapshotsCommandInput,
  type Snapshot,
} from '@aws-sdk/client-ec2';
import { InvokeCommand, type InvokeCommandInput } from '@aws-sdk/client-lambda';
import {
  InvalidToken,
  SendTaskFailureCommand,
  type SendTaskFailureCommandInput,
  SendTaskSuccessCommand,
  type SendTaskSuccessCommandInput,
  TaskTimedOut,
} from '@aws-sdk/client-sfn';
import type { Clock } from './fleet/virtual-clock';

export const FAKE_ACCOUNT = '111122223333';
export const FAKE_REGION = 'eu-west-1';

/** An error as the SDK throws it for a service error: a name, a message, HTTP metadata. */
class ServiceError extends Error {
  readonly $metadata: { httpStatusCode: number };
  readonly $fault = 'client';
  constructor(name: string, message: string, status = 400) {
    super(message);
    this.name = name;
    this.$metadata = { httpStatusCode: status };
  }
}

/** A service-side token bucket: a call finding it empty is refused. */
class ServiceBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly burst: number,
    private readonly ratePerSecond: number,
    private readonly clock: Clock,
  ) {
    this.tokens = burst;
    this.last = clock.now();
  }
  take(): boolean {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

function unsupported(command: unknown): never {
  throw new Error(
    `This fake does not implement ${(command as { constructor?: { name?: string } })?.constructor?.name}`,
  );
}

export interface FakeSnapshot {
  readonly SnapshotId: string;
  readonly VolumeId: string;
  /** Epoch ms: the snapshot exists (is listed) from then on. */
  readonly startMs: number;
  readonly Description: string;
  readonly Tags?: readonly { Key: string; Value: string }[];
  State?: 'pending' | 'completed' | 'error';
  readonly OwnerId?: string;
  readonly VolumeSize?: number;
}

export interface DescribeCall {
  readonly atMs: number;
  readonly volumeIds: number;
  readonly refused: boolean;
}

export class FakeEc2Snapshots {
  readonly snapshots: FakeSnapshot[] = [];
  readonly calls: DescribeCall[] = [];
  private readonly bucket: ServiceBucket;

  constructor(
    private readonly clock: Clock,
    options: { burst?: number; ratePerSecond?: number } = {},
  ) {
    this.bucket = new ServiceBucket(options.burst ?? 100, options.ratePerSecond ?? 20, clock);
  }

  add(...snapshots: FakeSnapshot[]): void {
    this.snapshots.push(...snapshots);
  }

  async send(command: unknown): Promise<unknown> {
    if (command instanceof DescribeSnapshotsCommand) return this.describe(command.input);
    return unsupported(command);
  }

  describe(input: DescribeSnapshotsCommandInput): { Snapshots: Snapshot[]; NextToken?: string } {
    const filters = input.Filters ?? [];
    const volumeFilter = filters.find((f) => f.Name === 'volume-id')?.Values;
    const refused = !this.bucket.take();
    this.calls.push({ atMs: this.clock.now(), volumeIds: volumeFilter?.length ?? 0, refused });
    if (refused) throw new ServiceError('RequestLimitExceeded', 'Request limit exceeded.', 503);
    for (const f of filters) {
      if ((f.Values?.length ?? 0) > 200) {
        throw new ServiceError(
          'FilterLimitExceeded',
          'The maximum number of filter values specified on a single call is 200',
        );
      }
      if (!['volume-id', 'status', 'description', 'tag-key'].includes(f.Name ?? '')) {
        throw new Error(`FakeEc2Snapshots: filter ${f.Name} not implemented`);
      }
    }
    const max = input.MaxResults;
    if (max !== undefined && (max < 5 || max > 1000 || input.SnapshotIds))
      throw new ServiceError('InvalidParameterValue', `Invalid value '${max}' for MaxResults`);
    const statuses = filters.find((f) => f.Name === 'status')?.Values;
    const now = this.clock.now();
    const owners = input.OwnerIds;
    const matching = this.snapshots
      .filter((s) => s.startMs <= now)
      .filter((s) => !volumeFilter || volumeFilter.includes(s.VolumeId))
      .filter((s) => !statuses || statuses.includes(s.State ?? 'pending'))
      .filter((s) => !owners || owners.every((o) => o === 'self' || o === (s.OwnerId ?? FAKE_ACCOUNT)))
      .sort((a, b) => a.SnapshotId.localeCompare(b.SnapshotId));
    const offset = input.NextToken ? Number(input.NextToken) : 0;
    const size = max ?? matching.length;
    const page = matching.slice(offset, offset + size);
    const next = offset + size < matching.length ? String(offset + size) : undefined;
    return {
      Snapshots: page.map((s) => ({
        SnapshotId: s.SnapshotId,
        VolumeId: s.VolumeId,
        State: s.State ?? 'pending',
        StartTime: new Date(s.startMs),
        Progress: (s.State ?? 'pending') === 'completed' ? '100%' : '0%',
        OwnerId: s.OwnerId ?? FAKE_ACCOUNT,
        Description: s.Description,
        VolumeSize: s.VolumeSize ?? 8,
        Encrypted: false,
        ...(s.Tags && s.Tags.length > 0 ? { Tags: s.Tags.map((t) => ({ ...t })) } : {}),
      })),
      ...(next ? { NextToken: next } : {}),
    };
  }
}

export interface FakeJob {
  readonly BackupJobId: string;
  readonly ResourceArn: string;
  readonly CreationDate: Date;
  State:
    | 'CREATED'
    | 'PENDING'
    | 'RUNNING'
    | 'ABORTING'
    | 'ABORTED'
    | 'COMPLETED'
    | 'FAILED'
    | 'EXPIRED'
    | 'PARTIAL';
  StatusMessage?: string;
}

export class FakeBackupJobs {
  readonly jobs = new Map<string, FakeJob>();
  readonly calls: { atMs: number; input: ListBackupJobsCommandInput }[] = [];

  constructor(private readonly clock: Clock) {}

  add(job: FakeJob): void {
    this.jobs.set(job.BackupJobId, job);
  }

  async send(command: unknown): Promise<unknown> {
    if (command instanceof ListBackupJobsCommand) return this.list(command.input);
    return unsupported(command);
  }

  list(input: ListBackupJobsCommandInput): { BackupJobs: BackupJob[]; NextToken?: string } {
    this.calls.push({ atMs: this.clock.now(), input });
    const max = input.MaxResults ?? 1000;
    if (max < 1 || max > 1000) throw new ServiceError('InvalidParameterValueException', 'MaxResults 1-1000');
    const after = input.ByCreatedAfter?.getTime();
    const matching = [...this.jobs.values()]
      .filter((j) => !input.ByState || j.State === input.ByState)
      .filter((j) => after === undefined || j.CreationDate.getTime() > after)
      // Every job here is of an EC2 instance.
      .filter(() => !input.ByResourceType || input.ByResourceType === 'EC2');
    const offset = input.NextToken ? Number(input.NextToken) : 0;
    const page = matching.slice(offset, offset + max);
    const next = offset + max < matching.length ? String(offset + max) : undefined;
    return {
      BackupJobs: page.map((j) => ({
        BackupJobId: j.BackupJobId,
        BackupVaultName: 'ec2-consistent-backup',
        ResourceArn: j.ResourceArn,
        ResourceType: 'EC2',
        CreationDate: j.CreationDate,
        State: j.State,
        ...(j.StatusMessage ? { StatusMessage: j.StatusMessage } : {}),
      })),
      ...(next ? { NextToken: next } : {}),
    };
  }
}

export interface TaskAnswer {
  readonly atMs: number;
  readonly kind: 'success' | 'failure';
  readonly output?: string;
  readonly error?: string;
}

/** Task tokens of waiting Step Functions tasks; each accepts one answer. */
export class FakeStepFunctions {
  private readonly open = new Set<string>();
  private readonly closed = new Set<string>();
  /** Accepted answers per token. */
  readonly answers = new Map<string, TaskAnswer>();
  /** Every call, accepted or refused. */
  readonly calls: { atMs: number; token: string; error?: string }[] = [];
  private readonly bucket: ServiceBucket;

  constructor(
    private readonly clock: Clock,
    options: { burst?: number; ratePerSecond?: number } = {},
  ) {
    // SendTaskSuccess/Failure: 3,000 / 500 in the largest Regions (QUOTAS.md).
    this.bucket = new ServiceBucket(options.burst ?? 3000, options.ratePerSecond ?? 500, clock);
  }

  /** A task starts waiting for this token. */
  wait(token: string): void {
    this.open.add(token);
  }

  /** The task's own timeout fires: the token is closed without an answer. */
  timeOut(token: string): void {
    this.open.delete(token);
    this.closed.add(token);
  }

  async send(command: unknown): Promise<unknown> {
    if (command instanceof SendTaskSuccessCommand) return this.answer(command.input, 'success');
    if (command instanceof SendTaskFailureCommand) return this.answer(command.input, 'failure');
    return unsupported(command);
  }

  private answer(input: SendTaskSuccessCommandInput | SendTaskFailureCommandInput, kind: TaskAnswer['kind']) {
    const token = input.taskToken ?? '';
    const atMs = this.clock.now();
    const refuse = (error: Error) => {
      this.calls.push({ atMs, token, error: error.name });
      throw error;
    };
    if (!this.bucket.take()) refuse(new ServiceError('ThrottlingException', 'Rate exceeded'));
    if (this.closed.has(token))
      refuse(
        new TaskTimedOut({
          message:
            'The task token has either expired or the task associated with the token has already been closed.',
          $metadata: { httpStatusCode: 400 },
        }),
      );
    if (!this.open.has(token))
      refuse(new InvalidToken({ message: 'Invalid Token', $metadata: { httpStatusCode: 400 } }));
    this.calls.push({ atMs, token });
    this.open.delete(token);
    this.closed.add(token);
    this.answers.set(token, {
      atMs,
      kind,
      ...('output' in input ? { output: input.output } : {}),
      ...('error' in input ? { error: input.error } : {}),
    });
    return {};
  }
}

export class FakeLambdaInvoke {
  readonly invokes: { atMs: number; input: InvokeCommandInput }[] = [];
  constructor(private readonly clock: Clock) {}
  async send(command: unknown): Promise<unknown> {
    if (command instanceof InvokeCommand) {
      this.invokes.push({ atMs: this.clock.now(), input: command.input });
      return { StatusCode: 202 };
    }
    return unsupported(command);
  }
}
