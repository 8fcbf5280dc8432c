/**
 * The command-results function's environment: the contract with lib/command-results.ts, free of
 * SDK imports so the CDK app can use it.
 */

import { COORDINATION_TABLE_ENV } from '../shared/coordination';

/** The EventBridge detail type of a Run Command invocation's status change. */
export const COMMAND_EVENT_DETAIL_TYPE = 'EC2 Command Invocation Status-change Notification';

/**
 * Statuses in which an invocation has not ended. The event's `status` is the invocation's
 * (Systems Manager user guide, "Amazon EventBridge event examples for Systems Manager", Run Command
 * Invocation Status-change Notification); GetCommandInvocation's enum (botocore ssm 2014-11-06,
 * CommandInvocationStatus) is these plus Success, Cancelled, TimedOut and Failed.
 */
export const NON_TERMINAL_STATUSES: readonly string[] = ['Pending', 'InProgress', 'Delayed', 'Cancelling'];

/** The longest one round of the sweep reads: its GetCommandInvocation pace times this. */
export const SWEEP_ROUND_SECONDS = 10;

export const COMMAND_RESULTS_ENV = {
  tableName: COORDINATION_TABLE_ENV,
  freezeDocument: 'FREEZE_DOCUMENT_NAME',
  thawDocument: 'THAW_DOCUMENT_NAME',
  /** Per function instance: the construct divides the app's budget by the reserved concurrency. */
  getInvocationPerSecond: 'GET_INVOCATION_PER_SECOND',
  listInvocationsPerSecond: 'LIST_INVOCATIONS_PER_SECOND',
  sendTaskPerSecond: 'SEND_TASK_PER_SECOND',
  /** How long one scheduled invocation keeps sweeping while waiters are pending. */
  sweepSeconds: 'SWEEP_SECONDS',
} as const;

export interface CommandResultsSettings {
  readonly tableName: string;
  readonly freezeDocument: string;
  readonly thawDocument: string;
  readonly getInvocationPerSecond: number;
  readonly listInvocationsPerSecond: number;
  readonly sendTaskPerSecond: number;
  readonly sweepSeconds: number;
}

export class CommandResultsSettingsError extends Error {
  override readonly name = 'CommandResultsSettingsError';
}

/** Reads and checks the environment; throws naming the variable, its value and what is allowed. */
export function readCommandResultsSettings(env: NodeJS.ProcessEnv): CommandResultsSettings {
  const bad = (name: string, allowed: string): never => {
    throw new CommandResultsSettingsError(
      `Environment variable ${name} is ${JSON.stringify(env[name])}; allowed: ${allowed}.`,
    );
  };
  const text = (name: string, pattern: RegExp, allowed: string): string => {
    const value = env[name] ?? '';
    if (!pattern.test(value)) bad(name, allowed);
    return value;
  };
  const rate = (name: string): number => {
    const value = Number(env[name]);
    if (!Number.isFinite(value) || value <= 0 || value > 1000)
      bad(name, 'a number of calls per second, above 0 and at most 1000');
    return value;
  };
  const sweepSeconds = Number(env[COMMAND_RESULTS_ENV.sweepSeconds]);
  if (!Number.isInteger(sweepSeconds) || sweepSeconds < 1 || sweepSeconds > 840) {
    bad(COMMAND_RESULTS_ENV.sweepSeconds, 'a whole number of seconds from 1 to 840');
  }
  const documentName = /^[A-Za-z0-9_.-]{3,128}$/;
  return {
    tableName: text(COMMAND_RESULTS_ENV.tableName, /^[A-Za-z0-9_.-]{3,255}$/, 'a DynamoDB table name'),
    freezeDocument: text(COMMAND_RESULTS_ENV.freezeDocument, documentName, 'an SSM document name'),
    thawDocument: text(COMMAND_RESULTS_ENV.thawDocument, documentName, 'an SSM document name'),
    getInvocationPerSecond: rate(COMMAND_RESULTS_ENV.getInvocationPerSecond),
    listInvocationsPerSecond: rate(COMMAND_RESULTS_ENV.listInvocationsPerSecond),
    sendTaskPerSecond: rate(COMMAND_RESULTS_ENV.sendTaskPerSecond),
    sweepSeconds,
  };
}
