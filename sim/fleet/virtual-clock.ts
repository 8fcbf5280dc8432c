/**
 * A virtual clock for running real async code (handlers, the workflow functions' polling loops, discovery's
 * fan-out) on simulated time: `sleep` parks the caller in a timer queue, and `run` advances time
 * to the next timer only once every coroutine is blocked (the microtask queue is drained, checked
 * with setImmediate). Nothing waits in real time, so a 10-hour run of 50,000 backups takes what
 * its CPU work takes, and the result is the same on a busy machine as on an idle one.
 *
 * Requirement: the code under the clock must not wait on real I/O or real timers (fakes answer
 * through promises only); otherwise `run` would see it as blocked and advance too early.
 */

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly resolve: () => void;
}

/** A binary heap of timers ordered by (at, seq): equal times wake in the order they were set. */
class TimerHeap {
  private readonly items: Timer[] = [];
  get size(): number {
    return this.items.length;
  }
  peek(): Timer | undefined {
    return this.items[0];
  }
  push(t: Timer): void {
    const a = this.items;
    a.push(t);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): Timer | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l], a[m])) m = l;
        if (r < a.length && before(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

export class VirtualClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new TimerHeap();

  constructor(startMs = 0) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.timers.push({ at: this.t + Math.max(0, ms), seq: this.seq++, resolve });
    });
  }

  /** Timers waiting. */
  get pending(): number {
    return this.timers.size;
  }

  /**
   * Drives `work` to its end: whenever everything is blocked, wake the earliest timers (all of
   * those due at the same instant). Throws if `work` is blocked with no timer left (a deadlock).
   */
  async run<T>(work: Promise<T>): Promise<T> {
    let done = false;
    let value: T | undefined;
    let error: unknown;
    let failed = false;
    work.then(
      (v) => {
        done = true;
        value = v;
      },
      (e) => {
        done = true;
        failed = true;
        error = e;
      },
    );
    for (;;) {
      await settle();
      if (done) break;
      const next = this.timers.peek();
      if (!next) throw new Error('VirtualClock: the work is blocked and no timer is set (deadlock)');
      this.t = Math.max(this.t, next.at);
      // Wake every timer due now; their continuations run at the next settle.
      while (this.timers.peek() && (this.timers.peek() as Timer).at <= this.t) {
        (this.timers.pop() as Timer).resolve();
      }
    }
    if (failed) throw error;
    return value as T;
  }
}

/** A seeded random in [0, 1) (a linear congruential generator): the same run for the same seed. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
