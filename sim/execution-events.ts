/**
 * What happens after a workflow execution ends in production, and the workflow simulator would
 * otherwise not see: Step Functions emits a "Step Functions Execution Status Change" event, the
 * rule of lib/execution-events.ts matches FAILED, TIMED_OUT and ABORTED, and EventBridge invokes
 * the execution-events function asynchronously. Here the REAL logic (lambda/execution-events/
 * events.ts) runs against the simulator's SNS and DynamoDB fakes, through the same fault plan and
 * outages as every other call, on the virtual clock:
 * - EventBridge delivers the event after a delay: most within a few seconds, some much later.
 *   EventBridge states no delivery latency; "typically within seconds" is what its user guide
 *   describes for AWS service events, so the long tail here is an assumption on the safe side.
 * - Lambda's asynchronous invocation runs the function, and after a failure (the function threw,
 *   timed out, or the Lambda service was down) tries twice more, one minute and then two minutes
 *   later (Lambda developer guide, "Asynchronous invocation": retryAttempts 2, as the function's
 *   EventInvokeConfig sets). After the third failure the event goes to the on-failure queue, which
 *   is alarmed but publishes nothing to the topic: the simulator reports it as `dead-lettered`.
 */

import {
  EXECUTION_EVENTS_TIMEOUT_SECONDS,
  type ExecutionEventResult,
  type ExecutionStatusEvent,
  handleExecutionEvent,
} from '../lambda/execution-events/events';
import { PublishCommand } from '@aws-sdk/client-sns';
import { handleJobEvent } from '../lambda/job-events/job-events';
import { BACKUP_JOB_DETAIL_TYPE } from '../lambda/shared/notification';
import { Notifier } from '../lambda/shared/notifier';

/** The watched statuses (lib/execution-events.ts WATCHED_STATUSES; kept here so sim/ imports no CDK). */
const WATCHED = new Set(['FAILED', 'TIMED_OUT', 'ABORTED']);
/** Lambda's waits before the second and third asynchronous attempts. */
const ASYNC_RETRY_WAITS_MS = [60_000, 120_000] as const;

/** How the execution ended, as its status change event describes it. */
export interface ExecutionEnd {
  readonly status: 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  readonly executionArn: string;
  readonly error?: string;
  readonly cause?: string;
  /** The execution input as it was given (odd input included). */
  readonly input: unknown;
  readonly stoppedAt: number;
}

/** What became of the status change event. */
export interface ExecutionEventsDelivery {
  /** Not watched by the rule (SUCCEEDED): no event delivered. */
  readonly watched: boolean;
  readonly deliveredAt?: number;
  /** Each invocation's result, or the error it ended with. */
  readonly attempts: readonly (ExecutionEventResult | `error: ${string}`)[];
  readonly deadLettered: boolean;
}

/** The parts of the simulator the model uses (sim/workflow-sim.ts Sim). */
export interface ExecutionEventsSim {
  t: number;
  readonly s: { readonly watchdogSeconds: number };
  readonly dynamodbClient: { send(command: unknown): Promise<unknown> };
  call<T>(op: string, names: { throttle: string; error: string; timeout: string }, effect: () => T): T;
  accept(via: 'execution-events', input: Record<string, unknown>): void;
  lambdaDown(): boolean;
  /** The notifier job-events uses in production: the same table, SNS marked as the notifier's. */
  readonly notifier: Notifier;
}

export const EXECUTION_EVENTS_TABLE = 'ecb-notifications';

/** EventBridge's delivery delay for one event, from a seeded draw in [0, 1). */
export function deliveryDelayMs(draw: number): number {
  // Nine in ten within 0.3-3 s; the rest up to a minute.
  return draw < 0.9
    ? 300 + Math.floor((draw / 0.9) * 2_700)
    : 3_000 + Math.floor(((draw - 0.9) / 0.1) * 57_000);
}

/**
 * Delivers the execution's status change event to the execution-events function, with the
 * asynchronous retries, and returns what happened. Call it once the execution has ended.
 */
export async function deliverExecutionStatusChange(
  sim: ExecutionEventsSim,
  end: ExecutionEnd,
  options: { readonly topicArn: string; readonly tableName: string; readonly draw: number },
): Promise<ExecutionEventsDelivery> {
  if (!WATCHED.has(end.status)) return { watched: false, attempts: [], deadLettered: false };
  sim.t = Math.max(sim.t, end.stoppedAt) + deliveryDelayMs(options.draw);
  const deliveredAt = sim.t;
  const [account, region] = [end.executionArn.split(':')[4], end.executionArn.split(':')[3]];
  const event: ExecutionStatusEvent = {
    account,
    region,
    detail: {
      executionArn: end.executionArn,
      status: end.status,
      stopDate: end.stoppedAt,
      input: JSON.stringify(end.input ?? null),
      error: end.error ?? null,
      cause: end.cause ?? null,
    },
  };
  // The function's own notifier: its publish goes through the simulated SNS, marked as its own.
  const sns = {
    send: async (command: { input: Record<string, unknown> }) => {
      if (!(command instanceof PublishCommand)) throw new Error('sim: unexpected SNS call');
      return sim.call(
        'sns.Publish',
        { throttle: 'ThrottledException', error: 'InternalErrorException', timeout: 'TimeoutError' },
        () => {
          sim.accept('execution-events', command.input);
          return { MessageId: `ee-${sim.t}` };
        },
      );
    },
  };
  const notifier = new Notifier(
    { sns: sns as never, dynamodb: sim.dynamodbClient as never },
    { topicArn: options.topicArn, tableName: options.tableName, summaryDeadlineMinutes: 240 },
    undefined,
    () => new Date(sim.t),
  );
  const attempts: ExecutionEventsDelivery['attempts'][number][] = [];
  for (let attempt = 0; attempt <= ASYNC_RETRY_WAITS_MS.length; attempt++) {
    if (attempt > 0) sim.t += ASYNC_RETRY_WAITS_MS[attempt - 1];
    const invokedAt = sim.t;
    if (sim.lambdaDown()) {
      attempts.push('error: Lambda service unavailable');
      continue;
    }
    try {
      const result = await handleExecutionEvent(event, {
        publisher: notifier,
        dynamodb: sim.dynamodbClient as never,
        tableName: options.tableName,
        watchdogSeconds: sim.s.watchdogSeconds,
        logger: { info: () => undefined },
        clock: () => new Date(sim.t),
        sleep: async (ms: number) => {
          sim.t += ms;
        },
        // Deterministic jitter: both engines must replay a schedule alike.
        random: () => 0.5,
      });
      attempts.push(result);
      return { watched: true, deliveredAt, attempts, deadLettered: false };
    } catch (err) {
      // A call that never returns ends the invocation at the function's timeout.
      if ((err as Error)?.name === 'SimHang')
        sim.t = Math.max(sim.t, invokedAt + EXECUTION_EVENTS_TIMEOUT_SECONDS * 1000);
      attempts.push(`error: ${(err as Error)?.name ?? 'Error'}`);
    }
  }
  return { watched: true, deliveredAt, attempts, deadLettered: true };
}

/** What became of a backup job's FAILED state change (job-events). */
export interface JobEventsDelivery {
  readonly deliveredAt: number;
  readonly attempts: readonly string[];
  readonly deadLettered: boolean;
}

/**
 * The other production backstop the workflow relies on: AWS Backup's "Backup Job State Change"
 * event for a job that FAILED, delivered (after the same kind of delay) to the REAL job-events
 * logic (lambda/job-events/job-events.ts) with the same asynchronous retries. A job can fail after
 * its execution has ended; then nobody but job-events reports it. Only the FAILED state is
 * modelled: the simulator makes no other final state that job-events reports.
 */
export async function deliverBackupJobFailure(
  sim: ExecutionEventsSim,
  job: { readonly backupJobId: string; readonly failedAt: number; readonly resourceArn: string },
  options: { readonly draw: number },
): Promise<JobEventsDelivery> {
  sim.t = Math.max(sim.t, job.failedAt) + deliveryDelayMs(options.draw);
  const deliveredAt = sim.t;
  const attempts: string[] = [];
  for (let attempt = 0; attempt <= ASYNC_RETRY_WAITS_MS.length; attempt++) {
    if (attempt > 0) sim.t += ASYNC_RETRY_WAITS_MS[attempt - 1];
    if (sim.lambdaDown()) {
      attempts.push('error: Lambda service unavailable');
      continue;
    }
    try {
      const result = await handleJobEvent(
        {
          'detail-type': BACKUP_JOB_DETAIL_TYPE,
          source: 'aws.backup',
          time: new Date(job.failedAt).toISOString(),
          detail: {
            backupJobId: job.backupJobId,
            state: 'FAILED',
            statusMessage: 'The backup job failed (simulated).',
            resourceArn: job.resourceArn,
            resourceType: 'EC2',
          },
        },
        {
          notifier: sim.notifier,
          requestLabel: async () => undefined,
          clock: () => new Date(sim.t),
        },
      );
      attempts.push(result.action === 'ignored' ? `ignored: ${result.reason}` : 'handled');
      return { deliveredAt, attempts, deadLettered: false };
    } catch (err) {
      attempts.push(`error: ${(err as Error)?.name ?? 'Error'}`);
    }
  }
  return { deliveredAt, attempts, deadLettered: true };
}
