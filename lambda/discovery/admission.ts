/**
 * Admission: how fast a run may start backups so that every API the run calls stays inside the
 * account's quota, and how long the run therefore takes.
 *
 * The whole run is the unit that must scale, not the fan-out: starting executions at the
 * StartExecution maximum (300/s) makes hundreds of instances freeze at once, and their polls then
 * exhaust DescribeSnapshots (refill 20/s), Lambda concurrency and the state-transition bucket, so
 * freezes run past their budget and backups end up crash-consistent. Admission gives every
 * execution a slot (its `startAt`), one slot every 1/r seconds, where
 *
 *   r = quotaShare × min over the run's quotas of (refill / calls per backup)
 *
 * and `quotaShare` leaves the rest of each bucket to DLM, other tools and the operators. The
 * per-backup use (BACKUP_USE) is counted from today's workflow (lib/workflow.ts) and its functions'
 * polling schedules (lambda/start-backup/snapshots.ts, lambda/shared/command-wait.ts); `npm run bench:fleet` measures it on the real
 * definition and test/sim/fleet.test.ts checks that this table is not below the measurement.
 *
 * Quotas: docs.aws.amazon.com, as collected in docs/scale.md. Step Functions and EC2 publish theirs;
 * SSM SendCommand/GetCommandInvocation and AWS Backup's APIs publish none, so those defaults are an
 * assumption, chosen conservatively as EC2's published buckets for the same kind of call
 * (mutating: 50 / 5 per s; non-mutating: 100 / 20 per s), and each is a setting (`apiRates`).
 *
 * Pure: no clients, no clock. Discovery (settings.ts) and `npm run plan` both call computePacing.
 */

import { SUCCESS_TRANSITIONS } from '../shared/workflow-results';

/** The three Regions with Step Functions' larger default quotas. */
export const LARGE_REGIONS: readonly string[] = ['us-east-1', 'us-west-2', 'eu-west-1'];

export const REGION_PROFILES = ['auto', 'large', 'standard'] as const;
export type RegionProfileSetting = (typeof REGION_PROFILES)[number];
export type RegionProfile = Exclude<RegionProfileSetting, 'auto'>;

export function resolveProfile(setting: RegionProfileSetting, region: string): RegionProfile {
  if (setting !== 'auto') return setting;
  return LARGE_REGIONS.includes(region) ? 'large' : 'standard';
}

/** A throttling bucket: `burst` tokens at most, refilled at `ratePerSecond`. */
export interface Bucket {
  readonly burst: number;
  readonly ratePerSecond: number;
}

/** Every API a backup run calls, by the name `apiRates` uses. */
export const APIS = [
  'startExecution',
  'stateTransitions',
  'sendCommand',
  'getCommandInvocation',
  'listBackupJobs',
  'startBackupJob',
  'describeBackupJob',
  'describeSnapshots',
  'createTags',
] as const;
export type Api = (typeof APIS)[number];

/** Whether a default comes from a published quota or is our conservative assumption. */
export interface QuotaSource {
  readonly bucket: Bucket;
  readonly published: boolean;
  readonly source: string;
}

const EC2_THROTTLING = 'EC2 developer guide, "Request throttling for the Amazon EC2 API"';
const SFN_QUOTAS = 'Step Functions developer guide, "Service quotas"';
const ASSUMED_MUTATING = 'not published; assumed like EC2 "other mutating actions" (50 / 5 per s)';
const ASSUMED_READ = 'not published; assumed like EC2 non-mutating actions (100 / 20 per s)';

/** Default quotas of one account in one Region, per profile. */
export function defaultQuotas(profile: RegionProfile): Record<Api, QuotaSource> {
  const large = profile === 'large';
  return {
    startExecution: {
      bucket: large ? { burst: 1300, ratePerSecond: 300 } : { burst: 800, ratePerSecond: 150 },
      published: true,
      source: `${SFN_QUOTAS}, StartExecution (Standard)`,
    },
    stateTransitions: {
      bucket: large ? { burst: 5000, ratePerSecond: 1500 } : { burst: 800, ratePerSecond: 500 },
      published: true,
      source: `${SFN_QUOTAS}, state transitions (Standard)`,
    },
    sendCommand: { bucket: { burst: 50, ratePerSecond: 5 }, published: false, source: ASSUMED_MUTATING },
    getCommandInvocation: {
      bucket: { burst: 100, ratePerSecond: 20 },
      published: false,
      source: ASSUMED_READ,
    },
    listBackupJobs: { bucket: { burst: 100, ratePerSecond: 20 }, published: false, source: ASSUMED_READ },
    startBackupJob: { bucket: { burst: 50, ratePerSecond: 5 }, published: false, source: ASSUMED_MUTATING },
    describeBackupJob: { bucket: { burst: 100, ratePerSecond: 20 }, published: false, source: ASSUMED_READ },
    describeSnapshots: {
      bucket: { burst: 100, ratePerSecond: 20 },
      published: true,
      source: `${EC2_THROTTLING}, non-mutating actions`,
    },
    createTags: {
      bucket: { burst: 100, ratePerSecond: 10 },
      published: true,
      source: `${EC2_THROTTLING}, CreateTags`,
    },
  };
}

/** Seconds from StartBackupJob to the snapshots' start that admission plans for, by default. */
export const DEFAULT_SNAPSHOT_START_SECONDS = 3;

/**
 * Calls (or state transitions) one Linux backup on the success path makes today, the most
 * expensive path that runs in bulk (Windows and stopped instances take fewer), when AWS Backup
 * starts the snapshots `snapshotStartSeconds` after StartBackupJob:
 * - stateTransitions SUCCESS_TRANSITIONS.linux (11): every state entered on the Linux success path
 *   of the synthesized definition (bench:fleet and bench:workflow count it; a test executes it).
 * - sendCommand 2: the freeze (freeze-filesystems) and the thaw (state machine).
 * - getCommandInvocation 10: COMMAND_POLL polls every 200 ms while the freeze (~1 s) and the thaw
 *   (~0.5 s) run: 8 measured uncontended, 10 with slack for a slower instance.
 * - listBackupJobs 4: the active-job check before the freeze asks once per active state (CREATED,
 *   PENDING, RUNNING, ABORTING).
 * - startBackupJob 1.
 * - describeSnapshots: SNAPSHOT_POLL, every 250 ms for the first 5 s, then every second, plus the
 *   last poll; describeBackupJob: JOB_CHECK_MS, once a second.
 * - createTags 1: the label, applied outside the freeze path (not an admission limit, see below).
 * - startExecution 1.
 */
export function backupUse(snapshotStartSeconds: number): Readonly<Record<Api, number>> {
  const t = snapshotStartSeconds;
  return {
    startExecution: 1,
    stateTransitions: SUCCESS_TRANSITIONS.linux,
    sendCommand: 2,
    getCommandInvocation: 10,
    listBackupJobs: 4,
    startBackupJob: 1,
    describeBackupJob: Math.ceil(t),
    describeSnapshots: Math.ceil(Math.min(t, 5) / 0.25) + Math.max(0, Math.ceil(t - 5)) + 1,
    createTags: 1,
  };
}

export const BACKUP_USE = backupUse(DEFAULT_SNAPSHOT_START_SECONDS);

/**
 * Transitions an execution makes at StartExecution, before its slot (entering Check Input, then
 * Wait For Start Time); the rest happen at the slot.
 */
export const TRANSITIONS_BEFORE_SLOT = 2;

/**
 * APIs whose calls happen after the backup, not on the freeze path: they do not limit admission,
 * only how long the labelling takes after the run (printed by `npm run plan`).
 */
export const AFTER_RUN: readonly Api[] = ['createTags'];

/**
 * Lambda seconds one backup holds, per function, on the success path (freeze-filesystems,
 * start-backup, wait-for-command, record-outcome), used for the concurrency limit of
 * admission: concurrency ≈ rate × seconds (Little's law).
 */
export function lambdaSecondsPerBackup(snapshotStartSeconds: number): Readonly<Record<string, number>> {
  // freeze-filesystems: ~0.3 s active-jobs check and ~1.2 s freeze; start-backup: ~0.3 s
  // StartBackupJob, then the snapshot start; wait-for-command: ~0.6 s thaw; with invocation overheads.
  return {
    'freeze-filesystems': 1.5,
    'start-backup': 0.5 + snapshotStartSeconds,
    'wait-for-command': 0.8,
    'record-outcome': 1,
  };
}

export interface PacingSettings {
  readonly region: string;
  readonly regionProfile: RegionProfileSetting;
  /** Share of every bucket this app may use, 0 < share ≤ 1. */
  readonly quotaShare: number;
  /** Overrides per API (a raised or measured quota). */
  readonly apiRates: Readonly<Partial<Record<Api, Bucket>>>;
  /** Reserved concurrency per function on the freeze path (lib/concurrency.ts). */
  readonly reservedConcurrency: Readonly<Record<string, number>>;
  /** @default DEFAULT_SNAPSHOT_START_SECONDS */
  readonly snapshotStartSeconds?: number;
}

export interface Limit {
  /** An API, or `lambda:<function>`. */
  readonly name: string;
  readonly bucket: Bucket;
  readonly perBackup: number;
  /** Backups per second this quota allows, with the share applied. */
  readonly backupsPerSecond: number;
  readonly published: boolean;
  readonly overridden: boolean;
}

export interface Pacing {
  readonly profile: RegionProfile;
  /** Backups admitted per second: one slot every 1/rate s. */
  readonly ratePerSecond: number;
  /** The limit that sets the rate. */
  readonly binding: Limit;
  /** Every limit considered, tightest first. */
  readonly limits: readonly Limit[];
  /** StartExecution pacing of discovery: the executions start early and wait for their slot. */
  readonly start: Bucket;
  readonly quotaShare: number;
  /** What one backup uses, as planned. */
  readonly use: Readonly<Record<Api, number>>;
}

/** The Lambda concurrency admission can count on: a share of what is reserved for the function. */
export const LAMBDA_CONCURRENCY_SAFETY = 0.5;

export function computePacing(s: PacingSettings): Pacing {
  const profile = resolveProfile(s.regionProfile, s.region);
  const use = backupUse(s.snapshotStartSeconds ?? DEFAULT_SNAPSHOT_START_SECONDS);
  const defaults = defaultQuotas(profile);
  const bucket = (api: Api): Bucket => s.apiRates[api] ?? defaults[api].bucket;
  const limits: Limit[] = [];
  for (const api of APIS) {
    if (AFTER_RUN.includes(api) || api === 'startExecution') continue;
    const b = bucket(api);
    // Transitions: the slot's share of an execution's transitions; the rest are spent at start.
    const perBackup = api === 'stateTransitions' ? use.stateTransitions - TRANSITIONS_BEFORE_SLOT : use[api];
    limits.push({
      name: api,
      bucket: b,
      perBackup,
      backupsPerSecond: (s.quotaShare * b.ratePerSecond) / perBackup,
      published: defaults[api].published,
      overridden: s.apiRates[api] !== undefined,
    });
  }
  for (const [fn, seconds] of Object.entries(
    lambdaSecondsPerBackup(s.snapshotStartSeconds ?? DEFAULT_SNAPSHOT_START_SECONDS),
  )) {
    const reserved = s.reservedConcurrency[fn];
    if (reserved === undefined) continue;
    limits.push({
      name: `lambda:${fn}`,
      bucket: { burst: reserved, ratePerSecond: reserved },
      perBackup: seconds,
      backupsPerSecond: (LAMBDA_CONCURRENCY_SAFETY * reserved) / seconds,
      published: true,
      overridden: false,
    });
  }
  limits.sort((a, b) => a.backupsPerSecond - b.backupsPerSecond);
  const binding = limits[0];
  const ratePerSecond = binding.backupsPerSecond;
  // Discovery starts executions ahead of their slots; each start spends TRANSITIONS_BEFORE_SLOT
  // transitions, which must fit beside the admitted executions' own.
  const transitions = bucket('stateTransitions');
  const startQuota = bucket('startExecution');
  const spareTransitions =
    s.quotaShare * transitions.ratePerSecond -
    ratePerSecond * (use.stateTransitions - TRANSITIONS_BEFORE_SLOT);
  const startRate = Math.max(
    1,
    Math.min(s.quotaShare * startQuota.ratePerSecond, spareTransitions / TRANSITIONS_BEFORE_SLOT),
  );
  const startBurst = Math.max(
    1,
    Math.floor(Math.min(s.quotaShare * startQuota.burst, (s.quotaShare * transitions.burst) / 2)),
  );
  return {
    profile,
    ratePerSecond,
    binding,
    limits,
    start: { burst: startBurst, ratePerSecond: startRate },
    quotaShare: s.quotaShare,
    use,
  };
}

/**
 * Seconds from the window to a slot: slot k (0-based) starts k / rate seconds after the window,
 * rounded down to the millisecond so that every invocation of a run computes the same time.
 */
export function slotOffsetMs(slot: number, ratePerSecond: number): number {
  return Math.floor((slot * 1000) / ratePerSecond);
}

/** Seconds the admission of `backups` takes: the binding quota's minimum for the run. */
export function admissionSeconds(backups: number, ratePerSecond: number): number {
  return backups / ratePerSecond;
}

/**
 * `apiRates`: a comma-separated list of `<api>=<rate per second>[/<burst>]`, e.g.
 * `getCommandInvocation=50/200,stateTransitions=3000`; a missing burst is five seconds of rate.
 * Returns the overrides or a message naming the bad item and what is allowed.
 */
export function parseApiRates(value: string): Partial<Record<Api, Bucket>> | string {
  const out: Partial<Record<Api, Bucket>> = {};
  if (value.trim() === '') return out;
  for (const raw of value.split(',')) {
    const item = raw.trim();
    const m = /^([A-Za-z]+)=(\d+(?:\.\d+)?)(?:\/(\d+))?$/.exec(item);
    const api = m?.[1] as Api | undefined;
    if (!m || !api || !APIS.includes(api)) {
      return `item ${JSON.stringify(item)}: allowed <api>=<rate per second>[/<burst>] with <api> one of ${APIS.join(', ')}`;
    }
    const rate = Number(m[2]);
    const burst = m[3] !== undefined ? Number(m[3]) : Math.max(1, Math.ceil(rate * 5));
    if (!(rate > 0 && rate <= 100_000) || !(burst >= 1 && burst <= 1_000_000)) {
      return `item ${JSON.stringify(item)}: allowed a rate above 0 and at most 100000 per second, a burst from 1 to 1000000`;
    }
    if (out[api]) return `item ${JSON.stringify(item)}: each API at most once`;
    out[api] = { burst, ratePerSecond: rate };
  }
  return out;
}
