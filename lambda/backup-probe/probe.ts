/**
 * What the workflow asks of AWS that a single Step Functions API call cannot answer well:
 * - `activeJobs`: is a backup job for this instance still active (AWS Backup allows one per resource)?
 * - `freeze`: send the freeze document and wait for it (below). It is sent from here rather than by
 *   a Step Functions SendCommand task because the document takes the volume ids as one
 *   comma-separated string and ASL has no intrinsic to join an array.
 * - `waitForCommand`: poll a Run Command invocation to its end at sub-second intervals (COMMAND_POLL),
 *   absorbing the InvocationDoesNotExist race, so the freeze is noticed within ~0.2 s instead of a
 *   1 s Wait loop that costs three state transitions per turn.
 * - `waitForSnapshots`: while frozen, poll until every attached volume has a snapshot that started
 *   at or after the freeze, the job fails, or the freeze budget runs out.
 * - `startBackupJob`: StartBackupJob while frozen, inside the freeze budget, resolving an ambiguous
 *   failure by finding the job (for a state machine that calls it instead of a CallAwsService task).
 * After the freeze every call, retry and backoff is cut to the time left of the budget (callWithin),
 * so a hung request cannot keep the filesystems frozen: the probe answers and the workflow thaws.
 * Every result is small, typed and always well-formed, so the state machine never meets a missing
 * field. Clients and the clock are parameters, so tests run on fake time.
 */

import {
  type BackupClient,
  type BackupJobState,
  DescribeBackupJobCommand,
  ListBackupJobsCommand,
  StartBackupJobCommand,
} from '@aws-sdk/client-backup';
import { DescribeSnapshotsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { APPS_ALLOWED, appsPattern } from '../shared/apps';
import {
  type Command,
  GetCommandInvocationCommand,
  ListCommandsCommand,
  SendCommandCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { commandResultOf } from '../shared/command-result';
import { MAX_FREEZE_VOLUMES } from '../shared/outcome';
import { VOLUME_DEVICE_ENTRY } from '../shared/workflow-input';
import {
  type ActiveJobsResult,
  type CommandResult,
  parseFreezeOutput,
  type SnapshotWaitResult,
} from '../shared/verdict';

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
  /**
   * A timer that bounds one call: `done` resolves after `ms` unless `cancel` came first. Optional:
   * without it only the SDK's own request timeout (handler.ts) bounds a call that hangs.
   */
  timer?(ms: number): { readonly done: Promise<void>; cancel(): void };
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  timer: (ms) => {
    let handle: ReturnType<typeof setTimeout> | undefined;
    const done = new Promise<void>((resolve) => {
      handle = setTimeout(resolve, ms);
    });
    return { done, cancel: () => clearTimeout(handle) };
  },
};

/**
 * A call got no answer within its time limit and was abandoned (its request aborted). Ambiguous: the
 * request may have reached AWS and taken effect.
 */
export class CallTimedOut extends Error {
  override readonly name = 'CallTimedOut';
}

/**
 * Runs one SDK call, abandoning it after `ms`: the request is aborted through its signal and the
 * caller gets CallTimedOut at that moment, whatever the connection does. This is what keeps a hung
 * call inside the freeze budget; the clients' requestTimeout (handler.ts) is the second line.
 */
export async function callWithin<T>(
  clock: Clock,
  ms: number,
  call: (abortSignal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const limit = Math.max(0, Math.round(ms));
  const timer = clock.timer?.(limit);
  try {
    let answer: Promise<T>;
    try {
      answer = Promise.resolve(call(controller.signal));
    } catch (err) {
      answer = Promise.reject(err);
    }
    if (!timer) return await answer;
    // The losing side must not become an unhandled rejection.
    answer.catch(() => undefined);
    return await Promise.race([
      answer,
      timer.done.then((): never => {
        controller.abort();
        throw new CallTimedOut(`no answer within ${limit} ms; the request was abandoned`);
      }),
    ]);
  } finally {
    timer?.cancel();
  }
}

/**
 * Time limits of one call (ms). A poll is abandoned after POLL_CALL_MS and simply polled again; a
 * call that may change something (SendCommand, StartBackupJob) gets a little longer, and an
 * abandoned one is resolved by a look-up, never by a blind resend. After the freeze every limit is
 * also cut to the time left of the budget.
 */
export const POLL_CALL_MS = 3000;
export const MUTATING_CALL_MS = 5000;

/** Job states in which AWS Backup refuses or queues another job for the same resource. */
export const ACTIVE_JOB_STATES: readonly BackupJobState[] = ['CREATED', 'PENDING', 'RUNNING', 'ABORTING'];
/** Job states that end a job without a recovery point. */
export const FAILED_JOB_STATES: readonly string[] = ['FAILED', 'ABORTED', 'EXPIRED'];

/** A request the handler could not accept; the message names the field and what is allowed. */
export class ProbeInputError extends Error {
  override readonly name = 'ProbeInputError';
}

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : 'Error';
}

/** Errors worth another try inside the same invocation: throttling, 5xx, network, a call abandoned. */
export function isTransient(err: unknown): boolean {
  const e = err as { name?: string; $retryable?: unknown; $metadata?: { httpStatusCode?: number } };
  if (e?.$retryable) return true;
  if ((e?.$metadata?.httpStatusCode ?? 0) >= 500) return true;
  return /Throttl|RequestLimitExceeded|TooManyRequests|ServiceUnavailable|InternalServer|InternalError|TimeoutError|RequestTimeout|CallTimedOut|AbortError|ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|NetworkingError/i.test(
    errorName(err),
  );
}

/** The request was refused before it did anything: throttling. Safe to send again. */
export function isThrottle(err: unknown): boolean {
  return /Throttl|TooManyRequests|RequestLimitExceeded|SlowDown/i.test(errorName(err));
}

/**
 * A failure after which the request may still have taken effect: a 5xx, a timeout, a network error,
 * a call abandoned. Not throttling (refused), not a 4xx (rejected).
 */
export function isAmbiguous(err: unknown): boolean {
  return isTransient(err) && !isThrottle(err);
}

/** Full jitter: a random delay up to base·2^attempt, capped. */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  return Math.round(random() * Math.min(capMs, baseMs * 2 ** attempt));
}

export async function activeJobs(
  backup: Pick<BackupClient, 'send'>,
  instanceArn: string,
  clock: Clock = systemClock,
): Promise<ActiveJobsResult> {
  // Before the freeze: one more try after a transient error (the clients make one attempt each).
  const list = async (state: BackupJobState) => {
    const ask = () =>
      callWithin(clock, MUTATING_CALL_MS, (s) =>
        backup.send(
          new ListBackupJobsCommand({ ByResourceArn: instanceArn, ByState: state, MaxResults: 20 }),
          {
            abortSignal: s,
          },
        ),
      );
    try {
      return await ask();
    } catch (err) {
      if (!isTransient(err)) throw err;
      await clock.sleep(300);
      return ask();
    }
  };
  const pages = await Promise.all(ACTIVE_JOB_STATES.map(list));
  const jobIds = pages.flatMap((p) => (p.BackupJobs ?? []).map((j) => j.BackupJobId ?? '(unknown id)'));
  return { active: jobIds.length > 0, jobIds };
}

/**
 * When to poll next: every `fastMs` for the first `fastForMs` of a wait (while the answer is most
 * likely to arrive and every poll shortens a freeze), every `slowMs` after, each delay within
 * ±`jitter` of its base so that executions started in the same second do not poll in lockstep.
 */
export interface PollSchedule {
  readonly fastMs: number;
  readonly fastForMs: number;
  readonly slowMs: number;
  /** Fraction of the base delay, e.g. 0.2 for ±20 %. */
  readonly jitter: number;
}

/** The delay before the next poll, `elapsedMs` into the wait; `slowOnly` after a throttle. */
export function pollDelayMs(
  schedule: PollSchedule,
  elapsedMs: number,
  random: () => number,
  slowOnly = false,
): number {
  const base = !slowOnly && elapsedMs < schedule.fastForMs ? schedule.fastMs : schedule.slowMs;
  return Math.round(base * (1 - schedule.jitter + 2 * schedule.jitter * random()));
}

/**
 * Command polls. The freeze document takes about 0.8 s and the thaw less, so a 400 ms first wait
 * cost up to 0.4 s of freeze on each side; 200 ms for the first 2 s halves that, then 400 ms.
 * GetCommandInvocation is one call per poll: at most 5/s per execution in the fast phase, and only
 * the executions whose command is in flight poll at all.
 */
export const COMMAND_POLL: PollSchedule = { fastMs: 200, fastForMs: 2000, slowMs: 400, jitter: 0.1 };

export interface WaitForCommandRequest {
  /** The SendCommand response as Step Functions stored it. */
  readonly command: unknown;
  readonly instanceId: string;
  /** Give up (status WaitTimedOut) after this long. */
  readonly timeoutSeconds: number;
}

export async function waitForCommand(
  ssm: Pick<SSMClient, 'send'>,
  clock: Clock,
  request: WaitForCommandRequest,
  random: () => number = Math.random,
): Promise<CommandResult> {
  const commandId = (request.command as { Command?: { CommandId?: unknown } } | undefined)?.Command
    ?.CommandId;
  if (typeof commandId !== 'string' || commandId === '') {
    return {
      succeeded: false,
      status: 'NoCommandId',
      commandId: '',
      stdout: '',
      stderr: '',
      detail: 'SendCommand returned no Command.CommandId',
    };
  }
  const startedAt = clock.now();
  const deadline = startedAt + request.timeoutSeconds * 1000;
  let attempt = 0;
  let throttled = false;
  let lastStatus = 'NotYetVisible';
  for (;;) {
    try {
      const inv = await callWithin(clock, Math.max(1, Math.min(POLL_CALL_MS, deadline - clock.now())), (s) =>
        ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: request.instanceId }), {
          abortSignal: s,
        }),
      );
      attempt = 0;
      const status = typeof inv.Status === 'string' ? inv.Status : 'Unknown';
      lastStatus = status;
      const ended = commandResultOf(commandId, inv);
      if (ended) return ended;
    } catch (err) {
      // Right after SendCommand the invocation may not be visible yet: that is not an error, and
      // not a reason to slow down either.
      if (errorName(err) !== 'InvocationDoesNotExist') {
        if (!isTransient(err)) throw err;
        attempt += 1;
        throttled = true;
      }
    }
    const remaining = deadline - clock.now();
    if (remaining <= 0) {
      return {
        succeeded: false,
        status: 'WaitTimedOut',
        commandId,
        stdout: '',
        stderr: '',
        detail: `the command was still ${lastStatus} after ${request.timeoutSeconds} s`,
      };
    }
    const delay =
      attempt > 0
        ? COMMAND_POLL.slowMs + backoffMs(attempt, 250, 2000, random)
        : pollDelayMs(COMMAND_POLL, clock.now() - startedAt, random, throttled);
    await clock.sleep(Math.min(delay, remaining));
  }
}

export interface FreezeRequest {
  readonly documentName: string;
  readonly instanceId: string;
  /** The execution name: the freeze, the watchdog and the thaw are tied together by it. */
  readonly executionId: string;
  readonly volumeIds: readonly string[];
  /** `vol-id=/dev/name` pairs, comma separated, or empty: sent as VolumeDevices only when non-empty. */
  readonly volumeDevices: string;
  readonly notAfter: string;
  readonly watchdogSeconds: number;
  readonly hookTimeoutSeconds: number;
  readonly include: string;
  readonly exclude: string;
  readonly timeoutSeconds: number;
  /**
   * The instance's packaged application hooks (its Apps tag, lambda/shared/apps.ts), absent without
   * the tag; with it, the AppHooks document installs exactly these before the freeze is sent.
   */
  readonly apps?: string;
  readonly appHooksDocumentName?: string;
}

/** The longest the AppHooks command may wait for delivery, and then to finish (lib/workflow.ts APP_HOOKS_WAIT_SECONDS). */
export const APP_HOOKS_DELIVERY_TIMEOUT_SECONDS = 30;
export const APP_HOOKS_WAIT_SECONDS = 25;

/**
 * Installs the packaged hooks the Apps tag names (and removes the others) with the stack's AppHooks
 * document, before the freeze and never while frozen. Undefined when it succeeded; otherwise the
 * result the freeze step returns instead of freezing, saying why in `detail`: the instance then
 * takes the freeze-failure path (onFreezeFailure), never a freeze without the hooks it asked for.
 */
async function installAppHooks(
  ssm: Pick<SSMClient, 'send'>,
  clock: Clock,
  request: FreezeRequest,
  random: () => number,
): Promise<CommandResult | undefined> {
  if (request.apps === undefined || !request.appHooksDocumentName) return undefined;
  const sent = await ssm.send(
    new SendCommandCommand({
      DocumentName: request.appHooksDocumentName,
      InstanceIds: [request.instanceId],
      TimeoutSeconds: APP_HOOKS_DELIVERY_TIMEOUT_SECONDS,
      Comment: `ec2-consistent-backup app hooks ${request.executionId}`.slice(0, 100),
      Parameters: { Apps: [request.apps] },
    }),
  );
  const result = await waitForCommand(
    ssm,
    clock,
    {
      command: sent,
      instanceId: request.instanceId,
      timeoutSeconds: APP_HOOKS_DELIVERY_TIMEOUT_SECONDS + APP_HOOKS_WAIT_SECONDS,
    },
    random,
  );
  if (result.succeeded) return undefined;
  let why = result.detail ?? result.status;
  try {
    const out = JSON.parse(result.stdout.trim().split('\n').pop() ?? '') as { error?: { message?: string } };
    if (out.error?.message) why = out.error.message;
  } catch {
    // Not the document's JSON (not delivered, timed out): the command status says why.
  }
  return {
    ...result,
    detail: `the packaged application hooks (${request.apps || 'none'}) could not be installed, nothing was frozen: ${why}`,
  };
}

/** SSM's smallest delivery timeout; a freeze not delivered by then is not wanted any more. */
export const FREEZE_DELIVERY_TIMEOUT_SECONDS = 30;

/**
 * Seconds the probe keeps waiting for the freeze command after the document's last NotAfter check
 * (just before its first fsfreeze): the fsfreeze calls themselves, the result line, the agent's
 * report and the next poll. lib/workflow.ts gives the same 30 s (COMMAND_REPORT_MARGIN_SECONDS) as
 * the last part of the freeze step's `timeoutSeconds`.
 */
export const FREEZE_RESULT_MARGIN_SECONDS = 30;

/**
 * The NotAfter this probe sends: the earlier of discovery's (the blast-radius slot: an hour after
 * the window for an instance without a group) and the moment after which this execution could no
 * longer see the freeze happen and so thaw it knowingly: the send time plus the time this probe waits
 * for the command (`timeoutSeconds`) less FREEZE_RESULT_MARGIN_SECONDS.
 *
 * Why not the send time plus a few seconds: the document checks NotAfter when the command arrives
 * and again right before its first fsfreeze, after the pre-freeze hooks and the sync, so a NotAfter a
 * few seconds away would refuse (LATE) every freeze whose hooks take longer than that. With the
 * default hookTimeoutSeconds 30 the step timeout is 120 s, so `timeoutSeconds` is 180 s and the
 * NotAfter is the send time + 150 s instead of the window + 3,600 s. A freeze the agent delivers
 * later than that (SSM's 30 s delivery timeout not honoured, a reconnecting agent) refuses LATE; one
 * that arrives after this execution's thaw refuses THAWED_BEFORE_FREEZE (the thaw's marker).
 */
export function freezeNotAfter(inputNotAfter: string, sentAtMs: number, timeoutSeconds: number): string {
  const own = sentAtMs + Math.max(0, timeoutSeconds - FREEZE_RESULT_MARGIN_SECONDS) * 1000;
  const input = Date.parse(inputNotAfter);
  return new Date(Number.isNaN(input) ? own : Math.min(input, own)).toISOString();
}

/** SendCommand: tries in all (throttled ones included), and look-ups of an ambiguous one. */
export const FREEZE_SEND_ATTEMPTS = 4;
export const FREEZE_LOOKUPS = 3;
/** ListCommands may not list a command the moment it is created: the look-ups are this far apart. */
export const FREEZE_LOOKUP_INTERVAL_MS = 700;
/** InvokedAfter is this much before the send time, for the clock difference between Lambda and SSM. */
const LOOKUP_SKEW_MS = 60_000;

function freezeComment(executionId: string): string {
  return `ec2-consistent-backup freeze ${executionId}`.slice(0, 100);
}

/**
 * The freeze command of this execution that SSM has, if any: ListCommands for the instance, the
 * document and InvokedAfter, matched on the ExecutionId parameter (or the comment). Asked
 * FREEZE_LOOKUPS times, FREEZE_LOOKUP_INTERVAL_MS apart; undefined when none is listed. Throws when
 * ListCommands itself fails: then nobody can tell, and the caller must not resend.
 */
export async function findFreezeCommand(
  ssm: Pick<SSMClient, 'send'>,
  clock: Clock,
  request: Pick<FreezeRequest, 'instanceId' | 'documentName' | 'executionId'>,
  sentAtMs: number,
): Promise<Command | undefined> {
  const invokedAfter = new Date(sentAtMs - LOOKUP_SKEW_MS).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const comment = freezeComment(request.executionId);
  for (let lookup = 0; lookup < FREEZE_LOOKUPS; lookup += 1) {
    if (lookup > 0) await clock.sleep(FREEZE_LOOKUP_INTERVAL_MS);
    let NextToken: string | undefined;
    let pages = 0;
    do {
      const page = await callWithin(clock, POLL_CALL_MS, (s) =>
        ssm.send(
          new ListCommandsCommand({
            InstanceId: request.instanceId,
            Filters: [
              { key: 'InvokedAfter', value: invokedAfter },
              { key: 'DocumentName', value: request.documentName },
            ],
            NextToken,
          }),
          { abortSignal: s },
        ),
      );
      const ours = (page.Commands ?? []).find(
        (c) =>
          typeof c.CommandId === 'string' &&
          (c.Parameters?.ExecutionId?.[0] === request.executionId || c.Comment === comment),
      );
      if (ours) return ours;
      NextToken = page.NextToken;
      pages += 1;
    } while (NextToken && pages < 5);
  }
  return undefined;
}

/** The Apps tag's canonical value from the freeze input's options, and the document that installs it. */
function appsInput(e: Record<string, unknown>): { apps?: string; appHooksDocumentName?: string } {
  const options = e.options;
  const apps =
    options !== null && typeof options === 'object' ? (options as Record<string, unknown>).apps : undefined;
  if (apps === undefined || e.appHooksDocumentName === undefined) return {};
  if (typeof apps !== 'string' || !new RegExp(appsPattern()).test(apps)) {
    throw new ProbeInputError(`Invalid options.apps: got ${JSON.stringify(apps)}; allowed: ${APPS_ALLOWED}.`);
  }
  const name = e.appHooksDocumentName;
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.:/-]{3,128}$/.test(name)) {
    throw new ProbeInputError(
      `Invalid appHooksDocumentName: got ${JSON.stringify(name)}; allowed: an SSM document name or ARN.`,
    );
  }
  return { apps, appHooksDocumentName: name };
}

/**
 * Send the freeze document, then wait for it. SendCommand has no idempotency token, so it is sent
 * with the SDK's retries off (handler.ts: maxAttempts 1) and retried here only where a second freeze
 * cannot come of it:
 * - throttled (the request was refused): sent again after a backoff;
 * - ambiguous (5xx, timeout, network: the command may exist): looked up with ListCommands first, and
 *   sent again only if no command of this execution is listed; if the look-up fails too, the error
 *   goes to the state machine, which thaws (the document is idempotent per ExecutionId as well);
 * - anything else (a 4xx) is final.
 */
export async function freeze(
  ssm: Pick<SSMClient, 'send'>,
  clock: Clock,
  request: FreezeRequest,
  random: () => number = Math.random,
): Promise<CommandResult> {
  const notInstalled = await installAppHooks(ssm, clock, request, random);
  if (notInstalled) return notInstalled;
  let sent: unknown;
  for (let attempt = 0; ; attempt += 1) {
    const sentAtMs = clock.now();
    try {
      sent = await callWithin(clock, MUTATING_CALL_MS, (s) =>
        ssm.send(
          new SendCommandCommand({
            DocumentName: request.documentName,
            InstanceIds: [request.instanceId],
            TimeoutSeconds: FREEZE_DELIVERY_TIMEOUT_SECONDS,
            Comment: freezeComment(request.executionId),
            Parameters: {
              ExecutionId: [request.executionId],
              VolumeIds: [request.volumeIds.join(',')],
              NotAfter: [freezeNotAfter(request.notAfter, sentAtMs, request.timeoutSeconds)],
              WatchdogSeconds: [String(request.watchdogSeconds)],
              HookTimeoutSeconds: [String(request.hookTimeoutSeconds)],
              Include: [request.include],
              Exclude: [request.exclude],
              // Sent only when there is a pair: Nitro instances need none, and the document's default is empty.
              ...(request.volumeDevices ? { VolumeDevices: [request.volumeDevices] } : {}),
            },
          }),
          { abortSignal: s },
        ),
      );
      break;
    } catch (err) {
      if (attempt + 1 >= FREEZE_SEND_ATTEMPTS || !(isThrottle(err) || isAmbiguous(err))) throw err;
      if (isAmbiguous(err)) {
        let found: Command | undefined;
        try {
          found = await findFreezeCommand(ssm, clock, request, sentAtMs);
        } catch {
          throw err;
        }
        if (found) {
          sent = { Command: found };
          break;
        }
      } else {
        await clock.sleep(200 + backoffMs(attempt, 250, 2000, random));
      }
    }
  }
  return waitForCommand(
    ssm,
    clock,
    { command: sent, instanceId: request.instanceId, timeoutSeconds: request.timeoutSeconds },
    random,
  );
}

export interface WaitForSnapshotsRequest {
  readonly volumeIds: readonly string[];
  /** The freeze command's result (waitForCommand), whose stdout says when the freeze happened. */
  readonly freeze: unknown;
  /** The StartBackupJob response. */
  readonly backupJob: unknown;
  readonly freezeBudgetSeconds: number;
  /** Seconds kept back from the budget for the thaw to reach the instance. */
  readonly thawMarginSeconds: number;
}

/**
 * Snapshot polls while frozen. Frozen time is what users fear, and AWS Backup usually starts the
 * snapshots 1-3 s after StartBackupJob, so the first 5 s are polled every 250 ms (a snapshot is
 * noticed ~125 ms after it starts on average, instead of ~500 ms at 1 s), then every second.
 *
 * Request rate. Each poll is one DescribeSnapshots (one page: the volume filter returns a few
 * snapshots per volume); DescribeBackupJob is asked at most once a second (JOB_CHECK_MS), since a
 * failed job only ends the wait early. One freeze therefore makes about 20 DescribeSnapshots in the
 * fast phase and 1/s after it, plus at most 1 DescribeBackupJob/s: about 9 DescribeSnapshots for a
 * typical 2 s wait (3 at the earlier 1 s polls). At 1,000 concurrent freezes that is up to 4,000
 * DescribeSnapshots/s in the fast phase (1,000/s at 1 s polls) and up to 1,000 DescribeBackupJob/s.
 * Both are far above EC2's documented default for non-mutating calls (bucket 100, refill 20/s per
 * API), and no per-instance schedule fits 1,000 concurrent freezes under it (20/s over 1,000
 * freezes is one poll per 50 s each). So at that scale the account's bucket, not this schedule,
 * sets the pace: a RequestLimitExceeded or a throttled DescribeBackupJob backs off with full jitter
 * and drops this wait to the 1 s schedule for good, so a throttled account sheds load rather than
 * amplifying it; freezes then last longer, up to the freeze budget, after which the backup is
 * labelled crash with the reason. Concurrency is what discovery's start pacing (StartExecution at
 * <= 300/s) and group waves make it: about start rate x freeze length, several hundred for an
 * ungrouped fleet. A fleet that large needs one shared snapshot poller rather than one per freeze.
 */
export const SNAPSHOT_POLL: PollSchedule = { fastMs: 250, fastForMs: 5000, slowMs: 1000, jitter: 0.2 };
/** DescribeBackupJob at most this often: it only detects a failed job. */
export const JOB_CHECK_MS = 1000;

/**
 * The freeze time the budget counts from: the instance's frozenAt, but never later than `nowMs` (a
 * moment on this side's clock known to be after the freeze), so an instance clock that runs ahead
 * cannot stretch a freeze beyond its budget.
 */
export function budgetStartMs(frozenAtMs: number, nowMs: number): number {
  return Math.min(frozenAtMs, nowMs);
}

export async function waitForSnapshots(
  clients: { ec2: Pick<EC2Client, 'send'>; backup: Pick<BackupClient, 'send'> },
  clock: Clock,
  request: WaitForSnapshotsRequest,
  random: () => number = Math.random,
): Promise<SnapshotWaitResult> {
  const started = clock.now();
  const volumeIds = [...new Set(request.volumeIds)];
  const freezeStdout = (request.freeze as { stdout?: unknown } | undefined)?.stdout;
  const freeze = parseFreezeOutput(freezeStdout);
  const result = (
    status: SnapshotWaitResult['status'],
    snapshots: SnapshotWaitResult['snapshots'],
    jobState?: string,
    jobStatusMessage?: string,
  ): SnapshotWaitResult => ({
    status,
    snapshots,
    missingVolumeIds: volumeIds.filter((v) => !snapshots.some((s) => s.volumeId === v)),
    ...(jobState ? { jobState } : {}),
    ...(jobStatusMessage ? { jobStatusMessage: jobStatusMessage.slice(0, 500) } : {}),
    waitedMs: clock.now() - started,
  });
  if (!freeze || (freeze.status === 'frozen' && freeze.frozenAtMs === undefined)) {
    return result('freeze-output-invalid', []);
  }
  if (freeze.status !== 'frozen') return result('not-frozen', []);
  const frozenAtMs = freeze.frozenAtMs as number;
  const deadline =
    budgetStartMs(frozenAtMs, started) + (request.freezeBudgetSeconds - request.thawMarginSeconds) * 1000;
  const backupJobId = (request.backupJob as { BackupJobId?: unknown } | undefined)?.BackupJobId;
  // Every call is cut to the time left: a hung DescribeSnapshots cannot hold the filesystems frozen.
  const within = <T>(call: (s: AbortSignal) => Promise<T>) =>
    callWithin(clock, Math.max(1, Math.min(POLL_CALL_MS, deadline - clock.now())), call);
  const firstSeen = new Map<string, number>();

  let found: SnapshotWaitResult['snapshots'] = [];
  let jobState: string | undefined;
  let attempt = 0;
  let throttled = false;
  let jobCheckedAt = -Infinity;
  for (;;) {
    // Past the deadline not even one more call: the thaw comes first.
    if (deadline - clock.now() <= 0) return result('budget-exceeded', found, jobState);
    try {
      const listed = await startedSnapshots(clients.ec2, volumeIds, frozenAtMs, within);
      const seenAt = clock.now();
      found = listed.map((snap) => {
        const key = `${snap.volumeId}/${snap.snapshotId}`;
        if (!firstSeen.has(key)) firstSeen.set(key, seenAt);
        return { ...snap, seenAtMs: firstSeen.get(key) as number };
      });
      if (found.length === volumeIds.length) return result('started', found, jobState);
      if (typeof backupJobId === 'string' && clock.now() - jobCheckedAt >= JOB_CHECK_MS) {
        jobCheckedAt = clock.now();
        if (deadline - clock.now() <= 0) return result('budget-exceeded', found, jobState);
        const job = await within((s) =>
          clients.backup.send(new DescribeBackupJobCommand({ BackupJobId: backupJobId }), { abortSignal: s }),
        );
        jobState = job.State;
        if (jobState && FAILED_JOB_STATES.includes(jobState)) {
          return result('job-failed', found, jobState, job.StatusMessage);
        }
      }
      attempt = 0;
    } catch (err) {
      if (!isTransient(err)) throw err;
      attempt += 1;
      throttled = true;
    }
    const remaining = deadline - clock.now();
    if (remaining <= 0) return result('budget-exceeded', found, jobState);
    const delay =
      attempt > 0
        ? SNAPSHOT_POLL.slowMs + backoffMs(attempt, 500, 4000, random)
        : pollDelayMs(SNAPSHOT_POLL, clock.now() - started, random, throttled);
    await clock.sleep(Math.min(delay, remaining));
  }
}

function toMs(value: unknown): number | undefined {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}

/**
 * One snapshot per volume that started at or after the freeze. A snapshot's point in time is fixed
 * when it starts (state pending), so completion is not awaited; an `error` snapshot does not count.
 */
async function startedSnapshots(
  ec2: Pick<EC2Client, 'send'>,
  volumeIds: readonly string[],
  frozenAtMs: number,
  within: <T>(call: (s: AbortSignal) => Promise<T>) => Promise<T>,
): Promise<{ volumeId: string; snapshotId: string; startTime: string }[]> {
  const byVolume = new Map<string, { volumeId: string; snapshotId: string; startTime: string }>();
  let NextToken: string | undefined;
  do {
    const token = NextToken;
    const page = await within((s) =>
      ec2.send(
        new DescribeSnapshotsCommand({
          OwnerIds: ['self'],
          Filters: [{ Name: 'volume-id', Values: [...volumeIds] }],
          NextToken: token,
        }),
        { abortSignal: s },
      ),
    );
    for (const s of page.Snapshots ?? []) {
      const startMs = toMs(s.StartTime);
      if (!s.VolumeId || !s.SnapshotId || startMs === undefined || s.State === 'error') continue;
      if (startMs < frozenAtMs || !volumeIds.includes(s.VolumeId) || byVolume.has(s.VolumeId)) continue;
      byVolume.set(s.VolumeId, {
        volumeId: s.VolumeId,
        snapshotId: s.SnapshotId,
        startTime: new Date(startMs).toISOString(),
      });
    }
    NextToken = page.NextToken;
  } while (NextToken);
  return [...byVolume.values()];
}

export interface StartBackupRequest {
  readonly instanceArn: string;
  readonly backupVaultName: string;
  readonly iamRoleArn: string;
  /** The execution name: one job per execution, however often it is asked for. */
  readonly idempotencyToken: string;
  readonly recoveryPointTags: Readonly<Record<string, string>>;
  /** Passed to StartBackupJob as is, when present. */
  readonly lifecycle?: Readonly<Record<string, unknown>>;
  readonly startWindowMinutes: number;
  readonly windowsVss: boolean;
  /** The freeze command's result (waitForCommand): the budget counts from its frozenAt. */
  readonly freeze: unknown;
  readonly freezeBudgetSeconds: number;
  readonly thawMarginSeconds: number;
}

/** `$.backupJob`: StartBackupJob's answer, or the job a look-up found. No RecoveryPointArn for EC2. */
export interface StartedBackupJob {
  readonly BackupJobId: string;
  /** ISO-8601, when AWS Backup gave it. */
  readonly CreationDate?: string;
  readonly IsParent?: boolean;
  /** `StartBackupJob`, or `ListBackupJobs` when an ambiguous failure was resolved by a look-up. */
  readonly foundBy: 'StartBackupJob' | 'ListBackupJobs';
  readonly attempts: number;
}

/**
 * No job could be started (or found) before the freeze budget ran out. The state machine thaws
 * first; a StartBackupJob after the thaw with the same idempotency token then returns the job if an
 * abandoned attempt did create it, or starts it.
 */
export class BackupStartOverBudget extends Error {
  override readonly name = 'BackupStartOverBudget';
}

/** When nothing is frozen (the document found nothing to freeze) there is no budget, only this limit. */
export const UNFROZEN_START_MS = 60_000;
/** ByCreatedAfter is this much before the first attempt, for the clock difference with AWS Backup. */
const JOB_LOOKUP_SKEW_MS = 10_000;

function isoOrUndefined(value: unknown): string | undefined {
  const ms = toMs(value);
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

/**
 * The job this execution's StartBackupJob created, if AWS Backup lists one: ListBackupJobs by the
 * instance, the vault and ByCreatedAfter (the first attempt, less a skew), the role matching; the
 * earliest such job.
 */
export async function findCreatedJob(
  backup: Pick<BackupClient, 'send'>,
  request: Pick<StartBackupRequest, 'instanceArn' | 'backupVaultName' | 'iamRoleArn'>,
  createdAfterMs: number,
  within: <T>(call: (s: AbortSignal) => Promise<T>) => Promise<T>,
): Promise<{ BackupJobId: string; CreationDate?: string; IsParent?: boolean } | undefined> {
  const page = await within((s) =>
    backup.send(
      new ListBackupJobsCommand({
        ByResourceArn: request.instanceArn,
        ByBackupVaultName: request.backupVaultName,
        ByCreatedAfter: new Date(createdAfterMs - JOB_LOOKUP_SKEW_MS),
        MaxResults: 20,
      }),
      { abortSignal: s },
    ),
  );
  const jobs = (page.BackupJobs ?? [])
    .filter(
      (j) =>
        typeof j.BackupJobId === 'string' &&
        j.BackupJobId !== '' &&
        (j.IamRoleArn === undefined || j.IamRoleArn === request.iamRoleArn),
    )
    .sort((a, b) => (toMs(a.CreationDate) ?? 0) - (toMs(b.CreationDate) ?? 0));
  const job = jobs[0];
  if (!job) return undefined;
  return {
    BackupJobId: job.BackupJobId as string,
    ...(isoOrUndefined(job.CreationDate) ? { CreationDate: isoOrUndefined(job.CreationDate) } : {}),
    ...(typeof job.IsParent === 'boolean' ? { IsParent: job.IsParent } : {}),
  };
}

/**
 * StartBackupJob while frozen, inside the freeze budget: every attempt's time limit, every backoff
 * and every look-up is cut to the time left (frozenAt + budget − thaw margin). Each attempt carries
 * the same IdempotencyToken, so a retry can only return the job an earlier attempt created. After an
 * ambiguous failure (5xx, timeout, network, or an answer without BackupJobId) ListBackupJobs looks
 * for the job before anything else. A 4xx ends it at once (after a look-up if an earlier attempt was
 * ambiguous); past the budget it throws BackupStartOverBudget, so the workflow thaws first.
 */
export async function startBackupJob(
  backup: Pick<BackupClient, 'send'>,
  clock: Clock,
  request: StartBackupRequest,
  random: () => number = Math.random,
): Promise<StartedBackupJob> {
  const firstAttemptAt = clock.now();
  const freezeOut = parseFreezeOutput((request.freeze as { stdout?: unknown } | undefined)?.stdout);
  const frozen = freezeOut?.status === 'frozen' && freezeOut.frozenAtMs !== undefined;
  const deadline = frozen
    ? budgetStartMs(freezeOut.frozenAtMs as number, firstAttemptAt) +
      (request.freezeBudgetSeconds - request.thawMarginSeconds) * 1000
    : firstAttemptAt + UNFROZEN_START_MS;
  const left = () => deadline - clock.now();
  const within = <T>(limitMs: number, call: (s: AbortSignal) => Promise<T>) =>
    callWithin(clock, Math.max(1, Math.min(limitMs, left())), call);
  const input = {
    BackupVaultName: request.backupVaultName,
    ResourceArn: request.instanceArn,
    IamRoleArn: request.iamRoleArn,
    IdempotencyToken: request.idempotencyToken,
    StartWindowMinutes: request.startWindowMinutes,
    RecoveryPointTags: { ...request.recoveryPointTags },
    ...(request.lifecycle ? { Lifecycle: request.lifecycle } : {}),
    ...(request.windowsVss ? { BackupOptions: { WindowsVSS: 'enabled' } } : {}),
  };
  let ambiguous = false;
  let lastError: unknown;
  let attempts = 0;
  const lookUp = async (): Promise<StartedBackupJob | undefined> => {
    if (left() <= 0) return undefined;
    try {
      const job = await findCreatedJob(backup, request, firstAttemptAt, (call) => within(POLL_CALL_MS, call));
      return job ? { ...job, foundBy: 'ListBackupJobs', attempts } : undefined;
    } catch (err) {
      if (!isTransient(err)) throw err;
      return undefined;
    }
  };
  while (left() > 0) {
    attempts += 1;
    try {
      const out = await within(MUTATING_CALL_MS, (s) =>
        backup.send(new StartBackupJobCommand(input), { abortSignal: s }),
      );
      if (typeof out.BackupJobId === 'string' && out.BackupJobId !== '') {
        const created = isoOrUndefined(out.CreationDate);
        return {
          BackupJobId: out.BackupJobId,
          ...(created ? { CreationDate: created } : {}),
          ...(typeof out.IsParent === 'boolean' ? { IsParent: out.IsParent } : {}),
          foundBy: 'StartBackupJob',
          attempts,
        };
      }
      ambiguous = true;
      lastError = new Error('StartBackupJob answered without a BackupJobId');
    } catch (err) {
      lastError = err;
      if (!isTransient(err)) {
        const job = ambiguous ? await lookUp() : undefined;
        if (job) return job;
        throw err;
      }
      if (isAmbiguous(err)) ambiguous = true;
    }
    if (ambiguous) {
      const job = await lookUp();
      if (job) return job;
    }
    if (left() <= 0) break;
    await clock.sleep(Math.min(left(), 200 + backoffMs(attempts - 1, 250, 2000, random)));
  }
  throw new BackupStartOverBudget(
    `no backup job within the ${frozen ? `freeze budget (${request.freezeBudgetSeconds} s less a ${request.thawMarginSeconds} s thaw margin)` : `${UNFROZEN_START_MS / 1000} s limit`} after ${attempts} StartBackupJob attempt(s)${ambiguous ? ', some ambiguous, and no job listed for this instance since the first' : ''}; last error: ${lastError instanceof Error ? `${lastError.name}: ${lastError.message}` : 'none'}`.slice(
      0,
      900,
    ),
  );
}

/** The event the state machine sends. */
export type ProbeRequest =
  | { readonly action: 'activeJobs'; readonly instanceArn: string }
  | ({ readonly action: 'freeze' } & FreezeRequest)
  | ({ readonly action: 'waitForCommand' } & WaitForCommandRequest)
  | ({ readonly action: 'waitForSnapshots' } & WaitForSnapshotsRequest)
  | ({ readonly action: 'startBackupJob' } & StartBackupRequest);

const VOLUME_ID = /^vol-[0-9a-f]{8,17}$/;
const INSTANCE_ID = /^(i|mi)-[0-9a-f]{8,17}$/;

function positive(field: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > max) {
    throw new ProbeInputError(
      `Invalid ${field}: got ${JSON.stringify(value)}; allowed: a number from 0 to ${max}.`,
    );
  }
  return value;
}

/**
 * The freeze's `volumeDevices`, joined for the document: absent or empty means none; otherwise at
 * most one `vol-id=/dev/name` per volume being frozen, each of the document's form.
 */
function volumeDevices(value: unknown, volumeIds: readonly string[]): string {
  if (value === undefined) return '';
  const volumeOf = (p: string) => p.slice(0, p.indexOf('='));
  if (
    !Array.isArray(value) ||
    value.length > volumeIds.length ||
    !value.every(
      (p) => typeof p === 'string' && VOLUME_DEVICE_ENTRY.test(p) && volumeIds.includes(volumeOf(p)),
    ) ||
    new Set(value.map(volumeOf)).size !== value.length
  ) {
    throw new ProbeInputError(
      `Invalid volumeDevices: got ${JSON.stringify(value)}; allowed: a list of vol-id=/dev/name (name: 1-16 of a-z 0-9), at most one per volume in volumeIds.`,
    );
  }
  return value.join(',');
}

/** Validate the event, naming the bad value and what is allowed. */
export function parseProbeRequest(event: unknown): ProbeRequest {
  const e = (typeof event === 'object' && event !== null ? event : {}) as Record<string, unknown>;
  switch (e.action) {
    case 'activeJobs':
      if (
        typeof e.instanceArn !== 'string' ||
        !/^arn:aws[a-z-]*:ec2:[a-z0-9-]+:\d{12}:instance\/i-[0-9a-f]+$/.test(e.instanceArn)
      ) {
        throw new ProbeInputError(
          `Invalid instanceArn: got ${JSON.stringify(e.instanceArn)}; allowed: arn:aws:ec2:<region>:<account>:instance/i-...`,
        );
      }
      return { action: 'activeJobs', instanceArn: e.instanceArn };
    case 'freeze': {
      const str = (field: string, pattern: RegExp, allowed: string): string => {
        const value = e[field];
        if (typeof value !== 'string' || !pattern.test(value)) {
          throw new ProbeInputError(`Invalid ${field}: got ${JSON.stringify(value)}; allowed: ${allowed}.`);
        }
        return value;
      };
      const paths = /^$|^\/[A-Za-z0-9._/-]*(,\/[A-Za-z0-9._/-]*)*$/;
      const ids = e.volumeIds;
      if (
        !Array.isArray(ids) ||
        ids.length === 0 ||
        ids.length > MAX_FREEZE_VOLUMES ||
        !ids.every((v) => typeof v === 'string' && VOLUME_ID.test(v))
      ) {
        throw new ProbeInputError(
          `Invalid volumeIds: got ${JSON.stringify(ids)}; allowed: 1 to ${MAX_FREEZE_VOLUMES} ids of the form vol-<8 to 17 hex digits>.`,
        );
      }
      return {
        action: 'freeze',
        documentName: str('documentName', /^[A-Za-z0-9_.:/-]{3,128}$/, 'an SSM document name or ARN'),
        instanceId: str('instanceId', INSTANCE_ID, 'i-<8 to 17 hex digits>'),
        executionId: str('executionId', /^[A-Za-z0-9_.:-]{1,128}$/, '1-128 of A-Z a-z 0-9 _ . : -'),
        volumeIds: ids as string[],
        volumeDevices: volumeDevices(e.volumeDevices, ids as string[]),
        notAfter: str(
          'notAfter',
          /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$/,
          'an ISO-8601 UTC time such as 2026-11-22T02:10:00Z',
        ),
        watchdogSeconds: positive('watchdogSeconds', e.watchdogSeconds, 300),
        hookTimeoutSeconds: positive('hookTimeoutSeconds', e.hookTimeoutSeconds, 600),
        include: str('include', paths, 'empty or comma-separated absolute paths of A-Z a-z 0-9 . _ / -'),
        exclude: str('exclude', paths, 'empty or comma-separated absolute paths of A-Z a-z 0-9 . _ / -'),
        timeoutSeconds: positive('timeoutSeconds', e.timeoutSeconds, 900),
        ...appsInput(e),
      };
    }
    case 'waitForCommand':
      if (typeof e.instanceId !== 'string' || !INSTANCE_ID.test(e.instanceId)) {
        throw new ProbeInputError(
          `Invalid instanceId: got ${JSON.stringify(e.instanceId)}; allowed: i-<8 to 17 hex digits>.`,
        );
      }
      return {
        action: 'waitForCommand',
        command: e.command,
        instanceId: e.instanceId,
        timeoutSeconds: positive('timeoutSeconds', e.timeoutSeconds, 900),
      };
    case 'waitForSnapshots': {
      const ids = e.volumeIds;
      if (
        !Array.isArray(ids) ||
        ids.length === 0 ||
        !ids.every((v) => typeof v === 'string' && VOLUME_ID.test(v))
      ) {
        throw new ProbeInputError(
          `Invalid volumeIds: got ${JSON.stringify(ids)}; allowed: a non-empty list of vol-<8 to 17 hex digits>.`,
        );
      }
      return {
        action: 'waitForSnapshots',
        volumeIds: ids as string[],
        freeze: e.freeze,
        backupJob: e.backupJob,
        freezeBudgetSeconds: positive('freezeBudgetSeconds', e.freezeBudgetSeconds, 600),
        thawMarginSeconds: positive('thawMarginSeconds', e.thawMarginSeconds, 600),
      };
    }
    case 'startBackupJob':
      return parseStartBackupRequest(e);
    default:
      throw new ProbeInputError(
        `Invalid action: got ${JSON.stringify(e.action)}; allowed: activeJobs, freeze, waitForCommand, waitForSnapshots, startBackupJob.`,
      );
  }
}

const INSTANCE_ARN = /^arn:aws[a-z-]*:ec2:[a-z0-9-]+:\d{12}:instance\/i-[0-9a-f]+$/;

function parseStartBackupRequest(e: Record<string, unknown>): ProbeRequest {
  const str = (field: string, pattern: RegExp, allowed: string): string => {
    const value = e[field];
    if (typeof value !== 'string' || !pattern.test(value)) {
      throw new ProbeInputError(`Invalid ${field}: got ${JSON.stringify(value)}; allowed: ${allowed}.`);
    }
    return value;
  };
  const tags = e.recoveryPointTags;
  if (
    typeof tags !== 'object' ||
    tags === null ||
    Array.isArray(tags) ||
    Object.keys(tags).length > 50 ||
    !Object.values(tags).every((v) => typeof v === 'string')
  ) {
    throw new ProbeInputError(
      `Invalid recoveryPointTags: got ${JSON.stringify(tags)}; allowed: an object of at most 50 string values.`,
    );
  }
  const lifecycle = e.lifecycle;
  if (
    lifecycle !== undefined &&
    (typeof lifecycle !== 'object' || lifecycle === null || Array.isArray(lifecycle))
  ) {
    throw new ProbeInputError(
      `Invalid lifecycle: got ${JSON.stringify(lifecycle)}; allowed: absent, or StartBackupJob's Lifecycle object.`,
    );
  }
  if (e.windowsVss !== undefined && typeof e.windowsVss !== 'boolean') {
    throw new ProbeInputError(
      `Invalid windowsVss: got ${JSON.stringify(e.windowsVss)}; allowed: true or false.`,
    );
  }
  const startWindowMinutes = positive('startWindowMinutes', e.startWindowMinutes, 60 * 24 * 7);
  if (startWindowMinutes < 60) {
    throw new ProbeInputError(
      `Invalid startWindowMinutes: got ${startWindowMinutes}; allowed: at least 60 (AWS Backup's minimum).`,
    );
  }
  return {
    action: 'startBackupJob',
    instanceArn: str('instanceArn', INSTANCE_ARN, 'arn:aws:ec2:<region>:<account>:instance/i-...'),
    backupVaultName: str('backupVaultName', /^[A-Za-z0-9_-]{2,50}$/, '2-50 of A-Z a-z 0-9 - _'),
    iamRoleArn: str('iamRoleArn', /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/, 'an IAM role ARN'),
    idempotencyToken: str('idempotencyToken', /^[A-Za-z0-9_.:-]{1,128}$/, '1-128 of A-Z a-z 0-9 _ . : -'),
    recoveryPointTags: tags as Record<string, string>,
    ...(lifecycle !== undefined ? { lifecycle: lifecycle as Record<string, unknown> } : {}),
    startWindowMinutes,
    windowsVss: e.windowsVss === true,
    freeze: e.freeze,
    freezeBudgetSeconds: positive('freezeBudgetSeconds', e.freezeBudgetSeconds, 600),
    thawMarginSeconds: positive('thawMarginSeconds', e.thawMarginSeconds, 600),
  };
}
