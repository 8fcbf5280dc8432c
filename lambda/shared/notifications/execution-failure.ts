/**
 * The message for a workflow execution that ended FAILED, TIMED_OUT or ABORTED with nothing else
 * notifying it (lambda/execution-events decides that). A freeze may still be held when the
 * execution could have frozen (a running Linux instance) and its input was not rejected before any
 * state ran: then it is a Critical thaw-failed, otherwise a Major execution-failed.
 */

import { FLEET_NODE, glideTime, type Notification } from '../notification';
import { assemble, describeInstance, executionLink, instanceNode } from './assemble';

export interface ExecutionFailure {
  readonly accountId: string;
  readonly region: string;
  readonly executionArn: string;
  readonly status: 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  readonly error?: string;
  readonly cause?: string;
  /** When the execution stopped (the event's stopDate). */
  readonly stoppedAt: Date;
  /** The instance, when the input names a well-formed id. */
  readonly instanceId?: string;
  readonly instanceName?: string;
  readonly window?: string;
  readonly runId?: string;
  readonly platform?: string;
  /** True when a freeze may have been sent and no thaw confirmed. */
  readonly freezeMayBeHeld: boolean;
  /** The workflow's watchdog period, for the latest moment a held freeze ends. */
  readonly watchdogSeconds: number;
  /** What Check Input found wrong, one sentence per field (lambda/shared/workflow-input.ts). */
  readonly inputProblems: readonly string[];
}

function how(f: ExecutionFailure): string {
  const detail = [f.error, f.cause].filter(Boolean).join(': ');
  const ended = { FAILED: 'failed', TIMED_OUT: 'timed out', ABORTED: 'was aborted' }[f.status];
  return `${ended}${detail ? ` (${detail})` : ''}`;
}

export function buildExecutionFailureNotification(f: ExecutionFailure, now: Date): Notification {
  const who = f.instanceId ? describeInstance(f.instanceId, f.instanceName) : 'an instance';
  const base = {
    accountId: f.accountId,
    region: f.region,
    node: f.instanceId ? instanceNode(f.instanceId, f.instanceName) : FLEET_NODE,
    ...(f.instanceId ? { instanceId: f.instanceId } : {}),
    now,
  };
  const info = {
    instance_id: f.instanceId,
    instance_name: f.instanceName,
    platform: f.platform,
    run_id: f.runId,
    window: f.window,
    execution_arn: f.executionArn,
    console_link: executionLink(f.region, f.executionArn),
    error: f.error ?? f.status,
    cause: f.cause,
    consistency: 'none',
  };
  if (f.freezeMayBeHeld) {
    // The freeze began before the execution stopped, so its watchdog fires by then + its period.
    const by = glideTime(new Date(f.stoppedAt.getTime() + f.watchdogSeconds * 1000));
    return assemble({
      ...base,
      eventType: 'thaw-failed',
      severity: 'Critical',
      problemClass: 'thaw',
      subject: `Thaw not confirmed, filesystems may be frozen: ${who}`,
      happened: `The backup workflow of ${who} ${how(f)} without recording its outcome, so no thaw was confirmed. Execution ${f.executionArn}.`,
      means: `If its freeze had reached the instance, the data filesystems may still be frozen: writes to them block and applications may hang. The on-instance watchdog thaws by itself ${f.watchdogSeconds} s after the freeze, by ${by} UTC at the latest. No recovery point of this window is known.`,
      todo: `Now: check whether writes to the data filesystems of ${f.instanceId ?? 'the instance in the execution input'} hang (probe in the background: a write to a frozen filesystem blocks); if the watchdog time has passed and writes still hang, run "fsfreeze -u <mountpoint>" as root for each data filesystem, or send the thaw document again through SSM Run Command. Then read the execution's history for why it ${how(f)}.`,
      info: { ...info, watchdog_thaw_by: by },
    });
  }
  const rejected = f.inputProblems.length > 0;
  return assemble({
    ...base,
    eventType: 'execution-failed',
    severity: 'Major',
    problemClass: 'backup',
    subject: rejected ? `Backup input rejected for ${who}` : `Backup workflow failed for ${who}`,
    happened: rejected
      ? `The backup workflow of ${who} refused its input before any step ran: ${f.inputProblems.join('; ')}. Execution ${f.executionArn}.`
      : `The backup workflow of ${who} ${how(f)} before it could record an outcome. Execution ${f.executionArn}.`,
    means: rejected
      ? 'Nothing was frozen and no backup was started for this window.'
      : 'Nothing is known to be frozen (the workflow of this instance does not freeze, or the input was refused first); no recovery point of this window is known.',
    todo: rejected
      ? 'The input comes from discovery (lambda/discovery) or from whoever started the execution by hand: fix what produced it, then start an on-demand run for the instance.'
      : 'Read the execution history for the failing state, fix the cause, and start an on-demand run for the instance if the gap matters.',
    info,
  });
}
