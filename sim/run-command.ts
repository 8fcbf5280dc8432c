/**
 * Fakes of what command-results talks to, on a caller's clock, returning only what the services
 * return (botocore's models, ssm 2014-11-06 and stepfunctions 2016-11-23, service-2.json):
 * - FakeRunCommand: Run Command invocations of one instance each. GetCommandInvocation
 *   (GetCommandInvocationResult: CommandId, InstanceId, DocumentName, Status, StatusDetails,
 *   ResponseCode, StandardOutputContent <= 24,000, StandardErrorContent, ...; the error
 *   InvocationDoesNotExist before the invocation is visible) and ListCommandInvocations (Filters
 *   DocumentName / InvokedAfter / InvokedBefore, MaxResults <= 50, NextToken; each CommandInvocation
 *   with CommandId, InstanceId, DocumentName, RequestedDateTime, Status, StatusDetails and, without
 *   Details, no plugin output). Each API has a token bucket; an empty bucket answers
 *   ThrottlingException, as SSM does for a rate it does not publish (the bucket sizes are the
 *   caller's assumption, as in lambda/discovery/admission.ts).
 *   `events` are the "EC2 Command Invocation Status-change Notification" events the invocations
 *   would emit, shaped as the Systems Manager user guide's example ("Amazon EventBridge event
 *   examples for Systems Manager", Run Command Invocation Status-change Notification:
 *   https://docs.aws.amazon.com/systems-manager/latest/userguide/monitoring-systems-manager-event-examples.html).
 * - FakeTaskTokens: SendTaskSuccess / SendTaskFailure (empty output; errors TaskDoesNotExist,
 *   InvalidToken, TaskTimedOut, InvalidOutput for an output above 262,144 characters; a token
 *   answered once then answers TaskTimedOut), with the
 *   published bucket (3,000, refill 500/s per account) unless told otherwise.
 */

import {
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  ListCommandInvocationsCommand,
  type ListCommandInvocationsCommandInput,
  type ListCommandInvocationsCommandOutput,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { SendTaskFailureCommand, SendTaskSuccessCommand, type SFNClient } from '@aws-sdk/client-sfn';

export interface FakeClock {
  now(): number;
}

/** A bucket that refuses instead of waiting: what a service's throttle does. */
export class RefusingBucket {
  private tokens: number;
  private last: number;
  /** Requests refused. */
  refused = 0;
  /** Accepted requests' times, for rate assertions. */
  readonly accepted: number[] = [];

  constructor(
    readonly burst: number,
    readonly perSecond: number,
    private readonly clock: FakeClock,
  ) {
    this.tokens = burst;
    this.last = clock.now();
  }

  /** True when a request may go now (it takes a token); false means throttled. */
  admit(): boolean {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) {
      this.refused += 1;
      return false;
    }
    this.tokens -= 1;
    this.accepted.push(now);
    return true;
  }

  /** The most requests accepted in any window of `ms`. */
  peak(ms: number): number {
    let best = 0;
    let from = 0;
    for (let i = 0; i < this.accepted.length; i += 1) {
      while (this.accepted[i] - this.accepted[from] >= ms) from += 1;
      best = Math.max(best, i - from + 1);
    }
    return best;
  }
}

function awsError(name: string, message: string): Error {
  const err = new Error(message);
  err.name = name;
  Object.assign(err, { $metadata: { httpStatusCode: 400 }, $fault: 'client' });
  return err;
}

export interface FakeInvocation {
  readonly commandId: string;
  readonly instanceId: string;
  readonly documentName: string;
  readonly requestedAtMs: number;
  /** From this moment GetCommandInvocation and ListCommandInvocations know it (eventual consistency). */
  readonly visibleAtMs: number;
  /** When it starts running on the instance (InProgress). */
  readonly startsAtMs: number;
  /** When it ends with `endStatus`. */
  readonly endsAtMs: number;
  readonly endStatus: 'Success' | 'Failed' | 'TimedOut' | 'Cancelled';
  readonly responseCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface StatusEvent {
  readonly version: '0';
  readonly id: string;
  readonly 'detail-type': 'EC2 Command Invocation Status-change Notification';
  readonly source: 'aws.ssm';
  readonly account: string;
  readonly time: string;
  readonly region: string;
  readonly resources: readonly string[];
  readonly detail: {
    readonly 'command-id': string;
    readonly 'document-name': string;
    readonly 'instance-id': string;
    readonly 'requested-date-time': string;
    readonly status: string;
  };
}

/** Event times are whole seconds, as in the guide's example ("2016-07-10T21:51:32Z"). */
const eventTime = (ms: number) =>
  new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

export class FakeRunCommand {
  readonly invocations = new Map<string, FakeInvocation>();
  readonly calls = { getCommandInvocation: 0, listCommandInvocations: 0 };
  readonly buckets: { getCommandInvocation: RefusingBucket; listCommandInvocations: RefusingBucket };
  private seq = 0;

  constructor(
    private readonly clock: FakeClock,
    rates: {
      getCommandInvocation: { burst: number; perSecond: number };
      listCommandInvocations: { burst: number; perSecond: number };
    },
  ) {
    this.buckets = {
      getCommandInvocation: new RefusingBucket(
        rates.getCommandInvocation.burst,
        rates.getCommandInvocation.perSecond,
        clock,
      ),
      listCommandInvocations: new RefusingBucket(
        rates.listCommandInvocations.burst,
        rates.listCommandInvocations.perSecond,
        clock,
      ),
    };
  }

  /** A command sent now (or at `at`), with its timeline. */
  send(
    spec: Omit<FakeInvocation, 'commandId' | 'requestedAtMs' | 'visibleAtMs' | 'startsAtMs' | 'endsAtMs'> & {
      readonly at?: number;
      readonly runMs: number;
      readonly deliveryMs?: number;
      readonly visibleAfterMs?: number;
    },
  ): FakeInvocation {
    const at = spec.at ?? this.clock.now();
    this.seq += 1;
    const hex = this.seq.toString(16).padStart(12, '0');
    const inv: FakeInvocation = {
      commandId: `0b9a1c2d-3e4f-4a5b-8c6d-${hex}`,
      instanceId: spec.instanceId,
      documentName: spec.documentName,
      requestedAtMs: at,
      visibleAtMs: at + (spec.visibleAfterMs ?? 50),
      startsAtMs: at + (spec.deliveryMs ?? 200),
      endsAtMs: at + (spec.deliveryMs ?? 200) + spec.runMs,
      endStatus: spec.endStatus,
      responseCode: spec.responseCode,
      stdout: spec.stdout.slice(0, 24_000),
      stderr: spec.stderr.slice(0, 8_000),
    };
    this.invocations.set(inv.commandId, inv);
    return inv;
  }

  statusAt(inv: FakeInvocation, at: number): string {
    if (at >= inv.endsAtMs) return inv.endStatus;
    if (at >= inv.startsAtMs) return 'InProgress';
    return 'Pending';
  }

  /** The status-change events of one invocation: Pending, InProgress, then its end. */
  eventsOf(inv: FakeInvocation): { at: number; event: StatusEvent }[] {
    return [
      { at: inv.requestedAtMs, status: 'Pending' },
      { at: inv.startsAtMs, status: 'InProgress' },
      { at: inv.endsAtMs, status: inv.endStatus },
    ].map(({ at, status }, i) => ({
      at,
      event: {
        version: '0',
        id: `${inv.commandId.slice(0, 30)}${String(i).padStart(6, '0')}`,
        'detail-type': 'EC2 Command Invocation Status-change Notification',
        source: 'aws.ssm',
        account: '123456789012',
        time: eventTime(at),
        region: 'eu-west-1',
        resources: [`arn:aws:ec2:eu-west-1:123456789012:instance/${inv.instanceId}`],
        detail: {
          'command-id': inv.commandId,
          'document-name': inv.documentName,
          'instance-id': inv.instanceId,
          'requested-date-time': new Date(inv.requestedAtMs).toISOString(),
          status,
        },
      },
    }));
  }

  getCommandInvocation(input: {
    CommandId?: string;
    InstanceId?: string;
  }): GetCommandInvocationCommandOutput {
    this.calls.getCommandInvocation += 1;
    if (!this.buckets.getCommandInvocation.admit()) throw awsError('ThrottlingException', 'Rate exceeded');
    const now = this.clock.now();
    const inv = input.CommandId ? this.invocations.get(input.CommandId) : undefined;
    if (!inv || inv.instanceId !== input.InstanceId || now < inv.visibleAtMs) {
      throw awsError('InvocationDoesNotExist', '');
    }
    const status = this.statusAt(inv, now);
    const ended = status === inv.endStatus;
    return {
      $metadata: {},
      CommandId: inv.commandId,
      InstanceId: inv.instanceId,
      Comment: '',
      DocumentName: inv.documentName,
      DocumentVersion: '$DEFAULT',
      PluginName: 'run',
      ResponseCode: ended ? inv.responseCode : -1,
      ExecutionStartDateTime: now >= inv.startsAtMs ? new Date(inv.startsAtMs).toISOString() : '',
      ExecutionElapsedTime: '',
      ExecutionEndDateTime: ended ? new Date(inv.endsAtMs).toISOString() : '',
      Status: status as GetCommandInvocationCommandOutput['Status'],
      StatusDetails: status === 'TimedOut' ? 'DeliveryTimedOut' : status,
      StandardOutputContent: ended ? inv.stdout : '',
      StandardOutputUrl: '',
      StandardErrorContent: ended ? inv.stderr : '',
      StandardErrorUrl: '',
      CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
    };
  }

  listCommandInvocations(input: ListCommandInvocationsCommandInput): ListCommandInvocationsCommandOutput {
    this.calls.listCommandInvocations += 1;
    if (!this.buckets.listCommandInvocations.admit()) throw awsError('ThrottlingException', 'Rate exceeded');
    if (input.Details)
      throw new Error('FakeRunCommand: Details is not modelled (plugin output is at most 2,500 characters)');
    const max = input.MaxResults ?? 50;
    if (max < 1 || max > 50) throw awsError('ValidationException', 'MaxResults must be from 1 to 50');
    const filter = (key: string) => input.Filters?.find((f) => f.key === key)?.value;
    const doc = filter('DocumentName');
    const after = filter('InvokedAfter');
    const before = filter('InvokedBefore');
    const now = this.clock.now();
    const all = [...this.invocations.values()]
      .filter(
        (inv) =>
          now >= inv.visibleAtMs &&
          (!input.CommandId || inv.commandId === input.CommandId) &&
          (!input.InstanceId || inv.instanceId === input.InstanceId) &&
          (!doc || inv.documentName === doc) &&
          (!after || inv.requestedAtMs >= Date.parse(after)) &&
          (!before || inv.requestedAtMs <= Date.parse(before)),
      )
      // Newest first, as the console and the CLI list them.
      .sort((a, b) => b.requestedAtMs - a.requestedAtMs || (a.commandId < b.commandId ? -1 : 1));
    const start = input.NextToken ? Number(input.NextToken) : 0;
    const page = all.slice(start, start + max);
    return {
      $metadata: {},
      CommandInvocations: page.map((inv) => {
        const status = this.statusAt(inv, now);
        return {
          CommandId: inv.commandId,
          InstanceId: inv.instanceId,
          InstanceName: '',
          Comment: '',
          DocumentName: inv.documentName,
          DocumentVersion: '$DEFAULT',
          RequestedDateTime: new Date(inv.requestedAtMs),
          Status: status as 'Success',
          StatusDetails: status,
          StandardOutputUrl: '',
          StandardErrorUrl: '',
          CommandPlugins: [],
        };
      }),
      ...(start + max < all.length ? { NextToken: String(start + max) } : {}),
    };
  }

  /** A client whose `send` answers GetCommandInvocation and ListCommandInvocations from this fake. */
  client(): Pick<SSMClient, 'send'> {
    return {
      send: async (command: unknown) => {
        if (command instanceof GetCommandInvocationCommand) return this.getCommandInvocation(command.input);
        if (command instanceof ListCommandInvocationsCommand)
          return this.listCommandInvocations(command.input);
        throw new Error(`FakeRunCommand: ${(command as object).constructor.name} is not modelled`);
      },
    } as unknown as Pick<SSMClient, 'send'>;
  }
}

export interface TaskRecord {
  readonly token: string;
  /** Seconds until Step Functions times the task out (TaskTimedOut after). */
  readonly timeoutAtMs: number;
  readonly answers: { at: number; kind: 'success' | 'failure'; output?: unknown; error?: string }[];
}

export class FakeTaskTokens {
  readonly tasks = new Map<string, TaskRecord>();
  readonly bucket: RefusingBucket;
  /** SendTask* calls made, answered or not. */
  calls = 0;

  constructor(
    private readonly clock: FakeClock,
    rate: { burst: number; perSecond: number } = { burst: 3000, perSecond: 500 },
  ) {
    this.bucket = new RefusingBucket(rate.burst, rate.perSecond, clock);
  }

  /** A task waiting with `.waitForTaskToken`; it times out `timeoutMs` from now. */
  issue(name: string, timeoutMs: number): string {
    const token = `AQB8AAAAKgAAAAMAAAAA${Buffer.from(name).toString('base64')}`;
    this.tasks.set(token, { token, timeoutAtMs: this.clock.now() + timeoutMs, answers: [] });
    return token;
  }

  private answer(token: string, kind: 'success' | 'failure', payload: { output?: string; error?: string }) {
    this.calls += 1;
    if (!this.bucket.admit()) throw awsError('ThrottlingException', 'Rate exceeded');
    const task = this.tasks.get(token);
    if (!task) throw awsError('InvalidToken', 'Invalid Token');
    if (kind === 'success' && (payload.output?.length ?? 0) > 262_144) throw awsError('InvalidOutput', '');
    if (this.clock.now() >= task.timeoutAtMs) throw awsError('TaskTimedOut', 'Task Timed Out');
    // A token answers once: a second answer gets TaskTimedOut "Provided task does not exist
    // anymore" (as reported in aws-samples/amazon-mwaa-examples issue 61).
    if (task.answers.length > 0)
      throw awsError('TaskTimedOut', "Task Timed Out: 'Provided task does not exist anymore'");
    task.answers.push({
      at: this.clock.now(),
      kind,
      ...(payload.output !== undefined ? { output: JSON.parse(payload.output) } : {}),
      ...(payload.error !== undefined ? { error: payload.error } : {}),
    });
    return { $metadata: {} };
  }

  client(): Pick<SFNClient, 'send'> {
    return {
      send: async (command: unknown) => {
        if (command instanceof SendTaskSuccessCommand)
          return this.answer(command.input.taskToken as string, 'success', { output: command.input.output });
        if (command instanceof SendTaskFailureCommand)
          return this.answer(command.input.taskToken as string, 'failure', { error: command.input.error });
        throw new Error(`FakeTaskTokens: ${(command as object).constructor.name} is not modelled`);
      },
    } as unknown as Pick<SFNClient, 'send'>;
  }
}
