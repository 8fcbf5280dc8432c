import { FREEZE_FAILURE_POLICIES, type FreezeFailurePolicy } from '../shared/options';
import {
  computePacing,
  type Pacing,
  parseApiRates,
  REGION_PROFILES,
  type RegionProfileSetting,
} from './admission';
import {
  checkStaggerSettings,
  DEFAULT_GROUP_SLACK_SECONDS,
  DEFAULT_MARGIN_SECONDS,
  DEFAULT_MAX_STAGGER_SECONDS,
  DEFAULT_UNGROUPED_SLACK_SECONDS,
  type StaggerSettings,
} from './stagger';

/**
 * Everything discovery needs from its environment, validated once at cold start. lib/discovery.ts
 * sets these from the deployment config; a missing or malformed value stops the function with a
 * message naming the variable, the value and what is allowed.
 */
export interface DiscoverySettings {
  readonly region: string;
  readonly stateMachineArn: string;
  readonly optInTagKey: string;
  readonly optInTagValue: string;
  readonly defaultOnFreezeFailure: FreezeFailurePolicy;
  readonly stagger: StaggerSettings;
  /**
   * Admission (admission.ts): executions get slots at this pace, and StartExecution is paced to
   * leave room for the admitted executions' state transitions. Absent: every instance's startAt is
   * its wave's start, and starts go at the StartExecution quota (the behaviour before admission).
   */
  readonly admission?: Pacing;
  /** StartExecution pacing, matching the account's token bucket. */
  readonly startBurst: number;
  readonly startRatePerSecond: number;
  readonly startConcurrency: number;
  /** DescribeInstanceInformation pacing. */
  readonly ssmRatePerSecond: number;
  readonly ssmConcurrency: number;
  /** Stop starting executions and hand over when less than this much of the invocation is left. */
  readonly handOverReserveMs: number;
  /**
   * Time the notifier needs per excluded instance at the end of the invocation (it publishes one
   * notification each); the reserve grows by this for every exclusion, so a fleet-wide SSM outage
   * cannot leave the notifications without time.
   */
  readonly notifyMsPerExclusion: number;
  /** Backoff after a throttled or failed StartExecution. */
  readonly retryBaseMs: number;
  readonly retryCapMs: number;
}

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
  constructor(
    readonly variable: string,
    readonly value: string | undefined,
    readonly allowed: string,
  ) {
    super(
      `Invalid environment variable ${variable}: got ${JSON.stringify(value ?? null)}; allowed: ${allowed}.`,
    );
  }
}

/**
 * Step Functions' documented StartExecution quota for standard workflows: bucket 1,300 and refill
 * 300/s in US East (N. Virginia), US West (Oregon) and Europe (Ireland); 800 and 150/s elsewhere.
 */
const LARGE_REGIONS = ['us-east-1', 'us-west-2', 'eu-west-1'];
export function defaultStartQuota(region: string): { burst: number; rate: number } {
  return LARGE_REGIONS.includes(region) ? { burst: 1300, rate: 300 } : { burst: 800, rate: 150 };
}

type Env = Record<string, string | undefined>;

function required(env: Env, name: string, pattern: RegExp, allowed: string): string {
  const value = env[name];
  if (value === undefined || !pattern.test(value)) throw new SettingsError(name, value, allowed);
  return value;
}

function int(env: Env, name: string, min: number, max: number, fallback?: number): number {
  const value = env[name];
  if ((value === undefined || value === '') && fallback !== undefined) return fallback;
  if (value === undefined || !/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new SettingsError(name, value, `a whole number from ${min} to ${max}`);
  }
  return Number(value);
}

const ARN = /^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d$/;

export function readSettings(env: Env): DiscoverySettings {
  const region = required(env, 'AWS_REGION', REGION, 'an AWS region name such as eu-west-1');
  const quota = defaultStartQuota(region);
  const policy = env.ON_FREEZE_FAILURE;
  if (!FREEZE_FAILURE_POLICIES.includes(policy as FreezeFailurePolicy)) {
    throw new SettingsError('ON_FREEZE_FAILURE', policy, FREEZE_FAILURE_POLICIES.join(' or '));
  }
  const stagger: StaggerSettings = {
    maxFrozenPerGroup: int(env, 'MAX_FROZEN_PER_GROUP', 1, 1000),
    watchdogSeconds: int(env, 'WATCHDOG_SECONDS', 6, 300),
    hookTimeoutSeconds: int(env, 'HOOK_TIMEOUT_SECONDS', 1, 600),
    groupSlackSeconds: int(env, 'GROUP_SLACK_SECONDS', 60, 86_400, DEFAULT_GROUP_SLACK_SECONDS),
    ungroupedSlackSeconds: int(env, 'UNGROUPED_SLACK_SECONDS', 60, 86_400, DEFAULT_UNGROUPED_SLACK_SECONDS),
    marginSeconds: int(env, 'WAVE_MARGIN_SECONDS', 0, 3600, DEFAULT_MARGIN_SECONDS),
    // Step Functions' longest Standard execution is one year.
    maxStaggerSeconds: int(env, 'MAX_STAGGER_SECONDS', 0, 31_536_000, DEFAULT_MAX_STAGGER_SECONDS),
  };
  const problems = checkStaggerSettings(stagger);
  if (problems.length > 0)
    throw new SettingsError('stagger', problems.join('; '), 'consistent stagger settings');
  const admission = readAdmission(env, region);
  const start = admission?.start ?? { burst: quota.burst, ratePerSecond: quota.rate };
  return {
    region,
    ...(admission ? { admission } : {}),
    stateMachineArn: required(env, 'STATE_MACHINE_ARN', ARN, 'a Step Functions state machine ARN'),
    optInTagKey: required(env, 'OPT_IN_TAG_KEY', /^.{1,128}$/su, 'a tag key of 1-128 characters'),
    optInTagValue: required(env, 'OPT_IN_TAG_VALUE', /^.{1,256}$/su, 'a tag value of 1-256 characters'),
    defaultOnFreezeFailure: policy as FreezeFailurePolicy,
    stagger,
    startBurst: int(env, 'START_BURST', 1, 100_000, start.burst),
    startRatePerSecond: int(env, 'START_RATE_PER_SECOND', 1, 100_000, Math.floor(start.ratePerSecond)),
    startConcurrency: int(env, 'START_CONCURRENCY', 1, 256, 64),
    ssmRatePerSecond: int(env, 'SSM_RATE_PER_SECOND', 1, 1000, 20),
    ssmConcurrency: int(env, 'SSM_CONCURRENCY', 1, 64, 4),
    handOverReserveMs: int(env, 'HANDOVER_RESERVE_SECONDS', 1, 600, 60) * 1000,
    notifyMsPerExclusion: int(env, 'NOTIFY_MS_PER_EXCLUSION', 0, 10_000, 10),
    retryBaseMs: int(env, 'RETRY_BASE_MS', 1, 60_000, 100),
    retryCapMs: int(env, 'RETRY_CAP_MS', 1, 300_000, 5000),
  };
}

/**
 * REGION_PROFILE (auto, large, standard), QUOTA_SHARE_PERCENT, SNAPSHOT_START_SECONDS, API_RATES (`<api>=<rate>[/<burst>]`,
 * comma-separated) and RESERVED_CONCURRENCY (`<function>=<n>`, comma-separated): set together by
 * lib/discovery.ts from the config and lib/concurrency.ts. Without REGION_PROFILE no admission.
 */
function readAdmission(env: Env, region: string): Pacing | undefined {
  const profile = env.REGION_PROFILE;
  if (profile === undefined || profile === '') return undefined;
  if (!REGION_PROFILES.includes(profile as RegionProfileSetting)) {
    throw new SettingsError('REGION_PROFILE', profile, REGION_PROFILES.join(', '));
  }
  const share = int(env, 'QUOTA_SHARE_PERCENT', 1, 100, 85);
  const rates = parseApiRates(env.API_RATES ?? '');
  if (typeof rates === 'string') throw new SettingsError('API_RATES', env.API_RATES, rates);
  const reserved: Record<string, number> = {};
  for (const item of (env.RESERVED_CONCURRENCY ?? '').split(',').filter((i) => i !== '')) {
    const m = /^([a-z-]+)=(\d{1,4})$/.exec(item);
    if (!m || Number(m[2]) < 1) {
      throw new SettingsError(
        'RESERVED_CONCURRENCY',
        env.RESERVED_CONCURRENCY,
        'a comma-separated list of <function>=<reserved concurrency of at least 1>',
      );
    }
    reserved[m[1]] = Number(m[2]);
  }
  return computePacing({
    region,
    regionProfile: profile as RegionProfileSetting,
    quotaShare: share / 100,
    apiRates: rates,
    reservedConcurrency: reserved,
    snapshotStartSeconds: int(env, 'SNAPSHOT_START_SECONDS', 1, 600, 3),
  });
}
