/**
 * The end of every workflow run: decide the verdict from the gathered facts, hand the outcome to the
 * notifier exactly once (it stores the verdict with the job), request the label of the job's
 * recovery point, and return the verdict as the execution output.
 *
 * The label is not written here: StartBackupJob returns no RecoveryPointArn for EC2, and the AMI
 * becomes the job's recovery point only when the job completes. The request goes to the label queue
 * (lambda/shared/labels.ts); the label-writer writes it as soon as the job has completed, now if it
 * already has, else when job-events requests it at completion.
 */

import type { RequestLabel } from '../shared/labels';
import type { OutcomeSink, WorkflowOutcome } from '../shared/outcome';
import { type Decision, decideVerdict, type VerdictSettings, type WorkflowFacts } from '../shared/verdict';

/** What the state machine sends: its whole state, and the execution's identity from the context object. */
export interface RecordOutcomeEvent {
  readonly state: WorkflowFacts & Record<string, unknown>;
  readonly execution: { readonly arn: string; readonly name: string };
}

/** The execution output: the verdict plus the identifiers an operator looks for. */
export interface ExecutionResult extends Omit<Decision, 'verdict'> {
  readonly instanceId: string;
  readonly window: string;
  readonly executionName: string;
  /** The label of the job's recovery point was requested (it lands once the job has completed). */
  readonly labelRequested: boolean;
}

export class RecordOutcomeInputError extends Error {
  override readonly name = 'RecordOutcomeInputError';
}

function text(state: Record<string, unknown>, key: string, fallback?: string): string {
  const value = state[key];
  if (typeof value === 'string' && value) return value;
  if (fallback !== undefined) return fallback;
  throw new RecordOutcomeInputError(
    `Invalid state.${key}: got ${JSON.stringify(value)}; allowed: a non-empty string.`,
  );
}

export async function recordOutcome(
  event: RecordOutcomeEvent,
  deps: {
    readonly sink: OutcomeSink;
    readonly requestLabel: RequestLabel;
    readonly settings: VerdictSettings;
  },
  now: Date,
): Promise<ExecutionResult> {
  const state = event?.state;
  if (typeof state !== 'object' || state === null) {
    throw new RecordOutcomeInputError(
      `Invalid state: got ${JSON.stringify(state)}; allowed: the workflow state object.`,
    );
  }
  const instanceId = text(state, 'instanceId');
  const executionArn = typeof event.execution?.arn === 'string' ? event.execution.arn : '';
  const decision = decideVerdict(state, deps.settings, now.getTime());
  const warnings = [...decision.warnings];

  const platform = state.platform === 'windows' ? 'windows' : 'linux';
  const outcome: WorkflowOutcome = {
    schemaVersion: 1,
    outcome: decision.outcome,
    runId: text(state, 'runId', 'unknown'),
    window: text(state, 'window', 'unknown'),
    accountId: text(state, 'accountId', executionArn.split(':')[4] || 'unknown'),
    region: text(state, 'region', executionArn.split(':')[3] || 'unknown'),
    executionArn,
    instanceId,
    ...(typeof state.instanceName === 'string' && state.instanceName
      ? { instanceName: state.instanceName }
      : {}),
    platform,
    ...(decision.verdict ? { verdict: decision.verdict } : {}),
    ...(decision.backupJobId ? { backupJobId: decision.backupJobId } : {}),
    ...(decision.recoveryPointArn ? { recoveryPointArn: decision.recoveryPointArn } : {}),
    ...(decision.backupJobState ? { backupJobState: decision.backupJobState } : {}),
    ...(decision.backupJobStatusMessage ? { backupJobStatusMessage: decision.backupJobStatusMessage } : {}),
    ...(decision.watchdogThawBy ? { watchdogThawBy: decision.watchdogThawBy } : {}),
    warnings,
    ...(decision.error ? { error: decision.error } : {}),
  };
  await deps.sink.recordOutcome(outcome);

  // After the verdict is stored, so the label-writer finds it. A job that failed leaves no
  // recovery point to label.
  let labelRequested = false;
  const resultWarnings = [...warnings];
  if (decision.verdict && decision.backupJobId && decision.outcome !== 'backup-job-failed') {
    try {
      await deps.requestLabel({
        kind: 'label',
        backupJobId: decision.backupJobId,
        cause: 'verdict-recorded',
      });
      labelRequested = true;
    } catch (err) {
      // The outcome is recorded: failing now would report it unrecorded. The hourly label sweep
      // requests the label of any completed job whose recovery point still reads pending.
      resultWarnings.push(
        `Could not label recovery point of backup job ${decision.backupJobId} yet (${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}); the hourly label sweep labels it once the job has completed.`,
      );
    }
  }

  const { verdict: _verdict, ...rest } = decision;
  return {
    ...rest,
    warnings: resultWarnings,
    instanceId,
    window: outcome.window,
    executionName: event.execution?.name ?? '',
    labelRequested,
  };
}
