/**
 * The Start Backup Job steps. Mode `frozen` (Linux, after the freeze): StartBackupJob inside the
 * freeze budget, then wait until every volume's snapshot has started, answered as one
 * SnapshotWaitResult (lambda/shared/workflow-results.ts) at the latest at frozenAtAws + budget −
 * thaw margin: a job that cannot be started in time is `budget-exceeded` with no job, and the state
 * machine thaws first and then starts it without the freeze. Modes `unfrozen` (stopped instances,
 * the crash-consistent fallback) and `windows-vss`: the active-job check, then StartBackupJob,
 * answered as an UnfrozenBackupResult.
 */

import type { BackupClient } from '@aws-sdk/client-backup';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { activeJobs } from '../shared/backup-jobs';
import {
  type Clock,
  EXECUTION_NAME,
  INSTANCE_ARN,
  matching,
  positive,
  StepInputError,
  VOLUME_ID,
} from '../shared/calls';
import type {
  BackupJobRef,
  FreezeStepResult,
  SnapshotWaitResult,
  StepError,
  UnfrozenBackupResult,
} from '../shared/workflow-results';
import { waitForSnapshots } from './snapshots';
import {
  BackupStartOverBudget,
  type StartBackupRequest,
  type StartedBackupJob,
  startBackupJob,
} from './start-job';

export const START_MODES = ['frozen', 'unfrozen', 'windows-vss'] as const;
export type StartMode = (typeof START_MODES)[number];

export type StartBackupStepRequest =
  | {
      readonly mode: 'frozen';
      readonly job: StartBackupRequest;
      readonly volumeIds: readonly string[];
      /** The Freeze Filesystems result, as the state machine stored it (checked here, not trusted). */
      readonly freeze: unknown;
    }
  | {
      readonly mode: 'unfrozen' | 'windows-vss';
      readonly job: StartBackupRequest;
      /** The execution's startAt: a job of ours cannot be older (the active-job check ignores it). */
      readonly startAtMs: number;
    };

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function asStepError(err: unknown): StepError {
  const e = err as Error;
  return {
    Error: e?.name || 'Error',
    Cause: String(e?.message ?? err).slice(0, 900),
  };
}

function jobRef(job: StartedBackupJob): BackupJobRef {
  return { backupJobId: job.BackupJobId, ...(job.CreationDate ? { creationDate: job.CreationDate } : {}) };
}

/** Mode `frozen`: start the job inside the budget, then wait for the snapshots, inside the budget too. */
export async function startFrozenBackup(
  clients: { ec2: Pick<EC2Client, 'send'>; backup: Pick<BackupClient, 'send'> },
  clock: Clock,
  request: Extract<StartBackupStepRequest, { mode: 'frozen' }>,
  random: () => number = Math.random,
): Promise<SnapshotWaitResult> {
  const started = clock.now();
  const freeze = record(request.freeze) as Partial<FreezeStepResult> | undefined;
  const volumeIds = [...new Set(request.volumeIds)];
  const answer = (
    status: SnapshotWaitResult['status'],
    extra: Partial<SnapshotWaitResult> = {},
  ): SnapshotWaitResult => ({
    status,
    snapshots: [],
    missingVolumeIds: volumeIds,
    waitedMs: clock.now() - started,
    answeredBy: 'start-backup',
    ...extra,
  });
  // Only a freeze result that says frozen, with its freeze time, has a budget to count: anything
  // else is answered at once (nothing to wait for, or a budget that cannot be computed).
  if (freeze?.outcome !== 'frozen') return answer('not-frozen');
  if (typeof freeze.frozenAtMs !== 'number' || typeof record(freeze.command)?.stdout !== 'string') {
    return answer('freeze-output-invalid');
  }
  const frozenAtAwsMs = typeof freeze.frozenAtAwsMs === 'number' ? freeze.frozenAtAwsMs : undefined;
  let job: StartedBackupJob;
  try {
    job = await startBackupJob(
      clients.backup,
      clock,
      { ...request.job, freeze: freeze.command, ...(frozenAtAwsMs !== undefined ? { frozenAtAwsMs } : {}) },
      random,
    );
  } catch (err) {
    // Past the budget (no job yet) or refused for good (an AWS error retrying cannot fix): the state
    // machine thaws first either way. Anything else is a fault of this function: the task fails,
    // and its Catch thaws.
    if (err instanceof BackupStartOverBudget)
      return answer('budget-exceeded', { backupError: asStepError(err) });
    if ((err as { $metadata?: unknown })?.$metadata !== undefined)
      return answer('start-failed', { backupError: asStepError(err) });
    throw err;
  }
  const wait = await waitForSnapshots(
    clients,
    clock,
    {
      volumeIds,
      freeze: freeze.command,
      backupJob: { BackupJobId: job.BackupJobId },
      freezeBudgetSeconds: request.job.freezeBudgetSeconds,
      thawMarginSeconds: request.job.thawMarginSeconds,
      ...(frozenAtAwsMs !== undefined ? { frozenAtAwsMs } : {}),
    },
    random,
  );
  return { ...wait, waitedMs: clock.now() - started, backupJob: jobRef(job), answeredBy: 'start-backup' };
}

/** Modes `unfrozen` and `windows-vss`: no freeze, so no budget; the active-job check comes first. */
export async function startUnfrozenBackup(
  backup: Pick<BackupClient, 'send'>,
  clock: Clock,
  request: Extract<StartBackupStepRequest, { mode: 'unfrozen' | 'windows-vss' }>,
  random: () => number = Math.random,
): Promise<UnfrozenBackupResult> {
  const windowsVss = request.mode === 'windows-vss';
  let activeJobsError: StepError | undefined;
  try {
    const active = await activeJobs(backup, request.job.instanceArn, clock, {
      backupVaultName: request.job.backupVaultName,
      iamRoleArn: request.job.iamRoleArn,
      notBeforeMs: request.startAtMs,
    });
    if (active.active) return { started: false, activeJobs: active, windowsVss };
  } catch (err) {
    // Back up anyway (the verdict warns): a skipped window is worse than a job AWS Backup refuses.
    activeJobsError = asStepError(err);
  }
  const checked = activeJobsError ? { activeJobsError } : {};
  try {
    const job = await startBackupJob(backup, clock, { ...request.job, freeze: undefined }, random);
    return { started: true, backupJob: jobRef(job), windowsVss, ...checked };
  } catch (err) {
    return { started: false, backupError: asStepError(err), windowsVss, ...checked };
  }
}

/** Validate the event, naming the bad value and what is allowed. */
export function parseStartBackupStepRequest(event: unknown): StartBackupStepRequest {
  const e = (typeof event === 'object' && event !== null ? event : {}) as Record<string, unknown>;
  const mode = e.mode;
  if (!START_MODES.includes(mode as StartMode)) {
    throw new StepInputError(
      `Invalid mode: got ${JSON.stringify(mode)}; allowed: ${START_MODES.join(', ')}.`,
    );
  }
  const job = parseStartJob(e, mode === 'windows-vss');
  if (mode === 'frozen') {
    const ids = e.volumeIds;
    if (
      !Array.isArray(ids) ||
      ids.length === 0 ||
      !ids.every((v) => typeof v === 'string' && VOLUME_ID.test(v))
    ) {
      throw new StepInputError(
        `Invalid volumeIds: got ${JSON.stringify(ids)}; allowed: a non-empty list of vol-<8 to 17 hex digits>.`,
      );
    }
    return { mode, job, volumeIds: ids as string[], freeze: e.freeze };
  }
  const startAt = matching(
    e,
    'startAt',
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$/,
    'an ISO-8601 UTC time',
  );
  return { mode: mode as 'unfrozen' | 'windows-vss', job, startAtMs: Date.parse(startAt) };
}

function parseStartJob(e: Record<string, unknown>, windowsVss: boolean): StartBackupRequest {
  const str = (field: string, pattern: RegExp, allowed: string) => matching(e, field, pattern, allowed);
  const tags = e.recoveryPointTags;
  if (
    typeof tags !== 'object' ||
    tags === null ||
    Array.isArray(tags) ||
    Object.keys(tags).length > 50 ||
    !Object.values(tags).every((v) => typeof v === 'string')
  ) {
    throw new StepInputError(
      `Invalid recoveryPointTags: got ${JSON.stringify(tags)}; allowed: an object of at most 50 string values.`,
    );
  }
  const lifecycle = e.lifecycle;
  if (
    lifecycle !== undefined &&
    (typeof lifecycle !== 'object' || lifecycle === null || Array.isArray(lifecycle))
  ) {
    throw new StepInputError(
      `Invalid lifecycle: got ${JSON.stringify(lifecycle)}; allowed: absent, or StartBackupJob's Lifecycle object.`,
    );
  }
  const startWindowMinutes = positive('startWindowMinutes', e.startWindowMinutes, 60 * 24 * 7);
  if (startWindowMinutes < 60) {
    throw new StepInputError(
      `Invalid startWindowMinutes: got ${startWindowMinutes}; allowed: at least 60 (AWS Backup's minimum).`,
    );
  }
  return {
    instanceArn: str('instanceArn', INSTANCE_ARN, 'arn:aws:ec2:<region>:<account>:instance/i-...'),
    backupVaultName: str('backupVaultName', /^[A-Za-z0-9_-]{2,50}$/, '2-50 of A-Z a-z 0-9 - _'),
    iamRoleArn: str('iamRoleArn', /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/, 'an IAM role ARN'),
    idempotencyToken: str('idempotencyToken', EXECUTION_NAME, '1-128 of A-Z a-z 0-9 _ . : -'),
    recoveryPointTags: tags as Record<string, string>,
    ...(lifecycle !== undefined ? { lifecycle: lifecycle as Record<string, unknown> } : {}),
    startWindowMinutes,
    windowsVss,
    freeze: record(e.freeze)?.command,
    freezeBudgetSeconds: positive('freezeBudgetSeconds', e.freezeBudgetSeconds, 600),
    thawMarginSeconds: positive('thawMarginSeconds', e.thawMarginSeconds, 600),
  };
}
