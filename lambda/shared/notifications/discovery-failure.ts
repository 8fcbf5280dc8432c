/**
 * The Major message for a discovery invocation that never ran or did not finish (dead-letters
 * publishes it), with the command that re-runs discovery for the window.
 */

import { type AdditionalInfo, LIMITS, type Notification, oneLine, truncate } from '../notification';
import { assemble } from './assemble';

/**
 * What a dead-letter message says about a discovery invocation that never ran or did not finish
 * (lambda/dead-letters reads both queue formats into this).
 */
export interface DiscoveryFailure {
  /**
   * `not-invoked`: EventBridge Scheduler could not invoke discovery (its dead-letter queue).
   * `failed`: an asynchronous invocation of discovery failed (its on-failure destination).
   */
  readonly kind: 'not-invoked' | 'failed';
  readonly accountId: string;
  readonly region: string;
  /** The discovery function (unqualified ARN). */
  readonly functionArn: string;
  /** The window, ISO-8601 UTC, when the payload carried a valid scheduled time. */
  readonly window?: string;
  readonly runId?: string;
  readonly scheduleArn?: string;
  /** Set when the failed invocation was a hand-over: its number and where it was to resume. */
  readonly handOver?: { readonly invocation: number; readonly afterKey: string };
  /** Lambda's request id of the failed invocation (`failed` only). */
  readonly requestId?: string;
  /** Lambda's condition (RetriesExhausted, EventAgeExceeded). */
  readonly condition?: string;
  /**
   * What EventBridge Scheduler's dead-letter message attributes say about its delivery (the
   * Scheduler user guide, "Configuring a dead-letter queue", retrieving the dead-letter event):
   * `EXHAUSTED_RETRY_CONDITION` (MaximumRetryAttempts or MaximumEventAgeInSeconds, absent when the
   * error was not retried), `RETRY_ATTEMPTS` and `IS_PAYLOAD_TRUNCATED`.
   */
  readonly delivery?: {
    readonly exhaustedRetryCondition?: string;
    readonly retryAttempts?: number;
    readonly payloadTruncated?: boolean;
  };
  readonly error: string;
  readonly cause: string;
  /** The exact payload to invoke discovery with again, as one line of JSON. */
  readonly payload: string;
  /** When the failure was recorded, ISO-8601. */
  readonly failedAt?: string;
  /** The discovery function's log group. */
  readonly logGroupName: string;
  /** Where the dead-letters function logged the full payload when it is too long to quote. */
  readonly payloadLog: { readonly logGroupName: string; readonly messageId: string };
}

/** Payloads longer than this are not quoted in the description (it would crowd out the rest). */
export const REPLAY_PAYLOAD_INLINE_MAX = 1500;

/** `s` as one single-quoted POSIX shell word. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command that re-runs discovery with `payload`. Asynchronous (`--invocation-type Event`), as
 * Scheduler and the hand-over invoke it: a synchronous call would hold the CLI for up to 15
 * minutes, and a failure lands in the same queue again and is reported again.
 */
export function replayCommand(region: string, functionArn: string, payload: string): string {
  return `aws lambda invoke --region ${region} --function-name ${functionArn} --invocation-type Event --cli-binary-format raw-in-base64-out --payload ${shellQuote(payload)} /dev/null`;
}

// Commands in the text stand on lines of their own: punctuation glued to a quoted word would
// become part of it when pasted into a shell.
function logSearchCommand(region: string, logGroupName: string, term: string): string {
  return `aws logs filter-log-events --region ${region} --log-group-name ${shellQuote(logGroupName)} --filter-pattern ${shellQuote(`"${term}"`)}`;
}

/** How Scheduler's retries ended, in words: after how many retries, and which limit ran out. */
function schedulerAttempts(d: DiscoveryFailure['delivery']): string {
  const n = d?.retryAttempts;
  const condition = d?.exhaustedRetryCondition;
  if (n === undefined && condition === undefined) return 'after its retries';
  const retries =
    n === undefined
      ? 'after its retries'
      : n === 0
        ? 'without a retry'
        : `after ${n} ${n === 1 ? 'retry' : 'retries'}`;
  if (condition === 'MaximumRetryAttempts')
    return `${retries} (MaximumRetryAttempts: the retry policy's attempts ran out)`;
  if (condition === 'MaximumEventAgeInSeconds') {
    return `${retries} (MaximumEventAgeInSeconds: the invocation grew older than the retry policy's maximum event age)`;
  }
  if (condition !== undefined) return `${retries} (${condition})`;
  // No retry condition: Scheduler sends some errors to the dead-letter queue without retrying.
  return n === 0
    ? `${retries} (an error Scheduler does not retry, such as a missing permission or a function that is gone)`
    : retries;
}

/** One Major per failed discovery invocation, on the fleet's `discovery` key. */
export function buildDiscoveryFailureNotification(f: DiscoveryFailure, now: Date): Notification {
  const windowText = f.window
    ? `window ${f.window}`
    : 'an unknown window (the payload had no valid scheduledTime)';
  const run = f.runId ? `run ${f.runId}, ` : '';
  // Trailing periods dropped: the text goes on after it.
  const error = `${truncate(oneLine(f.error), 200)}: ${truncate(oneLine(f.cause), 600).replace(/[.\s]+$/, '')}`;
  const inline = f.payload.length <= REPLAY_PAYLOAD_INLINE_MAX;
  const command = replayCommand(f.region, f.functionArn, inline ? f.payload : '<payload>');
  const closing =
    'This alert does not close by itself: resolve it once the re-run has reported (its run summary counts the instances started).';
  const rerun =
    'Then re-run discovery for the window with the payload of the failed invocation; this is safe, because execution names are fixed per instance and window, so instances already started are found and not started twice.';
  const replay = inline
    ? `${rerun} ${closing} The command:\n${command}`
    : `${rerun} The payload is ${f.payload.length} characters, too long to quote here; the dead-letters function logged it under message id ${f.payloadLog.messageId}:\n${logSearchCommand(f.region, f.payloadLog.logGroupName, f.payloadLog.messageId)}\n${closing} The command, with that payload in place of <payload>:\n${command}`;
  const info: AdditionalInfo = {
    run_id: f.runId,
    window: f.window,
    function_arn: f.functionArn,
    schedule_arn: f.scheduleArn,
    request_id: f.requestId,
    invocation: f.handOver ? f.handOver.invocation : f.kind === 'failed' ? 1 : undefined,
    cursor: f.handOver?.afterKey,
    failure_condition: f.condition,
    retry_attempts: f.delivery?.retryAttempts,
    exhausted_retry_condition: f.delivery?.exhaustedRetryCondition,
    payload_truncated:
      f.delivery?.payloadTruncated === undefined ? undefined : String(f.delivery.payloadTruncated),
    log_group: f.logGroupName,
    error: f.error,
    cause: f.cause,
    // A cut command would run something else: only a whole one goes in.
    replay_command: inline && command.length <= LIMITS.additionalInfoValue ? command : undefined,
  };
  const base = {
    severity: 'Major' as const,
    accountId: f.accountId,
    region: f.region,
    node: `${f.accountId}/${f.region}`,
    problemClass: 'discovery' as const,
    info,
    now,
  };
  if (f.kind === 'not-invoked') {
    return assemble({
      ...base,
      eventType: 'discovery-not-invoked',
      subject: `Discovery not invoked for ${f.window ?? 'a window'}: no backups started`,
      happened: `EventBridge Scheduler could not invoke the discovery function ${f.functionArn} for ${windowText} (${run}schedule ${f.scheduleArn ?? 'unknown'}) ${schedulerAttempts(f.delivery)}: ${error}.${f.failedAt ? ` Recorded at ${f.failedAt}.` : ''}${f.delivery?.payloadTruncated ? ' Scheduler truncated the payload in this dead letter, so the window and the replay payload come from its SCHEDULED_TIME and SCHEDULE_ARN attributes.' : ''}`,
      means:
        'Discovery did not run for this window: no opted-in instance was started, so the backup for every one of them did not happen this window, and no run summary will come for it.',
      todo: `Read the error code: AccessDenied means the schedule's role lost lambda:InvokeFunction (redeploy the stack); ResourceNotFound means the function is gone (redeploy); throttling (TooManyRequestsException) means the account's Lambda concurrency was exhausted. ${replay}`,
    });
  }
  const what = f.handOver
    ? `Hand-over invocation ${f.handOver.invocation} of discovery for ${windowText} (${run}resuming after cursor ${JSON.stringify(f.handOver.afterKey)})`
    : `The discovery run for ${windowText} (${run}first invocation)`;
  const never = f.condition === 'EventAgeExceeded';
  const logs = f.requestId
    ? `Look at the discovery function's log for request id ${f.requestId}:\n${logSearchCommand(f.region, f.logGroupName, f.requestId)}\nFix what it shows (an IAM or quota error, a timeout, an invalid tag the code rejects).`
    : `Look at the discovery function's log group ${f.logGroupName} around ${f.failedAt ?? 'the failure time'}.`;
  return assemble({
    ...base,
    eventType: 'discovery-failed',
    subject: f.handOver
      ? `Discovery hand-over ${f.handOver.invocation} failed for ${f.window ?? 'a window'}: instances not started`
      : `Discovery failed for ${f.window ?? 'a window'}: instances not started`,
    happened: never
      ? `${what} was dropped by Lambda before it ran (EventAgeExceeded: it waited in the asynchronous queue longer than its maximum event age, usually because the function was throttled). ${error}.`
      : `${what} failed${f.condition ? ` (${f.condition})` : ''}: ${error}.${f.failedAt ? ` Recorded at ${f.failedAt}.` : ''}`,
    means: f.handOver
      ? 'Instances this invocation did not start, and all those later hand-overs would have started, were not started this window: the backup for them did not happen. Instances started by this or earlier invocations run and report as usual.'
      : 'Instances this invocation did not start (all of them if it failed early, or those its error names) were not started this window: the backup for them did not happen. Instances it did start run and report as usual.',
    todo: `${logs} ${replay}`,
  });
}
