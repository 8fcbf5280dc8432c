/**
 * What one instance experiences, on a virtual clock: its SSM agent receives Run Command messages
 * late, out of order or not at all, may die right after a freeze, and runs the Freeze and Thaw
 * documents with the semantics of ssm-documents/scripts (freeze.sh, thaw.sh, watchdog.sh):
 * - the thaw leaves an execution-scoped marker before it takes the lock; a freeze of that
 *   execution that starts (or reaches its fsfreeze) afterwards refuses THAWED_BEFORE_FREEZE
 *   (ecb_freeze_still_wanted), and so does a freeze past its NotAfter (LATE);
 * - one freeze at a time: another execution's active freeze is refused ALREADY_FROZEN, a repeat of
 *   this execution's frozen freeze reports that freeze unchanged (duplicate);
 * - the watchdog, started by the freeze, thaws WatchdogSeconds after "freezing" if no thaw came,
 *   and survives the agent (it runs in its own session);
 * - the thaw ends whatever freeze is active (any execution's), stops the watchdog only once the
 *   filesystems are confirmed thawed, and reports freezeMs and watchdogFired;
 * - commands run one after another (the documents' lock), each after its delivery.
 * The timeline it records (frozen from when to when, thawed by whom, by which command) is what the
 * fault invariants are checked against, never what the orchestrator believes it sent.
 */

export type ThawedBy = 'thaw-command' | 'watchdog' | 'never';

/** One period during which the instance's data filesystems were frozen. */
export interface FreezeEpisode {
  readonly executionId: string;
  /** The freeze command that froze. */
  readonly commandId: string;
  readonly frozenFrom: number;
  /** When it ended; undefined while it is still frozen. */
  frozenUntil?: number;
  thawedBy: ThawedBy;
  /** The thaw command that ended it (thawedBy thaw-command). */
  thawCommandId?: string;
  readonly watchdogDeadline: number;
}

/** What the freeze document does once it runs and is still wanted. */
export type FreezeBehaviour =
  /** Freezes and reports it. */
  | 'frozen'
  /** Freezes, but the output the agent reports is cut off (unreadable JSON), with status Success. */
  | 'frozen-garbled'
  /** A pre-freeze hook fails: nothing frozen, status error. */
  | 'error'
  /** Crashes before freezing: no JSON at all. */
  | 'garbage'
  | 'nothing-to-freeze';

/** How one command travels to the agent. */
export interface Delivery {
  /** Milliseconds from SendCommand to the agent; null: never delivered. */
  readonly delayMs: number | null;
}

export interface InstanceBehaviour {
  readonly freeze: FreezeBehaviour;
  /** Hooks and sync before the fsfreeze. */
  readonly freezeMs: number;
  /** The first n thaw runs fail on the instance (THAW_FAILED: filesystems stay frozen). */
  readonly thawFailures: number;
  /** Delivery of the n-th command (0-based) of a document. */
  readonly delivery?: (doc: InstanceDocument, n: number) => Delivery;
  /**
   * The agent dies right after the first fsfreeze, before it reports the freeze; it comes back
   * after downMs (null: not within the run). The watchdog lives on.
   */
  readonly agentDiesAfterFreeze?: { readonly downMs: number | null };
  /** The command execution timeout of the documents' step (SSM kills the command then). */
  readonly commandTimeoutMs: number;
}

export type InstanceDocument = 'freeze' | 'thaw' | 'other';

/** SSM's TimeoutSeconds for every command the workflow sends: the delivery timeout. */
export const DELIVERY_TIMEOUT_MS = 30_000;
/** Normal delivery. */
export const DELIVERY_MS = 250;
/** An invocation is not visible to GetCommandInvocation this soon after SendCommand. */
export const VISIBLE_MS = 120;
const REPORT_MS = 30;
const THAW_RUN_MS = 50;

interface Command {
  readonly id: string;
  readonly doc: InstanceDocument;
  readonly executionId: string;
  readonly parameters: Readonly<Record<string, unknown>>;
  readonly sentAt: number;
  /** When the agent receives it; undefined: never. */
  arriveAt?: number;
  processed: boolean;
  startedAt?: number;
  doneAt?: number;
  status?: 'Success' | 'Failed';
  stdout: string;
  /** The agent died while this command ran: it reports Failed without output when it is back. */
  lost?: boolean;
  /** Freeze only: the fsfreeze step, when it is scheduled. */
  fsfreezeAt?: number;
}

export interface InvocationView {
  readonly Status: string;
  readonly StatusDetails?: string;
  readonly ResponseCode?: number;
  readonly StandardOutputContent?: string;
  readonly StandardErrorContent?: string;
}

export class InvocationDoesNotExist extends Error {
  override readonly name = 'InvocationDoesNotExist';
  readonly $metadata = { httpStatusCode: 400 };
}

const param = (p: Readonly<Record<string, unknown>>, key: string): string => {
  const v = p[key];
  return Array.isArray(v) ? String(v[0] ?? '') : typeof v === 'string' ? v : '';
};

export class Instance {
  readonly episodes: FreezeEpisode[] = [];
  readonly commands: Command[] = [];
  /** Execution id -> who marked it thawed, and when (executions/<id>.thawed). */
  readonly markers = new Map<string, { by: string; at: number }>();
  /** Every freeze command's refusal or error code, for reports. */
  readonly refusals: { commandId: string; code: string; at: number }[] = [];
  private active?: { episode?: FreezeEpisode; executionId: string; commandId: string };
  private busyUntil = 0;
  private agentDownFrom = Infinity;
  private agentUpAt = Infinity;
  private agentDied = false;
  private thawRuns = 0;
  private readonly perDoc = new Map<InstanceDocument, number>();
  private seq = 0;
  private t = 0;

  constructor(readonly behaviour: InstanceBehaviour) {}

  /** A SendCommand that took effect at `at`; returns the command id. */
  send(doc: InstanceDocument, parameters: Readonly<Record<string, unknown>>, at: number): string {
    this.advance(at);
    const n = this.perDoc.get(doc) ?? 0;
    this.perDoc.set(doc, n + 1);
    const id = `cmd-${(++this.seq).toString().padStart(4, '0')}`;
    const d = this.behaviour.delivery?.(doc, n) ?? { delayMs: DELIVERY_MS };
    const cmd: Command = {
      id,
      doc,
      executionId: param(parameters, 'ExecutionId'),
      parameters,
      sentAt: at,
      processed: false,
      stdout: '',
    };
    if (d.delayMs !== null && d.delayMs <= DELIVERY_TIMEOUT_MS) cmd.arriveAt = at + Math.max(1, d.delayMs);
    this.commands.push(cmd);
    return id;
  }

  private agentUp(t: number): boolean {
    return t < this.agentDownFrom || t >= this.agentUpAt;
  }

  /** Process everything that happens on the instance up to time `to`. */
  advance(to: number): void {
    for (;;) {
      const next = this.nextEvent();
      if (!next || next.at > to) break;
      this.t = next.at;
      next.run();
    }
    this.t = Math.max(this.t, to);
  }

  private nextEvent(): { at: number; run: () => void } | undefined {
    let best: { at: number; run: () => void } | undefined;
    const consider = (at: number | undefined, run: () => void) => {
      if (at !== undefined && (!best || at < best.at)) best = { at, run };
    };
    for (const c of this.commands) {
      if (c.arriveAt !== undefined && !c.processed) {
        let at = c.arriveAt;
        if (!this.agentUp(at)) {
          // Held by SSM until the agent is back, within the delivery timeout.
          if (this.agentUpAt <= c.sentAt + DELIVERY_TIMEOUT_MS) at = this.agentUpAt;
          else {
            c.arriveAt = undefined;
            continue;
          }
        }
        consider(at, () => this.arrive(c));
      }
      if (c.fsfreezeAt !== undefined && c.doneAt === undefined)
        consider(c.fsfreezeAt, () => this.fsfreeze(c));
      if (c.doc === 'thaw' && c.processed && c.startedAt !== undefined && c.doneAt === undefined) {
        consider(c.startedAt, () => this.runThaw(c));
      }
    }
    const ep = this.active?.episode;
    if (ep && ep.frozenUntil === undefined) consider(ep.watchdogDeadline, () => this.watchdog(ep));
    return best;
  }

  private arrive(c: Command): void {
    c.processed = true;
    const at = this.t;
    if (c.doc === 'thaw') {
      // Before the lock: a freeze of this execution still in its hooks sees it before its fsfreeze.
      this.mark(c.executionId, `thaw:${c.executionId}`, at);
      c.startedAt = Math.max(at, this.busyUntil);
      this.busyUntil = c.startedAt + THAW_RUN_MS;
      return;
    }
    if (c.doc === 'other') {
      c.startedAt = at;
      c.doneAt = at + 2000;
      c.status = 'Success';
      return;
    }
    const start = Math.max(at, this.busyUntil);
    c.startedAt = start;
    const refusal = this.freezeRefusal(c, start);
    if (refusal) {
      this.refuse(c, start, refusal);
      return;
    }
    if (this.active) {
      const ep = this.active.episode;
      if (this.active.executionId === c.executionId && ep && ep.frozenUntil === undefined) {
        // A repeat of this execution's freeze: reported, nothing changes.
        c.doneAt = start + REPORT_MS;
        c.status = 'Success';
        c.stdout = this.frozenLine(c, ep, true);
        this.busyUntil = c.doneAt;
        return;
      }
      this.refuse(c, start, 'ALREADY_FROZEN');
      return;
    }
    if (this.behaviour.freeze === 'error') {
      this.refuse(c, start + this.behaviour.freezeMs, 'HOOK_FAILED');
      return;
    }
    if (this.behaviour.freeze === 'garbage') {
      c.doneAt = start + this.behaviour.freezeMs;
      c.status = 'Failed';
      c.stdout = 'Segmentation fault\n';
      this.busyUntil = c.doneAt;
      return;
    }
    if (this.behaviour.freeze === 'nothing-to-freeze') {
      c.doneAt = start + REPORT_MS;
      c.status = 'Success';
      c.stdout = JSON.stringify({
        schemaVersion: 1,
        action: 'freeze',
        status: 'nothing-to-freeze',
        targets: [],
      });
      this.busyUntil = c.doneAt;
      return;
    }
    this.active = { executionId: c.executionId, commandId: c.id };
    c.fsfreezeAt = start + this.behaviour.freezeMs;
    this.busyUntil = c.fsfreezeAt + REPORT_MS;
  }

  /** The checks freeze.sh makes at its start and again right before the fsfreeze. */
  private freezeRefusal(c: Command, at: number): string | undefined {
    if (this.markers.has(c.executionId)) return 'THAWED_BEFORE_FREEZE';
    const notAfter = Date.parse(param(c.parameters, 'NotAfter'));
    if (!Number.isFinite(notAfter)) return 'INVALID_PARAMETER';
    if (at > notAfter) return 'LATE';
    return undefined;
  }

  private fsfreeze(c: Command): void {
    const at = this.t;
    const refusal = this.freezeRefusal(c, at);
    if (refusal) {
      this.active = undefined;
      this.refuse(c, at, refusal === 'THAWED_BEFORE_FREEZE' ? 'CANCELLED' : refusal);
      return;
    }
    const seconds = Number(param(c.parameters, 'WatchdogSeconds')) || 90;
    const ep: FreezeEpisode = {
      executionId: c.executionId,
      commandId: c.id,
      frozenFrom: at,
      thawedBy: 'never',
      watchdogDeadline: at + seconds * 1000,
    };
    this.episodes.push(ep);
    this.active = { episode: ep, executionId: c.executionId, commandId: c.id };
    c.doneAt = at + REPORT_MS;
    c.status = 'Success';
    c.stdout =
      this.behaviour.freeze === 'frozen-garbled'
        ? this.frozenLine(c, ep, false).slice(0, 97)
        : this.frozenLine(c, ep, false);
    const dies = this.behaviour.agentDiesAfterFreeze;
    if (dies && !this.agentDied) {
      this.agentDied = true;
      this.agentDownFrom = at + 1;
      this.agentUpAt = dies.downMs === null ? Infinity : at + 1 + dies.downMs;
      c.lost = true;
    }
  }

  private refuse(c: Command, at: number, code: string): void {
    c.doneAt = at + REPORT_MS;
    c.status = 'Failed';
    c.stdout = JSON.stringify({
      schemaVersion: 1,
      action: 'freeze',
      status: 'error',
      executionId: c.executionId,
      targets: [],
      error: { code, message: `freeze refused: ${code}` },
    });
    this.refusals.push({ commandId: c.id, code, at });
    this.busyUntil = Math.max(this.busyUntil, c.doneAt);
  }

  private frozenLine(c: Command, ep: FreezeEpisode, duplicate: boolean): string {
    return JSON.stringify({
      schemaVersion: 1,
      action: 'freeze',
      status: 'frozen',
      executionId: c.executionId,
      duplicate,
      frozenAt: new Date(ep.frozenFrom).toISOString(),
      frozenAtMs: ep.frozenFrom,
      targets: [
        { mountpoint: '/data', fstype: 'xfs', source: '/dev/nvme1n1', volumeIds: ['vol-0aaaaaaaaaaaaaaa2'] },
      ],
      hooksConfigured: this.hooksConfigured,
      hooks: this.hooksConfigured ? [{ phase: 'pre-freeze', name: '10-db', exitCode: 0, ms: 20 }] : [],
      watchdog: {
        seconds: (ep.watchdogDeadline - ep.frozenFrom) / 1000,
        deadline: new Date(ep.watchdogDeadline).toISOString(),
      },
    });
  }

  hooksConfigured = true;

  private runThaw(c: Command): void {
    const at = this.t;
    c.doneAt = at + THAW_RUN_MS;
    const ep = this.active?.episode;
    const fails = this.thawRuns < this.behaviour.thawFailures;
    this.thawRuns += 1;
    if (fails && ep && ep.frozenUntil === undefined) {
      c.status = 'Failed';
      c.stdout = JSON.stringify({
        schemaVersion: 1,
        action: 'thaw',
        status: 'error',
        executionId: c.executionId,
        thawed: [],
        notFrozen: [],
        failed: ['/data'],
        error: { code: 'THAW_FAILED', message: 'not confirmed thawed: /data' },
      });
      return;
    }
    let frozenMs = 0;
    let thawed: string[] = [];
    if (ep && ep.frozenUntil === undefined) {
      ep.frozenUntil = at;
      ep.thawedBy = 'thaw-command';
      ep.thawCommandId = c.id;
      frozenMs = at - ep.frozenFrom;
      thawed = ['/data'];
      if (ep.executionId !== c.executionId) this.mark(ep.executionId, `thaw:${c.executionId}`, at);
      this.active = undefined;
    } else if (this.active && !ep) {
      // A freeze of this or another execution still before its fsfreeze: cancelled by the marker.
    }
    // This execution's own freeze, if it ended before (the watchdog), is reported from its record.
    const own = this.episodes.filter((e) => e.executionId === c.executionId).at(-1);
    const ended = !thawed.length && own?.frozenUntil !== undefined ? own : undefined;
    c.status = 'Success';
    c.stdout = JSON.stringify({
      schemaVersion: 1,
      action: 'thaw',
      status: 'thawed',
      executionId: c.executionId,
      frozenExecutionId: ep?.executionId ?? own?.executionId ?? null,
      thawedAt: new Date(ended?.frozenUntil ?? at).toISOString(),
      thawedAtMs: ended?.frozenUntil ?? at,
      thawed,
      notFrozen: thawed.length ? [] : ['/data'],
      failed: [],
      freezeMs: ended ? (ended.frozenUntil as number) - ended.frozenFrom : frozenMs,
      watchdogFired: ended?.thawedBy === 'watchdog',
      thawedBy: thawed.length ? `thaw:${c.executionId}` : (ended?.thawedBy ?? null),
      hooks: [],
      postThawHooksOk: true,
      warnings: [],
    });
  }

  private watchdog(ep: FreezeEpisode): void {
    ep.frozenUntil = ep.watchdogDeadline;
    ep.thawedBy = 'watchdog';
    this.mark(ep.executionId, 'watchdog', ep.watchdogDeadline);
    this.active = undefined;
  }

  private mark(executionId: string, by: string, at: number): void {
    if (!this.markers.has(executionId)) this.markers.set(executionId, { by, at });
  }

  /** GetCommandInvocation at time `at`. */
  invocation(id: string, at: number): InvocationView {
    this.advance(at);
    const c = this.commands.find((x) => x.id === id);
    if (!c || at < c.sentAt + VISIBLE_MS) throw new InvocationDoesNotExist('not yet');
    if (!c.processed) {
      if (c.arriveAt === undefined && at >= c.sentAt + DELIVERY_TIMEOUT_MS) {
        return { Status: 'TimedOut', StatusDetails: 'Delivery Timed Out' };
      }
      return { Status: 'Pending', StatusDetails: 'Pending' };
    }
    if (c.lost) {
      if (this.agentUpAt <= at)
        return {
          Status: 'Failed',
          StatusDetails: 'Failed',
          ResponseCode: -1,
          StandardOutputContent: '',
          StandardErrorContent: 'the agent restarted while the command ran',
        };
      if (at >= (c.startedAt as number) + this.behaviour.commandTimeoutMs) {
        return { Status: 'TimedOut', StatusDetails: 'Execution Timed Out', ResponseCode: -1 };
      }
      return { Status: 'InProgress', StatusDetails: 'InProgress' };
    }
    if (c.doneAt === undefined || at < c.doneAt) return { Status: 'InProgress', StatusDetails: 'InProgress' };
    return {
      Status: c.status as string,
      StatusDetails: c.status,
      ResponseCode: c.status === 'Success' ? 0 : 1,
      StandardOutputContent: c.stdout,
      StandardErrorContent: c.status === 'Success' ? '' : `${c.doc}: error`,
    };
  }

  /** Let time run until nothing more can happen on the instance (the watchdog included). */
  settle(from: number): void {
    let to = from;
    for (let i = 0; i < 1000; i += 1) {
      const next = this.nextEvent();
      if (!next) break;
      to = Math.max(to, next.at);
      this.advance(to);
    }
  }

  /** The time the instance's clock has reached. */
  get now(): number {
    return this.t;
  }

  commandOf(id: string): Readonly<Command> | undefined {
    return this.commands.find((c) => c.id === id);
  }
}
