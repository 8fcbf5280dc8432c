/**
 * A small simulated AWS for running the synthesized state machine locally: one instance whose
 * filesystems really change state on a virtual clock, an SSM command store with the
 * InvocationDoesNotExist race, AWS Backup jobs whose snapshots start after a delay, and fault
 * injection on every call. The Lambda task states run the real probe and record-outcome logic
 * against these fakes, so what is tested is the definition plus the code it calls.
 */

import { StateMachine } from 'aws-local-stepfunctions';
import {
  activeJobs,
  type Clock,
  freeze,
  parseProbeRequest,
  waitForCommand,
  waitForSnapshots,
} from '../lambda/backup-probe/probe';
import { type ExecutionResult, recordOutcome } from '../lambda/record-outcome/record';
import type { LabelRequest } from '../lambda/shared/labels';
import type { OutcomeSink, WorkflowOutcome } from '../lambda/shared/outcome';
import type { WorkflowInput } from '../lambda/shared/workflow-input';
import type { Asl } from './asl';

export const WINDOW = '2026-11-22T02:00:00Z';
const WINDOW_MS = Date.parse(WINDOW);
export const IMAGE_ARN = 'arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0';

export type Fault =
  | { readonly kind: 'throttle' }
  | { readonly kind: 'error' }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'delay'; readonly ms: number };

/** Decides the fault for the n-th call (0-based) of an operation. */
export type FaultPlan = (op: string, call: number) => Fault | undefined;

export interface Scenario {
  readonly platform?: 'linux' | 'windows';
  readonly instanceState?: 'running' | 'stopped';
  readonly volumeIds?: readonly string[];
  readonly onFreezeFailure?: 'crash-consistent' | 'skip';
  readonly hooksConfigured?: boolean;
  /** What the freeze document does. */
  readonly freezeResult?: 'frozen' | 'error' | 'nothing-to-freeze' | 'garbage' | 'not-delivered';
  /** Time the freeze document takes before the filesystems are frozen (hooks, sync). */
  readonly freezeMs?: number;
  /** The first n thaw commands fail on the instance. */
  readonly thawFailures?: number;
  /** Snapshots start this long after StartBackupJob; undefined: never. */
  readonly snapshotDelayMs?: number | null;
  /** The job fails this long after it starts. */
  readonly jobFailsAfterMs?: number;
  readonly activeJob?: boolean;
  readonly faults?: FaultPlan;
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

/** What a run did, for assertions. */
export interface RunReport {
  readonly status: 'SUCCEEDED' | 'FAILED';
  readonly error?: string;
  readonly output?: ExecutionResult;
  readonly recordOutput?: ExecutionResult;
  readonly outcomes: readonly WorkflowOutcome[];
  // biome-ignore lint/suspicious/noExplicitAny: the SNS message is free-form JSON.
  readonly publishes: readonly any[];
  readonly calls: readonly CallRecord[];
  readonly statesEntered: readonly string[];
  readonly transitions: number;
  readonly freezeSentAt: readonly number[];
  /** The Parameters of every freeze SendCommand, as the probe sent them. */
  readonly freezeParameters: readonly Record<string, unknown>[];
  readonly thawSentAt: readonly number[];
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
}

const JOB_DURATION_MS = 20 * 60_000;
const DELIVERY_MS = 250;
const VISIBLE_MS = 120;

class SimError extends Error {
  $metadata: { httpStatusCode: number };
  constructor(name: string, message: string, status = 400) {
    super(message);
    this.name = name;
    this.$metadata = { httpStatusCode: status };
  }
}

interface SimCommand {
  id: string;
  doc: 'freeze' | 'thaw' | 'vss';
  sentAt: number;
  /** When the instance finishes it, or undefined when never delivered. */
  doneAt?: number;
  status: 'Success' | 'Failed';
  stdout: string;
}

export class Sim implements Clock {
  t = WINDOW_MS;

  now(): number {
    return this.t;
  }
  readonly s: Required<Omit<Scenario, 'faults' | 'jobFailsAfterMs' | 'snapshotDelayMs' | 'mutateInput'>> &
    Scenario;
  readonly calls: CallRecord[] = [];
  readonly outcomes: WorkflowOutcome[] = [];
  // biome-ignore lint/suspicious/noExplicitAny: free-form SNS message.
  readonly publishes: any[] = [];
  readonly commands: SimCommand[] = [];
  readonly imageTags: Record<string, string> = {};
  readonly labelRequests: LabelRequest[] = [];
  frozenAt?: number;
  thawedAt?: number;
  watchdogFired = false;
  jobStartedAt?: number;
  private readonly counts = new Map<string, number>();
  private thawsRun = 0;
  private seq = 0;

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
  }

  sleep(ms: number): Promise<void> {
    this.t += Math.max(0, ms);
    return Promise.resolve();
  }

  /** Count the call, apply its fault (advance time, or throw), and return the fault kind. */
  fault(op: string, names: { throttle: string; error: string; timeout: string }): void {
    const n = this.counts.get(op) ?? 0;
    this.counts.set(op, n + 1);
    this.chargeRetry(op);
    this.t += 40;
    const f = this.s.faults?.(op, n);
    this.calls.push({ op, at: this.t, ...(f ? { fault: f.kind } : {}) });
    if (!f) return;
    if (f.kind === 'delay') {
      this.t += f.ms;
      return;
    }
    if (f.kind === 'throttle') throw new SimError(names.throttle, `${op} throttled`, 400);
    if (f.kind === 'error') throw new SimError(names.error, `${op} failed`, 500);
    this.t += 10_000;
    throw new SimError(names.timeout, `${op} timed out`);
  }

  /** Time-driven state of the instance's filesystems, applied before every observation. */
  private settle(): void {
    if (this.frozenAt !== undefined && this.thawedAt === undefined) {
      const watchdogAt = this.frozenAt + this.s.watchdogSeconds * 1000;
      if (this.t >= watchdogAt) {
        this.thawedAt = watchdogAt;
        this.watchdogFired = true;
      }
    }
  }

  // ---- SSM ----
  sendCommand(doc: SimCommand['doc']): { Command: Record<string, unknown> } {
    const id = `cmd-${(++this.seq).toString().padStart(4, '0')}`;
    const sentAt = this.t;
    // The instance runs commands one after another, in arrival order.
    const prev = this.commands.filter((c) => c.doneAt !== undefined).at(-1);
    const start = Math.max(sentAt + DELIVERY_MS, prev?.doneAt ?? 0);
    const cmd: SimCommand = { id, doc, sentAt, status: 'Success', stdout: '' };
    if (doc === 'freeze') {
      const r = this.s.freezeResult;
      if (r !== 'not-delivered') {
        const frozenAt = start + this.s.freezeMs;
        cmd.doneAt = frozenAt + 30;
        if (r === 'frozen') {
          if (this.frozenAt === undefined) this.frozenAt = frozenAt;
          cmd.stdout = JSON.stringify({
            schemaVersion: 1,
            action: 'freeze',
            status: 'frozen',
            frozenAt: new Date(frozenAt).toISOString(),
            frozenAtMs: frozenAt,
            targets: [
              {
                mountpoint: '/data',
                fstype: 'xfs',
                source: '/dev/nvme1n1',
                volumeIds: ['vol-0aaaaaaaaaaaaaaa2'],
              },
            ],
            hooksConfigured: this.s.hooksConfigured,
            hooks: this.s.hooksConfigured
              ? [{ phase: 'pre-freeze', name: '10-db', exitCode: 0, ms: 20 }]
              : [],
            watchdog: {
              seconds: this.s.watchdogSeconds,
              deadline: new Date(frozenAt + this.s.watchdogSeconds * 1000).toISOString(),
            },
          });
        } else if (r === 'nothing-to-freeze') {
          cmd.stdout = JSON.stringify({
            schemaVersion: 1,
            action: 'freeze',
            status: 'nothing-to-freeze',
            targets: [],
          });
        } else if (r === 'garbage') {
          cmd.stdout = 'Segmentation fault\n';
          cmd.status = 'Failed';
        } else {
          cmd.status = 'Failed';
          cmd.stdout = JSON.stringify({
            schemaVersion: 1,
            action: 'freeze',
            status: 'error',
            error: { code: 'hook-failed', message: 'pre-freeze hook 10-db exited 3' },
          });
        }
      }
    } else if (doc === 'thaw') {
      cmd.doneAt = start + 50;
      const fails = this.thawsRun < this.s.thawFailures;
      this.thawsRun += 1;
      this.pendingThaws.push({ at: start, fails, cmd });
    } else {
      cmd.doneAt = start + 2000;
    }
    this.commands.push(cmd);
    return {
      Command: {
        CommandId: id,
        DocumentName: doc,
        Status: 'Pending',
        RequestedDateTime: new Date(sentAt).toISOString(),
      },
    };
  }

  private readonly pendingThaws: { at: number; fails: boolean; cmd: SimCommand }[] = [];

  private runThaws(): void {
    for (const t of this.pendingThaws.splice(0)) {
      if (t.at > this.t) {
        this.pendingThaws.push(t);
        continue;
      }
      this.settle();
      // A freeze that lands after this thaw is not undone by it: only the watchdog ends it.
      const frozenNow = this.frozenAt !== undefined && this.frozenAt <= t.at && this.thawedAt === undefined;
      if (t.fails) {
        t.cmd.status = 'Failed';
        t.cmd.stdout = JSON.stringify({
          schemaVersion: 1,
          action: 'thaw',
          status: 'error',
          failed: ['/data'],
        });
        continue;
      }
      if (frozenNow) this.thawedAt = t.at;
      t.cmd.stdout = JSON.stringify({
        schemaVersion: 1,
        action: 'thaw',
        status: 'thawed',
        thawedAtMs: t.at,
        freezeMs: frozenNow && this.frozenAt !== undefined ? t.at - this.frozenAt : 0,
        watchdogFired: this.watchdogFired,
        thawed: frozenNow ? ['/data'] : [],
        notFrozen: frozenNow ? [] : ['/data'],
        failed: [],
      });
    }
  }

  getCommandInvocation(id: string): Record<string, unknown> {
    this.runThaws();
    this.settle();
    const cmd = this.commands.find((c) => c.id === id);
    if (!cmd || this.t < cmd.sentAt + VISIBLE_MS) throw new SimError('InvocationDoesNotExist', 'not yet');
    if (cmd.doneAt === undefined) {
      return {
        Status: this.t > cmd.sentAt + 30_000 ? 'TimedOut' : 'Pending',
        StatusDetails: 'Delivery Timed Out',
      };
    }
    if (this.t < cmd.doneAt) return { Status: 'InProgress' };
    return {
      Status: cmd.status,
      StatusDetails: cmd.status,
      ResponseCode: cmd.status === 'Success' ? 0 : 1,
      StandardOutputContent: cmd.stdout,
      StandardErrorContent: cmd.status === 'Success' ? '' : 'freeze: error',
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

  startBackupJob(): Record<string, unknown> {
    if (this.jobStartedAt === undefined) this.jobStartedAt = this.t;
    return {
      BackupJobId: 'job-0001',
      CreationDate: new Date(this.jobStartedAt).toISOString(),
      IsParent: false,
    };
  }

  // ---- SDK clients for the real probe / record-outcome logic ----
  readonly freezeParameters: Record<string, unknown>[] = [];
  readonly ssmClient = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      const name = command.constructor.name;
      if (name === 'SendCommandCommand') {
        this.fault('ssm.SendCommand', {
          throttle: 'ThrottlingException',
          error: 'InternalServerError',
          timeout: 'TimeoutError',
        });
        this.freezeParameters.push(command.input.Parameters as Record<string, unknown>);
        return this.sendCommand('freeze');
      }
      if (name === 'GetCommandInvocationCommand') {
        this.fault('ssm.GetCommandInvocation', {
          throttle: 'ThrottlingException',
          error: 'InternalServerError',
          timeout: 'TimeoutError',
        });
        return this.getCommandInvocation(String(command.input.CommandId));
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
        this.fault('backup.ListBackupJobs', names);
        const active = this.s.activeJob && command.input.ByState === 'RUNNING';
        return { BackupJobs: active ? [{ BackupJobId: 'job-earlier', State: 'RUNNING' }] : [] };
      }
      if (name === 'DescribeBackupJobCommand') {
        this.fault('backup.DescribeBackupJob', names);
        const state = this.jobState();
        // Like AWS for EC2: the recovery point (the AMI) is known once the job has completed.
        return {
          BackupJobId: command.input.BackupJobId,
          State: state,
          ...(state === 'COMPLETED' ? { RecoveryPointArn: IMAGE_ARN } : {}),
        };
      }
      throw new Error(`sim: unexpected Backup ${name}`);
    },
  };

  readonly ec2Client = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      const name = command.constructor.name;
      const names = { throttle: 'RequestLimitExceeded', error: 'InternalError', timeout: 'TimeoutError' };
      if (name === 'DescribeSnapshotsCommand') {
        this.fault('ec2.DescribeSnapshots', names);
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
      }
      if (name === 'CreateTagsCommand') {
        this.fault('ec2.CreateTags', names);
        for (const t of command.input.Tags as { Key: string; Value: string }[])
          this.imageTags[t.Key] = t.Value;
        return {};
      }
      throw new Error(`sim: unexpected EC2 ${name}`);
    },
  };

  readonly sink: OutcomeSink = {
    recordOutcome: async (o) => {
      this.fault('sink.recordOutcome', {
        throttle: 'ThrottlingException',
        error: 'InternalError',
        timeout: 'TimeoutError',
      });
      this.outcomes.push(o);
    },
    recordDiscovery: async () => {
      throw new Error('sim: discovery is not part of the workflow');
    },
  };

  /** Let every command already sent run, and the watchdog fire if nothing thawed. */
  finish(): void {
    const last = Math.max(this.t, ...this.pendingThaws.map((t) => t.at));
    this.t = last;
    this.runThaws();
    if (this.frozenAt !== undefined && this.thawedAt === undefined) {
      this.t = Math.max(this.t, this.frozenAt + this.s.watchdogSeconds * 1000);
      this.settle();
    }
  }

  /** Retry intervals are overridden to 0 ms of real time; charge them to the virtual clock. */
  chargeRetry(op: string): void {
    const previous = this.calls.filter((c) => c.op === op).at(-1);
    if (previous?.fault) this.t += 1000;
  }

  freezeSentAt(): number[] {
    return this.commands.filter((c) => c.doc === 'freeze').map((c) => c.sentAt);
  }

  thawSentAt(): number[] {
    return this.calls.filter((c) => c.op === 'sfn.SendThaw').map((c) => c.at);
  }
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

const EXECUTION_NAME = 'i-0123456789abcdef0-20261122T0200Z';
const EXECUTION_ARN = `arn:aws:states:eu-west-1:111122223333:execution:Workflow:${EXECUTION_NAME}`;

function sfnError(name: string, message = name): Error {
  const e = new Error(message);
  e.name = name;
  return e;
}

/** Building a StateMachine validates the definition: do it once per definition, not per run. */
const machines = new WeakMap<Asl, StateMachine>();

/** Run the definition once against a fresh simulated AWS. */
export async function runScenario(asl: Asl, scenario: Scenario, seed = 1): Promise<RunReport & { sim: Sim }> {
  const sim = new Sim(scenario);
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

  /** A Lambda task: invocation-level faults, then the real logic. */
  const lambdaTask =
    (state: string, run: (input: unknown) => Promise<unknown>, ranBeforeTimeout = false) =>
    async (input: unknown) => {
      const n = sim.calls.filter((c) => c.op === `lambda.${state}`).length;
      sim.chargeRetry(`lambda.${state}`);
      sim.t += 60;
      const f = sim.s.faults?.(`lambda.${state}`, n);
      sim.calls.push({ op: `lambda.${state}`, at: sim.t, ...(f ? { fault: f.kind } : {}) });
      if (f?.kind === 'throttle') throw sfnError('Lambda.TooManyRequestsException');
      if (f?.kind === 'error') throw sfnError('Lambda.ServiceException');
      if (f?.kind === 'delay') sim.t += f.ms;
      if (f?.kind === 'timeout') {
        // The function ran (its side effects happened) but did not answer in time.
        if (ranBeforeTimeout) await run(input).catch(() => undefined);
        sim.t += 5_000;
        throw sfnError('States.Timeout');
      }
      try {
        return JSON.parse(JSON.stringify(await run(input)));
      } catch (err) {
        throw sfnError((err as Error).name || 'Error', (err as Error).message);
      }
    };
  /** A CallAwsService task: Step Functions names the errors `<Service>.<Exception>`. */
  const sdkTask =
    (op: string, service: string, run: (input: Record<string, unknown>) => unknown) =>
    async (input: unknown) => {
      sim.fault(op, {
        throttle: `${service}.ThrottlingException`,
        error:
          service === 'Backup'
            ? 'Backup.ServiceUnavailableException'
            : `${service}.InternalServerErrorException`,
        timeout: 'States.Timeout',
      });
      return JSON.parse(JSON.stringify(run(input as Record<string, unknown>)));
    };

  const probe = (input: unknown) => parseProbeRequest(input);
  const handlers: Record<string, (input: unknown) => Promise<unknown>> = {
    'Check For Active Backup Jobs': lambdaTask('Check For Active Backup Jobs', async (i) => {
      const r = probe(i);
      if (r.action !== 'activeJobs') throw new Error('wrong action');
      return activeJobs(sim.backupClient, r.instanceArn);
    }),
    'Freeze Filesystems': lambdaTask(
      'Freeze Filesystems',
      async (i) => {
        const r = probe(i);
        if (r.action !== 'freeze') throw new Error('wrong action');
        return freeze(sim.ssmClient, sim, r, random);
      },
      true,
    ),
    'Wait For Snapshots To Start': lambdaTask('Wait For Snapshots To Start', async (i) => {
      const r = probe(i);
      if (r.action !== 'waitForSnapshots') throw new Error('wrong action');
      return waitForSnapshots({ ec2: sim.ec2Client, backup: sim.backupClient }, sim, r, random);
    }),
    'Wait For Thaw Command': lambdaTask('Wait For Thaw Command', async (i) => {
      const r = probe(i);
      if (r.action !== 'waitForCommand') throw new Error('wrong action');
      return waitForCommand(sim.ssmClient, sim, r, random);
    }),
    'Wait For VSS Components': lambdaTask('Wait For VSS Components', async (i) => {
      const r = probe(i);
      if (r.action !== 'waitForCommand') throw new Error('wrong action');
      return waitForCommand(sim.ssmClient, sim, r, random);
    }),
    'Send Thaw Command': sdkTask('sfn.SendThaw', 'Ssm', () => sim.sendCommand('thaw')),
    'Install VSS Components': sdkTask('sfn.InstallVss', 'Ssm', () => sim.sendCommand('vss')),
    'Start Backup Job': sdkTask('sfn.StartBackupJob', 'Backup', () => sim.startBackupJob()),
    'Start Backup Job Without Freeze': sdkTask('sfn.StartBackupJob', 'Backup', () => sim.startBackupJob()),
    'Start Windows VSS Backup Job': sdkTask('sfn.StartBackupJob', 'Backup', (i) => {
      if ((i.BackupOptions as { WindowsVSS?: string })?.WindowsVSS !== 'enabled')
        throw new Error('VSS not requested');
      return sim.startBackupJob();
    }),
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
    'Publish Unrecorded Outcome': sdkTask('sfn.Publish', 'SNS', (i) => {
      sim.publishes.push(i);
      return { MessageId: 'm-1' };
    }),
  };

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
  const input = workflowInput(sim) as unknown as Record<string, unknown>;
  const execution = machine.run((scenario.mutateInput ? scenario.mutateInput(input) : input) as never, {
    overrides: {
      taskResourceLocalHandlers: handlers as never,
      waitTimeOverrides: zeroWaits,
      retryIntervalOverrides: retried,
    },
    context: {
      Execution: { Id: EXECUTION_ARN, Name: EXECUTION_NAME, StartTime: new Date(startedAt).toISOString() },
      State: { EnteredTime: new Date(startedAt).toISOString(), Name: 'x' },
    },
  });
  const statesEntered: string[] = [];
  let recordOutput: ExecutionResult | undefined;
  const drain = (async () => {
    for await (const ev of execution.eventLogs) {
      if (ev.type === 'StateEntered') statesEntered.push(ev.state.name);
      if (ev.type === 'StateExited' && ev.state.name === 'Record Outcome') {
        recordOutput = ev.state.output as unknown as ExecutionResult;
      }
    }
  })();
  let status: RunReport['status'] = 'SUCCEEDED';
  let output: ExecutionResult | undefined;
  let error: string | undefined;
  try {
    output = (await execution.result) as unknown as ExecutionResult;
  } catch (err) {
    status = 'FAILED';
    error = String((err as Error).message ?? err);
  }
  await drain;
  const endedAt = sim.t;
  sim.finish();
  const thawedAt = sim.thawedAt;
  return {
    sim,
    status,
    error,
    output,
    recordOutput,
    outcomes: sim.outcomes,
    publishes: sim.publishes,
    calls: sim.calls,
    statesEntered,
    transitions: statesEntered.length,
    freezeSentAt: sim.freezeSentAt(),
    freezeParameters: sim.freezeParameters,
    thawSentAt: sim.thawSentAt(),
    frozenAt: sim.frozenAt,
    thawedAt,
    watchdogFired: sim.watchdogFired,
    jobStartedAt: sim.jobStartedAt,
    jobCompletesAt: sim.jobCompletesAt,
    snapshotStarts: sim.snapshotStarts(),
    imageTags: sim.imageTags,
    labelRequests: sim.labelRequests,
    startedAt,
    endedAt,
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
