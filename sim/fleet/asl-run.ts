/**
 * A small interpreter of the synthesized state machine (JSONPath ASL) on a virtual clock, for the
 * fleet benchmark: aws-local-stepfunctions (sim/workflow-sim.ts) runs one execution faithfully
 * but on real timers and with too much per-execution state for 50,000 at once. This one runs the
 * real definition's states, Choice rules, Retry (interval, backoff, max delay, full jitter), Catch,
 * Parameters, ResultSelector and ResultPath, and charges every state entered to a state-transition
 * bucket before it runs. Task states call handlers by state name, which run the real freeze-filesystems,
 * start-backup, wait-for-command and record-outcome logic. It supports what lib/workflow.ts renders (States.Array, States.Format,
 * IsPresent/BooleanEquals/StringEquals/And/Or/Not) and refuses anything else loudly. Task
 * TimeoutSeconds are not enforced: the handlers bound their own waits (their budget deadlines).
 */

import type { Asl } from '../asl';
import type { Clock } from './virtual-clock';

// biome-ignore lint/suspicious/noExplicitAny: ASL and state data are free-form JSON.
type Json = any;

export class StatesError extends Error {
  constructor(
    name: string,
    readonly cause_: string,
  ) {
    super(cause_);
    this.name = name;
  }
}

export interface ExecutionContext {
  readonly name: string;
  readonly arn: string;
  readonly startTime: string;
}

export interface AslRunOptions {
  readonly clock: Clock;
  readonly random: () => number;
  /** Called before a state runs; resolves when Step Functions would let the transition happen. */
  readonly enter: (state: string) => Promise<void>;
  /** Task handlers by state name: Parameters in, result out; errors by `name`. */
  readonly tasks: Readonly<Record<string, (input: Json) => Promise<Json>>>;
}

export interface AslResult {
  readonly status: 'SUCCEEDED' | 'FAILED';
  readonly output: Json;
  readonly error?: string;
  readonly states: number;
}

function getPath(data: Json, path: string, ctx: Json): Json {
  let root = data;
  let rest: string;
  if (path.startsWith('$$')) {
    root = ctx;
    rest = path.slice(2);
  } else if (path.startsWith('$')) rest = path.slice(1);
  else throw new Error(`asl-run: unsupported path ${path}`);
  const parts = rest.match(/\.[A-Za-z0-9_-]+|\[\d+\]/g) ?? [];
  if (parts.join('') !== rest) throw new Error(`asl-run: unsupported path ${path}`);
  let v = root;
  for (const p of parts) {
    if (v === undefined || v === null) return undefined;
    v = p.startsWith('[') ? v[Number(p.slice(1, -1))] : v[p.slice(1)];
  }
  return v;
}

function present(data: Json, path: string): boolean {
  return getPath(data, path, {}) !== undefined;
}

function setPath(data: Json, path: string | null | undefined, value: Json): Json {
  if (path === null) return data;
  if (path === undefined || path === '$') return value;
  const keys = path.slice(2).split('.');
  const out = { ...(data ?? {}) };
  let cur = out;
  for (let i = 0; i < keys.length - 1; i++) {
    cur[keys[i]] = { ...(cur[keys[i]] ?? {}) };
    cur = cur[keys[i]];
  }
  cur[keys[keys.length - 1]] = value;
  return out;
}

function intrinsic(expr: string, data: Json, ctx: Json): Json {
  const m = /^States\.(Array|Format)\((.*)\)$/s.exec(expr);
  if (!m) throw new Error(`asl-run: unsupported intrinsic ${expr}`);
  const args: string[] = [];
  let depth = 0;
  let cur = '';
  let quoted = false;
  for (let i = 0; i < m[2].length; i++) {
    const c = m[2][i];
    if (c === "'" && m[2][i - 1] !== '\\') quoted = !quoted;
    if (!quoted && c === '(') depth++;
    if (!quoted && c === ')') depth--;
    if (!quoted && depth === 0 && c === ',') {
      args.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  if (cur.trim() !== '') args.push(cur.trim());
  const value = (a: string) =>
    a.startsWith("'")
      ? a.slice(1, -1).replace(/\\'/g, "'")
      : a.startsWith('States.')
        ? intrinsic(a, data, ctx)
        : getPath(data, a, ctx);
  if (m[1] === 'Array') return args.map(value);
  const [fmt, ...rest] = args.map(value);
  let k = 0;
  return String(fmt).replace(/\{\}/g, () => String(rest[k++]));
}

function resolve(template: Json, data: Json, ctx: Json): Json {
  if (Array.isArray(template)) return template.map((t) => resolve(t, data, ctx));
  if (template === null || typeof template !== 'object') return template;
  const out: Json = {};
  for (const [k, v] of Object.entries(template)) {
    if (k.endsWith('.$')) {
      const expr = v as string;
      out[k.slice(0, -2)] = expr.startsWith('States.')
        ? intrinsic(expr, data, ctx)
        : getPath(data, expr, ctx);
    } else out[k] = resolve(v, data, ctx);
  }
  return out;
}

function rule(r: Json, data: Json): boolean {
  if (r.And) return r.And.every((x: Json) => rule(x, data));
  if (r.Or) return r.Or.some((x: Json) => rule(x, data));
  if (r.Not) return !rule(r.Not, data);
  if ('IsPresent' in r) return present(data, r.Variable) === r.IsPresent;
  const v = getPath(data, r.Variable, {});
  if ('BooleanEquals' in r) return v === r.BooleanEquals;
  if ('StringEquals' in r) return v === r.StringEquals;
  if ('IsString' in r) return (typeof v === 'string') === r.IsString;
  if ('IsNumeric' in r) return (typeof v === 'number') === r.IsNumeric;
  if ('IsBoolean' in r) return (typeof v === 'boolean') === r.IsBoolean;
  if ('IsNull' in r) return (v === null) === r.IsNull;
  // States Language timestamps: RFC 3339 with an uppercase T and Z or an offset.
  if ('IsTimestamp' in r)
    return (
      (typeof v === 'string' &&
        /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(v) &&
        !Number.isNaN(Date.parse(v))) === r.IsTimestamp
    );
  if ('StringMatches' in r) return typeof v === 'string' && globMatch(r.StringMatches, v);
  if ('NumericGreaterThan' in r) return typeof v === 'number' && v > r.NumericGreaterThan;
  if ('NumericGreaterThanEquals' in r) return typeof v === 'number' && v >= r.NumericGreaterThanEquals;
  if ('NumericLessThanEquals' in r) return typeof v === 'number' && v <= r.NumericLessThanEquals;
  throw new Error(`asl-run: unsupported Choice rule ${JSON.stringify(r)}`);
}

/** StringMatches: `*` matches any run of characters; a backslash makes the next character literal. */
function globMatch(pattern: string, value: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i];
    if (c === '\\' && i + 1 < pattern.length) {
      i += 1;
      re += pattern[i].replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    } else if (c === '*') re += '[\\s\\S]*';
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`).test(value);
}

function matches(errorEquals: readonly string[], name: string): boolean {
  return errorEquals.includes(name) || (errorEquals.includes('States.ALL') && name !== 'States.Runtime');
}

/** Runs one execution of `def` from `input` to its end. */
export async function runAsl(
  def: Pick<Asl, 'StartAt' | 'States'>,
  input: Json,
  execution: ExecutionContext,
  o: AslRunOptions,
): Promise<AslResult> {
  let states = 0;
  const ctxFor = (state: string) => ({
    Execution: { Id: execution.arn, Name: execution.name, StartTime: execution.startTime },
    State: { Name: state, EnteredTime: new Date(o.clock.now()).toISOString() },
  });

  const runMachine = async (machine: Pick<Asl, 'StartAt' | 'States'>, start: Json): Promise<Json> => {
    let name: string = machine.StartAt;
    let data = start;
    for (;;) {
      const st = machine.States[name];
      if (!st) throw new Error(`asl-run: no state ${name}`);
      await o.enter(name);
      states++;
      const ctx = ctxFor(name);
      let next: string | undefined = st.Next;
      switch (st.Type) {
        case 'Wait': {
          const until =
            typeof st.Seconds === 'number'
              ? o.clock.now() + st.Seconds * 1000
              : Date.parse(getPath(data, st.TimestampPath, ctx));
          await o.clock.sleep(Math.max(0, until - o.clock.now()));
          break;
        }
        case 'Pass':
          data = setPath(data, st.ResultPath, st.Result !== undefined ? st.Result : data);
          break;
        case 'Choice': {
          const hit = (st.Choices as Json[]).find((c) => rule(c, data));
          next = hit ? hit.Next : st.Default;
          if (!next) throw new StatesError('States.NoChoiceMatched', name);
          break;
        }
        case 'Succeed':
          return data;
        case 'Fail':
          throw new StatesError(
            st.Error ?? (st.ErrorPath ? String(getPath(data, st.ErrorPath, ctx)) : 'States.Fail'),
            st.Cause ?? (st.CausePath ? String(getPath(data, st.CausePath, ctx)) : ''),
          );
        case 'Task':
        case 'Parallel': {
          const attempt = async (): Promise<Json> => {
            if (st.Type === 'Parallel') {
              const results = [];
              for (const b of st.Branches as Json[]) results.push(await runMachine(b, data));
              return st.ResultSelector ? resolve(st.ResultSelector, results, ctx) : results;
            }
            const handler = o.tasks[name];
            if (!handler) throw new Error(`asl-run: no handler for task ${name}`);
            const params = st.Parameters ? resolve(st.Parameters, data, ctx) : data;
            const result = await handler(params);
            return st.ResultSelector ? resolve(st.ResultSelector, result, ctx) : result;
          };
          const retries = new Map<Json, number>();
          for (;;) {
            try {
              data = setPath(data, st.ResultPath, await attempt());
              break;
            } catch (err) {
              const errName = (err as Error).name || 'Error';
              if (
                errName === 'Error' &&
                !(err instanceof StatesError) &&
                /^asl-run:/.test((err as Error).message)
              )
                throw err;
              const retrier = ((st.Retry ?? []) as Json[]).find((r) => matches(r.ErrorEquals, errName));
              const used = retrier ? (retries.get(retrier) ?? 0) : 0;
              if (retrier && used < (retrier.MaxAttempts ?? 3)) {
                retries.set(retrier, used + 1);
                const base = (retrier.IntervalSeconds ?? 1) * (retrier.BackoffRate ?? 2) ** used;
                const capped = Math.min(base, retrier.MaxDelaySeconds ?? Number.POSITIVE_INFINITY);
                const delay = retrier.JitterStrategy === 'FULL' ? o.random() * capped : capped;
                await o.clock.sleep(delay * 1000);
                continue;
              }
              const catcher = ((st.Catch ?? []) as Json[]).find((c) => matches(c.ErrorEquals, errName));
              if (!catcher) throw err;
              data = setPath(data, catcher.ResultPath, {
                Error: errName,
                Cause: (err as StatesError).cause_ ?? (err as Error).message,
              });
              next = catcher.Next;
              break;
            }
          }
          break;
        }
        default:
          throw new Error(`asl-run: unsupported state type ${st.Type}`);
      }
      if (!next) return data;
      name = next;
    }
  };

  try {
    const output = await runMachine(def, input);
    return { status: 'SUCCEEDED', output, states };
  } catch (err) {
    if (!(err instanceof StatesError)) throw err;
    return { status: 'FAILED', output: undefined, error: err.name, states };
  }
}
