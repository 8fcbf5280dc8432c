/**
 * Fault injection over the workflow, judged by what the instance experienced. Each seed draws a
 * schedule: faults on every call (throttling, errors, timeouts, delays, errors returned after
 * the call took effect, calls that hang, odd payloads in every response), one or two services
 * down at once, SSM messages delayed past each other or never delivered, an agent that dies after
 * freezing, freeze and thaw failures on the instance, snapshots starting around the budget, jobs
 * failing, odd execution input. The invariants are checked against the instance's timeline
 * (sim/instance-model.ts) and the SNS messages actually accepted, never against what the
 * orchestrator believes it sent:
 * - I1: every freeze that happened ends in a delivered thaw, or in the watchdog with a Critical
 *   published for this instance;
 * - I2: no freeze lasts longer than the budget plus the thaw's delivery, unless a Critical says so;
 * - I3: every failure is published, once: nothing silent, no duplicates, every message valid;
 * - I4: the label recorded matches the instance: application or filesystem only if every
 *   volume's snapshot started while this execution's freeze was held.
 * When SNS refused every publish of the run, nothing can be published: the run must then end
 * FAILED (visible to the execution-failure alarm), and is counted as unreportable.
 */

import { validateNotification } from '../lambda/shared/notification';
import type { Asl } from './asl';
import type { InstanceDocument } from './instance-model';
import {
  EXECUTION_NAME,
  type Fault,
  type FaultPlan,
  type Outage,
  type PublishedMessage,
  type RunOptions,
  type RunReport,
  type Scenario,
  type Service,
  type Sim,
} from './workflow-sim';

export const SCHEDULES = Number(process.env.FAULT_SCHEDULES ?? 10_000);

/** Small seeded PRNG (mulberry32), so a failing schedule can be replayed by its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const OPS = [
  'lambda.Start Backup Job Without Freeze',
  'lambda.Freeze Filesystems',
  'lambda.Start Backup Job',
  'lambda.Wait For Thaw Command',
  'lambda.Wait For VSS Components',
  'lambda.Record Outcome',
  'sfn.SendThaw',
  'backup.StartBackupJob',
  'sfn.InstallVss',
  'sfn.Publish',
  'ssm.SendCommand',
  'ssm.GetCommandInvocation',
  'backup.ListBackupJobs',
  'backup.DescribeBackupJob',
  'ec2.DescribeSnapshots',
  'ec2.CreateTags',
  'sns.Publish',
  'dynamodb.TransactWriteItems',
  'dynamodb.UpdateItem',
  'dynamodb.GetItem',
  'lambda.Start Windows VSS Backup Job',
  'lambda.Wait For Retried Thaw',
];

/** Calls whose effect can happen before the error their caller sees. */
const EFFECTFUL = new Set([
  'ssm.SendCommand',
  'sfn.SendThaw',
  'backup.StartBackupJob',
  'sfn.Publish',
  'sns.Publish',
]);
const SERVICES: readonly Service[] = ['ssm', 'backup', 'ec2', 'sns', 'lambda', 'dynamodb'];
/** Execution input fields an odd payload may drop or spoil. */
const INPUT_FIELDS = [
  'instanceId',
  'instanceArn',
  'startAt',
  'notAfter',
  'volumeIds',
  'volumeDevices',
  'platform',
  'instanceState',
  'window',
  'options',
  'accountId',
  'region',
];

export interface Schedule {
  readonly scenario: Scenario;
  readonly config: Record<string, unknown>;
  /** One line saying what the seed drew, for reports. */
  readonly summary: string;
}

/** One generated schedule, drawn from the seed. */
export function generate(seed: number): Schedule {
  const r = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const notes: string[] = [];
  const budget = pick([10, 60]);
  // Per operation: how likely a call fails, and whether it fails on every call.
  const rates = new Map(OPS.map((op) => [op, r() < 0.3 ? r() * 0.5 : 0]));
  const persistent = new Set(OPS.filter(() => r() < 0.03));
  const faultRandom = prng(seed ^ 0x9e3779b9);
  const faults: FaultPlan = (op, call) => {
    if (persistent.has(op)) return { kind: pick(['throttle', 'error', 'timeout'] as const) };
    if (faultRandom() >= (rates.get(op) ?? 0) || call > 40) return undefined;
    const roll = faultRandom();
    const f: Fault =
      roll < 0.25
        ? { kind: 'throttle' }
        : roll < 0.45
          ? { kind: 'error' }
          : roll < 0.55
            ? { kind: 'timeout' }
            : roll < 0.7
              ? { kind: 'delay', ms: Math.floor(faultRandom() * budget * 600) }
              : roll < 0.85 && EFFECTFUL.has(op)
                ? { kind: faultRandom() < 0.5 ? 'error-after-effect' : 'timeout-after-effect' }
                : roll < 0.9
                  ? { kind: 'hang' }
                  : { kind: 'odd-payload', variant: Math.floor(faultRandom() * 1000) };
    return f;
  };
  if (persistent.size) notes.push(`always failing: ${[...persistent].join(', ')}`);

  // One or two services down at once, for a while or for the rest of the run.
  const outages: Outage[] = [];
  const outageRoll = r();
  const downCount = outageRoll < 0.06 ? 2 : outageRoll < 0.16 ? 1 : 0;
  const downSet = new Set<Service>();
  while (downSet.size < downCount) downSet.add(pick(SERVICES));
  for (const service of downSet) {
    const fromMs = Math.floor(r() * (budget + 20) * 1000);
    const untilMs = r() < 0.3 ? null : fromMs + Math.floor(r() * 60_000);
    outages.push({ service, fromMs, untilMs });
    notes.push(`${service} down ${fromMs}-${untilMs ?? 'end'} ms`);
  }

  // SSM delivery: most messages in 250 ms; some late (past each other), some never.
  const deliveryRoll = r();
  const lateDocs = new Set<InstanceDocument>();
  if (deliveryRoll < 0.25) lateDocs.add(pick(['freeze', 'thaw'] as const));
  const deliveryRandom = prng(seed ^ 0x85ebca6b);
  const delivery = (doc: InstanceDocument, n: number) => {
    if (!lateDocs.has(doc)) return { delayMs: 250 };
    const d = deliveryRandom();
    if (d < 0.15) return { delayMs: null };
    return { delayMs: n === 0 || d < 0.5 ? Math.floor(1000 + deliveryRandom() * 29_000) : 250 };
  };
  if (lateDocs.size) notes.push(`late ${[...lateDocs].join(', ')} delivery`);
  const agentDies = r() < 0.06 ? { downMs: pick([5_000, 20_000, 120_000, null]) } : undefined;
  if (agentDies) notes.push(`agent dies after freezing, back after ${agentDies.downMs ?? 'never'} ms`);

  // Odd execution input.
  let mutateInput: Scenario['mutateInput'];
  if (r() < 0.05) {
    const field = pick(INPUT_FIELDS);
    const how = pick(['drop', 'garbage', 'null'] as const);
    notes.push(`input ${field}: ${how}`);
    mutateInput = (input) => {
      const out = { ...input };
      if (how === 'drop') delete out[field];
      else out[field] = how === 'null' ? null : 'garbage';
      return out;
    };
  }

  const windows = r() < 0.12;
  const freezeResult = pick([
    'frozen',
    'frozen',
    'frozen',
    'frozen',
    'frozen-garbled',
    'error',
    'garbage',
    'nothing-to-freeze',
    'not-delivered',
  ] as const);
  const scenario: Scenario = {
    platform: windows ? 'windows' : 'linux',
    instanceState: r() < 0.06 ? 'stopped' : 'running',
    onFreezeFailure: r() < 0.5 ? 'crash-consistent' : 'skip',
    hooksConfigured: r() < 0.7,
    freezeResult,
    freezeMs: Math.floor(r() * 3000),
    thawFailures: r() < 0.12 ? pick([1, 2, 99]) : 0,
    // Around the budget: well inside, just inside, just over, never.
    snapshotDelayMs: pick([500, 3000, (budget - 4) * 1000, (budget - 1) * 1000, (budget + 2) * 1000, null]),
    ...(r() < 0.08 ? { jobFailsAfterMs: Math.floor(r() * budget * 1000) } : {}),
    activeJob: r() < 0.04,
    freezeBudgetSeconds: budget,
    watchdogSeconds: budget + 30,
    faults,
    outages,
    delivery,
    ...(agentDies ? { agentDiesAfterFreeze: agentDies } : {}),
    ...(mutateInput ? { mutateInput } : {}),
  };
  notes.unshift(`${scenario.platform} ${scenario.instanceState}, freeze ${freezeResult}, budget ${budget} s`);
  return {
    scenario,
    config: {
      freezeBudgetSeconds: budget,
      watchdogSeconds: budget + 30,
      installVssComponents: windows && r() < 0.5,
    },
    summary: notes.join('; '),
  };
}

export type Invariant = 'I1' | 'I2' | 'I3' | 'I4';
export const INVARIANTS: Readonly<Record<Invariant, string>> = {
  I1: 'a freeze ends in a delivered thaw, or in the watchdog with a Critical published',
  I2: 'no freeze outlives the budget plus the thaw delivery unless a Critical says so',
  I3: 'every failure published once: nothing silent, no duplicates, every message valid',
  I4: 'the label matches what the instance experienced',
};

export interface Broken {
  readonly invariant: Invariant;
  readonly detail: string;
}

/**
 * A message about this run: it names the instance, or (when the input named no valid instance, so
 * the execution-events function reports on the fleet node) this execution. Until the simulator
 * modelled execution-events, only the first kind existed; counting only it would call a rejected
 * input's one message (no instanceId: the input had none) silence.
 */
// biome-ignore lint/suspicious/noExplicitAny: SNS messages are free-form JSON.
const aboutThisRun = (m: any): boolean =>
  Boolean(m?.instanceId) ||
  String(m?.event?.additional_info?.execution_arn ?? '').endsWith(`:${EXECUTION_NAME}`);

// biome-ignore lint/suspicious/noExplicitAny: SNS messages are free-form JSON.
const problems = (rep: RunReport): any[] =>
  rep.sns
    .map((m) => m.message)
    .filter((m) => aboutThisRun(m) && m.severity !== 'Clear' && m.severity !== 'OK');

/**
 * Messages SNS took while their publisher was told the publish failed (a 5xx or a timeout after
 * the effect). The publisher must retry (the publish may truly have failed, and silence is worse),
 * and SNS Publish to a standard topic has no idempotency key: the retry's message is a duplicate
 * nobody can avoid. The duplicate checks leave these out; every other message still counts, so a
 * second duplicate, or one with no lost answer behind it, still breaks I3.
 */
function lostAnswers(rep: RunReport): Set<PublishedMessage> {
  const lost = new Set<PublishedMessage>();
  for (const m of rep.sns) {
    const call = rep.calls.find(
      (c) =>
        (c.op === 'sns.Publish' || c.op === 'sfn.Publish') &&
        c.at === m.at &&
        (c.fault === 'error-after-effect' || c.fault === 'timeout-after-effect'),
    );
    if (call) lost.add(m);
  }
  return lost;
}

/** SNS refused every publish attempted in the run (and something was attempted). */
export function snsRefusedAll(rep: RunReport): boolean {
  const attempts = rep.calls.filter((c) => c.op === 'sns.Publish' || c.op === 'sfn.Publish');
  return rep.sns.length === 0 && attempts.length > 0 && attempts.every((c) => c.fault && c.fault !== 'delay');
}

/** The instance-side invariants; returns what broke (empty when all hold). */
export function violations(rep: RunReport & { sim: Sim }, scenario: Scenario): Broken[] {
  const broken: Broken[] = [];
  const sim = rep.sim;
  const instanceId = 'i-0123456789abcdef0';
  const msgs = problems(rep);
  const criticals = msgs.filter((m) => m.severity === 'Critical' && m.instanceId === instanceId);
  const unreportable = snsRefusedAll(rep);
  const reported = (what: string) =>
    criticals.length > 0 || (unreportable && rep.status === 'FAILED') ? undefined : what;
  const budgetMs = (scenario.freezeBudgetSeconds ?? 60) * 1000;

  for (const ep of rep.episodes) {
    const held = `freeze ${ep.commandId} of ${ep.executionId} from +${ep.frozenFrom - rep.startedAt} ms`;
    if (ep.thawedBy !== 'thaw-command') {
      const why = reported(`${held} ended by the ${ep.thawedBy} with no Critical published`);
      if (why) broken.push({ invariant: 'I1', detail: why });
    }
    const until = ep.frozenUntil ?? Infinity;
    let allowed = budgetMs;
    if (ep.thawedBy === 'thaw-command' && ep.thawCommandId) {
      const cmd = sim.instance.commandOf(ep.thawCommandId);
      if (cmd?.startedAt !== undefined) allowed += cmd.startedAt - cmd.sentAt;
    }
    if (until - ep.frozenFrom > allowed) {
      const why = reported(
        `${held} lasted ${until - ep.frozenFrom} ms (${ep.thawedBy}), over the budget plus thaw delivery (${allowed} ms), with no Critical`,
      );
      if (why) broken.push({ invariant: 'I2', detail: why });
    }
  }

  // I3: nothing silent. Failures by what happened, not by what the workflow concluded.
  const label = rep.outcomes[0]?.verdict?.consistency ?? rep.recordOutput?.consistency;
  const failures: string[] = [];
  if (sim.jobs.size === 0) failures.push('no backup job was created');
  if (sim.jobs.size > 0 && scenario.jobFailsAfterMs !== undefined) failures.push('the backup job failed');
  // Recorded means stored: the notifier's counted mark on this execution, even when the call that
  // stored it never answered (a hang or timeout later in record-outcome), as SNS's acceptance is
  // what "published" means. rep.outcomes lists only calls that returned.
  const stored = [...sim.table.items.values()].some(
    (item) =>
      item.pk?.S?.startsWith('EXEC#') &&
      item.pk.S.endsWith(`:${EXECUTION_NAME}`) &&
      item.shard?.N !== undefined,
  );
  if (rep.outcomes.length === 0 && !stored) failures.push('no outcome was recorded');
  if (
    (label === 'crash' || label === 'none') &&
    scenario.platform !== 'windows' &&
    scenario.instanceState !== 'stopped'
  ) {
    failures.push(`labelled ${label}`);
  }
  if (rep.episodes.some((e) => e.thawedBy !== 'thaw-command')) failures.push('the watchdog thawed');
  if (failures.length > 0 && msgs.length === 0 && !(unreportable && rep.status === 'FAILED')) {
    broken.push({ invariant: 'I3', detail: `silent: ${failures.join(', ')}; nothing published` });
  }
  const lost = lostAnswers(rep);
  const counted = rep.sns.filter((m) => !lost.has(m)).map((m) => m.message);
  const keys = new Map<string, number>();
  for (const m of msgs.filter((x) => counted.includes(x))) {
    const key = `${m.eventType}|${m.event?.message_key}`;
    keys.set(key, (keys.get(key) ?? 0) + 1);
  }
  for (const [key, n] of keys) {
    if (n > 1) broken.push({ invariant: 'I3', detail: `duplicate: ${key} published ${n} times` });
  }
  const vias = new Set(rep.sns.filter((m) => !lost.has(m) && aboutThisRun(m.message)).map((m) => m.via));
  if (vias.size > 1) {
    broken.push({
      invariant: 'I3',
      detail: `duplicate: ${[...vias].join(' and ')} published for ${EXECUTION_NAME} (${msgs.map((m) => `${m.severity} ${m.eventType}`).join(', ')})`,
    });
  }
  for (const m of rep.sns) {
    const bad = validateNotification(m.message);
    if (bad.length) broken.push({ invariant: 'I3', detail: `invalid ${m.via} message: ${bad.join('; ')}` });
  }

  // I4: a consistent label only if every volume's snapshot started while this execution's freeze held.
  if (
    (label === 'application' || label === 'filesystem') &&
    scenario.instanceState !== 'stopped' &&
    scenario.platform !== 'windows'
  ) {
    const starts = rep.snapshotStarts;
    const volumes = scenario.volumeIds?.length ?? 2;
    const ours = rep.episodes.filter((e) => e.executionId === EXECUTION_NAME);
    const inside = starts.every((t) =>
      ours.some((e) => t >= e.frozenFrom && t <= (e.frozenUntil ?? Infinity)),
    );
    if (!inside || starts.length < volumes) {
      broken.push({
        invariant: 'I4',
        detail: `labelled ${label} but ${starts.length < volumes ? `${volumes - starts.length} snapshot(s) never started` : 'a snapshot started outside the freeze'} (freezes: ${ours.map((e) => `${e.frozenFrom - rep.startedAt}-${(e.frozenUntil ?? Infinity) - rep.startedAt}`).join(', ') || 'none'}; snapshots: ${starts.map((t) => t - rep.startedAt).join(', ')})`,
      });
    }
  }
  return broken;
}

/** What a range of schedules did: broken schedules by invariant, and how often each path ran. */
export interface ShardResult {
  readonly runs: number;
  readonly broken: Readonly<Record<Invariant, readonly { seed: number; detail: string }[]>>;
  readonly tally: Readonly<Record<string, number>>;
  readonly ms: number;
  /** CPU time of this process meanwhile (user + system): wall time on a loaded machine says little. */
  readonly cpuMs: number;
}

/** Run seeds from..to (inclusive) on the fast engine; `aslFor` synthesizes (and caches) per config. */
export async function runSchedules(
  from: number,
  to: number,
  aslFor: (config: Record<string, unknown>) => Asl,
  run: (asl: Asl, scenario: Scenario, seed: number, options: RunOptions) => Promise<RunReport & { sim: Sim }>,
): Promise<ShardResult> {
  const started = Date.now();
  const cpu = process.cpuUsage();
  const broken: Record<Invariant, { seed: number; detail: string }[]> = { I1: [], I2: [], I3: [], I4: [] };
  const tally: Record<string, number> = {};
  const count = (k: string, yes: boolean) => {
    if (yes) tally[k] = (tally[k] ?? 0) + 1;
  };
  for (let seed = from; seed <= to; seed += 1) {
    const { scenario, config } = generate(seed);
    const rep = await run(aslFor(config), scenario, seed, { engine: 'interpreter' });
    count('frozen', rep.episodes.length > 0);
    count(
      'thawedByCommand',
      rep.episodes.some((e) => e.thawedBy === 'thaw-command'),
    );
    count(
      'thawedByWatchdog',
      rep.episodes.some((e) => e.thawedBy === 'watchdog'),
    );
    count(
      'freezeRefusedOnInstance',
      rep.sim.instance.refusals.some((x) => x.code !== 'HOOK_FAILED'),
    );
    count(
      'lateDelivery',
      rep.sim.instance.commands.some((c) => c.arriveAt !== undefined && c.arriveAt - c.sentAt > 1000),
    );
    count(
      'neverDelivered',
      rep.sim.instance.commands.some((c) => c.arriveAt === undefined),
    );
    count('agentDied', scenario.agentDiesAfterFreeze !== undefined && rep.episodes.length > 0);
    count(
      'effectBeforeError',
      rep.calls.some((c) => c.fault === 'error-after-effect' || c.fault === 'timeout-after-effect'),
    );
    count(
      'hang',
      rep.calls.some((c) => c.fault === 'hang'),
    );
    count(
      'oddPayload',
      rep.calls.some((c) => c.fault === 'odd-payload') || scenario.mutateInput !== undefined,
    );
    count('twoServicesDown', (scenario.outages ?? []).length >= 2);
    count(
      'lastResort',
      rep.sns.some((m) => m.via === 'last-resort'),
    );
    count('consistentLabel', ['application', 'filesystem'].includes(rep.recordOutput?.consistency ?? ''));
    count('crashLabel', rep.recordOutput?.consistency === 'crash');
    count('unreportable', snsRefusedAll(rep));
    count('executionFailed', rep.status === 'FAILED');
    const seen = new Set<Invariant>();
    for (const b of violations(rep, scenario)) {
      if (seen.has(b.invariant)) continue;
      seen.add(b.invariant);
      broken[b.invariant].push({ seed, detail: b.detail });
    }
  }
  const used = process.cpuUsage(cpu);
  return {
    runs: to - from + 1,
    broken,
    tally,
    ms: Date.now() - started,
    cpuMs: Math.round((used.user + used.system) / 1000),
  };
}
