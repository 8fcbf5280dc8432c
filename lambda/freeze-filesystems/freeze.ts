/**
 * Sending the freeze document and waiting for it to end. SendCommand is sent from a function rather
 * than by a Step Functions task because the document takes the volume ids as one comma-separated
 * string and ASL has no intrinsic to join an array, and because a resend must first look for the
 * command an ambiguous failure may have created (SendCommand has no idempotency token).
 */

import { type Command, ListCommandsCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import {
  backoffMs,
  type Clock,
  callWithin,
  isAmbiguous,
  isThrottle,
  MUTATING_CALL_MS,
  POLL_CALL_MS,
} from '../shared/calls';
import { waitForCommand } from '../shared/command-wait';
import type { CommandResult } from '../shared/workflow-results';

export interface FreezeRequest {
  readonly documentName: string;
  readonly instanceId: string;
  /** The execution name: the freeze, the watchdog and the thaw are tied together by it. */
  readonly executionId: string;
  readonly volumeIds: readonly string[];
  /** `vol-id=/dev/name` pairs, comma separated, or empty: sent as VolumeDevices only when non-empty. */
  readonly volumeDevices: string;
  readonly notAfter: string;
  readonly watchdogSeconds: number;
  readonly hookTimeoutSeconds: number;
  readonly include: string;
  readonly exclude: string;
  readonly timeoutSeconds: number;
  /**
   * The instance's packaged application hooks (its Apps tag, lambda/shared/apps.ts), absent without
   * the tag; with it, the AppHooks document installs exactly these before the freeze is sent.
   */
  readonly apps?: string;
  readonly appHooksDocumentName?: string;
}

/** The longest the AppHooks command may wait for delivery, and then to finish (lib/workflow.ts APP_HOOKS_WAIT_SECONDS). */
export const APP_HOOKS_DELIVERY_TIMEOUT_SECONDS = 30;
export const APP_HOOKS_WAIT_SECONDS = 25;

/**
 * Installs the packaged hooks the Apps tag names (and removes the others) with the stack's AppHooks
 * document, before the freeze and never while frozen. Undefined when it succeeded; otherwise the
 * result the freeze step returns instead of freezing, saying why in `detail`: the instance then
 * takes the freeze-failure path (onFreezeFailure), never a freeze without the hooks it asked for.
 */
export async function installAppHooks(
  ssm: Pick<SSMClient, 'send'>,
  clock: Clock,
  request: FreezeRequest,
  random: () => number,
): Promise<CommandResult | undefined> {
  if (request.apps === undefined || !request.appHooksDocumentName) return undefined;
  const sent = await ssm.send(
    new SendCommandCommand({
      DocumentName: request.appHooksDocumentName,
      InstanceIds: [request.instanceId],
      TimeoutSeconds: APP_HOOKS_DELIVERY_TIMEOUT_SECONDS,
      Comment: `ec2-consistent-backup app hooks ${request.executionId}`.slice(0, 100),
      Parameters: { Apps: [request.apps] },
    }),
  );
  const result = await waitForCommand(
    ssm,
    clock,
    {
      command: sent,
      instanceId: request.instanceId,
      timeoutSeconds: APP_HOOKS_DELIVERY_TIMEOUT_SECONDS + APP_HOOKS_WAIT_SECONDS,
    },
    random,
  );
  if (result.succeeded) return undefined;
  let why = result.detail ?? result.status;
  try {
    const out = JSON.parse(result.stdout.trim().split('\n').pop() ?? '') as { error?: { message?: string } };
    if (out.error?.message) why = out.error.message;
  } catch {
    // Not the document's JSON (not delivered, timed out): the command status says why.
  }
  return {
    ...result,
    detail: `the packaged application hooks (${request.apps || 'none'}) could not be installed, nothing was frozen: ${why}`,
  };
}

/** SSM's smallest delivery timeout; a freeze not delivered by then is not wanted any more. */
export const FREEZE_DELIVERY_TIMEOUT_SECONDS = 30;

/**
 * Seconds freeze-filesystems keeps waiting for the freeze command after the document's last NotAfter check
 * (just before its first fsfreeze): the fsfreeze calls themselves, the result line, the agent's
 * report and the next poll. lib/workflow.ts gives the same 30 s (COMMAND_REPORT_MARGIN_SECONDS) as
 * the last part of the freeze step's `timeoutSeconds`.
 */
export const FREEZE_RESULT_MARGIN_SECONDS = 30;

/**
 * The NotAfter this function sends: the earlier of discovery's (the blast-radius slot: an hour after
 * the window for an instance without a group) and the moment after which this execution could no
 * longer see the freeze happen and so thaw it knowingly: the send time plus the time this function waits
 * for the command (`timeoutSeconds`) less FREEZE_RESULT_MARGIN_SECONDS.
 *
 * Why not the send time plus a few seconds: the document checks NotAfter when the command arrives
 * and again right before its first fsfreeze, after the pre-freeze hooks and the sync, so a NotAfter a
 * few seconds away would refuse (LATE) every freeze whose hooks take longer than that. With the
 * default hookTimeoutSeconds 30 the step timeout is 120 s, so `timeoutSeconds` is 180 s and the
 * NotAfter is the send time + 150 s instead of the window + 3,600 s. A freeze the agent delivers
 * later than that (SSM's 30 s delivery timeout not honoured, a reconnecting agent) refuses LATE; one
 * that arrives after this execution's thaw refuses THAWED_BEFORE_FREEZE (the thaw's marker).
 */
export function freezeNotAfter(inputNotAfter: string, sentAtMs: number, timeoutSeconds: number): string {
  const own = sentAtMs + Math.max(0, timeoutSeconds - FREEZE_RESULT_MARGIN_SECONDS) * 1000;
  const input = Date.parse(inputNotAfter);
  return new Date(Number.isNaN(input) ? own : Math.min(input, own)).toISOString();
}

/** SendCommand: tries in all (throttled ones included), and look-ups of an ambiguous one. */
export const FREEZE_SEND_ATTEMPTS = 4;
export const FREEZE_LOOKUPS = 3;
/** ListCommands may not list a command the moment it is created: the look-ups are this far apart. */
export const FREEZE_LOOKUP_INTERVAL_MS = 700;
/** InvokedAfter is this much before the send time, for the clock difference between Lambda and SSM. */
const LOOKUP_SKEW_MS = 60_000;

function freezeComment(executionId: string): string {
  return `ec2-consistent-backup freeze ${executionId}`.slice(0, 100);
}

/**
 * The freeze command of this execution that SSM has, if any: ListCommands for the instance, the
 * document and InvokedAfter, matched on the ExecutionId parameter (or the comment). Asked
 * FREEZE_LOOKUPS times, FREEZE_LOOKUP_INTERVAL_MS apart; undefined when none is listed. Throws when
 * ListCommands itself fails: then nobody can tell, and the caller must not resend.
 */
export async function findFreezeCommand(
  ssm: Pick<SSMClient, 'send'>,
  clock: Clock,
  request: Pick<FreezeRequest, 'instanceId' | 'documentName' | 'executionId'>,
  sentAtMs: number,
): Promise<Command | undefined> {
  const invokedAfter = new Date(sentAtMs - LOOKUP_SKEW_MS).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const comment = freezeComment(request.executionId);
  for (let lookup = 0; lookup < FREEZE_LOOKUPS; lookup += 1) {
    if (lookup > 0) await clock.sleep(FREEZE_LOOKUP_INTERVAL_MS);
    let NextToken: string | undefined;
    let pages = 0;
    do {
      const page = await callWithin(clock, POLL_CALL_MS, (s) =>
        ssm.send(
          new ListCommandsCommand({
            InstanceId: request.instanceId,
            Filters: [
              { key: 'InvokedAfter', value: invokedAfter },
              { key: 'DocumentName', value: request.documentName },
            ],
            NextToken,
          }),
          { abortSignal: s },
        ),
      );
      const ours = (page.Commands ?? []).find(
        (c) =>
          typeof c.CommandId === 'string' &&
          (c.Parameters?.ExecutionId?.[0] === request.executionId || c.Comment === comment),
      );
      if (ours) return ours;
      NextToken = page.NextToken;
      pages += 1;
    } while (NextToken && pages < 5);
  }
  return undefined;
}

/**
 * Send the freeze document, then wait for it. SendCommand has no idempotency token, so it is sent
 * with the SDK's retries off (handler.ts: maxAttempts 1) and retried here only where a second freeze
 * cannot come of it:
 * - throttled (the request was refused): sent again after a backoff;
 * - ambiguous (5xx, timeout, network: the command may exist): looked up with ListCommands first, and
 *   sent again only if no command of this execution is listed; if the look-up fails too, the error
 *   goes to the state machine, which thaws (the document is idempotent per ExecutionId as well);
 * - anything else (a 4xx) is final.
 */
export async function freeze(
  ssm: Pick<SSMClient, 'send'>,
  clock: Clock,
  request: FreezeRequest,
  random: () => number = Math.random,
): Promise<CommandResult> {
  const notInstalled = await installAppHooks(ssm, clock, request, random);
  if (notInstalled) return notInstalled;
  return (await sendFreeze(ssm, clock, request, random)).result;
}

/** The freeze as sent: the command's end, when it was sent and the NotAfter it carried. */
export interface SentFreeze {
  readonly result: CommandResult;
  readonly sentAtMs: number;
  readonly notAfter: string;
}

/** Send the freeze document (without the hooks install) and wait for it; see `freeze`. */
export async function sendFreeze(
  ssm: Pick<SSMClient, 'send'>,
  clock: Clock,
  request: FreezeRequest,
  random: () => number = Math.random,
): Promise<SentFreeze> {
  let sent: unknown;
  let sentAtMs = clock.now();
  let notAfter = freezeNotAfter(request.notAfter, sentAtMs, request.timeoutSeconds);
  for (let attempt = 0; ; attempt += 1) {
    sentAtMs = clock.now();
    notAfter = freezeNotAfter(request.notAfter, sentAtMs, request.timeoutSeconds);
    try {
      sent = await callWithin(clock, MUTATING_CALL_MS, (s) =>
        ssm.send(
          new SendCommandCommand({
            DocumentName: request.documentName,
            InstanceIds: [request.instanceId],
            TimeoutSeconds: FREEZE_DELIVERY_TIMEOUT_SECONDS,
            Comment: freezeComment(request.executionId),
            Parameters: {
              ExecutionId: [request.executionId],
              VolumeIds: [request.volumeIds.join(',')],
              NotAfter: [notAfter],
              WatchdogSeconds: [String(request.watchdogSeconds)],
              HookTimeoutSeconds: [String(request.hookTimeoutSeconds)],
              Include: [request.include],
              Exclude: [request.exclude],
              // Sent only when there is a pair: Nitro instances need none, and the document's default is empty.
              ...(request.volumeDevices ? { VolumeDevices: [request.volumeDevices] } : {}),
            },
          }),
          { abortSignal: s },
        ),
      );
      break;
    } catch (err) {
      if (attempt + 1 >= FREEZE_SEND_ATTEMPTS || !(isThrottle(err) || isAmbiguous(err))) throw err;
      if (isAmbiguous(err)) {
        let found: Command | undefined;
        try {
          found = await findFreezeCommand(ssm, clock, request, sentAtMs);
        } catch {
          throw err;
        }
        if (found) {
          sent = { Command: found };
          break;
        }
      } else {
        await clock.sleep(200 + backoffMs(attempt, 250, 2000, random));
      }
    }
  }
  const result = await waitForCommand(
    ssm,
    clock,
    { command: sent, instanceId: request.instanceId, timeoutSeconds: request.timeoutSeconds },
    random,
  );
  return { result, sentAtMs, notAfter };
}
