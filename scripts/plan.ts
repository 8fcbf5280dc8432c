/**
 * Dry run: what would discovery do in this account right now? Runs the same listing, readiness and
 * classification code as the Lambda, with the deployment's config (cdk.json context), against a
 * real account with the default credentials, and prints one line per instance: the action, why,
 * and its group wave. It starts nothing: it holds no Step Functions client at all.
 *
 *   npm run plan -- --region eu-west-1 [--window 2026-11-22T02:00:00Z] [--json] [-c key=value ...]
 */
import '../sim/local-node';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { type Decision, decideEntry, needsReadiness } from '../lambda/discovery/classify';
import { admissionSeconds, computePacing, defaultQuotas, type Pacing } from '../lambda/discovery/admission';
import { admissionSpanSeconds, planFleet } from '../lambda/discovery/fleet-plan';
import { listOptedInInstances } from '../lambda/discovery/instances';
import { ReadinessLookup } from '../lambda/discovery/readiness';
import {
  DEFAULT_GROUP_SLACK_SECONDS,
  DEFAULT_MARGIN_SECONDS,
  DEFAULT_UNGROUPED_SLACK_SECONDS,
  waveSpacingSeconds,
} from '../lambda/discovery/stagger';
import { executionName, windowFromScheduledTime, windowIso } from '../lambda/discovery/window';
import type { ExclusionReason } from '../lambda/shared/outcome';
import { NAME_TAG } from '../lambda/shared/tags';
import { RESERVED_CONCURRENCY } from '../lib/concurrency';
import { type BackupConfig, ConfigError, parseConfig } from '../lib/config';

export interface PlanClients {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
}

export interface PlanArgs {
  readonly region: string;
  /** The window to plan for. */
  readonly window: Date;
  readonly config: BackupConfig;
  /** One JSON object instead of a table. */
  readonly json?: boolean;
}

export type PlanAction = 'freeze+backup' | 'vss+backup' | 'backup without freeze' | 'excluded';

export interface PlanRow {
  readonly instanceId: string;
  readonly name: string;
  readonly platform: string;
  readonly state: string;
  readonly action: PlanAction;
  readonly reason: string;
  readonly group: string;
  readonly wave: number | null;
  readonly startAt: string | null;
  readonly execution: string | null;
}

export interface PlanReport {
  readonly window: string;
  /** Admission: the rate, the binding quota and every limit considered. */
  readonly pacing: Pacing;
  /** Seconds from the window until the last slot, and until the labels are applied. */
  readonly runSeconds: { readonly admission: number; readonly labels: number };
  readonly region: string;
  readonly optIn: string;
  readonly rows: readonly PlanRow[];
  readonly counts: {
    readonly discovered: number;
    readonly toStart: number;
    readonly withoutFreeze: number;
    readonly excluded: Partial<Record<ExclusionReason, number>>;
  };
}

export class PlanUsageError extends Error {
  override readonly name = 'PlanUsageError';
}

function action(decision: Decision): PlanAction {
  if (decision.action === 'excluded') return 'excluded';
  if (decision.action === 'no-freeze') return 'backup without freeze';
  return decision.platform === 'windows' ? 'vss+backup' : 'freeze+backup';
}

/** The plan for one window; `out` receives the printed lines. */
export async function runPlan(
  clients: PlanClients,
  args: PlanArgs,
  out: (line: string) => void,
): Promise<PlanReport> {
  const { config, window } = args;
  const stagger = {
    maxFrozenPerGroup: config.maxFrozenPerGroup,
    watchdogSeconds: config.watchdogSeconds,
    hookTimeoutSeconds: config.hookTimeoutSeconds,
    groupSlackSeconds: DEFAULT_GROUP_SLACK_SECONDS,
    ungroupedSlackSeconds: DEFAULT_UNGROUPED_SLACK_SECONDS,
    marginSeconds: DEFAULT_MARGIN_SECONDS,
  };
  const reserved: Record<string, number> = {};
  for (const [fn, c] of Object.entries(RESERVED_CONCURRENCY)) reserved[fn] = c.reserved;
  const pacing = computePacing({
    region: args.region,
    regionProfile: config.regionProfile,
    quotaShare: config.quotaSharePercent / 100,
    apiRates: config.apiRates,
    reservedConcurrency: reserved,
    snapshotStartSeconds: config.snapshotStartSeconds,
  });
  const { instances } = await listOptedInInstances(clients.ec2, config.optInTagKey, config.optInTagValue);
  const entries = planFleet(instances, window, stagger, undefined, { ratePerSecond: pacing.ratePerSecond });
  const readiness = await new ReadinessLookup(
    clients.ssm,
    entries.filter((e) => needsReadiness(e.instance)).map((e) => e.instance.instanceId),
    { ratePerSecond: 20, concurrency: 4 },
  ).all();

  const rows: PlanRow[] = [];
  const excluded: Partial<Record<ExclusionReason, number>> = {};
  let toStart = 0;
  let withoutFreeze = 0;
  for (const entry of entries) {
    const i = entry.instance;
    const decision = decideEntry(entry, readiness.get(i.instanceId), config.onFreezeFailure, stagger);
    const starts = decision.action !== 'excluded';
    if (decision.action === 'excluded') excluded[decision.reason] = (excluded[decision.reason] ?? 0) + 1;
    else toStart++;
    if (decision.action === 'no-freeze') withoutFreeze++;
    rows.push({
      instanceId: i.instanceId,
      name: i.tags.find((t) => t.Key === NAME_TAG)?.Value ?? '',
      platform: starts
        ? decision.platform
        : (readiness.get(i.instanceId)?.platformType?.toLowerCase() ?? '-'),
      state: i.state,
      action: action(decision),
      reason: decision.action === 'excluded' ? `${decision.reason}: ${decision.detail}` : decision.why,
      group: entry.group ?? '',
      wave: starts && decision.action === 'freeze' && entry.wave !== undefined ? entry.wave : null,
      startAt: starts ? entry.times.startAt.toISOString() : null,
      execution: starts ? executionName(i.instanceId, window) : null,
    });
  }
  const tags = config.apiRates.createTags ?? defaultQuotas(pacing.profile).createTags.bucket;
  const runSeconds = {
    // Slots run from the window over the whole listing (excluded instances keep theirs).
    admission: admissionSeconds(entries.length, pacing.ratePerSecond),
    labels: (toStart * pacing.use.createTags) / (pacing.quotaShare * tags.ratePerSecond),
  };
  const report: PlanReport = {
    window: windowIso(window),
    pacing,
    runSeconds,
    region: args.region,
    optIn: `${config.optInTagKey}=${config.optInTagValue}`,
    rows,
    counts: { discovered: entries.length, toStart, withoutFreeze, excluded },
  };

  if (args.json) {
    out(JSON.stringify(report, null, 2));
    return report;
  }
  out(
    `Plan for window ${report.window} in ${args.region}, instances tagged ${report.optIn} (dry run: nothing is started)`,
  );
  const span = admissionSpanSeconds(entries.length, pacing.ratePerSecond);
  out(
    `Groups: at most ${config.maxFrozenPerGroup} frozen at once per group; waves ${waveSpacingSeconds(stagger) + span} s apart (${waveSpacingSeconds(stagger)} s plus the ${span} s admission span).`,
  );
  for (const line of pacingLines(pacing, entries.length, runSeconds)) out(line);
  const header = ['INSTANCE', 'NAME', 'PLATFORM', 'STATE', 'ACTION', 'GROUP', 'WAVE', 'START AT', 'WHY'];
  const table = rows.map((r) => [
    r.instanceId,
    r.name || '-',
    r.platform,
    r.state,
    r.action,
    r.group || '-',
    r.wave === null ? '-' : String(r.wave),
    r.startAt ?? '-',
    r.reason,
  ]);
  const widths = header.map((h, c) =>
    Math.max(h.length, ...table.map((row) => (c === 8 ? 0 : row[c].length))),
  );
  const line = (cells: string[]) =>
    cells.map((cell, c) => (c === 8 ? cell : cell.padEnd(widths[c]))).join('  ');
  out(line(header));
  for (const row of table) out(line(row));
  const reasons = Object.entries(excluded)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');
  out(
    `${entries.length} discovered: ${toStart} would start (${withoutFreeze} without a freeze), ${entries.length - toStart} excluded${reasons ? ` (${reasons})` : ''}.`,
  );
  return report;
}

const duration = (s: number) =>
  s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 120 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(0)} s`;

/** The admission part of the plan: the rate, what binds it, each quota's use and the run length. */
export function pacingLines(
  pacing: Pacing,
  instances: number,
  runSeconds: PlanReport['runSeconds'],
): string[] {
  const lines = [
    `Admission (${pacing.profile} Region profile, ${Math.round(pacing.quotaShare * 100)} % of each quota): ${pacing.ratePerSecond.toFixed(2)} backups/s, one slot every ${(1000 / pacing.ratePerSecond).toFixed(0)} ms, bound by ${pacing.binding.name}; StartExecution paced at ${pacing.start.ratePerSecond.toFixed(0)}/s (burst ${pacing.start.burst}).`,
    'QUOTA                 REFILL/S  BURST  PER BACKUP  BACKUPS/S  SOURCE',
  ];
  for (const l of pacing.limits) {
    lines.push(
      [
        l.name.padEnd(20),
        String(l.bucket.ratePerSecond).padStart(8),
        String(l.bucket.burst).padStart(6),
        String(l.perBackup).padStart(10),
        l.backupsPerSecond.toFixed(2).padStart(9),
        l.overridden ? 'apiRates' : l.published ? 'published' : 'assumed (not published)',
      ].join('  '),
    );
  }
  lines.push(
    `Expected run: ${instances} slots in ${duration(runSeconds.admission)} from the window, plus about a minute for the last backups; labels (CreateTags, after the freezes) take ${duration(runSeconds.labels)}.`,
  );
  return lines;
}

const REGION = /^[a-z]{2}(-[a-z]+)+-\d$/;

/** Command-line arguments, plus the deployment config from cdk.json context and `-c key=value`. */
export function parseArgs(
  argv: readonly string[],
  cdkJson: { context?: Record<string, unknown> },
  env = process.env,
): PlanArgs {
  const raw: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(cdkJson.context ?? {})) raw[key] = value;
  let region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  let windowArg: string | undefined;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new PlanUsageError(`${a} needs a value`);
      return v;
    };
    if (a === '--region') region = value();
    else if (a === '--window') windowArg = value();
    else if (a === '--json') json = true;
    else if (a === '-c' || a === '--context') {
      const [key, ...rest] = value().split('=');
      raw[key] = rest.join('=');
    } else
      throw new PlanUsageError(
        `Unknown argument ${JSON.stringify(a)}; allowed: --region, --window, --json, -c key=value`,
      );
  }
  if (!region || !REGION.test(region)) {
    throw new PlanUsageError(
      `Invalid --region: got ${JSON.stringify(region ?? null)}; allowed: an AWS region name such as eu-west-1 (or AWS_REGION set).`,
    );
  }
  let window: Date;
  try {
    window = windowFromScheduledTime(windowArg ?? new Date().toISOString());
  } catch (err) {
    throw new PlanUsageError((err as Error).message.replace('event "scheduledTime"', '--window'));
  }
  return { region, window, config: parseConfig(raw as Partial<Record<keyof BackupConfig, unknown>>), json };
}

async function main(): Promise<void> {
  const cdkJson = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'cdk.json'), 'utf8'));
  let args: PlanArgs;
  try {
    args = parseArgs(process.argv.slice(2), cdkJson);
  } catch (err) {
    if (err instanceof PlanUsageError || err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const clients = {
    ec2: new EC2Client({ region: args.region }),
    ssm: new SSMClient({ region: args.region }),
  };
  await runPlan(clients, args, (line) => console.log(line));
}

if (require.main === module) {
  main().catch((err) => {
    console.error(`plan failed: ${(err as Error).name}: ${(err as Error).message}`);
    process.exit(1);
  });
}
