import { createInterface } from 'node:readline/promises';

/** Where the tool writes: results to stdout, progress and errors to stderr. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
  /** Rewrites the current progress line (stderr, only on a terminal). */
  progress(line: string): void;
  /** True when stderr is a terminal: progress is drawn; otherwise it is not written at all. */
  readonly interactive: boolean;
  readonly now: () => Date;
  readonly sleep: (ms: number) => Promise<void>;
  /** Asks a question on the terminal and returns the answer. */
  readonly ask: (question: string) => Promise<string>;
}

export function processIo(): Io {
  const interactive = Boolean(process.stderr.isTTY);
  let drawn = false;
  const clear = () => {
    if (drawn) process.stderr.write('\r\x1b[2K');
    drawn = false;
  };
  return {
    out: (line) => {
      clear();
      process.stdout.write(`${line}\n`);
    },
    err: (line) => {
      clear();
      process.stderr.write(`${line}\n`);
    },
    progress: (line) => {
      if (!interactive) return;
      process.stderr.write(`\r\x1b[2K${line.slice(0, (process.stderr.columns ?? 100) - 1)}`);
      drawn = true;
    },
    interactive,
    now: () => new Date(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    ask: async (question) => {
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      try {
        return await rl.question(question);
      } finally {
        rl.close();
      }
    },
  };
}

/** A plain-text table: columns padded, the last one left free. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const last = header.length - 1;
  const widths = header.map((h, c) =>
    Math.max(h.length, ...rows.map((r) => (c === last ? 0 : (r[c] ?? '').length))),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, c) => (c === last ? cell : (cell ?? '').padEnd(widths[c] as number)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}
