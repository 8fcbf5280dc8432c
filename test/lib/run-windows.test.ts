import { describe, expect, it } from 'vitest';
import {
  humanDuration,
  missedRunsAlarm,
  runPeriodSeconds,
  scheduleWindowSeconds,
} from '../../lib/run-windows';

const HOUR = 3600;
const DAY = 24 * HOUR;

describe('run windows', () => {
  it('reads the window from the schedule, an hour longer in a time zone with daylight saving', () => {
    expect(scheduleWindowSeconds('cron(0 2 * * ? *)', 'UTC', 2030)).toBe(DAY);
    expect(scheduleWindowSeconds('cron(0 2 * * ? *)', 'Europe/Paris', 2030)).toBe(DAY + HOUR);
    expect(scheduleWindowSeconds('rate(6 hours)', 'UTC')).toBe(6 * HOUR);
    expect(scheduleWindowSeconds('at(2030-01-31T02:00:00)', 'UTC')).toBeUndefined();
  });

  it('makes one graph point one run: the window, between 5 minutes and a day', () => {
    expect(runPeriodSeconds(DAY)).toBe(DAY);
    expect(runPeriodSeconds(7 * DAY)).toBe(DAY);
    expect(runPeriodSeconds(60)).toBe(300);
    expect(runPeriodSeconds(6 * HOUR)).toBe(6 * HOUR);
    expect(runPeriodSeconds(undefined)).toBe(DAY);
  });

  it('waits N windows plus the summary deadline before "no run summary", in periods CloudWatch allows', () => {
    // Daily, 2 windows, 240-minute deadline: 52 hourly periods, all without a summary.
    expect(missedRunsAlarm(DAY, 2, 240)).toEqual({
      kind: 'alarm',
      coveredSeconds: 52 * HOUR,
      periodSeconds: HOUR,
      evaluationPeriods: 52,
      capped: false,
    });
    // Every minute with a 5-minute deadline: minute periods (the total stays under a day).
    expect(missedRunsAlarm(60, 2, 5)).toMatchObject({
      periodSeconds: 60,
      evaluationPeriods: 7,
      coveredSeconds: 420,
    });
    // Weekly: two windows are 14 days, cut to the 7 days an alarm can look back.
    expect(missedRunsAlarm(7 * DAY - 5 * HOUR, 2, 240)).toMatchObject({
      coveredSeconds: 7 * DAY,
      evaluationPeriods: 168,
      capped: true,
    });
    // A window of 7 days or more cannot be told apart from a stopped schedule.
    expect(missedRunsAlarm(31 * DAY, 2, 240)).toMatchObject({
      kind: 'none',
      reason: expect.stringMatching(/7 days or more/),
    });
    expect(missedRunsAlarm(undefined, 2, 240)).toMatchObject({
      kind: 'none',
      reason: expect.stringMatching(/one-time/),
    });
    // Period x evaluation periods stays within CloudWatch's limits in every case above.
    for (const [w, n, d] of [
      [DAY, 10, 2880],
      [60, 10, 2880],
      [300, 1, 5],
      [6 * HOUR, 3, 240],
    ] as const) {
      const a = missedRunsAlarm(w, n, d);
      if (a.kind !== 'alarm') throw new Error('expected an alarm');
      expect(a.periodSeconds * a.evaluationPeriods).toBeLessThanOrEqual(
        a.periodSeconds < HOUR ? DAY : 7 * DAY,
      );
    }
  });

  it('writes durations for people', () => {
    expect(humanDuration(52 * HOUR)).toBe('52 hours');
    expect(humanDuration(DAY)).toBe('1 day');
    expect(humanDuration(7 * DAY)).toBe('7 days');
    expect(humanDuration(420)).toBe('7 minutes');
  });
});
