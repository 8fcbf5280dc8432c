/**
 * Fault injection: generated fault schedules over every AWS call the workflow makes (errors,
 * throttling, timeouts, delays) and over what the instance and AWS Backup do (freeze failures,
 * thaw failures, snapshots starting around the freeze budget, jobs failing). Each run must keep
 * the four promises, and the label must be honest.
 */

import { validateNotification } from '../lambda/shared/notification';
import { buildOutcomeNotification, outcomeEventId } from '../lambda/shared/notifications/outcome';
import { DEFAULT_CONFIG } from '../lib/config';
import { workflowTimings } from '../lib/workflow';
import type { Fault, FaultPlan, RunReport, Scenario } from './workflow-sim';

export const SCHEDULES = Number(process.env.FAULT_SCHEDULES ?? 2000);

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

const OPS = [
  'lambda.Check For Active Backup Jobs',
  'lambda.Freeze Filesystems',
  'lambda.Wait For Snapshots To Start',
  'lambda.Wait For Thaw Command',
  'lambda.Wait For VSS Components',
  'lambda.Record Outcome',
  'sfn.SendThaw',
  'sfn.StartBackupJob',
  'sfn.InstallVss',
  'sfn.Publish',
  'ssm.SendCommand',
  'ssm.GetCommandInvocation',
  'backup.ListBackupJobs',
  'backup.DescribeBackupJob',
  'ec2.DescribeSnapshots',
  'ec2.CreateTags',
  'sink.recordOutcome',
];

/** One generated schedule: the scenario and a fault plan, drawn from the seed. */
export function generate(seed: number): { scenario: Scenario; config: Record<string, unknown> } {
  const r = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const budget = pick([10, 60]);
  // Per operation: how likely a call fails, and whether it fails persistently.
  const rates = new Map(OPS.map((op) => [op, r() < 0.35 ? r() * 0.6 : 0]));
  const persistent = new Set(OPS.filter(() => r() < 0.06));
  const faultRandom = prng(seed ^ 0x9e3779b9);
  const faults: FaultPlan = (op, call) => {
    if (persistent.has(op)) return { kind: pick(['throttle', 'error', 'timeout'] as const) };
    if (faultRandom() >= (rates.get(op) ?? 0) || call > 40) return undefined;
    const roll = faultRandom();
    const f: Fault =
      roll < 0.35
        ? { kind: 'throttle' }
        : roll < 0.65
          ? { kind: 'error' }
          : roll < 0.8
            ? { kind: 'timeout' }
            : { kind: 'delay', ms: Math.floor(faultRandom() * budget * 600) };
    return f;
  };
  const windows = r() < 0.15;
  const scenario: Scenario = {
    platform: windows ? 'windows' : 'linux',
    instanceState: r() < 0.08 ? 'stopped' : 'running',
    onFreezeFailure: r() < 0.5 ? 'crash-consistent' : 'skip',
    hooksConfigured: r() < 0.7,
    freezeResult: pick([
      'frozen',
      'frozen',
      'frozen',
      'frozen',
      'error',
      'garbage',
      'nothing-to-freeze',
      'not-delivered',
    ] as const),
    freezeMs: Math.floor(r() * 3000),
    thawFailures: r() < 0.15 ? pick([1, 2, 99]) : 0,
    // Around the budget: well inside, just inside, just over, never.
    snapshotDelayMs: pick([500, 3000, (budget - 4) * 1000, (budget - 1) * 1000, (budget + 2) * 1000, null]),
    ...(r() < 0.1 ? { jobFailsAfterMs: Math.floor(r() * budget * 1000) } : {}),
    activeJob: r() < 0.05,
    freezeBudgetSeconds: budget,
    watchdogSeconds: budget + 30,
    faults,
  };
  return {
    scenario,
    config: {
      freezeBudgetSeconds: budget,
      watchdogSeconds: budget + 30,
      installVssComponents: windows && r() < 0.5,
    },
  };
}

/** Every attempt to notify failed: record-outcome (its invocation or its notifier) and the SNS fallback. */
export function channelDown(rep: RunReport): boolean {
  const attempts = (op: string) => rep.calls.filter((c) => c.op === op);
  const failed = (c: { fault?: string }) => c.fault !== undefined && c.fault !== 'delay';
  const recordRuns = attempts('lambda.Record Outcome');
  const publishes = attempts('sfn.Publish');
  return (
    recordRuns.length > 0 && rep.outcomes.length === 0 && publishes.length > 0 && publishes.every(failed)
  );
}

/** The promises every run keeps; returns the broken ones (empty when all hold). */
export function violations(rep: RunReport, scenario: Scenario): string[] {
  const broken: string[] = [];
  // 1. A freeze sent is followed by a thaw sent.
  if (rep.freezeSentAt.length > 0) {
    const firstFreeze = Math.min(...rep.freezeSentAt);
    if (!rep.thawSentAt.some((t) => t > firstFreeze)) broken.push('freeze sent without a thaw after it');
  }
  // 2. No thaw waits for the backup job: every thaw is sent long before the job completes, and the
  //    first one within the freeze budget plus the time the freeze step itself may take: the probe
  //    waits commandWaitSeconds for a freeze command it cannot see end (the generator keeps the
  //    default hookTimeoutSeconds), plus 30 s for invocation retries.
  if (rep.jobCompletesAt !== undefined && rep.thawSentAt.some((t) => t >= (rep.jobCompletesAt as number))) {
    broken.push('a thaw waited for backup completion');
  }
  if (rep.frozenAt !== undefined && rep.thawSentAt.length > 0) {
    const firstThawAfterFreeze = rep.thawSentAt.find((t) => t >= (rep.frozenAt as number));
    const budgetMs = (scenario.freezeBudgetSeconds ?? 60) * 1000;
    const freezeStepMs = (workflowTimings(DEFAULT_CONFIG).commandWaitSeconds + 30) * 1000;
    if (
      firstThawAfterFreeze !== undefined &&
      firstThawAfterFreeze - (rep.frozenAt as number) > budgetMs + freezeStepMs
    ) {
      broken.push(`thaw sent ${firstThawAfterFreeze - (rep.frozenAt as number)} ms after the freeze`);
    }
  }
  // 3. Exactly one notification per run (the notifier turns failures into SNS messages), unless the
  //    notification channel failed on every attempt, which must end in a visibly failed execution.
  const notified = rep.outcomes.length + rep.publishes.length;
  const down = channelDown(rep);
  if (notified !== 1 && !(notified === 0 && down && rep.status === 'FAILED')) {
    broken.push(`notified ${notified} times`);
  }
  //    A failing or degraded outcome must become a valid notification in the shared schema.
  for (const o of rep.outcomes) {
    const degraded = o.outcome !== 'backed-up' || o.verdict?.consistency === 'crash' || o.warnings.length > 0;
    const n = buildOutcomeNotification(o, new Date(rep.endedAt));
    if (degraded && !n) broken.push(`outcome ${o.outcome} produced no notification`);
    //    A job that failed while frozen is job-events' Major under job-events' event id, so the
    //    later job event finds it published: one alert, not a Warning and then a Major.
    if (o.outcome === 'backup-job-failed') {
      if (scenario.jobFailsAfterMs === undefined) broken.push('backup-job-failed without a failing job');
      if (n?.eventType !== 'backup-job-failed' || n.severity !== 'Major') {
        broken.push(`backup-job-failed notified as ${n?.severity} ${n?.eventType}`);
      }
      if (outcomeEventId(o) !== `job:${o.backupJobId}:${o.backupJobState}`) {
        broken.push(`backup-job-failed under event id ${outcomeEventId(o)}, not job-events' id`);
      }
    }
    if (n) {
      const problems = validateNotification(n);
      if (problems.length) broken.push(`invalid notification: ${problems.join('; ')}`);
    }
  }
  // 4. A consistency verdict at the end of every run.
  const consistency =
    rep.recordOutput?.consistency ?? rep.publishes[0]?.Message?.event?.additional_info?.consistency;
  if (!['application', 'filesystem', 'crash', 'none'].includes(consistency) && !down) {
    broken.push(`no verdict (${consistency})`);
  }
  // Honesty: a consistent label only if every volume's snapshot started while frozen.
  const label = rep.outcomes[0]?.verdict?.consistency;
  if (
    (label === 'application' || label === 'filesystem') &&
    scenario.instanceState !== 'stopped' &&
    scenario.platform !== 'windows'
  ) {
    const inside = rep.snapshotStarts.every(
      (t) => rep.frozenAt !== undefined && t >= rep.frozenAt && t <= (rep.thawedAt ?? Infinity),
    );
    if (!inside || rep.snapshotStarts.length !== (scenario.volumeIds?.length ?? 2)) {
      broken.push(`labelled ${label} but a snapshot started outside the freeze`);
    }
  }
  // A run whose filesystems stayed frozen until the watchdog must say so loudly.
  if (
    rep.watchdogFired &&
    !down &&
    !rep.outcomes.some((o) => o.outcome === 'thaw-failed') &&
    rep.publishes.length === 0
  ) {
    if (!rep.outcomes.some((o) => o.warnings.some((w) => /watchdog/i.test(w)))) {
      broken.push('watchdog thawed but the outcome does not say so');
    }
  }
  return broken;
}
