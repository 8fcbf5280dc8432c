import { DescribeInstancesCommand, EC2Client, type Instance } from '@aws-sdk/client-ec2';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DescribeInstanceInformationCommand, InvalidInstanceId, SSMClient } from '@aws-sdk/client-ssm';
import { createHash } from 'node:crypto';
import { mockClient } from 'aws-sdk-client-mock';

/**
 * A small simulation of EC2, SSM, Step Functions and Lambda behind aws-sdk-client-mock, shared by
 * the discovery tests and scripts/bench-discovery.ts. It behaves like the services where
 * discovery depends on it: DescribeInstances filters by tag and state and pages; SSM answers only
 * for managed nodes; StartExecution has a token-bucket throttle, is idempotent for a running
 * execution with the same name and input, and answers ExecutionAlreadyExists otherwise.
 */

export interface FakeInstance {
  readonly id: string;
  readonly state?: string;
  /** 'windows' sets EC2's Platform field. */
  readonly platform?: 'windows';
  readonly tags?: Record<string, string>;
  /** @default one volume derived from the id */
  readonly volumes?: readonly string[];
  readonly rootDeviceType?: 'ebs' | 'instance-store';
  /** SSM's view; null: not a managed node. @default Online Linux */
  readonly ssm?: {
    readonly ping: string;
    readonly platformType?: string;
    readonly agentVersion?: string;
  } | null;
}

export type Range = readonly [number, number];

export interface FakeAwsOptions {
  readonly pageSize?: number;
  /** Per-call latency in ms, uniform in the range. @default no latency */
  readonly latency?: { readonly describe?: Range; readonly ssm?: Range; readonly start?: Range };
  /** StartExecution throttle. @default no throttle */
  readonly throttle?: { readonly burst: number; readonly ratePerSecond: number };
  /** Calls to StartExecution that fail with ThrottlingException regardless of the bucket (storms). */
  readonly throttleWhen?: (call: number) => boolean;
  /** Error thrown by StartExecution for these instance ids (not retryable). */
  readonly startFailures?: ReadonlySet<string>;
  /** SSM fails every call with this error (after the SDK's own retries, say). */
  readonly ssmError?: Error;
  /** SSM refuses a batch containing one of these ids with InvalidInstanceId. */
  readonly ssmInvalidIds?: ReadonlySet<string>;
  readonly accountId?: string;
  readonly random?: () => number;
  /**
   * The clock latency and the throttle bucket run on: a virtual clock (sim/fleet/virtual-clock.ts)
   * makes timing tests deterministic on a busy machine. @default real time
   */
  readonly clock?: { now(): number; sleep(ms: number): Promise<void> };
  /**
   * Keep each execution's input (tests read them). The benchmark keeps only a digest, so the
   * simulated service's own memory does not blur the function's peak memory.
   * @default true
   */
  readonly keepInputs?: boolean;
}

export const OWNER = '111122223333';

export function volumeFor(id: string): string {
  return `vol-${id.replace(/^i-/, '').padStart(17, '0').slice(-17)}`;
}

function toEc2(f: FakeInstance): Instance {
  const volumes = f.volumes ?? [volumeFor(f.id)];
  return {
    InstanceId: f.id,
    InstanceType: 'm7g.large',
    State: { Name: (f.state ?? 'running') as 'running' },
    ...(f.platform
      ? { Platform: 'Windows' as const, PlatformDetails: 'Windows' }
      : { PlatformDetails: 'Linux/UNIX' }),
    RootDeviceType: f.rootDeviceType ?? 'ebs',
    BlockDeviceMappings: volumes.map((v, i) => ({
      DeviceName: `/dev/sd${String.fromCharCode(97 + (i % 26))}`,
      Ebs: { VolumeId: v, Status: 'attached' as const },
    })),
    Tags: Object.entries(f.tags ?? {}).map(([Key, Value]) => ({ Key, Value })),
  };
}

export class FakeAws {
  readonly instances: FakeInstance[];
  readonly byId = new Map<string, FakeInstance>();
  readonly ec2Mock = mockClient(EC2Client);
  readonly ssmMock = mockClient(SSMClient);
  readonly sfnMock = mockClient(SFNClient);
  readonly lambdaMock = mockClient(LambdaClient);

  /** name → the execution Step Functions holds. */
  readonly executions = new Map<string, { input: string; startDate: Date; instanceId: string }>();
  /** instanceId → execution names that were created for it (more than one is a duplicate). */
  readonly createdPerInstance = new Map<string, string[]>();
  readonly counts = { describe: 0, ssm: 0, start: 0, throttled: 0, created: 0, alreadyExists: 0, invokes: 0 };
  /** StartExecution calls in flight now, and the most seen at once. */
  inFlight = 0;
  maxInFlight = 0;
  /** Payloads of asynchronous self-invocations, in order. */
  readonly invocations: unknown[] = [];
  /** The DescribeInstances requests, to check filters. */
  readonly describeInputs: unknown[] = [];

  private tokens: number;
  private last: number;
  private readonly options: FakeAwsOptions;
  private readonly random: () => number;

  constructor(instances: FakeInstance[], options: FakeAwsOptions = {}) {
    this.instances = instances;
    for (const i of instances) this.byId.set(i.id, i);
    this.options = options;
    this.random = options.random ?? Math.random;
    this.tokens = options.throttle?.burst ?? 0;
    this.last = this.now();
    this.install();
  }

  private async wait(range: Range | undefined): Promise<void> {
    if (!range) return;
    const ms = range[0] + this.random() * (range[1] - range[0]);
    if (this.options.clock) await this.options.clock.sleep(ms);
    else await new Promise((resolve) => setTimeout(resolve, ms));
  }

  private now(): number {
    return this.options.clock ? this.options.clock.now() : Date.now();
  }

  private take(): boolean {
    const t = this.options.throttle;
    if (!t) return true;
    const now = this.now();
    this.tokens = Math.min(t.burst, this.tokens + ((now - this.last) / 1000) * t.ratePerSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private install(): void {
    const pageSize = this.options.pageSize ?? 1000;
    this.ec2Mock.on(DescribeInstancesCommand).callsFake(async (input) => {
      this.counts.describe++;
      this.describeInputs.push(input);
      await this.wait(this.options.latency?.describe);
      const filters = (input.Filters ?? []) as { Name: string; Values: string[] }[];
      const matching = this.instances.filter((f) =>
        filters.every((flt) => {
          if (flt.Name === 'instance-state-name') return flt.Values.includes(f.state ?? 'running');
          if (flt.Name.startsWith('tag:')) {
            const value = f.tags?.[flt.Name.slice(4)];
            return value !== undefined && flt.Values.includes(value);
          }
          return true;
        }),
      );
      const offset = input.NextToken ? Number(input.NextToken) : 0;
      const page = matching.slice(offset, offset + Math.min(pageSize, input.MaxResults ?? pageSize));
      const next = offset + page.length;
      // One reservation per few instances, as launches come in batches.
      const reservations = [];
      for (let i = 0; i < page.length; i += 4) {
        reservations.push({
          OwnerId: this.options.accountId ?? OWNER,
          Instances: page.slice(i, i + 4).map(toEc2),
        });
      }
      return { Reservations: reservations, ...(next < matching.length ? { NextToken: String(next) } : {}) };
    });

    this.ssmMock.on(DescribeInstanceInformationCommand).callsFake(async (input) => {
      this.counts.ssm++;
      await this.wait(this.options.latency?.ssm);
      const ids = input.Filters?.find((f: { Key: string }) => f.Key === 'InstanceIds')?.Values ?? [];
      if (this.options.ssmError) throw this.options.ssmError;
      if (ids.length > 50) throw new Error(`InvalidFilterValue: at most 50 ids, got ${ids.length}`);
      if (ids.some((id: string) => this.options.ssmInvalidIds?.has(id))) {
        throw new InvalidInstanceId({ message: 'Instances not in a valid state for account', $metadata: {} });
      }
      const list = [];
      for (const id of ids) {
        const f = this.byId.get(id);
        if (!f || f.ssm === null || (f.state ?? 'running') !== 'running') continue;
        const ssm = f.ssm ?? { ping: 'Online', platformType: f.platform === 'windows' ? 'Windows' : 'Linux' };
        list.push({
          InstanceId: id,
          PingStatus: ssm.ping as 'Online',
          PlatformType: (ssm.platformType ?? 'Linux') as 'Linux',
          AgentVersion: ssm.agentVersion ?? '3.3.1000.0',
        });
      }
      return { InstanceInformationList: list };
    });

    this.sfnMock.on(StartExecutionCommand).callsFake(async (input) => {
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      try {
        return await this.startExecution(input);
      } finally {
        this.inFlight--;
      }
    });

    this.lambdaMock.on(InvokeCommand).callsFake(async (input) => {
      this.counts.invokes++;
      this.invocations.push(JSON.parse(new TextDecoder().decode(input.Payload as Uint8Array)));
      return { StatusCode: 202 };
    });
  }

  private async startExecution(input: { name?: string; input?: string }) {
    const call = ++this.counts.start;
    const latency = this.options.latency?.start;
    const half = latency ? ([latency[0] / 2, latency[1] / 2] as const) : undefined;
    await this.wait(half);
    if (this.options.throttleWhen?.(call) || !this.take()) {
      this.counts.throttled++;
      await this.wait(half);
      throw Object.assign(new Error('Rate exceeded'), {
        name: 'ThrottlingException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
      });
    }
    const name = input.name as string;
    const body = JSON.parse(input.input as string) as { instanceId: string };
    const stored =
      this.options.keepInputs === false
        ? createHash('sha1')
            .update(input.input as string)
            .digest('base64')
        : (input.input as string);
    if (this.options.startFailures?.has(body.instanceId)) {
      await this.wait(half);
      throw Object.assign(new Error('User is not authorized to perform states:StartExecution'), {
        name: 'AccessDeniedException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
      });
    }
    const existing = this.executions.get(name);
    let result: { executionArn: string; startDate: Date };
    if (existing) {
      if (existing.input !== stored) {
        this.counts.alreadyExists++;
        await this.wait(half);
        throw new ExecutionAlreadyExists({ message: `Execution Already Exists: '${name}'`, $metadata: {} });
      }
      result = {
        executionArn: `arn:aws:states:eu-west-1:${OWNER}:execution:wf:${name}`,
        startDate: existing.startDate,
      };
    } else {
      const startDate = new Date();
      this.executions.set(name, { input: stored, startDate, instanceId: body.instanceId });
      const names = this.createdPerInstance.get(body.instanceId) ?? [];
      names.push(name);
      this.createdPerInstance.set(body.instanceId, names);
      this.counts.created++;
      result = { executionArn: `arn:aws:states:eu-west-1:${OWNER}:execution:wf:${name}`, startDate };
    }
    await this.wait(half);
    return result;
  }

  /** Forget the mocks' call records (aws-sdk-client-mock keeps every call's arguments). */
  resetHistory(): void {
    this.ec2Mock.resetHistory();
    this.ssmMock.resetHistory();
    this.sfnMock.resetHistory();
    this.lambdaMock.resetHistory();
  }

  /** Instances with more than one execution created this window. */
  duplicates(): string[] {
    return [...this.createdPerInstance]
      .filter(([, names]) => new Set(names).size > 1 || names.length > 1)
      .map(([id]) => id);
  }

  restore(): void {
    this.ec2Mock.restore();
    this.ssmMock.restore();
    this.sfnMock.restore();
    this.lambdaMock.restore();
  }
}

/** A fleet of `n` opted-in instances with ids in a stable order. */
export function fleet(
  n: number,
  make: (index: number, id: string) => Partial<FakeInstance> = () => ({}),
): FakeInstance[] {
  return Array.from({ length: n }, (_, i) => {
    const id = `i-${i.toString(16).padStart(17, '0')}`;
    const extra = make(i, id);
    return { id, ...extra, tags: { ConsistentBackup: 'enabled', ...(extra.tags ?? {}) } };
  });
}
