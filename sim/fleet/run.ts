/**
 * One simulated fleet run: discovery's real planning (planFleet with admission slots, the same
 * input builder) and real StartExecution pacing (fan-out.ts, TokenBucket), then one execution per
 * instance of the real synthesized definition (asl-run.ts) whose Lambda tasks run the real
 * freeze-filesystems, start-backup, wait-for-command and record-outcome logic with
 * the handlers' own SDK retry settings, all on one virtual clock against FleetAws's buckets.
 */

import type { SFNClient } from '@aws-sdk/client-sfn';
import { freezeStep, parseFreezeStepRequest } from '../../lambda/freeze-filesystems/step';
import {
  type Api,
  type Bucket,
  computePacing,
  defaultQuotas,
  type Pacing,
  type RegionProfile,
} from '../../lambda/discovery/admission';
import { decideEntry } from '../../lambda/discovery/classify';
import { buildWorkflowInput } from '../../lambda/discovery/discover';
import { startExecution } from '../../lambda/discovery/fan-out';
import { planFleet } from '../../lambda/discovery/fleet-plan';
import type { FleetInstance } from '../../lambda/discovery/instances';
import { mapLimit, TokenBucket } from '../../lambda/discovery/rate';
import {
  DEFAULT_GROUP_SLACK_SECONDS,
  DEFAULT_MARGIN_SECONDS,
  DEFAULT_UNGROUPED_SLACK_SECONDS,
} from '../../lambda/discovery/stagger';
import { executionName, runIdFor, windowIso } from '../../lambda/discovery/window';
import { recordOutcome } from '../../lambda/record-outcome/record';
import {
  parseStartBackupStepRequest,
  startFrozenBackup,
  startUnfrozenBackup,
} from '../../lambda/start-backup/step';
import { parseWaitRequest, waitStep } from '../../lambda/wait-for-command/wait';
import type { OutcomeSink } from '../../lambda/shared/outcome';
import { RESERVED_CONCURRENCY, REGION_CONCURRENCY } from '../../lib/concurrency';
import type { BackupConfig } from '../../lib/config';
import { THAW_MARGIN_SECONDS } from '../../lib/workflow';
import type { Asl } from '../asl';
import { runAsl, StatesError } from './asl-run';
import { FleetAws, LambdaPool, volumesFor, withSdkRetries } from './aws';
import { lcg, VirtualClock } from './virtual-clock';

export { lcg };

export interface FleetRunOptions {
  readonly size: number;
  readonly profile: RegionProfile;
  /** Median seconds from StartBackupJob to the snapshots' start (lognormal). */
  readonly snapshotMedianSeconds: number;
  /** `admission`: slots paced to the run's quotas; `none`: every startAt at the window (before admission). */
  readonly pacing: 'admission' | 'none';
  readonly quotaShare: number;
  /** Quotas of the simulated account (unpublished ones are flags of the benchmark). */
  readonly quotaOverrides: Readonly<Partial<Record<Api, Bucket>>>;
  readonly seed: number;
  readonly volumesPerInstance: number;
  /** What admission plans for (config snapshotStartSeconds). @default 3 */
  readonly plannedSnapshotStartSeconds?: number;
}

export interface FleetRunReport {
  readonly options: FleetRunOptions;
  readonly pacing: Pacing;
  readonly labels: Record<string, number>;
  /** Instances whose backup is not filesystem- or application-consistent. */
  readonly lost: number;
  /**
   * Of those, the ones whose snapshots started within the freeze budget of their freeze (or that
   * never froze): lost to throttling or concurrency, the only faults this simulation injects. The
   * others are lost to snapshots slower than the budget, which no pacing prevents.
   */
  readonly lostToThrottling: number;
  readonly freezeMs: { p50: number; p95: number; p99: number; max: number };
  readonly throttled: Record<string, number>;
  readonly calls: Record<string, number>;
  readonly lambdaRefused: number;
  readonly peakLambda: number;
  readonly peakLambdaByFunction: Record<string, number>;
  readonly transitionsDelayed: number;
  readonly transitionsPerBackup: number;
  readonly peakTransitionsPerSecond: number;
  readonly wallSeconds: number;
  /** The binding quota's minimum for this many backups at its full refill (no share). */
  readonly minimumSeconds: number;
  readonly peakRssMb: number;
  readonly watchdogFired: number;
  readonly executionsFailed: number;
}

const WINDOW = new Date('2026-11-22T02:00:00Z');
const ACCOUNT = '111122223333';
const LAMBDA_OVERHEAD_MS = 25;

/** Lognormal with the given median and shape sigma (Box-Muller). */
function lognormal(random: () => number, median: number, sigma: number): () => number {
  return () => {
    const u = Math.max(1e-12, random());
    const v = random();
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    return median * Math.exp(sigma * z);
  };
}
/** Spread of the snapshot start around its median: about 2/3 of the starts within ×/÷ 1.5. */
export const SNAPSHOT_SIGMA = 0.4;

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export async function runFleet(asl: Asl, config: BackupConfig, o: FleetRunOptions): Promise<FleetRunReport> {
  const clock = new VirtualClock(WINDOW.getTime());
  const random = lcg(o.seed);
  const defaults = defaultQuotas(o.profile);
  const buckets = {} as Record<Api, Bucket>;
  for (const [api, q] of Object.entries(defaults) as [Api, { bucket: Bucket }][]) {
    buckets[api] = o.quotaOverrides[api] ?? q.bucket;
  }
  const aws = new FleetAws({
    clock,
    random,
    buckets,
    watchdogSeconds: config.watchdogSeconds,
    snapshotDelay: lognormal(random, o.snapshotMedianSeconds, SNAPSHOT_SIGMA),
  });
  const reserved: Record<string, number> = {};
  for (const [fn, c] of Object.entries(RESERVED_CONCURRENCY)) reserved[fn] = c.reserved;
  const lambda = new LambdaPool(REGION_CONCURRENCY, reserved);
  const pacing = computePacing({
    region: o.profile === 'large' ? 'us-east-1' : 'eu-central-1',
    regionProfile: o.profile,
    quotaShare: o.quotaShare,
    apiRates: o.quotaOverrides,
    reservedConcurrency: reserved,
    snapshotStartSeconds: o.plannedSnapshotStartSeconds ?? 3,
  });

  // ---- the fleet, as discovery lists it ----
  const instances: FleetInstance[] = [];
  for (let n = 0; n < o.size; n++) {
    const id = `i-${(n + 1).toString(16).padStart(17, '0')}`;
    const volumeIds = volumesFor(id, o.volumesPerInstance);
    aws.addInstance(id, volumeIds);
    instances.push({
      instanceId: id,
      ownerId: ACCOUNT,
      state: 'running',
      platformDetails: 'Linux/UNIX',
      rootDeviceType: 'ebs',
      volumeIds,
      volumeDevices: volumeIds.map((v, k) => `${v}=/dev/nvme${k}n1`),
      tags: [{ Key: config.optInTagKey, Value: config.optInTagValue }],
    } as unknown as FleetInstance);
  }
  const stagger = {
    maxFrozenPerGroup: config.maxFrozenPerGroup,
    watchdogSeconds: config.watchdogSeconds,
    hookTimeoutSeconds: config.hookTimeoutSeconds,
    groupSlackSeconds: DEFAULT_GROUP_SLACK_SECONDS,
    ungroupedSlackSeconds: DEFAULT_UNGROUPED_SLACK_SECONDS,
    marginSeconds: DEFAULT_MARGIN_SECONDS,
  };
  const entries = planFleet(
    instances,
    WINDOW,
    stagger,
    undefined,
    o.pacing === 'admission' ? { ratePerSecond: pacing.ratePerSecond } : undefined,
  );
  const run = { runId: runIdFor(WINDOW), window: windowIso(WINDOW), region: 'us-east-1', partition: 'aws' };

  // ---- the handlers, with their clients' retry settings (lambda/*/handler.ts) ----
  const ssm = withSdkRetries(aws.ssm, 2, clock, random);
  const ec2 = withSdkRetries(aws.ec2, 2, clock, random);
  const backup = withSdkRetries(aws.backup, 2, clock, random);
  const sink: OutcomeSink = { recordOutcome: async () => undefined, recordDiscovery: async () => undefined };
  const settings = {
    freezeBudgetSeconds: config.freezeBudgetSeconds,
    watchdogSeconds: config.watchdogSeconds,
    defaultOnFreezeFailure: config.onFreezeFailure,
  };
  const asError = (err: unknown) => {
    const e = err as Error;
    return e instanceof StatesError ? e : new StatesError(e.name || 'Error', e.message);
  };
  const inLambda = (fn: string, work: (input: unknown) => Promise<unknown>) => async (input: unknown) =>
    lambda.invoke(fn, async () => {
      await clock.sleep(LAMBDA_OVERHEAD_MS);
      try {
        return JSON.parse(JSON.stringify(await work(input)));
      } catch (err) {
        throw asError(err);
      }
    });
  const waitForCommand = inLambda('wait-for-command', async (i) =>
    waitStep(ssm as never, clock, parseWaitRequest(i), random),
  );
  const startUnfrozen = inLambda('start-backup', async (i) => {
    const r = parseStartBackupStepRequest(i);
    if (r.mode === 'frozen') throw new Error('wrong mode');
    return startUnfrozenBackup(backup as never, clock, r, random);
  });
  const tasks = {
    'Freeze Filesystems': inLambda('freeze-filesystems', async (i) =>
      freezeStep({ ssm: ssm as never, backup: backup as never }, clock, parseFreezeStepRequest(i), random),
    ),
    'Start Backup Job': inLambda('start-backup', async (i) => {
      const r = parseStartBackupStepRequest(i);
      if (r.mode !== 'frozen') throw new Error('wrong mode');
      return startFrozenBackup({ ec2: ec2 as never, backup: backup as never }, clock, r, random);
    }),
    'Wait For Thaw Command': waitForCommand,
    'Wait For Retried Thaw': waitForCommand,
    'Start Backup Job Without Freeze': startUnfrozen,
    'Send Thaw Command': async (i: { InstanceIds: string[] }) => aws.sendThaw(i.InstanceIds[0]),
    'Retry Thaw Command': async (i: { InstanceIds: string[] }) => aws.sendThaw(i.InstanceIds[0]),
    'Record Outcome': inLambda('record-outcome', async (i) =>
      recordOutcome(
        i as Parameters<typeof recordOutcome>[0],
        {
          sink,
          // The label-writer drains its queue after the run, at 4 CreateTags/s (lib/labels.ts):
          // outside the run's freeze path, so the request is all this model needs.
          requestLabel: async () => undefined,
          settings,
        },
        new Date(clock.now()),
      ),
    ),
    'Publish Unrecorded Outcome': async () => ({ MessageId: 'm' }),
  } as unknown as Record<string, (input: unknown) => Promise<unknown>>;

  // ---- discovery's StartExecution pacing, and the executions ----
  const labels: Record<string, number> = {};
  let executionsFailed = 0;
  let peakRss = process.memoryUsage().rss;
  let statesRun = 0;
  let firstStart = Number.POSITIVE_INFINITY;
  let lastEnd = 0;
  const executions: Promise<void>[] = [];
  const labelOf = new Map<string, string>();
  const stateMachineArn = `arn:aws:states:us-east-1:${ACCOUNT}:stateMachine:Workflow`;
  const sfn = {
    send: async (command: { input: { name: string; input: string } }) => {
      if (!aws.apis.startExecution.take()) {
        throw Object.assign(new Error('Rate exceeded'), {
          name: 'ThrottlingException',
          $retryable: { throttling: true },
        });
      }
      const name = command.input.name;
      const startTime = new Date(clock.now()).toISOString();
      firstStart = Math.min(firstStart, clock.now());
      executions.push(
        runAsl(
          asl,
          JSON.parse(command.input.input),
          { name, arn: `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`, startTime },
          {
            clock,
            random,
            tasks,
            enter: async () => {
              await aws.transitions.take();
              if (++statesRun % 20_000 === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss);
            },
          },
        ).then((r) => {
          lastEnd = Math.max(lastEnd, clock.now());
          if (r.status === 'FAILED') executionsFailed++;
          const label =
            (r.output?.consistency as string | undefined) ??
            (r.status === 'FAILED' ? `failed (${r.error})` : 'unlabelled');
          labels[label] = (labels[label] ?? 0) + 1;
          labelOf.set(JSON.parse(command.input.input).instanceId, label);
        }),
      );
      return { executionArn: name, startDate: new Date(clock.now()) };
    },
  };
  const startBucket =
    o.pacing === 'admission'
      ? new TokenBucket(pacing.start.burst, pacing.start.ratePerSecond, clock)
      : new TokenBucket(buckets.startExecution.burst, buckets.startExecution.ratePerSecond, clock);

  const work = (async () => {
    await mapLimit(entries, 64, async (entry) => {
      const decision = decideEntry(
        entry,
        { pingStatus: 'Online', platformType: 'Linux' },
        config.onFreezeFailure,
        stagger,
      );
      if (decision.action === 'excluded') {
        labels[`excluded (${decision.reason})`] = (labels[`excluded (${decision.reason})`] ?? 0) + 1;
        return;
      }
      const input = buildWorkflowInput(entry, decision, run);
      await clock.sleep(30);
      const r = await startExecution(
        executionName(entry.instance.instanceId, WINDOW),
        JSON.stringify(input),
        {
          sfn: sfn as unknown as SFNClient,
          stateMachineArn,
          bucket: startBucket,
          clock,
          random,
          retryBaseMs: 100,
          retryCapMs: 5000,
          shouldStop: () => false,
        },
      );
      if (r.kind !== 'started') throw new Error(`start ${r.kind}`);
    });
    // Executions push themselves while discovery runs; wait for all.
    for (let k = 0; k < executions.length; k++) await executions[k];
  })();
  await clock.run(work);
  aws.settleAll();
  peakRss = Math.max(peakRss, process.memoryUsage().rss);

  const freezes: number[] = [];
  let watchdogFired = 0;
  for (const i of aws.instances.values()) {
    if (i.frozenAt !== undefined && i.thawedAt !== undefined) freezes.push(i.thawedAt - i.frozenAt);
    if (i.watchdogFired) watchdogFired++;
  }
  freezes.sort((a, b) => a - b);
  const throttled: Record<string, number> = {};
  const calls: Record<string, number> = {};
  for (const [api, b] of Object.entries(aws.apis)) {
    throttled[api] = b.throttled;
    calls[api] = b.calls;
  }
  const peakLambdaByFunction: Record<string, number> = {};
  for (const [fn, f] of lambda.byFunction) peakLambdaByFunction[fn] = f.peak;
  const good = (labels.application ?? 0) + (labels.filesystem ?? 0);
  const budgetMs = (config.freezeBudgetSeconds - THAW_MARGIN_SECONDS) * 1000;
  let lostToThrottling = 0;
  for (const i of aws.instances.values()) {
    const label = labelOf.get(i.id) ?? 'not started';
    if (label === 'application' || label === 'filesystem') continue;
    const lastStart = i.snapshotStarts ? Math.max(...i.snapshotStarts) : undefined;
    const tooSlow = i.frozenAt !== undefined && lastStart !== undefined && lastStart > i.frozenAt + budgetMs;
    if (!tooSlow) lostToThrottling++;
  }
  // The binding quota at its full refill: the fastest this per-backup use could ever go.
  const binding = pacing.binding;
  // (For a Lambda limit: reserved concurrency / seconds held per backup.)
  const fullRate = binding.bucket.ratePerSecond / binding.perBackup;
  const minimumSeconds = o.size / fullRate;
  return {
    options: o,
    pacing,
    labels,
    lost: o.size - good,
    lostToThrottling,
    freezeMs: {
      p50: percentile(freezes, 50),
      p95: percentile(freezes, 95),
      p99: percentile(freezes, 99),
      max: freezes.at(-1) ?? Number.NaN,
    },
    throttled,
    calls,
    lambdaRefused: lambda.refused(),
    peakLambda: lambda.peak,
    peakLambdaByFunction,
    transitionsDelayed: aws.transitions.delayed,
    transitionsPerBackup: aws.transitions.total / o.size,
    peakTransitionsPerSecond: aws.transitions.peakPerSecond(),
    wallSeconds: (lastEnd - Math.min(firstStart, lastEnd)) / 1000,
    minimumSeconds,
    peakRssMb: peakRss / 2 ** 20,
    watchdogFired,
    executionsFailed,
  };
}
