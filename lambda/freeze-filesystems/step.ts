/**
 * The Freeze Filesystems step: the active-job check, the application hooks install, the freeze
 * command and its result, answered as one FreezeStepResult (lambda/shared/workflow-results.ts)
 * whose `outcome` the state machine's Check Freeze Result routes on and whose `budgetSeconds`
 * bounds the next task (Start Backup Job) by what is left of the freeze budget.
 */

import type { BackupClient } from '@aws-sdk/client-backup';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { APPS_ALLOWED, appsPattern } from '../shared/apps';
import { activeJobs } from '../shared/backup-jobs';
import {
  type Clock,
  EXECUTION_NAME,
  INSTANCE_ARN,
  INSTANCE_ID,
  matching,
  positive,
  StepInputError,
  VOLUME_ID,
} from '../shared/calls';
import { MAX_FREEZE_VOLUMES } from '../shared/outcome';
import { parseFreezeOutput } from '../shared/verdict';
import {
  budgetSecondsLeft,
  budgetStartMs,
  type FreezeStepResult,
  type StepError,
} from '../shared/workflow-results';
import { VOLUME_DEVICE_ENTRY } from '../shared/workflow-input';
import { type FreezeRequest, installAppHooks, sendFreeze } from './freeze';

export interface FreezeStepRequest extends FreezeRequest {
  readonly instanceArn: string;
  readonly freezeBudgetSeconds: number;
  /** Seconds kept back from the budget for the thaw to reach the instance. */
  readonly thawMarginSeconds: number;
}

function asStepError(err: unknown): StepError {
  const e = err as Error;
  return { Error: e?.name || 'Error', Cause: String(e?.message ?? err).slice(0, 500) };
}

export async function freezeStep(
  clients: { ssm: Pick<SSMClient, 'send'>; backup: Pick<BackupClient, 'send'> },
  clock: Clock,
  request: FreezeStepRequest,
  random: () => number = Math.random,
): Promise<FreezeStepResult> {
  const budget = request.freezeBudgetSeconds;
  const notSent = (detail: string, extra: Partial<FreezeStepResult> = {}): FreezeStepResult => ({
    outcome: 'not-sent',
    budgetSeconds: Math.max(1, Math.round(budget)),
    detail,
    ...extra,
  });
  // Blast-radius safety: discovery's slot for this instance has passed; a freeze now could overlap
  // the next wave of its group.
  const notAfterMs = Date.parse(request.notAfter);
  if (!Number.isNaN(notAfterMs) && clock.now() > notAfterMs) {
    return notSent(`not sent: it is past the input's notAfter (${request.notAfter})`);
  }
  // If the check itself fails, back up anyway (the verdict adds a warning): a skipped window is
  // worse than a job AWS Backup refuses.
  let activeJobsError: StepError | undefined;
  try {
    const active = await activeJobs(clients.backup, request.instanceArn, clock);
    if (active.active) {
      return {
        outcome: 'active-job',
        budgetSeconds: Math.max(1, Math.round(budget)),
        detail: `backup job ${active.jobIds.join(', ')} of this instance is still active`,
        activeJobs: active,
      };
    }
  } catch (err) {
    activeJobsError = asStepError(err);
  }
  const withCheck = activeJobsError ? { activeJobsError } : {};
  const notInstalled = await installAppHooks(clients.ssm, clock, request, random);
  if (notInstalled) return notSent(notInstalled.detail, { command: notInstalled, ...withCheck });

  const sent = await sendFreeze(clients.ssm, clock, request, random);
  const command = sent.result;
  const observedAtMs = clock.now();
  const output = parseFreezeOutput(command.stdout);
  const base = {
    commandId: command.commandId,
    sentAtMs: sent.sentAtMs,
    notAfter: sent.notAfter,
    command,
    ...withCheck,
  };
  if (command.succeeded && output?.status === 'frozen' && output.frozenAtMs !== undefined) {
    const frozenAtAwsMs = budgetStartMs(output.frozenAtMs, observedAtMs);
    const deadlineMs = frozenAtAwsMs + (budget - request.thawMarginSeconds) * 1000;
    return {
      outcome: 'frozen',
      // No backstop beyond the deadline: the next task's timeout must end before the thaw margin.
      budgetSeconds: budgetSecondsLeft(deadlineMs, observedAtMs, 1),
      detail: `frozen: ${output.targets.join(', ') || 'the data filesystems'}`,
      ...base,
      frozenAtMs: output.frozenAtMs,
      frozenAtAwsMs,
      ...(output.watchdogDeadline ? { watchdogDeadline: output.watchdogDeadline } : {}),
    };
  }
  const nothing = command.succeeded && output?.status === 'nothing-to-freeze';
  return {
    outcome: 'not-frozen',
    budgetSeconds: Math.max(1, Math.round(budget)),
    detail: nothing
      ? 'nothing to freeze on the attached volumes'
      : `the freeze command ended ${command.status}: ${output?.errorMessage ?? command.detail}`,
    nothingToFreeze: nothing,
    ...base,
    ...(output?.watchdogDeadline ? { watchdogDeadline: output.watchdogDeadline } : {}),
  };
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
    throw new StepInputError(
      `Invalid volumeDevices: got ${JSON.stringify(value)}; allowed: a list of vol-id=/dev/name (name: 1-16 of a-z 0-9), at most one per volume in volumeIds.`,
    );
  }
  return value.join(',');
}

/** The Apps tag's canonical value from the freeze input's options, and the document that installs it. */
function appsInput(e: Record<string, unknown>): { apps?: string; appHooksDocumentName?: string } {
  const options = e.options;
  const apps =
    options !== null && typeof options === 'object' ? (options as Record<string, unknown>).apps : undefined;
  if (apps === undefined || e.appHooksDocumentName === undefined) return {};
  if (typeof apps !== 'string' || !new RegExp(appsPattern()).test(apps)) {
    throw new StepInputError(`Invalid options.apps: got ${JSON.stringify(apps)}; allowed: ${APPS_ALLOWED}.`);
  }
  const name = e.appHooksDocumentName;
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.:/-]{3,128}$/.test(name)) {
    throw new StepInputError(
      `Invalid appHooksDocumentName: got ${JSON.stringify(name)}; allowed: an SSM document name or ARN.`,
    );
  }
  return { apps, appHooksDocumentName: name };
}

/** Validate the event, naming the bad value and what is allowed. */
export function parseFreezeStepRequest(event: unknown): FreezeStepRequest {
  const e = (typeof event === 'object' && event !== null ? event : {}) as Record<string, unknown>;
  const str = (field: string, pattern: RegExp, allowed: string) => matching(e, field, pattern, allowed);
  // The execution input as the state machine passes it whole: its optional fields are read here.
  const input =
    typeof e.input === 'object' && e.input !== null ? (e.input as Record<string, unknown>) : undefined;
  const paths = /^$|^\/[A-Za-z0-9._/-]*(,\/[A-Za-z0-9._/-]*)*$/;
  const ids = e.volumeIds;
  if (
    !Array.isArray(ids) ||
    ids.length === 0 ||
    ids.length > MAX_FREEZE_VOLUMES ||
    !ids.every((v) => typeof v === 'string' && VOLUME_ID.test(v))
  ) {
    throw new StepInputError(
      `Invalid volumeIds: got ${JSON.stringify(ids)}; allowed: 1 to ${MAX_FREEZE_VOLUMES} ids of the form vol-<8 to 17 hex digits>.`,
    );
  }
  return {
    documentName: str('documentName', /^[A-Za-z0-9_.:/-]{3,128}$/, 'an SSM document name or ARN'),
    instanceId: str('instanceId', INSTANCE_ID, 'i-<8 to 17 hex digits>'),
    instanceArn: str('instanceArn', INSTANCE_ARN, 'arn:aws:ec2:<region>:<account>:instance/i-...'),
    executionId: str('executionId', EXECUTION_NAME, '1-128 of A-Z a-z 0-9 _ . : -'),
    volumeIds: ids as string[],
    volumeDevices: volumeDevices(e.volumeDevices ?? input?.volumeDevices, ids as string[]),
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
    freezeBudgetSeconds: positive('freezeBudgetSeconds', e.freezeBudgetSeconds, 600),
    thawMarginSeconds: positive('thawMarginSeconds', e.thawMarginSeconds, 600),
    ...appsInput({ ...e, options: e.options ?? input?.options }),
  };
}
