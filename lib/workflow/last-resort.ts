import { Duration } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';
import {
  EVENT_SOURCE,
  NOTIFICATION_SCHEMA,
  NOTIFICATION_SCHEMA_VERSION,
  SEVERITY_CODES,
  SEVERITY_RULES,
} from '../../lambda/shared/notification';
import { EXECUTION_MARK_SK, EXECUTION_NOTIFIED, executionMarkPk } from '../../lambda/shared/run-ledger';

/** State names of the last resort; lib/workflow.ts merges them into STATE. */
export const LAST_RESORT_STATE = {
  readOutcomeMark: 'Read Outcome Mark',
  wasOutcomeNotified: 'Was The Outcome Notified',
  alreadyNotified: 'Outcome Already Notified',
  wasThawConfirmed: 'Was The Thaw Confirmed',
  readWatchdogDeadline: 'Read Watchdog Deadline',
  checkWatchdogDeadline: 'Check Watchdog Deadline',
  freezeMayBeHeld: 'Report Freeze May Be Held',
  freezeMayBeHeldNoDeadline: 'Report Freeze May Be Held Without Deadline',
  watchdogEndedFreeze: 'Report Watchdog Ended The Freeze',
  notRecordedThawed: 'Report Outcome Not Recorded',
  publishUnrecorded: 'Publish Unrecorded Outcome',
  notRecorded: 'Outcome Not Recorded',
  notNotified: 'Outcome Not Notified',
} as const;

/** The error of the Fail state reached when even the last-resort message could not be published. */
export const OUTCOME_NOT_NOTIFIED = 'OutcomeNotNotified';
/** The error of the Fail state reached after the last-resort message was published. */
export const OUTCOME_NOT_RECORDED = 'OutcomeNotRecorded';
/**
 * The error of the Fail state reached when Record Outcome failed after its notifier had confirmed
 * the notification: the outcome is recorded and notified, only the task's answer was lost.
 */
export const OUTCOME_ALREADY_NOTIFIED = 'OutcomeAlreadyNotified';

/**
 * The freeze document's result line (ssm-documents/scripts/freeze.sh) with a watchdog deadline in
 * it. Only such a stdout is parsed: States.StringToJson of anything else would fail the execution.
 */
const STDOUT_WITH_DEADLINE = '{*"watchdog":{*"deadline":"*"}*}';

export interface LastResortProps {
  readonly topic: sns.ITopic;
  /** The notifier's table, where record-outcome marks each execution's outcome (lambda/shared/notifier.ts). */
  readonly table: dynamodb.ITable;
  /** The watchdog period, for the message when the freeze result names no deadline. */
  readonly watchdogSeconds: number;
}

const id = sfn.JsonPath.stringAt('$.instanceId');
const window = sfn.JsonPath.stringAt('$.window');
const recordError = sfn.JsonPath.stringAt('$.recordError.Error');

/**
 * What the state machine publishes by itself when Record Outcome cannot run: the one message of
 * this execution, in the notification schema, with the severity the facts allow. A freeze may still
 * be held when the freeze step ran (it has a result or an error) and no thaw was confirmed: then it
 * is a Critical `thaw-failed` naming the watchdog deadline (read from the freeze result when it has
 * one); otherwise a Major `outcome-not-recorded`. Every path read here is either guarded by the
 * Choice that routes to it or set by the Pass state before it, so nothing on this path can fail
 * with States.Runtime. Returns the state Record Outcome's Catch leads to.
 */
export function lastResort(scope: Construct, props: LastResortProps): tasks.DynamoGetItem {
  const S = LAST_RESORT_STATE;
  const report = (
    name: string,
    severity: 'Critical' | 'Major',
    eventType: 'thaw-failed' | 'outcome-not-recorded',
    subject: string,
    /** The watchdog_thaw_by value: a path, a literal, or none. */
    thawBy: string,
    /** What follows "could not record its outcome (...);", with its own {} placeholders. */
    means: string,
    meansArgs: string[],
  ) =>
    new sfn.Pass(scope, name, {
      parameters: {
        severity,
        severityCode: SEVERITY_CODES[severity],
        eventType,
        problemClass: SEVERITY_RULES[eventType].problemClass,
        subject: sfn.JsonPath.format(`[${severity}] ${subject}`, id),
        // "none" rather than an absent field: every path the publish reads must exist.
        watchdogThawBy: thawBy,
        description: sfn.JsonPath.format(
          `What happened: The workflow for {} in window {} could not record its outcome ({}); ${means}`,
          id,
          window,
          recordError,
          ...meansArgs,
        ),
      },
      resultPath: '$.lastResort',
    });
  const heldMeans = (deadlineText: string) =>
    `the thaw of its data filesystems was not confirmed. What it means: the data filesystems may still be frozen, so writes to them block and applications may hang; the on-instance watchdog thaws by itself by ${deadlineText}. Treat the recovery point of this window as crash-consistent until checked. What to do: now, check whether writes to the data filesystems hang (probe in the background: a write to a frozen filesystem blocks); if the watchdog time has passed and writes still hang, run fsfreeze -u <mountpoint> as root for each data filesystem, or send the thaw document again through SSM Run Command. Then read execution {} and the Record Outcome log for why.`;
  const deadlineFromFreeze = sfn.JsonPath.stringAt('$.freezeOutput.output.watchdog.deadline');
  const watchdogText = `${props.watchdogSeconds} s after the freeze began (the freeze result names no deadline)`;
  const heldSubject = 'Thaw not confirmed, filesystems may be frozen: {}';

  const publish = new tasks.SnsPublish(scope, S.publishUnrecorded, {
    topic: props.topic,
    // The notifier's envelope: the SNS subject equals the body's, and the attributes subscribers filter on.
    subject: sfn.JsonPath.stringAt('$.lastResort.subject'),
    messageAttributes: {
      severity: { value: sfn.JsonPath.stringAt('$.lastResort.severity') },
      event_type: { value: sfn.JsonPath.stringAt('$.lastResort.eventType') },
      instance_id: { value: id },
    },
    message: sfn.TaskInput.fromObject({
      schema: NOTIFICATION_SCHEMA,
      schemaVersion: NOTIFICATION_SCHEMA_VERSION,
      eventType: sfn.JsonPath.stringAt('$.lastResort.eventType'),
      severity: sfn.JsonPath.stringAt('$.lastResort.severity'),
      subject: sfn.JsonPath.stringAt('$.lastResort.subject'),
      instanceId: id,
      event: {
        source: EVENT_SOURCE,
        node: id,
        type: sfn.JsonPath.stringAt('$.lastResort.eventType'),
        resource: sfn.JsonPath.stringAt('$.lastResort.problemClass'),
        severity: sfn.JsonPath.stringAt('$.lastResort.severityCode'),
        message_key: sfn.JsonPath.format(
          `${EVENT_SOURCE}:{}:{}:{}:{}`,
          sfn.JsonPath.stringAt('$.accountId'),
          sfn.JsonPath.stringAt('$.region'),
          id,
          sfn.JsonPath.stringAt('$.lastResort.problemClass'),
        ),
        time_of_event: sfn.JsonPath.stringAt('$$.State.EnteredTime'),
        resolution_state: 'New',
        description: sfn.JsonPath.stringAt('$.lastResort.description'),
        additional_info: {
          schema_version: String(NOTIFICATION_SCHEMA_VERSION),
          event_type: sfn.JsonPath.stringAt('$.lastResort.eventType'),
          account: sfn.JsonPath.stringAt('$.accountId'),
          region: sfn.JsonPath.stringAt('$.region'),
          instance_id: id,
          window,
          execution_arn: sfn.JsonPath.executionId,
          error: recordError,
          watchdog_thaw_by: sfn.JsonPath.stringAt('$.lastResort.watchdogThawBy'),
          // No verdict could be recorded: the honest label is the weakest one.
          consistency: 'crash',
          consistency_reason: 'the outcome could not be recorded',
        },
      },
    }),
    resultPath: sfn.JsonPath.DISCARD,
    taskTimeout: sfn.Timeout.duration(Duration.seconds(20)),
  })
    // The last resort retries everything: nothing comes after it but a failed execution.
    .addRetry({
      errors: [sfn.Errors.ALL],
      interval: Duration.seconds(1),
      maxAttempts: 3,
      backoffRate: 2,
      jitterStrategy: sfn.JitterType.FULL,
    })
    // Its own error name, so the execution-events rule knows no message went out (lib/execution-events.ts).
    .addCatch(
      new sfn.Fail(scope, S.notNotified, {
        error: OUTCOME_NOT_NOTIFIED,
        cause:
          'Record Outcome failed after retries and the last-resort message could not be published to SNS; the execution-events function notifies this failure.',
      }),
      { errors: [sfn.Errors.ALL], resultPath: '$.publishError' },
    );
  publish.next(
    new sfn.Fail(scope, S.notRecorded, {
      error: OUTCOME_NOT_RECORDED,
      cause: 'Record Outcome failed after retries; a minimal notification was published directly to SNS.',
    }),
  );

  const withDeadline = report(
    S.freezeMayBeHeld,
    'Critical',
    'thaw-failed',
    heldSubject,
    deadlineFromFreeze,
    heldMeans('{}'),
    [deadlineFromFreeze, sfn.JsonPath.executionId],
  ).next(publish);
  const withoutDeadline = report(
    S.freezeMayBeHeldNoDeadline,
    'Critical',
    'thaw-failed',
    heldSubject,
    watchdogText,
    heldMeans(watchdogText),
    [sfn.JsonPath.executionId],
  ).next(publish);
  // The instance thawed, but only its watchdog ended the freeze: the thaw arrived too late, the
  // freeze outlived the budget, and the snapshots may have been taken after it ended. The verdict
  // makes this Critical (lambda/shared/verdict.ts); so does the last resort.
  const watchdogEnded = report(
    S.watchdogEndedFreeze,
    'Critical',
    'thaw-failed',
    'Freeze ended by the on-instance watchdog, not the thaw: {}',
    'watchdog fired',
    'the on-instance watchdog ended the freeze of its data filesystems before the thaw arrived. What it means: the freeze lasted the full watchdog period, beyond the freeze budget, so writes blocked that long and applications may have timed out; the thaw that followed confirmed nothing is frozen now. Treat the recovery point of this window as crash-consistent until checked. What to do: check the applications on the instance; then read execution {} and the Record Outcome log for why the thaw was late and the outcome not recorded.',
    [sfn.JsonPath.executionId],
  ).next(publish);
  const notHeld = report(
    S.notRecordedThawed,
    'Major',
    'outcome-not-recorded',
    'Outcome not recorded for {}',
    'none',
    'no freeze is held: nothing was frozen, or the thaw was confirmed. What it means: whether a backup started is in the execution; treat the recovery point of this window as crash-consistent until checked. What to do: read execution {} and the Record Outcome log; fix what stops Record Outcome before the next window.',
    [sfn.JsonPath.executionId],
  ).next(publish);

  // Either thaw attempt confirmed by the instance (ThawStepResult, lambda/shared/workflow-results.ts).
  const thawConfirmed = sfn.Condition.or(
    ...['$.thaw.confirmed', '$.retriedThaw.confirmed'].map((p) =>
      sfn.Condition.and(sfn.Condition.isPresent(p), sfn.Condition.booleanEquals(p, true)),
    ),
  );
  // Either thaw attempt found that the watchdog had ended the freeze first (ThawStepResult.watchdogFired).
  const watchdogFired = sfn.Condition.or(
    ...['$.thaw.watchdogFired', '$.retriedThaw.watchdogFired'].map((p) =>
      sfn.Condition.and(
        sfn.Condition.isPresent(p),
        sfn.Condition.isBoolean(p),
        sfn.Condition.booleanEquals(p, true),
      ),
    ),
  );
  // The freeze step ran when it left a result or an error; anything it froze is held until a thaw
  // is confirmed or the watchdog fires.
  // A freeze step that answered `active-job` or `not-sent` sent nothing (FreezeOutcome,
  // lambda/shared/workflow-results.ts): nothing can be held.
  const sentNothing = sfn.Condition.and(
    sfn.Condition.isPresent('$.freeze.outcome'),
    sfn.Condition.isString('$.freeze.outcome'),
    sfn.Condition.or(
      sfn.Condition.stringEquals('$.freeze.outcome', 'active-job'),
      sfn.Condition.stringEquals('$.freeze.outcome', 'not-sent'),
    ),
  );
  const mayBeHeld = sfn.Condition.and(
    sfn.Condition.or(
      sfn.Condition.and(sfn.Condition.isPresent('$.freeze'), sfn.Condition.not(sentNothing)),
      sfn.Condition.isPresent('$.freezeError'),
    ),
    sfn.Condition.not(thawConfirmed),
  );
  const readDeadline = new sfn.Pass(scope, S.readWatchdogDeadline, {
    parameters: { 'output.$': 'States.StringToJson($.freeze.command.stdout)' },
    resultPath: '$.freezeOutput',
  }).next(
    new sfn.Choice(scope, S.checkWatchdogDeadline)
      .when(
        sfn.Condition.and(
          sfn.Condition.isPresent('$.freezeOutput.output.watchdog.deadline'),
          sfn.Condition.isString('$.freezeOutput.output.watchdog.deadline'),
        ),
        withDeadline,
      )
      .otherwise(withoutDeadline),
  );
  const wasThawConfirmed = new sfn.Choice(scope, S.wasThawConfirmed)
    .when(
      sfn.Condition.and(
        mayBeHeld,
        sfn.Condition.isPresent('$.freeze.command.stdout'),
        sfn.Condition.isString('$.freeze.command.stdout'),
        sfn.Condition.stringMatches('$.freeze.command.stdout', STDOUT_WITH_DEADLINE),
      ),
      readDeadline,
    )
    .when(mayBeHeld, withoutDeadline)
    .when(watchdogFired, watchdogEnded)
    .otherwise(notHeld);

  // Record Outcome's notifier may have published before the task failed (its answer lost, a
  // timeout after the publish, a failure while it finished the run): then a message from here
  // would be the execution's second. Its mark on the execution (EXEC#<arn> / OUTCOME) is written
  // before the publish, so the mark alone is a claim, not proof; `notifiedAt` is written only
  // once SNS took the message (or none was due). So: confirmed -> publish nothing; a claim
  // without confirmation, no mark, or a mark that cannot be read -> publish. For the claim both
  // "never silent" and "never duplicate" cannot be had: the notifier may have died before its
  // publish (a hung call, a failed undo) or after it (a lost confirmation), and nothing readable
  // tells which; a duplicate costs a second look at one alert with the same message_key, a silent
  // failure costs a missed backup or a filesystem left frozen, so the claim does not stop this
  // message. And whenever a freeze may still be held, or the watchdog ended it, only a confirmed
  // Critical stops it: the Critical must go out.
  const confirmed = sfn.Condition.isPresent(`$.outcomeMark.Item.${EXECUTION_NOTIFIED.at}.S`);
  const confirmedCritical = sfn.Condition.and(
    sfn.Condition.isPresent(`$.outcomeMark.Item.${EXECUTION_NOTIFIED.severity}.S`),
    sfn.Condition.stringEquals(`$.outcomeMark.Item.${EXECUTION_NOTIFIED.severity}.S`, 'Critical'),
  );
  const readMark: tasks.DynamoGetItem = new tasks.DynamoGetItem(scope, S.readOutcomeMark, {
    table: props.table,
    key: {
      pk: tasks.DynamoAttributeValue.fromString(
        sfn.JsonPath.format(executionMarkPk('{}'), sfn.JsonPath.executionId),
      ),
      sk: tasks.DynamoAttributeValue.fromString(EXECUTION_MARK_SK),
    },
    // Read after the notifier's last write: a confirmation written just before must be seen.
    consistentRead: true,
    projectionExpression: [
      new tasks.DynamoProjectionExpression().withAttribute(EXECUTION_NOTIFIED.at),
      new tasks.DynamoProjectionExpression().withAttribute(EXECUTION_NOTIFIED.severity),
    ],
    // The whole answer: a ResultSelector on `$.Item` would be an uncatchable States.Runtime when
    // there is no mark.
    resultPath: '$.outcomeMark',
    taskTimeout: sfn.Timeout.duration(Duration.seconds(10)),
  });
  readMark
    .addRetry({
      // The integration's error names are DynamoDB.<exception>; States.Timeout is the task's own.
      errors: [
        'DynamoDB.AmazonDynamoDBException',
        'DynamoDB.InternalServerErrorException',
        'DynamoDB.ProvisionedThroughputExceededException',
        'DynamoDB.RequestLimitExceeded',
        'DynamoDB.ThrottlingException',
        'States.Timeout',
      ],
      interval: Duration.seconds(1),
      maxAttempts: 2,
      backoffRate: 2,
      jitterStrategy: sfn.JitterType.FULL,
    })
    // Unreadable: publish (never silent).
    .addCatch(wasThawConfirmed, { errors: [sfn.Errors.ALL], resultPath: '$.outcomeMarkError' });
  readMark.next(
    new sfn.Choice(scope, S.wasOutcomeNotified)
      .when(
        sfn.Condition.and(
          confirmed,
          sfn.Condition.or(confirmedCritical, sfn.Condition.not(sfn.Condition.or(mayBeHeld, watchdogFired))),
        ),
        new sfn.Fail(scope, S.alreadyNotified, {
          error: OUTCOME_ALREADY_NOTIFIED,
          cause:
            'Record Outcome failed after retries, but its notifier had already published the outcome (the execution mark in the notifier table confirms it); nothing more was published.',
        }),
      )
      .otherwise(wasThawConfirmed),
  );
  return readMark;
}
