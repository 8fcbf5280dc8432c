/**
 * EventBridge Scheduler schedule expressions, checked the way Scheduler checks them, so a bad
 * expression fails synth instead of a CloudFormation deployment.
 *
 * The rules, from the EventBridge Scheduler User Guide, "Schedule types on EventBridge Scheduler"
 * (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html), and the
 * ScheduleExpression field of the CreateSchedule API reference:
 * - `cron(minutes hours day-of-month month day-of-week year)`: six fields separated by white space.
 *   Minutes 0-59 (`, - * /`), hours 0-23 (`, - * /`), day-of-month 1-31 (`, - * ? / L W`), month
 *   1-12 or JAN-DEC (`, - * /`), day-of-week 1-7 or SUN-SAT (`, - * ? L #`), year 1970-2199
 *   (`, - * /`). Day-of-month and day-of-week cannot both be specified: a value or `*` in one needs
 *   `?` in the other. With `#`, day-of-week holds one expression only (`3#1,6#3` is invalid).
 * - `rate(value unit)`: a positive integer and minute | minutes | hour | hours | day | days. The
 *   unit is singular for 1 and plural otherwise ("rate(1 hours) and rate(5 hour) are not valid",
 *   EventBridge User Guide, "Rate expressions reference", the same grammar Scheduler accepts).
 * - `at(yyyy-mm-ddThh:mm:ss)`: one date and time, which must exist.
 */

export type RateUnit = 'minute' | 'hour' | 'day';

export type ScheduleExpression =
  | { readonly kind: 'cron'; readonly cron: CronSchedule }
  | { readonly kind: 'rate'; readonly value: number; readonly unit: RateUnit; readonly seconds: number }
  | { readonly kind: 'at'; readonly at: Date };

/** Why an expression is not one Scheduler accepts, in words an operator can act on. */
export class ScheduleExpressionError extends Error {
  override readonly name = 'ScheduleExpressionError';
}

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

interface FieldRule {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  /** Upper-case names for 1..n (month and day-of-week). */
  readonly names?: readonly string[];
  readonly wildcards: string;
}

const FIELDS: readonly FieldRule[] = [
  { name: 'minutes', min: 0, max: 59, wildcards: ', - * /' },
  { name: 'hours', min: 0, max: 23, wildcards: ', - * /' },
  { name: 'day-of-month', min: 1, max: 31, wildcards: ', - * ? / L W' },
  { name: 'month', min: 1, max: 12, names: MONTHS, wildcards: ', - * /' },
  { name: 'day-of-week', min: 1, max: 7, names: DAYS, wildcards: ', - * ? L #' },
  { name: 'year', min: 1970, max: 2199, wildcards: ', - * /' },
];

/** The days a day field selects, beyond a plain set of values. */
export type DayRule =
  | { readonly kind: 'any' } // `?`
  | { readonly kind: 'set'; readonly values: ReadonlySet<number> }
  | { readonly kind: 'last-day-of-month' } // day-of-month `L`
  | { readonly kind: 'nearest-weekday'; readonly day: number } // day-of-month `nW`
  | { readonly kind: 'last-weekday-of-month'; readonly weekday: number } // day-of-week `L` or `nL`
  | { readonly kind: 'nth-weekday'; readonly weekday: number; readonly nth: number }; // `n#k`

export interface CronSchedule {
  readonly minutes: ReadonlySet<number>;
  readonly hours: ReadonlySet<number>;
  readonly dayOfMonth: DayRule;
  readonly months: ReadonlySet<number>;
  readonly dayOfWeek: DayRule;
  readonly years: ReadonlySet<number>;
}

function fail(message: string): never {
  throw new ScheduleExpressionError(message);
}

function allowedText(rule: FieldRule): string {
  const names = rule.names ? ` or ${rule.names[0]}-${rule.names[rule.names.length - 1]}` : '';
  return `${rule.min}-${rule.max}${names}, wildcards ${rule.wildcards}`;
}

function fieldValue(text: string, rule: FieldRule, whole: string): number {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n < rule.min || n > rule.max) {
      fail(`${rule.name} value ${n} in "${whole}" is out of range (${allowedText(rule)})`);
    }
    return n;
  }
  const named = rule.names?.indexOf(text) ?? -1;
  if (named >= 0) return named + 1;
  return fail(`${rule.name} has "${text}" in "${whole}" (${allowedText(rule)})`);
}

/** `*`, `n`, `a-b`, each optionally followed by `/step` (fields that allow `/`). */
function plainItem(item: string, rule: FieldRule, whole: string): number[] {
  const [base, step, extra] = item.split('/');
  if (extra !== undefined) fail(`${rule.name} item "${item}" has more than one "/"`);
  if (step !== undefined && !rule.wildcards.includes('/')) {
    fail(`${rule.name} does not take "/" (${allowedText(rule)})`);
  }
  let low: number;
  let high: number;
  if (base === '*') {
    low = rule.min;
    high = rule.max;
  } else if (base.includes('-')) {
    const [a, b, more] = base.split('-');
    if (more !== undefined || !a || !b) fail(`${rule.name} range "${base}" is not low-high`);
    low = fieldValue(a, rule, whole);
    high = fieldValue(b, rule, whole);
    if (low > high) fail(`${rule.name} range "${base}" runs backwards: write the low value first`);
  } else {
    low = fieldValue(base, rule, whole);
    // `n/step` starts at n and runs to the end of the range.
    high = step !== undefined ? rule.max : low;
  }
  let increment = 1;
  if (step !== undefined) {
    if (!/^[1-9]\d*$/.test(step)) fail(`${rule.name} increment "/${step}" is not a positive whole number`);
    increment = Number(step);
  }
  const values: number[] = [];
  for (let v = low; v <= high; v += increment) values.push(v);
  return values;
}

function plainField(text: string, rule: FieldRule): Set<number> {
  const values = new Set<number>();
  for (const item of text.split(',')) {
    if (item === '') fail(`${rule.name} "${text}" has an empty list item`);
    for (const v of plainItem(item, rule, text)) values.add(v);
  }
  return values;
}

function dayOfMonth(text: string, rule: FieldRule): DayRule {
  if (text === '?') return { kind: 'any' };
  if (text === 'L') return { kind: 'last-day-of-month' };
  const weekday = /^(\d+)W$/.exec(text);
  if (weekday) return { kind: 'nearest-weekday', day: fieldValue(weekday[1] as string, rule, text) };
  if (/[?LW]/.test(text)) {
    fail(`day-of-month "${text}": ?, L and nW stand alone, not in a list or range (${allowedText(rule)})`);
  }
  return { kind: 'set', values: plainField(text, rule) };
}

function dayOfWeek(text: string, rule: FieldRule): DayRule {
  if (text === '?') return { kind: 'any' };
  if (text === 'L') return { kind: 'last-weekday-of-month', weekday: 7 };
  const last = /^([A-Z]{3}|\d+)L$/.exec(text);
  if (last) return { kind: 'last-weekday-of-month', weekday: fieldValue(last[1] as string, rule, text) };
  if (text.includes('#')) {
    const nth = /^([A-Z]{3}|\d+)#([1-5])$/.exec(text);
    if (!nth) {
      fail(
        `day-of-week "${text}": with # the field holds one expression, weekday#n with n 1-5 (e.g. 3#2, the second Tuesday)`,
      );
    }
    return { kind: 'nth-weekday', weekday: fieldValue(nth[1] as string, rule, text), nth: Number(nth[2]) };
  }
  if (/[?L]/.test(text)) {
    fail(`day-of-week "${text}": ? and L stand alone, not in a list or range (${allowedText(rule)})`);
  }
  if (text.includes('/')) fail(`day-of-week does not take "/" (${allowedText(rule)})`);
  return { kind: 'set', values: plainField(text, rule) };
}

function parseCron(body: string): CronSchedule {
  const fields = body.trim().split(/\s+/);
  if (fields.length !== 6) {
    fail(
      `cron needs six fields (minutes hours day-of-month month day-of-week year), got ${fields.length}; e.g. cron(0 2 * * ? *)`,
    );
  }
  const [min, hour, dom, month, dow, year] = fields as [string, string, string, string, string, string];
  for (const [i, text] of fields.entries()) {
    const rule = FIELDS[i] as FieldRule;
    if (text.includes('?') && rule.name !== 'day-of-month' && rule.name !== 'day-of-week') {
      fail(`${rule.name} cannot be "?": only day-of-month and day-of-week take it`);
    }
  }
  if ((dom === '?') === (dow === '?')) {
    fail(
      `exactly one of day-of-month ("${dom}") and day-of-week ("${dow}") must be "?": a value or * in one needs ? in the other`,
    );
  }
  return {
    minutes: plainField(min, FIELDS[0] as FieldRule),
    hours: plainField(hour, FIELDS[1] as FieldRule),
    dayOfMonth: dayOfMonth(dom, FIELDS[2] as FieldRule),
    months: plainField(month, FIELDS[3] as FieldRule),
    dayOfWeek: dayOfWeek(dow, FIELDS[4] as FieldRule),
    years: plainField(year, FIELDS[5] as FieldRule),
  };
}

const UNIT_SECONDS: Record<RateUnit, number> = { minute: 60, hour: 3600, day: 86_400 };

function parseRate(body: string): ScheduleExpression {
  const match = /^([0-9]+) (minute|minutes|hour|hours|day|days)$/.exec(body);
  if (!match) {
    fail(
      'rate needs a positive whole number, one space and minute(s), hour(s) or day(s), e.g. rate(12 hours)',
    );
  }
  const [, digits, word] = match as unknown as [string, string, string];
  if (!/^[1-9]\d*$/.test(digits)) fail(`rate value "${digits}" is not a positive whole number`);
  const value = Number(digits);
  const unit = word.replace(/s$/, '') as RateUnit;
  const plural = word.endsWith('s');
  if (value === 1 && plural) fail(`rate(1 ${word}) takes the singular unit: rate(1 ${unit})`);
  if (value > 1 && !plural) fail(`rate(${value} ${word}) takes the plural unit: rate(${value} ${unit}s)`);
  return { kind: 'rate', value, unit, seconds: value * UNIT_SECONDS[unit] };
}

function parseAt(body: string): ScheduleExpression {
  const match = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)$/.exec(body);
  if (!match) fail('at needs yyyy-mm-ddThh:mm:ss, e.g. at(2030-01-31T02:00:00)');
  const [y, mo, d, h, mi, s] = (match as RegExpExecArray).slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const at = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  if (
    at.getUTCFullYear() !== y ||
    at.getUTCMonth() !== mo - 1 ||
    at.getUTCDate() !== d ||
    at.getUTCHours() !== h ||
    at.getUTCMinutes() !== mi ||
    at.getUTCSeconds() !== s
  ) {
    fail(`at(${body}) is not a real date and time`);
  }
  return { kind: 'at', at };
}

/** Parses an expression as Scheduler would accept it; throws ScheduleExpressionError saying why not. */
export function parseScheduleExpression(expression: string): ScheduleExpression {
  const match = /^(cron|rate|at)\((.*)\)$/.exec(expression);
  if (!match) fail('the expression is cron(...), rate(...) or at(...), with nothing around it');
  const [, kind, body] = match as unknown as [string, 'cron' | 'rate' | 'at', string];
  if (kind === 'cron') return { kind: 'cron', cron: parseCron(body) };
  return kind === 'rate' ? parseRate(body) : parseAt(body);
}

// ---------------------------------------------------------------------------------------------
// When a cron fires: enough of its meaning to know the longest pause between two runs.

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** Day of week of a date, 1 = SUN ... 7 = SAT as in the cron field. */
function weekdayOf(year: number, month: number, day: number): number {
  return new Date(Date.UTC(year, month - 1, day)).getUTCDay() + 1;
}

function nearestWeekday(year: number, month: number, day: number): number {
  const last = daysInMonth(year, month);
  const d = Math.min(day, last);
  const wd = weekdayOf(year, month, d);
  if (wd === 7) return d === 1 ? 3 : d - 1; // Saturday: Friday, unless that leaves the month
  if (wd === 1) return d === last ? d - 2 : d + 1; // Sunday: Monday, unless that leaves the month
  return d;
}

/** A set in the day-of-month field holds days of the month, in the day-of-week field weekdays. */
function dayMatches(
  rule: DayRule,
  field: 'month' | 'week',
  year: number,
  month: number,
  day: number,
): boolean {
  switch (rule.kind) {
    case 'any':
      return true;
    case 'set':
      return rule.values.has(field === 'month' ? day : weekdayOf(year, month, day));
    case 'last-day-of-month':
      return day === daysInMonth(year, month);
    case 'nearest-weekday':
      return day === nearestWeekday(year, month, rule.day);
    case 'last-weekday-of-month':
      return weekdayOf(year, month, day) === rule.weekday && day + 7 > daysInMonth(year, month);
    case 'nth-weekday':
      return weekdayOf(year, month, day) === rule.weekday && Math.ceil(day / 7) === rule.nth;
  }
}

function cronDayMatches(cron: CronSchedule, year: number, month: number, day: number): boolean {
  // Exactly one of the two fields is `?`, which matches every day.
  return (
    dayMatches(cron.dayOfMonth, 'month', year, month, day) &&
    dayMatches(cron.dayOfWeek, 'week', year, month, day)
  );
}

/**
 * The first day, on or after `from`'s UTC date, on which a cron schedule fires (as `yyyy-mm-dd`),
 * looking up to the last year a cron can name (2199); undefined when no day matches, as with
 * `cron(0 2 31 2 ? *)` or a year range that has passed. Scheduler accepts such an expression and
 * never invokes the target, so config refuses it. Days only: the schedule's time zone moves a run by
 * hours, never from "some day" to "no day".
 */
export function firstCronDay(cron: CronSchedule, from: Date): string | undefined {
  const startYear = from.getUTCFullYear();
  for (let year = startYear; year <= 2199; year++) {
    if (!cron.years.has(year)) continue;
    for (let month = year === startYear ? from.getUTCMonth() + 1 : 1; month <= 12; month++) {
      if (!cron.months.has(month)) continue;
      const first = year === startYear && month === from.getUTCMonth() + 1 ? from.getUTCDate() : 1;
      for (let day = first; day <= daysInMonth(year, month); day++) {
        if (cronDayMatches(cron, year, month, day)) {
          return `${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
        }
      }
    }
  }
  return undefined;
}

/**
 * The longest pause, in seconds, between two consecutive runs of a recurring schedule, read in
 * wall-clock time (a time zone's daylight-saving shift can move it by an hour) over `years` years
 * from January of `fromYear`; undefined for a one-time schedule or a cron that fires fewer than
 * twice in that span.
 */
export function longestGapSeconds(
  schedule: ScheduleExpression,
  fromYear = new Date().getUTCFullYear(),
  years = 8,
): number | undefined {
  if (schedule.kind === 'rate') return schedule.seconds;
  if (schedule.kind === 'at') return undefined;
  const { cron } = schedule;
  const minutes = [...cron.minutes].sort((a, b) => a - b);
  const hours = [...cron.hours].sort((a, b) => a - b);
  let previous: number | undefined;
  let longest: number | undefined;
  for (let year = fromYear; year < fromYear + years; year++) {
    if (!cron.years.has(year)) continue;
    for (let month = 1; month <= 12; month++) {
      if (!cron.months.has(month)) continue;
      const last = daysInMonth(year, month);
      for (let day = 1; day <= last; day++) {
        if (!cronDayMatches(cron, year, month, day)) continue;
        const midnight = Date.UTC(year, month - 1, day) / 1000;
        for (const hour of hours) {
          for (const minute of minutes) {
            const at = midnight + hour * 3600 + minute * 60;
            if (previous !== undefined) longest = Math.max(longest ?? 0, at - previous);
            previous = at;
          }
        }
      }
    }
  }
  return longest;
}
