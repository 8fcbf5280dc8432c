/**
 * The Wait For Thaw Command steps (and the wait for the VSS components install): wait for one Run
 * Command invocation the state machine sent, and say whether it did what it was sent for. A thaw is
 * confirmed only by what the instance reports: the command succeeded and its stdout is the thaw
 * document's `thawed` result with nothing left frozen (a SendCommand that returned is not a thaw).
 */

import type { SSMClient } from '@aws-sdk/client-ssm';
import { type Clock, INSTANCE_ID, positive, StepInputError } from '../shared/calls';
import { waitForCommand } from '../shared/command-wait';
import { parseThawOutput } from '../shared/verdict';
import type { CommandResult, ThawStepResult } from '../shared/workflow-results';

export const COMMAND_KINDS = ['thaw', 'vss-install'] as const;
export type CommandKind = (typeof COMMAND_KINDS)[number];

export interface WaitRequest {
  readonly kind: CommandKind;
  /** The SendCommand response as Step Functions stored it (read here: a missing field is no error). */
  readonly command: unknown;
  readonly instanceId: string;
  readonly timeoutSeconds: number;
  /** Thaw only: 1 for the first thaw command, 2 for the retry. */
  readonly attempt: number;
}

/** Whether a thaw command's end confirms the thaw, and why not when it does not. */
export function thawStepResult(command: CommandResult, attempt: number): ThawStepResult {
  const out = parseThawOutput(command.stdout);
  const why = !command.succeeded
    ? `the thaw command ended ${command.status} (${command.detail})`
    : !out
      ? 'the thaw command succeeded but its output is not the thaw document JSON'
      : out.status !== 'thawed'
        ? 'the thaw document reported an error'
        : out.failed.length > 0
          ? `the thaw document could not thaw ${out.failed.join(', ')}`
          : undefined;
  return {
    confirmed: why === undefined,
    command,
    attempt,
    detail: why ?? (out?.watchdogFired ? 'thawed (the on-instance watchdog had thawed first)' : 'thawed'),
    watchdogFired: out?.watchdogFired === true,
  };
}

export async function waitStep(
  ssm: Pick<SSMClient, 'send'>,
  clock: Clock,
  request: WaitRequest,
  random: () => number = Math.random,
): Promise<ThawStepResult | CommandResult> {
  const result = await waitForCommand(ssm, clock, request, random);
  return request.kind === 'thaw' ? thawStepResult(result, request.attempt) : result;
}

/** Validate the event, naming the bad value and what is allowed. */
export function parseWaitRequest(event: unknown): WaitRequest {
  const e = (typeof event === 'object' && event !== null ? event : {}) as Record<string, unknown>;
  if (!COMMAND_KINDS.includes(e.kind as CommandKind)) {
    throw new StepInputError(
      `Invalid kind: got ${JSON.stringify(e.kind)}; allowed: ${COMMAND_KINDS.join(', ')}.`,
    );
  }
  if (typeof e.instanceId !== 'string' || !INSTANCE_ID.test(e.instanceId)) {
    throw new StepInputError(
      `Invalid instanceId: got ${JSON.stringify(e.instanceId)}; allowed: i-<8 to 17 hex digits>.`,
    );
  }
  const attempt = e.attempt === undefined ? 1 : e.attempt;
  if (attempt !== 1 && attempt !== 2) {
    throw new StepInputError(`Invalid attempt: got ${JSON.stringify(attempt)}; allowed: 1 or 2.`);
  }
  return {
    kind: e.kind as CommandKind,
    command: e.command,
    instanceId: e.instanceId,
    timeoutSeconds: positive('timeoutSeconds', e.timeoutSeconds, 900),
    attempt,
  };
}
