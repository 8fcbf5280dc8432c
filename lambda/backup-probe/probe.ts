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
 * Every result is small, typed and always well-formed, so the state machine never meets a missing
 * field. Clients and the clock are parameters, so tests run on fake time.
 */

import {
  type BackupClient,
  type BackupJobState,
  DescribeBackupJobCommand,
  ListBackupJobsCommand,
} from '@aws-sdk/client-backup';
import { DescribeSnapshotsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { APPS_ALLOWED, appsPattern } from '../shared/apps';
import { GetCommandInvocationCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
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
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** Job states in which AWS Backup refuses or queues another job for the same resource. */
export const ACTIVE_JOB_STATES: readonly BackupJobState[] = ['CREATED', 'PENDING', 'RUNNING', 'ABORTING'];
/** Job states that end a job without a recovery point. */
export const FAILED_JOB_STATES: readonly string[] = ['FAILED', 'ABORTED', 'EXPIRED'];
const TERMINAL_COMMAND_STATUSES = ['Success', 'Failed', 'Cancelled', 'TimedOut'];

/** A request the handler could not accept; the message names the field and what is allowed. */
export class ProbeInputError extends Error {
  override readonly name = 'ProbeInputError';
}

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : 'Error';
}

/** Errors worth another try inside the same invocation: throttling, 5xx, network. */
export function isTransient(err: unknown): boolean {
  const e = err as { name?: string; $retryable?: unknown; $metadata?: { httpStatusCode?: number } };
  if (e?.$retryable) return true;
  if ((e?.$metadata?.httpStatusCode ?? 0) >= 500) return true;
  return /Throttl|RequestLimitExceeded|TooManyRequests|ServiceUnavailable|InternalServer|InternalError|TimeoutError|ECONNRESET|NetworkingError/i.test(
    errorName(err),
  );
}

/** Full jitter: a random delay up to base·2^attempt, capped. */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  return Math.round(random() * Math.min(capMs, baseMs * 2 ** attempt));
}

export async function activeJobs(
  backup: Pick<BackupClient, 'send'>,
  instanceArn: string,
): Promise<ActiveJobsResult> {
  const pages = await Promise.all(
    ACTIVE_JOB_STATES.map((state) =>
      backup.send(new ListBackupJobsCommand({ ByResourceArn: instanceArn, ByState: state, MaxResults: 20 })),
    ),
  );
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
      const inv = await ssm.send(
        new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: request.instanceId }),
      );
      attempt = 0;
      const status = typeof inv.Status === 'string' ? inv.Status : 'Unknown';
      lastStatus = status;
      if (TERMINAL_COMMAND_STATUSES.includes(status)) {
        const stderr = inv.StandardErrorContent ?? '';
        return {
          succeeded: status === 'Success',
          status,
          commandId,
          stdout: inv.StandardOutputContent ?? '',
          stderr: stderr.slice(-2000),
          detail:
            status === 'Success'
              ? 'command succeeded'
              : `${inv.StatusDetails ?? status}, exit code ${inv.ResponseCode ?? 'unknown'}${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 300)}` : ''}`,
        };
      }
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
 * Send the freeze document, then wait for it. SendCommand is retried only on throttling, where the
 * request was refused: a blind retry of a request that may have run would freeze twice.
 */
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
    try {
      sent = await ssm.send(
        new SendCommandCommand({
          DocumentName: request.documentName,
          InstanceIds: [request.instanceId],
          TimeoutSeconds: FREEZE_DELIVERY_TIMEOUT_SECONDS,
          Comment: `ec2-consistent-backup freeze ${request.executionId}`.slice(0, 100),
          Parameters: {
            ExecutionId: [request.executionId],
            VolumeIds: [request.volumeIds.join(',')],
            NotAfter: [request.notAfter],
            WatchdogSeconds: [String(request.watchdogSeconds)],
            HookTimeoutSeconds: [String(request.hookTimeoutSeconds)],
            Include: [request.include],
            Exclude: [request.exclude],
            // Sent only when there is a pair: Nitro instances need none, and the document's default is empty.
            ...(request.volumeDevices ? { VolumeDevices: [request.volumeDevices] } : {}),
          },
        }),
      );
      break;
    } catch (err) {
      if (!/Throttl|TooManyRequests|RequestLimitExceeded/i.test(errorName(err)) || attempt >= 3) throw err;
      await clock.sleep(200 + backoffMs(attempt, 250, 2000, random));
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
  const deadline = frozenAtMs + (request.freezeBudgetSeconds - request.thawMarginSeconds) * 1000;
  const backupJobId = (request.backupJob as { BackupJobId?: unknown } | undefined)?.BackupJobId;

  let found: SnapshotWaitResult['snapshots'] = [];
  let jobState: string | undefined;
  let attempt = 0;
  let throttled = false;
  let jobCheckedAt = -Infinity;
  for (;;) {
    try {
      found = await startedSnapshots(clients.ec2, volumeIds, frozenAtMs);
      if (found.length === volumeIds.length) return result('started', found, jobState);
      if (typeof backupJobId === 'string' && clock.now() - jobCheckedAt >= JOB_CHECK_MS) {
        jobCheckedAt = clock.now();
        const job = await clients.backup.send(new DescribeBackupJobCommand({ BackupJobId: backupJobId }));
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
): Promise<SnapshotWaitResult['snapshots']> {
  const byVolume = new Map<string, { volumeId: string; snapshotId: string; startTime: string }>();
  let NextToken: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeSnapshotsCommand({
        OwnerIds: ['self'],
        Filters: [{ Name: 'volume-id', Values: [...volumeIds] }],
        NextToken,
      }),
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

/** The event the state machine sends. */
export type ProbeRequest =
  | { readonly action: 'activeJobs'; readonly instanceArn: string }
  | ({ readonly action: 'freeze' } & FreezeRequest)
  | ({ readonly action: 'waitForCommand' } & WaitForCommandRequest)
  | ({ readonly action: 'waitForSnapshots' } & WaitForSnapshotsRequest);

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
    default:
      throw new ProbeInputError(
        `Invalid action: got ${JSON.stringify(e.action)}; allowed: activeJobs, freeze, waitForCommand, waitForSnapshots.`,
      );
  }
}
