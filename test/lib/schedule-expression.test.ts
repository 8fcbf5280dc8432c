import { describe, expect, it } from 'vitest';
import { firstCronDay, longestGapSeconds, parseScheduleExpression } from '../../lib/schedule-expression';

const HOUR = 3600;
const DAY = 24 * HOUR;
const gap = (expression: string) => longestGapSeconds(parseScheduleExpression(expression), 2030, 8);

describe('schedule expressions', () => {
  it('reads rate expressions as their period', () => {
    expect(parseScheduleExpression('rate(1 minute)')).toMatchObject({ kind: 'rate', value: 1, seconds: 60 });
    expect(parseScheduleExpression('rate(12 hours)')).toMatchObject({ unit: 'hour', seconds: 12 * HOUR });
    expect(gap('rate(3 days)')).toBe(3 * DAY);
  });

  it('has no recurring window for a one-time schedule', () => {
    expect(parseScheduleExpression('at(2030-01-31T02:00:00)')).toEqual({
      kind: 'at',
      at: new Date('2030-01-31T02:00:00Z'),
    });
    expect(gap('at(2030-01-31T02:00:00)')).toBeUndefined();
  });

  it('finds the longest pause of a cron schedule', () => {
    expect(gap('cron(0 2 * * ? *)')).toBe(DAY);
    expect(gap('cron(0/15 * * * ? *)')).toBe(15 * 60);
    expect(gap('cron(0 2,14 * * ? *)')).toBe(12 * HOUR);
    // Weekdays only: Friday 02:00 to Monday 02:00.
    expect(gap('cron(0 2 ? * MON-FRI *)')).toBe(3 * DAY);
    expect(gap('cron(0 2 ? * 2-6 *)')).toBe(3 * DAY);
    // The first of each month: the longest month is 31 days.
    expect(gap('cron(0 2 1 * ? *)')).toBe(31 * DAY);
    // February 29th only: eight years from 2030 hold 2032 and 2036.
    expect(gap('cron(0 2 29 FEB ? *)')).toBe((365 * 4 + 1) * DAY);
    // Fires once in the span: no pause to measure.
    expect(gap('cron(0 2 1 1 ? 2031)')).toBeUndefined();
  });

  it('evaluates L, W and # the way the Scheduler documentation describes them', () => {
    const cron = (expression: string) => {
      const parsed = parseScheduleExpression(expression);
      if (parsed.kind !== 'cron') throw new Error('not a cron');
      return parsed.cron;
    };
    expect(cron('cron(0 2 L * ? *)').dayOfMonth).toEqual({ kind: 'last-day-of-month' });
    expect(cron('cron(0 2 3W * ? *)').dayOfMonth).toEqual({ kind: 'nearest-weekday', day: 3 });
    expect(cron('cron(0 2 ? * 3#2 *)').dayOfWeek).toEqual({ kind: 'nth-weekday', weekday: 3, nth: 2 });
    expect(cron('cron(0 2 ? * FRI#1 *)').dayOfWeek).toEqual({ kind: 'nth-weekday', weekday: 6, nth: 1 });
    expect(cron('cron(0 2 ? * 6L *)').dayOfWeek).toEqual({ kind: 'last-weekday-of-month', weekday: 6 });
    // Consecutive month ends are at most 31 days apart (e.g. July 31st to August 31st).
    expect(gap('cron(0 2 L * ? *)')).toBe(31 * DAY);
    // Second Tuesdays and last Fridays are four or five weeks apart.
    expect(gap('cron(0 2 ? * 3#2 *)')).toBe(35 * DAY);
    expect(gap('cron(0 2 ? * 6L *)')).toBe(35 * DAY);
    // The weekday nearest the 1st never leaves the month: a Friday 1st, then a Saturday 1st a
    // 31-day month later moves forward to Monday the 3rd, 33 days on.
    expect(gap('cron(0 2 1W * ? *)')).toBe(33 * DAY);
  });

  it('finds the first day a cron fires, or none when no day ever matches', () => {
    const cron = (expression: string) => {
      const parsed = parseScheduleExpression(expression);
      if (parsed.kind !== 'cron') throw new Error('not a cron');
      return parsed.cron;
    };
    const from = new Date('2026-12-02T21:45:00Z');
    expect(firstCronDay(cron('cron(0 2 * * ? *)'), from)).toBe('2026-12-02');
    expect(firstCronDay(cron('cron(0 2 1 * ? *)'), from)).toBe('2027-01-01');
    // February 29th: the next leap year.
    expect(firstCronDay(cron('cron(0 2 29 FEB ? *)'), from)).toBe('2028-02-29');
    expect(firstCronDay(cron('cron(0 18 ? * 6L 2030-2040)'), from)).toBe('2030-01-25');
    expect(firstCronDay(cron('cron(0 2 31 2 ? *)'), from)).toBeUndefined();
    expect(firstCronDay(cron('cron(0 2 31 APR,JUN,SEP,NOV ? *)'), from)).toBeUndefined();
    expect(firstCronDay(cron('cron(0 2 * * ? 2020-2025)'), from)).toBeUndefined();
  });
});
