/**
 * The time spans the alarms and the dashboard derive from the schedule: how long a run's window
 * is, and how long "no run summary for N windows" is, within what CloudWatch alarms allow.
 *
 * CloudWatch (PutMetricAlarm, Period): Period x EvaluationPeriods may not exceed 7 days (604,800 s),
 * and 1 day (86,400 s) for a period under an hour.
 */

import { longestGapSeconds, parseScheduleExpression } from './schedule-expression';

const MINUTE = 60;
const HOUR = 3600;
const DAY = 86_400;
const SEVEN_DAYS = 7 * DAY;

/**
 * The longest pause between two runs, in seconds; undefined for a one-time schedule. A schedule read
 * in a time zone other than UTC gets an hour more, for the day the clocks change.
 */
export function scheduleWindowSeconds(
  expression: string,
  timeZone: string,
  fromYear?: number,
): number | undefined {
  const gap = longestGapSeconds(parseScheduleExpression(expression), fromYear);
  if (gap === undefined) return undefined;
  return timeZone === 'UTC' ? gap : gap + HOUR;
}

/**
 * The period that makes one point of a graph or an alarm one run: the schedule's window, at least
 * 5 minutes and at most a day (a longer window is summed over days), in whole minutes.
 */
export function runPeriodSeconds(windowSeconds: number | undefined): number {
  const seconds = windowSeconds ?? DAY;
  return Math.min(DAY, Math.max(5 * MINUTE, Math.ceil(seconds / MINUTE) * MINUTE));
}

export type MissedRunsAlarm =
  | {
      readonly kind: 'alarm';
      /** What the alarm covers: no summary for this long fires it. */
      readonly coveredSeconds: number;
      readonly periodSeconds: number;
      readonly evaluationPeriods: number;
      /** True when N windows plus the deadline would exceed CloudWatch's 7 days and were cut to it. */
      readonly capped: boolean;
    }
  | { readonly kind: 'none'; readonly reason: string };

/**
 * "No run summary for `missedWindows` windows": the summary of a run comes when its executions have
 * all reported or `summaryDeadlineMinutes` after its last report, so the alarm waits that many
 * windows plus the deadline. Every period must be missing a summary (treated as breaching), so one
 * summary anywhere in the span keeps it quiet.
 */
export function missedRunsAlarm(
  windowSeconds: number | undefined,
  missedWindows: number,
  summaryDeadlineMinutes: number,
): MissedRunsAlarm {
  if (windowSeconds === undefined) {
    return { kind: 'none', reason: 'a one-time schedule (at(...)) has no next window to miss' };
  }
  const wanted = missedWindows * windowSeconds + summaryDeadlineMinutes * MINUTE;
  if (windowSeconds + summaryDeadlineMinutes * MINUTE >= SEVEN_DAYS) {
    return {
      kind: 'none',
      reason: `one window (${Math.round(windowSeconds / HOUR)} h) plus the summary deadline is 7 days or more, longer than any CloudWatch alarm can look back`,
    };
  }
  const covered = Math.min(wanted, SEVEN_DAYS);
  // Under an hour: minute periods (at most a day in all). Otherwise hours (at most 7 days).
  const periodSeconds = covered <= HOUR ? MINUTE : HOUR;
  const evaluationPeriods = Math.ceil(covered / periodSeconds);
  return {
    kind: 'alarm',
    coveredSeconds: evaluationPeriods * periodSeconds,
    periodSeconds,
    evaluationPeriods,
    capped: wanted > SEVEN_DAYS,
  };
}

/** `52 hours`, `25 minutes`, `7 days`: for alarm descriptions. */
export function humanDuration(seconds: number): string {
  if (seconds % DAY === 0) return `${seconds / DAY} day${seconds === DAY ? '' : 's'}`;
  if (seconds % HOUR === 0) return `${seconds / HOUR} hour${seconds === HOUR ? '' : 's'}`;
  return `${Math.round(seconds / MINUTE)} minutes`;
}
