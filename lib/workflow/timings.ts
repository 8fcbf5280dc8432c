import { Duration } from 'aws-cdk-lib';
import type { BackupConfig } from '../config';
import { commandStepSeconds } from '../documents';

/** Seconds kept back from the freeze budget for the thaw command to reach the instance. */
export const THAW_MARGIN_SECONDS = 3;
/** SSM's smallest delivery timeout for SendCommand. */
export const DELIVERY_TIMEOUT_SECONDS = 30;
/** Time for the agent to report a command's end after the instance ended (or killed) it. */
export const COMMAND_REPORT_MARGIN_SECONDS = 30;
/**
 * The longest Freeze Filesystems waits for the AppHooks command it sends before the freeze of an
 * instance with an Apps tag (lambda/freeze-filesystems APP_HOOKS_*): delivery, a step of a second
 * or two, reporting.
 */
export const APP_HOOKS_WAIT_SECONDS = 60;
/** The active-job check before the freeze or an unfrozen start: ListBackupJobs, retried once. */
export const ACTIVE_JOBS_CHECK_SECONDS = 15;
/**
 * An unfrozen StartBackupJob (stopped, Windows, and the start after the thaw): start-backup gives
 * up after UNFROZEN_START_MS (60 s, lambda/start-backup/start-job.ts); the check comes first.
 */
export const UNFROZEN_START_TASK_SECONDS = 60 + ACTIVE_JOBS_CHECK_SECONDS + 15;
/** Wait For Thaw Command and the like outlast the function's own wait by this much. */
const TASK_MARGIN_SECONDS = 30;
/** The Wait before the second thaw command, on the failure path only. */
export const THAW_RETRY_WAIT_SECONDS = 2;
/** Timeout of the CallAwsService tasks (SendCommand, Publish). */
export const SDK_TASK_SECONDS = 20;

/** Time budgets derived from config, shared with tests and the execution timeout. */
export function workflowTimings(config: BackupConfig) {
  // The freeze and thaw documents run at most commandStepSeconds on the instance (SSM kills them
  // then); delivery takes at most DELIVERY_TIMEOUT_SECONDS before that, and the agent needs a moment
  // to report. Waiting this long, the functions see the command's own end instead of giving up while
  // the instance may still freeze.
  const commandStepTimeoutSeconds = commandStepSeconds(config);
  const commandWaitSeconds =
    DELIVERY_TIMEOUT_SECONDS + commandStepTimeoutSeconds + COMMAND_REPORT_MARGIN_SECONDS;
  const freezeTaskSeconds =
    ACTIVE_JOBS_CHECK_SECONDS +
    DELIVERY_TIMEOUT_SECONDS +
    APP_HOOKS_WAIT_SECONDS +
    commandWaitSeconds +
    TASK_MARGIN_SECONDS;
  const commandTaskSeconds = commandWaitSeconds + TASK_MARGIN_SECONDS;
  return {
    commandStepTimeoutSeconds,
    commandWaitSeconds,
    /** Freeze Filesystems' task timeout, and the freeze-filesystems function's own (+5 s). */
    freezeTaskSeconds,
    /** Wait For Thaw Command's (and the VSS wait's) task timeout. */
    commandTaskSeconds,
    /**
     * The most Start Backup Job (frozen) may take: its TimeoutSecondsPath is the budget left when
     * the freeze was seen (FreezeStepResult.budgetSeconds), never more than the whole budget.
     */
    startBackupTaskSeconds: config.freezeBudgetSeconds,
  };
}

/** Worst case of a Task: every attempt timing out, every retry waiting its longest (1, 2, 4 s). */
function retried(attemptSeconds: number, retriers = 1): number {
  return retriers * (4 * attemptSeconds + 7);
}

/**
 * The execution timeout: the longest path's worst case (every task timing out on every attempt,
 * every retry waiting its longest) plus the stagger, rounded up generously. test/lib/workflow.test.ts
 * checks it against the synthesized definition.
 */
export function executionTimeout(config: BackupConfig, maxStagger: Duration): Duration {
  const t = workflowTimings(config);
  const worst =
    retried(t.freezeTaskSeconds) +
    t.startBackupTaskSeconds +
    retried(SDK_TASK_SECONDS) + // send thaw
    retried(t.commandTaskSeconds) + // wait for thaw
    THAW_RETRY_WAIT_SECONDS +
    retried(SDK_TASK_SECONDS) + // retry thaw
    retried(t.commandTaskSeconds) + // wait for retried thaw
    retried(UNFROZEN_START_TASK_SECONDS) + // start without freeze
    retried(70, 2) + // record outcome, both retriers
    retried(SDK_TASK_SECONDS); // last-resort publish
  return Duration.seconds(maxStagger.toSeconds() + Math.ceil((worst * 1.2) / 60) * 60);
}
