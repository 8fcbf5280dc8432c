/**
 * Blast-radius staggering: at most `maxFrozenPerGroup` instances of one group are frozen at the
 * same time, so a cluster is never frozen all at once.
 *
 * Each group's members are ranked (by instance id, see plan.ts); the k-th wave of a group is
 * members [k·N, (k+1)·N). Wave k may start freezing at `window + k·spacing` and must not start
 * after `notAfter = startAt + slack`: the Freeze document (ssm-documents/scripts/freeze.sh) refuses
 * a command that arrives later, and checks again after the pre-freeze hooks, immediately before
 * fsfreeze. The on-instance watchdog thaws at the latest `watchdogSeconds` after the freeze, so
 * every freeze of wave k ends before `notAfter + watchdogSeconds`. The spacing also counts
 * `hookTimeoutSeconds` (post-thaw hooks, and safety should the second check ever move) and a
 * margin for clock skew between instances, so wave k+1 cannot begin before wave k is over,
 * whatever the timing of individual executions.
 *
 * Everything is derived from the window and the deployment config, never from "now": the same
 * window always yields the same startAt/notAfter, which keeps execution inputs identical across
 * retries and hand-overs.
 */

export interface StaggerSettings {
  /** At most this many members of a group are frozen at once (config maxFrozenPerGroup). */
  readonly maxFrozenPerGroup: number;
  /** The on-instance watchdog thaws after this many seconds (config watchdogSeconds). */
  readonly watchdogSeconds: number;
  /** The longest the pre-freeze hooks may delay the freeze (config hookTimeoutSeconds). */
  readonly hookTimeoutSeconds: number;
  /** How long after its startAt a grouped instance may still begin its freeze. */
  readonly groupSlackSeconds: number;
  /** How long after the window an instance without a group may still begin its freeze. */
  readonly ungroupedSlackSeconds: number;
  /** Extra gap between waves for clock skew and the thaw. */
  readonly marginSeconds: number;
  /**
   * The latest a wave may start after the window: the workflow's execution timeout allows a
   * startAt at most this long after the execution starts (lib/workflow.ts maxStagger), and an
   * execution never starts before its window.
   * @default DEFAULT_MAX_STAGGER_SECONDS
   */
  readonly maxStaggerSeconds?: number;
}

/** 15 minutes: a whole Lambda run, so every first-invocation start of wave 0 is on time. */
export const DEFAULT_GROUP_SLACK_SECONDS = 900;
/** Instances without a group cannot collide with anyone; they only need protection from a stale command. */
export const DEFAULT_UNGROUPED_SLACK_SECONDS = 3600;
export const DEFAULT_MARGIN_SECONDS = 60;
/**
 * 14 days: the workflow's default maxStagger. The one source of that default: lib/workflow.ts uses
 * it for the execution timeout and lib/discovery.ts passes it (or the deployment's value) here.
 */
export const DEFAULT_MAX_STAGGER_SECONDS = 14 * 86_400;

/** Seconds between the starts of consecutive waves of one group. */
export function waveSpacingSeconds(s: StaggerSettings): number {
  return s.groupSlackSeconds + s.hookTimeoutSeconds + s.watchdogSeconds + s.marginSeconds;
}

/** The wave of the member ranked `slot` (0-based) in its group. */
export function waveOf(slot: number, maxFrozenPerGroup: number): number {
  return Math.floor(slot / maxFrozenPerGroup);
}

export interface StartWindow {
  readonly startAt: Date;
  readonly notAfter: Date;
}

/** The last wave of a group that starts within maxStaggerSeconds of the window. */
export function lastWave(s: StaggerSettings): number {
  return Math.floor((s.maxStaggerSeconds ?? DEFAULT_MAX_STAGGER_SECONDS) / waveSpacingSeconds(s));
}

/** startAt/notAfter of a wave of a group. */
export function groupWaveTimes(window: Date, wave: number, s: StaggerSettings): StartWindow {
  const startMs = window.getTime() + wave * waveSpacingSeconds(s) * 1000;
  return { startAt: new Date(startMs), notAfter: new Date(startMs + s.groupSlackSeconds * 1000) };
}

/** startAt/notAfter of an instance without a group. */
export function ungroupedTimes(window: Date, s: StaggerSettings): StartWindow {
  return { startAt: window, notAfter: new Date(window.getTime() + s.ungroupedSlackSeconds * 1000) };
}

/**
 * The latest moment an instance started in this window can still be frozen, counted
 * conservatively: a freeze begins by notAfter (plus hooks, were the document to check NotAfter
 * only on arrival), and the watchdog ends it after watchdogSeconds.
 */
export function latestFrozenUntil(times: StartWindow, s: StaggerSettings): Date {
  return new Date(times.notAfter.getTime() + (s.hookTimeoutSeconds + s.watchdogSeconds) * 1000);
}

/** Settings problems, as messages naming the value and what is allowed; empty when valid. */
export function checkStaggerSettings(s: StaggerSettings): string[] {
  const problems: string[] = [];
  const positive: Exclude<keyof StaggerSettings, 'maxStaggerSeconds'>[] = [
    'maxFrozenPerGroup',
    'watchdogSeconds',
    'hookTimeoutSeconds',
    'groupSlackSeconds',
    'ungroupedSlackSeconds',
  ];
  for (const key of positive) {
    if (!Number.isInteger(s[key]) || s[key] < 1)
      problems.push(`${key} is ${s[key]}; allowed: a whole number of at least 1`);
  }
  if (!Number.isInteger(s.marginSeconds) || s.marginSeconds < 0) {
    problems.push(`marginSeconds is ${s.marginSeconds}; allowed: a whole number of at least 0`);
  }
  if (
    s.maxStaggerSeconds !== undefined &&
    (!Number.isInteger(s.maxStaggerSeconds) || s.maxStaggerSeconds < 0)
  ) {
    problems.push(`maxStaggerSeconds is ${s.maxStaggerSeconds}; allowed: a whole number of at least 0`);
  }
  return problems;
}
