/**
 * The end of one Run Command invocation as the workflow records it (CommandResult), built from
 * GetCommandInvocation's answer: shared by whatever reads a command's result (the polls of freeze-filesystems and wait-for-command,
 * command-results' events and sweep), so that every path reports a command the same way.
 */

import type { GetCommandInvocationCommandOutput } from '@aws-sdk/client-ssm';
import type { CommandResult } from './workflow-results';

/**
 * GetCommandInvocation's statuses after which nothing changes any more (botocore ssm 2014-11-06
 * CommandInvocationStatus: Pending, InProgress, Delayed, Success, Cancelled, TimedOut, Failed,
 * Cancelling; the first three and Cancelling are on their way to one of these).
 */
export const TERMINAL_COMMAND_STATUSES: readonly string[] = ['Success', 'Failed', 'Cancelled', 'TimedOut'];

export function isTerminalCommandStatus(status: unknown): boolean {
  return typeof status === 'string' && TERMINAL_COMMAND_STATUSES.includes(status);
}

/**
 * The CommandResult of an invocation in a terminal status: stdout as GetCommandInvocation gives it
 * (at most 24,000 characters), the last 2,000 characters of stderr, and a sentence for
 * notifications. Undefined while the invocation has not ended.
 */
export function commandResultOf(
  commandId: string,
  inv: Pick<
    GetCommandInvocationCommandOutput,
    'Status' | 'StatusDetails' | 'ResponseCode' | 'StandardOutputContent' | 'StandardErrorContent'
  >,
): CommandResult | undefined {
  const status = typeof inv.Status === 'string' ? inv.Status : 'Unknown';
  if (!isTerminalCommandStatus(status)) return undefined;
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
