/** What the freeze-path function tests share: a fake clock whose timers abandon a call, and fixtures. */
import type { Clock } from '../../lambda/shared/calls';

export const T0 = Date.parse('2026-11-22T02:00:00Z');
export function fakeClock(start = T0): Clock & { t: number; sleeps: number[]; abandoned: number[] } {
  const c = {
    t: start,
    sleeps: [] as number[],
    /** The limits of the calls that were abandoned (the timer won). */
    abandoned: [] as number[],
    now: () => c.t,
    sleep: async (ms: number) => {
      c.sleeps.push(ms);
      c.t += ms;
    },
    // A mocked call answers within microtasks; the timer fires only after them (setImmediate), and
    // then charges its whole limit to the clock: a hung call costs exactly its limit.
    timer: (ms: number) => {
      let cancelled = false;
      const done = new Promise<void>((resolve) => {
        setImmediate(() => {
          if (cancelled) return;
          c.abandoned.push(ms);
          c.t += ms;
          resolve();
        });
      });
      return {
        done,
        cancel: () => {
          cancelled = true;
        },
      };
    },
  };
  return c;
}
/** A call that never answers (a hung connection). */
export const hang = () => new Promise<never>(() => undefined);
export const half = () => 0.5;
export const sdkError = (name: string, status = 400) =>
  Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });

export const FROZEN_AT = T0 + 1000;
export const freezeResult = (status = 'frozen') => ({
  succeeded: true,
  status: 'Success',
  commandId: 'c1',
  detail: '',
  stderr: '',
  stdout: `agent noise\n${JSON.stringify({ schemaVersion: 1, action: 'freeze', status, frozenAtMs: FROZEN_AT, targets: [] })}\n`,
});
export const VOLS = ['vol-0aaaaaaaaaaaaaaa1', 'vol-0aaaaaaaaaaaaaaa2'];
