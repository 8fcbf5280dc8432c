import type { Io } from '../cli/io';

/** An Io that records what the tool prints, on a virtual clock that sleeping advances. */
export function recordingIo(options: { interactive?: boolean; now?: Date; answers?: string[] } = {}): Io & {
  readonly stdout: string[];
  readonly stderr: string[];
  /** stdout and stderr lines in the order a terminal shows them. */
  readonly terminal: string[];
  readonly progressLines: string[];
  readonly asked: string[];
} {
  let now = options.now ?? new Date('2026-12-02T08:15:22.480Z');
  const stdout: string[] = [];
  const stderr: string[] = [];
  const terminal: string[] = [];
  const progressLines: string[] = [];
  const asked: string[] = [];
  const answers = [...(options.answers ?? [])];
  return {
    stdout,
    stderr,
    terminal,
    progressLines,
    asked,
    out: (line) => {
      stdout.push(line);
      terminal.push(line);
    },
    err: (line) => {
      stderr.push(line);
      terminal.push(line);
    },
    progress: (line) => progressLines.push(line),
    interactive: options.interactive ?? false,
    now: () => now,
    sleep: async (ms) => {
      now = new Date(now.getTime() + ms);
    },
    ask: async (question) => {
      asked.push(question);
      return answers.shift() ?? '';
    },
  };
}
