/**
 * StartBackupJob inside the freeze budget: one job per execution (its name is the idempotency
 * token), every attempt, backoff and look-up cut to the time left, an ambiguous failure resolved by
 * finding the job rather than by a blind resend.
 */

import { type BackupClient, ListBackupJobsCommand, StartBackupJobCommand } from '@aws-sdk/client-backup';
import { JOB_LOOKUP_SKEW_MS } from '../shared/backup-jobs';
import {
  backoffMs,
  type Clock,
  callWithin,
  isAmbiguous,
  isTransient,
  MUTATING_CALL_MS,
  POLL_CALL_MS,
  toMs,
} from '../shared/calls';
import { parseFreezeOutput } from '../shared/verdict';
import { budgetStartMs } from '../shared/workflow-results';

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
  /** The conservative freeze time of the freeze step (FreezeStepResult.frozenAtAwsMs), when known. */
  readonly frozenAtAwsMs?: number;
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
    ? budgetStartMs(
        Math.min(freezeOut.frozenAtMs as number, request.frozenAtAwsMs ?? Infinity),
        firstAttemptAt,
      ) +
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
