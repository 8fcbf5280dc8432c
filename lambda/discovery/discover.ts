import type { Logger } from '@aws-lambda-powertools/logger';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import type { SFNClient } from '@aws-sdk/client-sfn';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { parseInstanceOptions } from '../shared/instance-options';
import type { DiscoverySummary, ExcludedInstance, ExclusionReason, OutcomeSink } from '../shared/outcome';
import { NAME_TAG } from '../shared/tags';
import type { WorkflowInput } from '../shared/workflow-input';
import { classify, type Decision, decideFromEc2, decideFromPlan, needsReadiness } from './classify';
import { type StartResult, startExecution } from './fan-out';
import { type PlanEntry, planFleet, type ResumePoint } from './fleet-plan';
import { listOptedInInstances } from './instances';
import { onDemandExecutionName, onDemandRunId, parseOnDemand, selectOnDemand } from './on-demand';
import { type Clock, realClock, TokenBucket } from './rate';
import { ReadinessCancelledError, ReadinessLookup, type SsmReadiness } from './readiness';
import type { DiscoverySettings } from './settings';
import { executionName, InvalidEventError, runIdFor, windowFromScheduledTime, windowIso } from './window';

/**
 * One discovery invocation: list the opted-in fleet, decide per instance, start one workflow
 * execution per ready instance, and hand the rest over when time runs short.
 *
 * Hand-over is a self re-invocation (asynchronous Invoke) carrying a cursor, chosen over a queue
 * or a Distributed Map because it needs no other resource and no per-instance state: the cursor
 * is the sort key of the last handled instance, the slot count of the one group it may split,
 * and the few ids handled out of order beyond it. The next invocation lists the fleet again and
 * resumes after the cursor. A replayed cursor is harmless, because execution names and inputs are
 * functions of the window and the instance only: a replay finds every execution already there.
 *
 * Accounting: each invocation handles a disjoint slice of the sorted fleet. It reports that
 * slice's excluded instances to the OutcomeSink, and the run's counts so far (carried in the
 * cursor and added to), so the last invocation's recordDiscovery holds the totals of the whole
 * run. A call with `handedOver > 0` is not the last one.
 */

export interface HandOverCursor {
  readonly schemaVersion: 1;
  readonly runId: string;
  /** The number of the invocation that receives this cursor (the first invocation is 1). */
  readonly invocation: number;
  readonly afterKey: string;
  readonly boundarySlots: number;
  /** Instances after `afterKey` that an earlier invocation already handled. */
  readonly doneBeyond: readonly string[];
  /** The run's counts up to this cursor. */
  readonly totals: RunTotals;
  /**
   * Epoch ms of the hand-over. The previous invocation was starting at the full quota rate, so
   * the account's StartExecution bucket was about empty then; the next one counts its burst
   * from this moment instead of assuming a full bucket and meeting a wave of throttles.
   */
  readonly handedOverAt?: number;
}

export interface RunTotals {
  readonly discovered: number;
  readonly started: number;
  readonly alreadyRunning: number;
  readonly excluded: Readonly<Partial<Record<ExclusionReason, number>>>;
}

/**
 * What discovery passes to recordDiscovery: the run's totals so far, plus how many instances were
 * handed to a later invocation (0 on the last one) and which invocation this is.
 */
export interface DiscoveryReport extends DiscoverySummary {
  readonly handedOver: number;
  readonly invocation: number;
}

export interface DiscoveryEvent {
  readonly scheduledTime?: unknown;
  readonly scheduleArn?: unknown;
  readonly handOver?: unknown;
  /** Set for a run an operator started (lambda/discovery/on-demand.ts), absent for the schedule's. */
  readonly onDemand?: unknown;
}

export interface InvocationInfo {
  /** This function's ARN, to re-invoke itself (the Lambda context's invokedFunctionArn). */
  readonly functionArn: string;
  /** Milliseconds left before the Lambda times out. */
  readonly remainingMs: () => number;
}

/** Powertools' logger, or a fake with the same methods in tests. */
export type Log = Pick<Logger, 'info' | 'warn' | 'error'>;

export interface DiscoveryDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly sfn: SFNClient;
  readonly lambda: LambdaClient;
  readonly sink: OutcomeSink;
  readonly logger: Log;
  readonly settings: DiscoverySettings;
  readonly clock?: Clock;
  readonly random?: () => number;
}

export interface DiscoveryResult {
  /** What went to recordDiscovery: the run's totals so far. */
  readonly summary: DiscoveryReport;
  /** This invocation's slice. */
  readonly slice: { readonly discovered: number; readonly started: number; readonly alreadyRunning: number };
  readonly excluded: readonly ExcludedInstance[];
  readonly failed: readonly { readonly instanceId: string; readonly error: string }[];
  readonly invocation: number;
  /** Instances listed this invocation (the whole opted-in fleet). */
  readonly fleetSize: number;
  /** Instances left to the next invocation (0 when the run is complete). */
  readonly handedOver: number;
  readonly handOver?: HandOverCursor;
  readonly startCalls: number;
  readonly throttled: number;
  readonly ssmCalls: number;
  readonly describePages: number;
}

/** A run that keeps handing over without finishing is broken; stop it loudly. */
export const MAX_INVOCATIONS = 50;
/** Failures logged one by one; beyond this they are only counted (and listed in the result). */
export const MAX_FAILURES_LOGGED = 20;
/** Ids handled out of order beyond the cursor are at most the concurrency; this bounds a forged cursor. */
const MAX_DONE_BEYOND = 1024;

export class HandOverError extends Error {
  override readonly name = 'HandOverError';
}
export class StartExecutionFailedError extends Error {
  override readonly name = 'StartExecutionFailedError';
}

function parseCursor(raw: unknown, runId: string): HandOverCursor | undefined {
  if (raw === undefined) return undefined;
  const c = raw as Partial<HandOverCursor>;
  const ok =
    typeof raw === 'object' &&
    raw !== null &&
    c.schemaVersion === 1 &&
    c.runId === runId &&
    Number.isInteger(c.invocation) &&
    (c.invocation as number) >= 2 &&
    typeof c.afterKey === 'string' &&
    Number.isInteger(c.boundarySlots) &&
    (c.boundarySlots as number) >= 0 &&
    Array.isArray(c.doneBeyond) &&
    c.doneBeyond.length <= MAX_DONE_BEYOND &&
    c.doneBeyond.every((id) => typeof id === 'string') &&
    validTotals(c.totals) &&
    (c.handedOverAt === undefined || count(c.handedOverAt));
  if (!ok) {
    throw new InvalidEventError(
      `Invalid event "handOver": got ${JSON.stringify(raw).slice(0, 500)}; allowed: a cursor written by this function for run ${runId} (schemaVersion 1, invocation >= 2, afterKey, boundarySlots, doneBeyond).`,
    );
  }
  if ((c.invocation as number) > MAX_INVOCATIONS) {
    throw new HandOverError(
      `Run ${runId} reached invocation ${c.invocation} (more than ${MAX_INVOCATIONS}); stopping instead of handing over again. The instances after ${JSON.stringify(c.afterKey)} were not started this window.`,
    );
  }
  return c as HandOverCursor;
}

const count = (n: unknown) => Number.isInteger(n) && (n as number) >= 0;
function validTotals(t: unknown): boolean {
  const v = t as Partial<RunTotals> | undefined;
  return (
    typeof v === 'object' &&
    v !== null &&
    count(v.discovered) &&
    count(v.started) &&
    count(v.alreadyRunning) &&
    typeof v.excluded === 'object' &&
    v.excluded !== null &&
    Object.values(v.excluded).every(count)
  );
}

function addExcluded(
  a: Readonly<Partial<Record<ExclusionReason, number>>>,
  b: Readonly<Partial<Record<ExclusionReason, number>>>,
): Partial<Record<ExclusionReason, number>> {
  const sum: Partial<Record<ExclusionReason, number>> = { ...a };
  for (const [reason, n] of Object.entries(b) as [ExclusionReason, number][])
    sum[reason] = (sum[reason] ?? 0) + n;
  return sum;
}

function arnParts(functionArn: string): { partition: string; accountId: string } {
  const parts = functionArn.split(':');
  return { partition: parts[1] || 'aws', accountId: parts[4] || '' };
}

export function buildWorkflowInput(
  entry: PlanEntry,
  decision: Extract<Decision, { action: 'freeze' | 'no-freeze' }>,
  run: { runId: string; window: string; region: string; partition: string },
): WorkflowInput {
  const i = entry.instance;
  const name = i.tags.find((t) => t.Key === NAME_TAG)?.Value;
  return {
    schemaVersion: 1,
    runId: run.runId,
    window: run.window,
    accountId: i.ownerId,
    region: run.region,
    instanceId: i.instanceId,
    instanceArn: `arn:${run.partition}:ec2:${run.region}:${i.ownerId}:instance/${i.instanceId}`,
    ...(name ? { instanceName: name } : {}),
    platform: decision.platform,
    instanceState: decision.action === 'freeze' ? 'running' : 'stopped',
    volumeIds: i.volumeIds,
    volumeDevices: i.volumeDevices,
    startAt: entry.times.startAt.toISOString(),
    notAfter: entry.times.notAfter.toISOString(),
    ...(decision.group !== undefined ? { group: decision.group } : {}),
    options: decision.options,
  };
}

const NOT_HANDLED = 0;
const HANDLED = 1;
const HANDLED_EARLIER = 2;

export async function runDiscovery(
  event: DiscoveryEvent,
  info: InvocationInfo,
  deps: DiscoveryDeps,
): Promise<DiscoveryResult> {
  const { settings, logger } = deps;
  const clock = deps.clock ?? realClock;
  const random = deps.random ?? Math.random;
  const startedAt = clock.now();
  const window = windowFromScheduledTime(event.scheduledTime);
  const onDemand = parseOnDemand(event.onDemand);
  const runId = onDemand ? onDemandRunId(onDemand) : runIdFor(window);
  const cursor = parseCursor(event.handOver, runId);
  const invocation = cursor?.invocation ?? 1;
  const { partition, accountId } = arnParts(info.functionArn);
  const run = { runId, window: windowIso(window), region: settings.region, partition };

  const listing = await listOptedInInstances(deps.ec2, settings.optInTagKey, settings.optInTagValue);
  const resume: ResumePoint | undefined = cursor
    ? { afterKey: cursor.afterKey, boundarySlots: cursor.boundarySlots }
    : undefined;
  const fleet = onDemand ? selectOnDemand(listing.instances, onDemand) : listing.instances;
  const entries = planFleet(
    fleet,
    window,
    settings.stagger,
    resume,
    settings.admission ? { ratePerSecond: settings.admission.ratePerSecond } : undefined,
  );
  const doneEarlier = new Set(cursor?.doneBeyond ?? []);

  const readiness = new ReadinessLookup(
    deps.ssm,
    entries
      .filter(
        (e) =>
          needsReadiness(e.instance) &&
          !doneEarlier.has(e.instance.instanceId) &&
          !decideFromEc2(
            e.instance,
            parseInstanceOptions(e.instance.tags, settings.defaultOnFreezeFailure),
          ) &&
          !decideFromPlan(e, settings.stagger),
      )
      .map((e) => e.instance.instanceId),
    { ratePerSecond: settings.ssmRatePerSecond, concurrency: settings.ssmConcurrency, clock },
  );
  const refilledSinceHandOver =
    cursor?.handedOverAt !== undefined
      ? ((clock.now() - cursor.handedOverAt) / 1000) * settings.startRatePerSecond
      : settings.startBurst;
  const bucket = new TokenBucket(
    settings.startBurst,
    settings.startRatePerSecond,
    clock,
    refilledSinceHandOver,
  );
  const excluded: ExcludedInstance[] = [];
  const shouldStop = () =>
    info.remainingMs() < settings.handOverReserveMs + excluded.length * settings.notifyMsPerExclusion;
  const startOptions = {
    sfn: deps.sfn,
    stateMachineArn: settings.stateMachineArn,
    bucket,
    clock,
    random,
    retryBaseMs: settings.retryBaseMs,
    retryCapMs: settings.retryCapMs,
    shouldStop,
  };

  const status = new Uint8Array(entries.length);
  const excludedByReason: Partial<Record<ExclusionReason, number>> = {};
  const failed: { instanceId: string; error: string }[] = [];
  let started = 0;
  let alreadyRunning = 0;
  let startCalls = 0;
  let throttled = 0;

  // A configuration fault fails every instance alike: log the first few, count the rest.
  const fail = (instanceId: string, message: string, error: string) => {
    failed.push({ instanceId, error });
    if (failed.length <= MAX_FAILURES_LOGGED) logger.error(message, { instanceId, error });
    else if (failed.length === MAX_FAILURES_LOGGED + 1) {
      logger.error('further failures are counted in the summary, not logged one by one', {
        after: MAX_FAILURES_LOGGED,
      });
    }
  };

  const handle = async (entry: PlanEntry): Promise<boolean> => {
    const instance = entry.instance;
    const parsed = parseInstanceOptions(instance.tags, settings.defaultOnFreezeFailure);
    // Readiness is only worth waiting for when EC2 alone does not already decide.
    let decision: Decision | undefined =
      decideFromEc2(instance, parsed) ?? decideFromPlan(entry, settings.stagger);
    if (!decision) {
      let ssm: SsmReadiness | undefined;
      try {
        ssm = await readiness.get(instance.instanceId);
      } catch (err) {
        if (err instanceof ReadinessCancelledError) return false;
        fail(instance.instanceId, 'readiness lookup failed', `DescribeInstanceInformation: ${describe(err)}`);
        return true;
      }
      decision = classify(instance, ssm, settings.defaultOnFreezeFailure, parsed);
    }
    if (decision.action === 'excluded') {
      const name = instance.tags.find((t) => t.Key === NAME_TAG)?.Value;
      excluded.push({
        instanceId: instance.instanceId,
        ...(name ? { instanceName: name } : {}),
        reason: decision.reason,
        detail: decision.detail,
      });
      excludedByReason[decision.reason] = (excludedByReason[decision.reason] ?? 0) + 1;
      return true;
    }
    const input = buildWorkflowInput(entry, decision, run);
    const result: StartResult = await startExecution(
      onDemand
        ? onDemandExecutionName(instance.instanceId, onDemand)
        : executionName(instance.instanceId, window),
      JSON.stringify(input),
      startOptions,
    );
    startCalls += result.attempts;
    throttled += result.throttled;
    switch (result.kind) {
      case 'started':
        started++;
        return true;
      case 'already-running':
        alreadyRunning++;
        return true;
      case 'failed':
        fail(instance.instanceId, 'StartExecution failed', describe(result.error));
        return true;
      case 'gave-up':
        return false;
    }
  };

  let next = 0;
  const worker = async () => {
    while (next < entries.length && !shouldStop()) {
      const i = next++;
      if (doneEarlier.has(entries[i].instance.instanceId)) {
        status[i] = HANDLED_EARLIER;
        continue;
      }
      status[i] = (await handle(entries[i])) ? HANDLED : NOT_HANDLED;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, settings.startConcurrency) }, worker));
  readiness.stop();

  // The cursor is the end of the contiguous handled prefix; what was handled out of order beyond
  // it travels by id, so it is neither repeated nor counted twice.
  let firstOpen = status.indexOf(NOT_HANDLED);
  if (firstOpen === -1) firstOpen = entries.length;
  const remaining = entries.length - firstOpen;
  let handOver: HandOverCursor | undefined;
  let handOverError: Error | undefined;
  const handledHere = status.reduce((n, s) => n + (s === HANDLED ? 1 : 0), 0);
  const before = cursor?.totals ?? { discovered: 0, started: 0, alreadyRunning: 0, excluded: {} };
  const totals: RunTotals = {
    discovered: before.discovered + handledHere,
    started: before.started + started,
    alreadyRunning: before.alreadyRunning + alreadyRunning,
    excluded: addExcluded(before.excluded, excludedByReason),
  };
  if (remaining > 0) {
    const doneBeyond: string[] = [];
    for (let i = firstOpen + 1; i < entries.length; i++) {
      if (status[i] !== NOT_HANDLED) doneBeyond.push(entries[i].instance.instanceId);
    }
    const last = firstOpen > 0 ? entries[firstOpen - 1] : undefined;
    handOver = {
      schemaVersion: 1,
      runId,
      invocation: invocation + 1,
      afterKey: last ? last.key : (cursor?.afterKey ?? ''),
      boundarySlots: last ? last.slotsThrough : (cursor?.boundarySlots ?? 0),
      doneBeyond,
      totals,
      handedOverAt: clock.now(),
    };
    if (handledHere === 0) {
      handOverError = new HandOverError(
        `Run ${runId} invocation ${invocation} handled no instance before running short of time (${remaining} left); not handing over to avoid an endless chain. Raise the function timeout or lower HANDOVER_RESERVE_SECONDS.`,
      );
    } else {
      try {
        await deps.lambda.send(
          new InvokeCommand({
            FunctionName: info.functionArn,
            InvocationType: 'Event',
            Payload: new TextEncoder().encode(
              JSON.stringify({
                scheduledTime: event.scheduledTime,
                scheduleArn: event.scheduleArn,
                ...(onDemand ? { onDemand } : {}),
                handOver,
              }),
            ),
          }),
        );
      } catch (err) {
        handOverError = new HandOverError(
          `Run ${runId} could not hand over ${remaining} instances to invocation ${invocation + 1}: ${describe(err)}`,
        );
      }
    }
  }

  const summary: DiscoveryReport = {
    runId,
    window: run.window,
    accountId,
    region: settings.region,
    discovered: totals.discovered,
    excluded: totals.excluded,
    started: totals.started,
    alreadyRunning: totals.alreadyRunning,
    handedOver: handOverError ? 0 : remaining,
    invocation,
  };
  // Logged before the sink is called, so the line exists even when the notifier fails.
  logger.info('discovery run summary', {
    runId,
    window: run.window,
    invocation,
    fleetSize: listing.instances.length,
    discovered: handledHere,
    excluded: excludedByReason,
    started,
    alreadyRunning,
    failed: failed.length,
    ...(failed.length > 0
      ? { failedInstances: failed.slice(0, MAX_FAILURES_LOGGED).map((f) => f.instanceId) }
      : {}),
    handedOver: handOverError ? 0 : remaining,
    runTotals: totals,
    startCalls,
    throttled,
    ssmCalls: readiness.calls,
    describePages: listing.pages,
    durationMs: clock.now() - startedAt,
  });
  await deps.sink.recordDiscovery(summary, excluded);

  if (handOverError) throw handOverError;
  if (failed.length > 0) {
    throw new StartExecutionFailedError(
      `Run ${runId}: ${failed.length} instance(s) could not be started, e.g. ${failed[0].instanceId}: ${failed[0].error}`,
    );
  }
  return {
    summary,
    slice: { discovered: handledHere, started, alreadyRunning },
    excluded,
    failed,
    invocation,
    fleetSize: listing.instances.length,
    handedOver: remaining,
    ...(handOver ? { handOver } : {}),
    startCalls,
    throttled,
    ssmCalls: readiness.calls,
    describePages: listing.pages,
  };
}

function describe(err: unknown): string {
  const e = err as { name?: string; message?: string };
  return `${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`;
}
