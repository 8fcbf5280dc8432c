/**
 * A small interpreter of Amazon States Language (JSONPath) on a virtual clock, for the fault suite:
 * aws-local-stepfunctions takes ~35 ms per run of the workflow (JSONPath library, schema checks
 * of every Parallel branch on every run), so 10,000 fault schedules would take minutes. This one
 * implements what the synthesized workflow uses, after the Amazon States Language specification
 * and the Step Functions developer guide ("Error handling", "Intrinsic functions", "Choice"):
 * Task, Pass, Wait, Choice, Parallel, Succeed, Fail; InputPath, Parameters, ResultSelector,
 * ResultPath, OutputPath; Retry (IntervalSeconds, MaxAttempts, BackoffRate, MaxDelaySeconds,
 * JitterStrategy) and Catch, with States.ALL and States.TaskFailed as the guide defines them
 * (neither matches States.Runtime; States.TaskFailed does not match States.Timeout); a path that
 * is missing where a value is required is an uncatchable States.Runtime error, as in Step
 * Functions. Anything else (a state type, an operator, an intrinsic it does not know) throws, so
 * a definition that outgrows it is noticed, never run wrongly. test/workflow/faults.test.ts runs
 * the same schedules through both engines and requires the same states, outputs and effects.
 */

// biome-ignore lint/suspicious/noExplicitAny: ASL and state data are free-form JSON.
type Json = any;

export class AslError extends Error {
  constructor(
    name: string,
    readonly cause_: string,
  ) {
    super(cause_);
    this.name = name;
  }
}

export interface TaskContext {
  readonly state: string;
  readonly resource: string;
  readonly timeoutSeconds?: number;
}

export interface AslRunOptions {
  /** Task handlers by state name. */
  readonly handlers: Readonly<Record<string, (input: Json, ctx: TaskContext) => Promise<Json>>>;
  readonly execution: { readonly Id: string; readonly Name: string };
  readonly now: () => number;
  /** Advance the virtual clock (retry intervals, waits). */
  readonly sleep: (ms: number) => void;
  readonly random: () => number;
  readonly onStateEntered?: (name: string) => void;
}

export interface AslRunResult {
  readonly status: 'SUCCEEDED' | 'FAILED';
  readonly output?: Json;
  readonly error?: string;
  readonly cause?: string;
}

const runtime = (msg: string) => new AslError('States.Runtime', msg);
const clone = (v: Json): Json => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

/*
 * State data is never changed in place: a state's output is built from new objects along the path
 * it changes and shares the rest with its input (Parameters, ResultSelector and ResultPath copy
 * only what they rewrite). What leaves the interpreter or enters from outside is copied: the
 * execution input, each task handler's input and output.
 */

/** `$`, `$.a.b`, `$[0].a`, `$$.Execution.Name`: the reference paths ASL allows in these fields. */
function segments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  const re = /\.([A-Za-z0-9_:-]+)|\[(\d+)\]|\['([^']*)'\]/gy;
  re.lastIndex = path.startsWith('$$') ? 2 : 1;
  if (!path.startsWith('$')) throw runtime(`not a reference path: ${path}`);
  while (re.lastIndex < path.length) {
    const at = re.lastIndex;
    const m = re.exec(path);
    if (!m || m.index !== at) throw new Error(`sim ASL: unsupported path ${path}`);
    out.push(m[1] ?? (m[2] !== undefined ? Number(m[2]) : m[3]));
  }
  return out;
}

const pathCache = new Map<string, (string | number)[]>();
function lookup(path: string, data: Json, ctx: Json): { found: boolean; value?: Json } {
  let segs = pathCache.get(path);
  if (!segs) {
    segs = segments(path);
    pathCache.set(path, segs);
  }
  let v = path.startsWith('$$') ? ctx : data;
  for (const s of segs) {
    if (v === null || typeof v !== 'object' || !(s in v)) return { found: false };
    v = v[s as keyof typeof v];
  }
  return { found: true, value: v };
}

function required(path: string, data: Json, ctx: Json): Json {
  const r = lookup(path, data, ctx);
  if (!r.found) throw runtime(`The JSONPath '${path}' could not be found in the input`);
  return r.value;
}

// ---- intrinsic functions ----

function splitArgs(text: string): string[] {
  const args: string[] = [];
  let depth = 0;
  let quoted = false;
  let cur = '';
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      cur += c;
      if (c === '\\') {
        cur += text[i + 1] ?? '';
        i += 1;
      } else if (c === "'") quoted = false;
      continue;
    }
    if (c === "'") quoted = true;
    if (c === '(') depth += 1;
    if (c === ')') depth -= 1;
    if (c === ',' && depth === 0) {
      args.push(cur.trim());
      cur = '';
      continue;
    }
    cur += c;
  }
  if (cur.trim()) args.push(cur.trim());
  return args;
}

function unescapeLiteral(s: string): string {
  return s.replace(/\\(.)/g, '$1');
}

function intrinsic(expr: string, data: Json, ctx: Json): Json {
  const m = /^States\.([A-Za-z]+)\(([\s\S]*)\)$/.exec(expr.trim());
  if (!m) return required(expr.trim(), data, ctx);
  const args = splitArgs(m[2]).map((a) => {
    if (a.startsWith("'")) return unescapeLiteral(a.slice(1, -1));
    if (a.startsWith('$')) return required(a, data, ctx);
    if (a.startsWith('States.')) return intrinsic(a, data, ctx);
    return JSON.parse(a);
  });
  switch (m[1]) {
    case 'Array':
      return args;
    case 'Format': {
      const [fmt, ...rest] = args as [string, ...Json[]];
      let i = 0;
      return fmt.replace(/\{\}/g, () => {
        const v = rest[i];
        i += 1;
        if (typeof v === 'object' && v !== null) throw runtime('States.Format takes no object or array');
        return String(v);
      });
    }
    case 'JsonToString':
      return JSON.stringify(args[0]);
    case 'StringToJson':
      return JSON.parse(String(args[0]));
    case 'ArrayLength':
      return (args[0] as Json[]).length;
    case 'ArrayContains':
      return (args[0] as Json[]).some((x) => JSON.stringify(x) === JSON.stringify(args[1]));
    case 'ArrayGetItem':
      return (args[0] as Json[])[args[1] as number];
    case 'MathAdd':
      return (args[0] as number) + (args[1] as number);
    case 'StringSplit':
      return String(args[0])
        .split(new RegExp(`[${String(args[1]).replace(/[\]\\^-]/g, '\\$&')}]`))
        .filter((s) => s !== '');
    default:
      throw new Error(`sim ASL: unsupported intrinsic States.${m[1]}`);
  }
}

/** Parameters, ResultSelector: keys ending in `.$` take a path or an intrinsic. */
function template(t: Json, data: Json, ctx: Json): Json {
  if (Array.isArray(t)) return t.map((x) => template(x, data, ctx));
  if (t === null || typeof t !== 'object') return t;
  const out: Record<string, Json> = {};
  for (const [k, v] of Object.entries(t)) {
    if (k.endsWith('.$')) out[k.slice(0, -2)] = intrinsic(String(v), data, ctx);
    else out[k] = template(v, data, ctx);
  }
  return out;
}

function applyResultPath(resultPath: Json, input: Json, result: Json): Json {
  if (resultPath === null) return input;
  const path = resultPath ?? '$';
  if (path === '$') return result;
  let segs = pathCache.get(path);
  if (!segs) {
    segs = segments(path);
    pathCache.set(path, segs);
  }
  // Copy the objects along the path (what a deep copy would have changed); share the rest.
  const copy = (o: Json): Json => (Array.isArray(o) ? [...o] : { ...o });
  if (input !== undefined && (input === null || typeof input !== 'object'))
    throw runtime(`cannot apply ResultPath ${path}`);
  const out = input === undefined || input === null ? {} : copy(input);
  let o = out;
  for (const s of segs.slice(0, -1)) {
    o[s] = o[s] === undefined || o[s] === null || typeof o[s] !== 'object' ? {} : copy(o[s]);
    o = o[s];
  }
  o[segs[segs.length - 1]] = result;
  return out;
}

function inputOf(st: Json, raw: Json, ctx: Json): Json {
  let v = raw;
  if (st.InputPath === null) v = {};
  else if (st.InputPath !== undefined && st.InputPath !== '$') v = required(st.InputPath, raw, ctx);
  if (st.Parameters !== undefined) v = template(st.Parameters, v, ctx);
  return v;
}

function outputOf(st: Json, v: Json, ctx: Json): Json {
  if (st.OutputPath === null) return {};
  if (st.OutputPath !== undefined && st.OutputPath !== '$') return required(st.OutputPath, v, ctx);
  return v;
}

// ---- Choice ----

const isTimestamp = (v: Json) =>
  typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(v);

function wildcard(pattern: string, s: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i];
    if (c === '\\' && i + 1 < pattern.length) {
      re += pattern[i + 1].replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      i += 1;
    } else if (c === '*') re += '.*';
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`${re}$`, 's').test(s);
}

function condition(c: Json, data: Json, ctx: Json): boolean {
  if (c.And) return (c.And as Json[]).every((x) => condition(x, data, ctx));
  if (c.Or) return (c.Or as Json[]).some((x) => condition(x, data, ctx));
  if (c.Not) return !condition(c.Not, data, ctx);
  const ops = Object.keys(c).filter((k) => k !== 'Variable' && k !== 'Next');
  if (ops.length !== 1) throw new Error(`sim ASL: unsupported choice rule ${JSON.stringify(c)}`);
  const op = ops[0];
  const got = lookup(c.Variable, data, ctx);
  if (op === 'IsPresent') return got.found === c.IsPresent;
  if (!got.found)
    throw runtime(
      `Invalid path '${c.Variable}': The choice state's condition path references an invalid value.`,
    );
  const v = got.value;
  const byPath = op.endsWith('Path');
  const base = byPath ? op.slice(0, -4) : op;
  const want = byPath ? required(c[op], data, ctx) : c[op];
  switch (base) {
    case 'IsNull':
      return (v === null) === want;
    case 'IsString':
      return (typeof v === 'string') === want;
    case 'IsNumeric':
      return (typeof v === 'number') === want;
    case 'IsBoolean':
      return (typeof v === 'boolean') === want;
    case 'IsTimestamp':
      return isTimestamp(v) === want;
    case 'BooleanEquals':
      return typeof v === 'boolean' && v === want;
    case 'StringMatches':
      return typeof v === 'string' && wildcard(want, v);
  }
  const cmp =
    /^(String|Numeric|Timestamp)(Equals|LessThan|GreaterThan|LessThanEquals|GreaterThanEquals)$/.exec(base);
  if (!cmp) throw new Error(`sim ASL: unsupported choice operator ${op}`);
  let a: number | string;
  let b: number | string;
  if (cmp[1] === 'String') {
    if (typeof v !== 'string' || typeof want !== 'string') return false;
    [a, b] = [v, want];
  } else if (cmp[1] === 'Numeric') {
    if (typeof v !== 'number' || typeof want !== 'number') return false;
    [a, b] = [v, want];
  } else {
    if (!isTimestamp(v) || !isTimestamp(want)) return false;
    [a, b] = [Date.parse(v), Date.parse(want)];
  }
  switch (cmp[2]) {
    case 'Equals':
      return a === b;
    case 'LessThan':
      return a < b;
    case 'GreaterThan':
      return a > b;
    case 'LessThanEquals':
      return a <= b;
    default:
      return a >= b;
  }
}

// ---- errors ----

function matches(errorEquals: readonly string[], name: string): boolean {
  if (name === 'States.Runtime' || name === 'States.DataLimitExceeded') return false;
  return errorEquals.some(
    (e) => e === name || e === 'States.ALL' || (e === 'States.TaskFailed' && name !== 'States.Timeout'),
  );
}

function asAslError(err: unknown): AslError {
  if (err instanceof AslError) return err;
  const e = err as Error;
  return new AslError(e?.name || 'Error', e?.message ?? String(err));
}

// ---- the machine ----

export async function runAsl(asl: Json, input: Json, opts: AslRunOptions): Promise<AslRunResult> {
  const startMs = opts.now();
  const ctxBase = {
    Execution: {
      Id: opts.execution.Id,
      Name: opts.execution.Name,
      StartTime: new Date(startMs).toISOString(),
      Input: clone(input),
    },
  };
  const deadline = asl.TimeoutSeconds ? startMs + asl.TimeoutSeconds * 1000 : Infinity;
  try {
    const output = await runStates(asl, clone(input), opts, ctxBase, deadline);
    return { status: 'SUCCEEDED', output };
  } catch (err) {
    const e = asAslError(err);
    return { status: 'FAILED', error: e.name, cause: e.cause_ };
  }
}

async function runStates(
  machine: Json,
  input: Json,
  opts: AslRunOptions,
  ctxBase: Json,
  deadline: number,
): Promise<Json> {
  let name: string = machine.StartAt;
  let data = input;
  for (let transitions = 0; ; transitions += 1) {
    if (transitions > 10_000) throw new Error('sim ASL: more than 10,000 transitions');
    if (opts.now() > deadline) throw new AslError('States.Timeout', 'execution timed out');
    const st = machine.States[name];
    if (!st) throw new Error(`sim ASL: no state ${name}`);
    opts.onStateEntered?.(name);
    const ctx = {
      ...ctxBase,
      State: { Name: name, EnteredTime: new Date(opts.now()).toISOString(), RetryCount: 0 },
    };
    let next: string | undefined;
    switch (st.Type) {
      case 'Pass': {
        const eff = inputOf(st, data, ctx);
        data = outputOf(
          st,
          applyResultPath(st.ResultPath, data, st.Result !== undefined ? clone(st.Result) : eff),
          ctx,
        );
        next = st.Next;
        break;
      }
      case 'Wait': {
        const eff = st.InputPath !== undefined ? inputOf({ InputPath: st.InputPath }, data, ctx) : data;
        let until = opts.now();
        if (st.Seconds !== undefined) until += st.Seconds * 1000;
        else if (st.SecondsPath !== undefined) until += Number(required(st.SecondsPath, eff, ctx)) * 1000;
        else {
          const ts = st.Timestamp ?? required(st.TimestampPath, eff, ctx);
          if (!isTimestamp(ts)) throw runtime(`invalid timestamp ${JSON.stringify(ts)}`);
          until = Math.max(until, Date.parse(ts));
        }
        opts.sleep(until - opts.now());
        data = outputOf(st, data, ctx);
        next = st.Next;
        break;
      }
      case 'Choice': {
        const eff = st.InputPath !== undefined ? inputOf({ InputPath: st.InputPath }, data, ctx) : data;
        const hit = (st.Choices as Json[]).find((c) => condition(c, eff, ctx));
        next = hit?.Next ?? st.Default;
        if (!next) throw new AslError('States.NoChoiceMatched', `no choice matched in ${name}`);
        data = outputOf(st, data, ctx);
        break;
      }
      case 'Succeed':
        return outputOf(
          st,
          st.InputPath !== undefined ? inputOf({ InputPath: st.InputPath }, data, ctx) : data,
          ctx,
        );
      case 'Fail': {
        const error = st.ErrorPath !== undefined ? required(st.ErrorPath, data, ctx) : st.Error;
        const cause = st.CausePath !== undefined ? required(st.CausePath, data, ctx) : st.Cause;
        throw new AslError(String(error ?? 'States.Fail'), String(cause ?? ''));
      }
      case 'Task':
      case 'Parallel': {
        const r = await withRetry(st, name, data, opts, ctx, ctxBase, deadline);
        if ('caught' in r) {
          data = r.caught;
          next = r.next;
        } else {
          let result = r.result;
          if (st.ResultSelector !== undefined) result = template(st.ResultSelector, result, ctx);
          data = outputOf(st, applyResultPath(st.ResultPath, data, result), ctx);
          next = st.Next;
        }
        break;
      }
      default:
        throw new Error(`sim ASL: unsupported state type ${st.Type}`);
    }
    if (st.End || next === undefined) {
      if (st.Type === 'Choice') throw new Error('sim ASL: Choice without Next');
      return data;
    }
    name = next;
  }
}

async function attempt(
  st: Json,
  name: string,
  data: Json,
  opts: AslRunOptions,
  ctx: Json,
  ctxBase: Json,
  deadline: number,
): Promise<Json> {
  const eff = inputOf(st, data, ctx);
  if (st.Type === 'Parallel') {
    const results: Json[] = [];
    for (const branch of st.Branches as Json[]) {
      results.push(await runStates(branch, eff, opts, ctxBase, deadline));
    }
    return results;
  }
  const handler = opts.handlers[name];
  if (!handler) throw new Error(`sim ASL: no handler for task ${name}`);
  return clone(
    await handler(clone(eff), { state: name, resource: st.Resource, timeoutSeconds: st.TimeoutSeconds }),
  );
}

async function withRetry(
  st: Json,
  name: string,
  data: Json,
  opts: AslRunOptions,
  ctx: Json,
  ctxBase: Json,
  deadline: number,
): Promise<{ result: Json } | { caught: Json; next: string }> {
  const retriers: Json[] = st.Retry ?? [];
  const counts = retriers.map(() => 0);
  for (;;) {
    try {
      return { result: await attempt(st, name, data, opts, ctx, ctxBase, deadline) };
    } catch (err) {
      const e = asAslError(err);
      if (!(err instanceof AslError) && /^sim ASL:/.test(e.message)) throw err;
      const i = retriers.findIndex((r) => matches(r.ErrorEquals, e.name));
      const r = retriers[i];
      const max = r?.MaxAttempts ?? 3;
      if (r && counts[i] < max) {
        let delay = (r.IntervalSeconds ?? 1) * 1000 * (r.BackoffRate ?? 2) ** counts[i];
        if (r.MaxDelaySeconds !== undefined) delay = Math.min(delay, r.MaxDelaySeconds * 1000);
        if (r.JitterStrategy === 'FULL') delay = opts.random() * delay;
        counts[i] += 1;
        opts.sleep(Math.round(delay));
        continue;
      }
      const c = (st.Catch as Json[] | undefined)?.find((x) => matches(x.ErrorEquals, e.name));
      if (!c) throw e;
      return {
        caught: applyResultPath(c.ResultPath, data, { Error: e.name, Cause: e.cause_ }),
        next: c.Next,
      };
    }
  }
}
