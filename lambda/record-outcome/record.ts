/**
 * The end of every workflow run: decide the verdict from the gathered facts, write the label onto
 * the recovery point, hand the outcome to the notifier exactly once, and return the verdict as the
 * execution output.
 */

import type { OutcomeSink, WorkflowOutcome } from '../shared/outcome';
import { type RecoveryPointClients, tagRecoveryPoint } from '../shared/recovery-point';
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
  readonly recoveryPointTagged: boolean;
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
    readonly clients: RecoveryPointClients;
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

  let recoveryPointTagged = false;
  // A job that failed leaves no recovery point to label.
  if (decision.verdict && decision.recoveryPointArn && decision.outcome !== 'backup-job-failed') {
    try {
      await tagRecoveryPoint(deps.clients, decision.recoveryPointArn, decision.verdict);
      recoveryPointTagged = true;
    } catch (err) {
      // The job-events function re-asserts the label at completion; until then the tag reads pending.
      warnings.push(
        `Could not label recovery point ${decision.recoveryPointArn} yet (${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}); it is labelled when the job completes.`,
      );
    }
  }

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

  const { verdict: _verdict, ...rest } = decision;
  return {
    ...rest,
    warnings,
    instanceId,
    window: outcome.window,
    executionName: event.execution?.name ?? '',
    recoveryPointTagged,
  };
}
