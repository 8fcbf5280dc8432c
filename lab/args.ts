/** A tiny `--name value` / `--flag` parser with errors that name the value and what is allowed. */
export class ArgError extends Error {
  override readonly name = 'ArgError';
}

export function parseArgs(
  argv: readonly string[],
  spec: Record<string, 'flag' | 'value'>,
): Map<string, string | true> {
  const out = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--'))
      throw new ArgError(
        `unexpected argument "${a}"; allowed: ${Object.keys(spec)
          .map((k) => `--${k}`)
          .join(', ')}`,
      );
    const [key, inline] = a.slice(2).split('=', 2);
    const kind = spec[key];
    if (!kind)
      throw new ArgError(
        `unknown option --${key}; allowed: ${Object.keys(spec)
          .map((k) => `--${k}`)
          .join(', ')}`,
      );
    if (kind === 'flag') out.set(key, true);
    else {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new ArgError(`--${key} needs a value`);
      out.set(key, v);
    }
  }
  return out;
}

export function intArg(
  args: Map<string, string | true>,
  key: string,
  dflt: number,
  min: number,
  max: number,
): number {
  const raw = args.get(key);
  if (raw === undefined) return dflt;
  const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    throw new ArgError(`--${key} ${String(raw)}: allowed is a whole number from ${min} to ${max}`);
  return n;
}
