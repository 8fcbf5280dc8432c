/**
 * Waiting for one Run Command invocation to end: the freeze (freeze-filesystems), the thaw and the
 * VSS components install (wait-for-command). Polls at sub-second intervals (COMMAND_POLL), absorbing
 * the InvocationDoesNotExist race right after SendCommand, so an end is noticed within ~0.2 s
 * instead of a 1 s Wait loop that costs three state transitions per turn.
 */

import { GetCommandInvocationCommand, type SSMClient } from '@aws-sdk/client-ssm';
import {
  backoffMs,
  type Clock,
  callWithin,
  errorName,
  isTransient,
  POLL_CALL_MS,
  type PollSchedule,
  pollDelayMs,
} from './calls';
import { commandResultOf } from './command-result';
import type { CommandResult } from './workflow-results';

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
      lastStatus = typeof inv.Status === 'string' ? inv.Status : 'Unknown';
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
