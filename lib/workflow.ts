import { Duration, Lazy, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as ssm from 'aws-cdk-lib/aws-ssm';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { DEFAULT_MAX_STAGGER_SECONDS } from '../lambda/discovery/stagger';
import type { NotifierOperation } from '../lambda/shared/notifier-permissions';
import { RECOVERY_POINT_TAGS } from '../lambda/shared/tags';
import { INPUT_CHECKS } from '../lambda/shared/workflow-input';
import { RESULT_PATHS } from '../lambda/shared/workflow-results';
import type { BackupConfig } from './config';
import { BackupFunction } from './lambda-function';
import type { Vault } from './vault';
import {
  createWorkflowFunctions,
  documentArn,
  instanceArnPattern,
  instanceWildcardFinding,
  optInReason,
  sendToOptedIn,
} from './workflow/functions';
import { inputRejectedCause, validInput } from './workflow/input-check';
import { LAST_RESORT_STATE, lastResort } from './workflow/last-resort';
import {
  DELIVERY_TIMEOUT_SECONDS,
  executionTimeout,
  SDK_TASK_SECONDS,
  THAW_MARGIN_SECONDS,
  THAW_RETRY_WAIT_SECONDS,
  UNFROZEN_START_TASK_SECONDS,
  workflowTimings,
} from './workflow/timings';

export { OUTCOME_ALREADY_NOTIFIED, OUTCOME_NOT_NOTIFIED, OUTCOME_NOT_RECORDED } from './workflow/last-resort';
export {
  APP_HOOKS_WAIT_SECONDS,
  COMMAND_REPORT_MARGIN_SECONDS,
  executionTimeout,
  THAW_MARGIN_SECONDS,
  workflowTimings,
} from './workflow/timings';

/** What the workflow needs of the Documents construct (lib/documents.ts). */
export interface WorkflowDocuments {
  /** The freeze document; its `ref` is the document name. */
  readonly freeze: ssm.CfnDocument;
  /** The thaw document. */
  readonly thaw: ssm.CfnDocument;
  /** Installs the packaged application hooks; sent right before the freeze of a tagged instance. */
  readonly appHooks?: ssm.CfnDocument;
}

/** What the workflow needs of the Notifications construct (lib/notifications.ts). */
export interface WorkflowNotifications {
  readonly topic: sns.ITopic;
  /** The notifier's table: the last resort reads the execution's outcome mark in it. */
  readonly table: dynamodb.ITable;
  /** Adds the environment variables and permissions a function needs for these notifier operations. */
  grantNotify(fn: lambda.Function, operations: readonly NotifierOperation[]): void;
}

export interface WorkflowProps {
  /** The validated configuration (lib/config.ts). */
  readonly config: BackupConfig;
  readonly vault: Pick<Vault, 'vault' | 'backupRole' | 'lifecycle'>;
  readonly documents: WorkflowDocuments;
  readonly notifications: WorkflowNotifications;
  /**
   * Longest time between an execution's start and its `startAt` (discovery's blast-radius waves).
   * Part of the execution timeout, so the timeout can never strike while an instance is frozen.
   * Pass the same value to Discovery (its `maxStagger`), which never schedules a wave later.
   * @default Duration.seconds(DEFAULT_MAX_STAGGER_SECONDS), 14 days
   */
  readonly maxStagger?: Duration;
}

/** AWS-owned document that installs a Distributor package. */
export const CONFIGURE_PACKAGE_DOCUMENT = 'AWS-ConfigureAWSPackage';

/** State names, read as sentences; tests and the docs diagram refer to them. */
export const STATE = {
  checkInput: 'Check Input',
  inputRejected: 'Input Rejected',
  waitForStart: 'Wait For Start Time',
  waitStopped: 'Wait Then Back Up Stopped Instance',
  waitWindows: 'Wait Then Back Up Windows',
  freeze: 'Freeze Filesystems',
  checkFreeze: 'Check Freeze Result',
  startBackup: 'Start Backup Job',
  sendThaw: 'Send Thaw Command',
  waitThaw: 'Wait For Thaw Command',
  checkThaw: 'Check Thaw Result',
  waitBeforeThawRetry: 'Wait Before Retrying Thaw',
  retryThaw: 'Retry Thaw Command',
  waitRetriedThaw: 'Wait For Retried Thaw',
  checkRetriedThaw: 'Check Retried Thaw',
  startUnfrozenBackup: 'Start Backup Job Without Freeze',
  installVss: 'Install VSS Components',
  waitVss: 'Wait For VSS Components',
  startWindowsBackup: 'Start Windows VSS Backup Job',
  recordOutcome: 'Record Outcome',
  didFail: 'Did The Backup Fail',
  succeeded: 'Backup Recorded',
  failed: 'Backup Failed',
  ...LAST_RESORT_STATE,
} as const;

/** The states every error after the freeze is caught into: the thaw, sent by the state machine. */
export const THAW_ENTRY = STATE.sendThaw;

export { SUCCESS_TRANSITIONS } from '../lambda/shared/workflow-results';

/** The error of the Input Rejected state. */
export const INPUT_REJECTED = 'InvalidWorkflowInput';
/** The error of the Backup Failed state: Record Outcome recorded a failure and notified it. */
export const BACKUP_FAILED = 'BackupFailed';

/** Input fields (lambda/shared/workflow-input.ts) that Check Input guarantees to every later state. */
export const REQUIRED_INPUT: readonly string[] = INPUT_CHECKS.map((c) => c.path);

/**
 * Invocation errors of the Lambda service or client rather than of the function. The functions
 * these retries cover only read, wait, or start a job under the execution's idempotency token (and
 * record-outcome's notifier de-duplicates), so a repeat is harmless; the freeze retries only
 * TooManyRequests, where the function certainly did not run, and Start Backup Job (frozen) not at
 * all: a retry would restart its timeout beyond the freeze budget.
 */
const LAMBDA_NOT_RUN = [
  'Lambda.TooManyRequestsException',
  'Lambda.ServiceException',
  'Lambda.SdkClientException',
];

const present = (path: string, ...rest: sfn.Condition[]) =>
  sfn.Condition.and(sfn.Condition.isPresent(path), ...rest);
const stringIs = (path: string, value: string) =>
  present(path, sfn.Condition.isString(path), sfn.Condition.stringEquals(path, value));
const isTrue = (path: string) =>
  present(path, sfn.Condition.isBoolean(path), sfn.Condition.booleanEquals(path, true));

/**
 * The per-instance workflow: one Standard execution per instance and window. Linux: freeze (after
 * the active-job check, in the same function) → start the backup job and wait until every volume's
 * snapshot has started, inside the freeze budget → thaw → record the verdict: 11 transitions on
 * the success path. Every state after the freeze routes any error to the thaw; the thaw is sent a
 * second time when the first is not confirmed; every path ends in Record Outcome, which notifies
 * exactly once.
 */
export class Workflow extends Construct {
  readonly stateMachine: sfn.StateMachine;
  /** Freeze Filesystems' function. */
  readonly freezer: BackupFunction;
  /** Start Backup Job's function (every mode). */
  readonly starter: BackupFunction;
  /** Wait For Thaw Command's function (and the VSS install wait). */
  readonly waiter: BackupFunction;
  readonly recorder: BackupFunction;
  readonly logGroup: logs.LogGroup;
  /** The role the VSS install task runs under; present when installVssComponents is true. */
  readonly installVssRole?: iam.Role;
  /** The execution timeout, above the worst case of the longest path. */
  readonly timeout: Duration;
  /** The longest wait before an execution's startAt; discovery must schedule nothing later. */
  readonly maxStagger: Duration;

  constructor(scope: Construct, id: string, props: WorkflowProps) {
    super(scope, id);
    const { config, vault, documents, notifications } = props;
    const stack = Stack.of(this);
    const timings = workflowTimings(config);

    const fns = createWorkflowFunctions(this, { config, vault, documents });
    this.freezer = fns.freezer;
    this.starter = fns.starter;
    this.waiter = fns.waiter;
    this.recorder = new BackupFunction(this, 'RecordOutcome', {
      handlerDir: 'record-outcome',
      description: 'Decides the consistency verdict, requests the recovery point label and notifies',
      timeout: Duration.seconds(60),
      environment: {
        FREEZE_BUDGET_SECONDS: String(config.freezeBudgetSeconds),
        WATCHDOG_SECONDS: String(config.watchdogSeconds),
        ON_FREEZE_FAILURE: config.onFreezeFailure,
      },
    });
    notifications.grantNotify(this.recorder, ['record-outcomes']);
    // No ec2:CreateTags: record-outcome asks the label-writer for the label (lib/labels.ts grants
    // its requesters sqs:SendMessage on the label queue); StartBackupJob names no AMI for EC2.

    const lambdaRetry = <T extends sfn.TaskStateBase>(errors: string[], state: T): T => {
      if (errors.length > 0)
        state.addRetry({
          errors,
          interval: Duration.seconds(1),
          maxAttempts: 3,
          backoffRate: 2,
          jitterStrategy: sfn.JitterType.FULL,
        });
      return state;
    };
    const invoke = (
      name: string,
      fn: BackupFunction,
      payload: Record<string, unknown>,
      resultPath: string,
      timeout: sfn.Timeout,
      retryErrors: string[] = LAMBDA_NOT_RUN,
    ) =>
      lambdaRetry(
        retryErrors,
        new tasks.LambdaInvoke(this, name, {
          lambdaFunction: fn,
          payload: sfn.TaskInput.fromObject(payload),
          payloadResponseOnly: true,
          retryOnServiceExceptions: false,
          resultPath,
          taskTimeout: timeout,
        }),
      );
    const seconds = (s: number) => sfn.Timeout.duration(Duration.seconds(s));
    /** What every StartBackupJob of this execution sends (start-backup adds the mode's options). */
    const jobRequest = {
      instanceArn: sfn.JsonPath.stringAt('$.instanceArn'),
      backupVaultName: vault.vault.backupVaultName,
      iamRoleArn: vault.backupRole.roleArn,
      // One job per execution, however often it is asked for.
      idempotencyToken: sfn.JsonPath.executionName,
      startWindowMinutes: 60,
      lifecycle: vault.lifecycle,
      recoveryPointTags: {
        [RECOVERY_POINT_TAGS.consistency]: 'pending',
        [RECOVERY_POINT_TAGS.execution]: sfn.JsonPath.executionName,
        [RECOVERY_POINT_TAGS.window]: sfn.JsonPath.stringAt('$.window'),
        [RECOVERY_POINT_TAGS.instance]: sfn.JsonPath.stringAt('$.instanceId'),
      },
      freezeBudgetSeconds: config.freezeBudgetSeconds,
      thawMarginSeconds: THAW_MARGIN_SECONDS,
    };

    // ---- Record Outcome, and what follows it ----
    const recordOutcome = lambdaRetry(
      LAMBDA_NOT_RUN,
      new tasks.LambdaInvoke(this, STATE.recordOutcome, {
        lambdaFunction: this.recorder,
        payload: sfn.TaskInput.fromObject({
          state: sfn.JsonPath.entirePayload,
          execution: { arn: sfn.JsonPath.executionId, name: sfn.JsonPath.executionName },
        }),
        payloadResponseOnly: true,
        retryOnServiceExceptions: false,
        taskTimeout: seconds(70),
      }),
    ).addRetry({
      errors: ['States.TaskFailed', 'States.Timeout'],
      interval: Duration.seconds(2),
      maxAttempts: 3,
      backoffRate: 2,
      jitterStrategy: sfn.JitterType.FULL,
    });
    // Last resort: the verdict Lambda is down, yet the failure must reach SNS once, in the shared
    // schema, with the severity the facts allow (lib/workflow/last-resort.ts).
    const publishUnrecorded = lastResort(this, {
      topic: notifications.topic,
      table: notifications.table,
      watchdogSeconds: config.watchdogSeconds,
    });
    recordOutcome.addCatch(publishUnrecorded, { errors: [sfn.Errors.ALL], resultPath: '$.recordError' });
    recordOutcome.next(
      new sfn.Choice(this, STATE.didFail)
        .when(
          isTrue('$.failed'),
          // Static error and cause: a path here that the output lacks would be an uncatchable
          // States.Runtime. Record Outcome has notified; its output in the history has the detail.
          new sfn.Fail(this, STATE.failed, {
            error: BACKUP_FAILED,
            cause:
              'Record Outcome recorded a failed backup and notified it; the outcome and its reason are in its output (execution history) and in the notification.',
          }),
        )
        .otherwise(new sfn.Succeed(this, STATE.succeeded)),
    );

    // ---- unfrozen starts: stopped instances, the start after the thaw, Windows VSS ----
    const startUnfrozen = invoke(
      STATE.startUnfrozenBackup,
      this.starter,
      { mode: 'unfrozen', ...jobRequest, startAt: sfn.JsonPath.stringAt('$.startAt') },
      RESULT_PATHS.unfrozenBackup,
      seconds(UNFROZEN_START_TASK_SECONDS),
    )
      .addCatch(recordOutcome, { errors: [sfn.Errors.ALL], resultPath: RESULT_PATHS.unfrozenBackupError })
      .next(recordOutcome);

    // ---- the thaw: sent by the state machine itself, confirmed by the instance's report ----
    // The thaw may target any instance of this account and Region, with no tag condition: removing
    // or changing the opt-in tag while an instance is frozen must not deny its thaw (issue 13). The
    // thaw document is idempotent and does nothing on an instance without this execution's freeze.
    // So that no other document rides on this unconditioned instance grant, the thaw document is the
    // only one the state machine's own role may send; the VSS install runs under a role of its own.
    const sendThaw = (name: string, resultPath: string) =>
      new tasks.CallAwsService(this, name, {
        service: 'ssm',
        action: 'sendCommand',
        iamAction: 'ssm:SendCommand',
        iamResources: [documentArn(this, documents.thaw.ref)],
        additionalIamStatements: [
          new iam.PolicyStatement({ actions: ['ssm:SendCommand'], resources: [instanceArnPattern(this)] }),
        ],
        parameters: {
          DocumentName: documents.thaw.ref,
          InstanceIds: sfn.JsonPath.array(sfn.JsonPath.stringAt('$.instanceId')),
          TimeoutSeconds: DELIVERY_TIMEOUT_SECONDS,
          Comment: 'ec2-consistent-backup thaw',
          Parameters: {
            ExecutionId: sfn.JsonPath.array(sfn.JsonPath.executionName),
            HookTimeoutSeconds: [String(config.hookTimeoutSeconds)],
          },
        },
        resultPath,
        taskTimeout: seconds(SDK_TASK_SECONDS),
      }).addRetry({
        // A duplicate thaw is harmless: everything that may not have been sent is sent again.
        errors: [
          'Ssm.ThrottlingException',
          'Ssm.InternalServerErrorException',
          'Ssm.SsmException',
          'States.Timeout',
        ],
        interval: Duration.seconds(1),
        maxAttempts: 3,
        backoffRate: 2,
        jitterStrategy: sfn.JitterType.FULL,
      });
    const waitThaw = (name: string, commandPath: string, resultPath: string, attempt: number) =>
      invoke(
        name,
        this.waiter,
        {
          kind: 'thaw',
          command: sfn.JsonPath.objectAt(commandPath),
          instanceId: sfn.JsonPath.stringAt('$.instanceId'),
          timeoutSeconds: timings.commandWaitSeconds,
          attempt,
        },
        resultPath,
        seconds(timings.commandTaskSeconds),
      );
    // After a confirmed thaw, a backup job still has to be started when none exists yet: the
    // freeze failed under the crash-consistent policy, found nothing to freeze, or Start Backup Job
    // gave no job within the freeze budget (or failed) so the thaw came first. Not after a job that
    // was refused for good (start-failed) or under the skip policy after a failed freeze.
    const policyCrash =
      config.onFreezeFailure === 'skip'
        ? stringIs('$.options.onFreezeFailure', 'crash-consistent')
        : sfn.Condition.not(stringIs('$.options.onFreezeFailure', 'skip'));
    const startAfterThaw = (thawPath: string) =>
      sfn.Condition.and(
        isTrue(`${thawPath}.confirmed`),
        sfn.Condition.not(sfn.Condition.isPresent('$.snapshots.backupJob')),
        sfn.Condition.not(sfn.Condition.isPresent(RESULT_PATHS.unfrozenBackup)),
        sfn.Condition.not(stringIs('$.snapshots.status', 'start-failed')),
        sfn.Condition.or(
          stringIs('$.freeze.outcome', 'frozen'),
          isTrue('$.freeze.nothingToFreeze'),
          policyCrash,
        ),
      );
    const checkRetriedThaw = new sfn.Choice(this, STATE.checkRetriedThaw)
      .when(startAfterThaw(RESULT_PATHS.retriedThaw), startUnfrozen)
      // Confirmed or not, Record Outcome decides: a second failure is a Critical thaw-failed.
      .otherwise(recordOutcome);
    const retryThaw = sendThaw(STATE.retryThaw, RESULT_PATHS.retriedThawCommand).addCatch(recordOutcome, {
      errors: [sfn.Errors.ALL],
      resultPath: RESULT_PATHS.retriedThawError,
    });
    const waitRetriedThaw = waitThaw(
      STATE.waitRetriedThaw,
      RESULT_PATHS.retriedThawCommand,
      RESULT_PATHS.retriedThaw,
      2,
    ).addCatch(recordOutcome, { errors: [sfn.Errors.ALL], resultPath: RESULT_PATHS.retriedThawError });
    const thawRetry = new sfn.Wait(this, STATE.waitBeforeThawRetry, {
      time: sfn.WaitTime.duration(Duration.seconds(THAW_RETRY_WAIT_SECONDS)),
    });
    thawRetry.next(retryThaw).next(waitRetriedThaw).next(checkRetriedThaw);

    const thaw = sendThaw(STATE.sendThaw, RESULT_PATHS.thawCommand).addCatch(thawRetry, {
      errors: [sfn.Errors.ALL],
      resultPath: RESULT_PATHS.thawError,
    });
    thaw
      .next(
        waitThaw(STATE.waitThaw, RESULT_PATHS.thawCommand, RESULT_PATHS.thaw, 1).addCatch(thawRetry, {
          errors: [sfn.Errors.ALL],
          resultPath: RESULT_PATHS.thawError,
        }),
      )
      .next(
        new sfn.Choice(this, STATE.checkThaw)
          .when(startAfterThaw(RESULT_PATHS.thaw), startUnfrozen)
          .when(isTrue(`${RESULT_PATHS.thaw}.confirmed`), recordOutcome)
          .otherwise(thawRetry),
      );

    // ---- the freeze, and the backup job inside its budget ----
    const freeze = invoke(
      STATE.freeze,
      this.freezer,
      {
        documentName: documents.freeze.ref,
        instanceId: sfn.JsonPath.stringAt('$.instanceId'),
        instanceArn: sfn.JsonPath.stringAt('$.instanceArn'),
        executionId: sfn.JsonPath.executionName,
        volumeIds: sfn.JsonPath.listAt('$.volumeIds'),
        notAfter: sfn.JsonPath.stringAt('$.notAfter'),
        watchdogSeconds: config.watchdogSeconds,
        hookTimeoutSeconds: config.hookTimeoutSeconds,
        include: sfn.JsonPath.stringAt('$.options.include'),
        exclude: sfn.JsonPath.stringAt('$.options.exclude'),
        // The whole input: the optional fields (volumeDevices, options.apps) are read from it by the
        // function, so no state reads a path that may be missing.
        input: sfn.JsonPath.entirePayload,
        ...(documents.appHooks ? { appHooksDocumentName: documents.appHooks.ref } : {}),
        timeoutSeconds: timings.commandWaitSeconds,
        freezeBudgetSeconds: config.freezeBudgetSeconds,
        thawMarginSeconds: THAW_MARGIN_SECONDS,
      },
      RESULT_PATHS.freeze,
      seconds(timings.freezeTaskSeconds),
      // Only a throttled invocation is certain not to have run: anything else could freeze twice.
      ['Lambda.TooManyRequestsException'],
    ).addCatch(thaw, { errors: [sfn.Errors.ALL], resultPath: RESULT_PATHS.freezeError });

    // Frozen: StartBackupJob and the snapshot wait in one task, bounded by what is left of the
    // budget (the freeze result's budgetSeconds), so even a hung function cannot hold the freeze
    // past it. No Retry: a retry would start a new timeout. Every error goes to the thaw.
    const startFrozen = invoke(
      STATE.startBackup,
      this.starter,
      {
        mode: 'frozen',
        ...jobRequest,
        volumeIds: sfn.JsonPath.listAt('$.volumeIds'),
        freeze: sfn.JsonPath.objectAt(RESULT_PATHS.freeze),
      },
      RESULT_PATHS.snapshots,
      sfn.Timeout.at(`${RESULT_PATHS.freeze}.budgetSeconds`),
      [],
    )
      .addCatch(thaw, { errors: [sfn.Errors.ALL], resultPath: RESULT_PATHS.snapshotsError })
      .next(thaw);
    freeze.next(
      new sfn.Choice(this, STATE.checkFreeze)
        .when(
          sfn.Condition.and(
            stringIs('$.freeze.outcome', 'frozen'),
            present(
              '$.freeze.budgetSeconds',
              sfn.Condition.isNumeric('$.freeze.budgetSeconds'),
              sfn.Condition.numberGreaterThanEquals('$.freeze.budgetSeconds', 1),
            ),
          ),
          startFrozen,
        )
        .when(stringIs('$.freeze.outcome', 'active-job'), recordOutcome)
        // Nothing was sent: no thaw needed; the freeze-failure policy decides.
        .when(sfn.Condition.and(stringIs('$.freeze.outcome', 'not-sent'), policyCrash), startUnfrozen)
        .when(stringIs('$.freeze.outcome', 'not-sent'), recordOutcome)
        // Sent and not frozen, or unreadable: a failed freeze may have frozen something before failing.
        .otherwise(thaw),
    );

    // ---- Windows ----
    const startWindows = invoke(
      STATE.startWindowsBackup,
      this.starter,
      { mode: 'windows-vss', ...jobRequest, startAt: sfn.JsonPath.stringAt('$.startAt') },
      RESULT_PATHS.unfrozenBackup,
      seconds(UNFROZEN_START_TASK_SECONDS),
    )
      .addCatch(recordOutcome, { errors: [sfn.Errors.ALL], resultPath: RESULT_PATHS.unfrozenBackupError })
      .next(recordOutcome);
    let windowsPath: sfn.IChainable = startWindows;
    if (config.installVssComponents) {
      // Under a role of its own (Step Functions task credentials): on the state machine's role, the
      // thaw's any-instance grant would let this document reach instances that are not opted in.
      this.installVssRole = new iam.Role(this, 'InstallVssRole', {
        assumedBy: new iam.ArnPrincipal(Lazy.string({ produce: () => this.stateMachine.role.roleArn })),
        description: 'Sends AWS-ConfigureAWSPackage (AwsVssComponents) to opted-in instances',
      });
      for (const s of sendToOptedIn(this, config, [
        stack.formatArn({
          service: 'ssm',
          account: '',
          resource: 'document',
          resourceName: CONFIGURE_PACKAGE_DOCUMENT,
        }),
      ]))
        this.installVssRole.addToPolicy(s);
      const installVss = new tasks.CallAwsService(this, STATE.installVss, {
        service: 'ssm',
        action: 'sendCommand',
        credentials: { role: sfn.TaskRole.fromRole(this.installVssRole) },
        // What the state machine's role needs for this task: assuming that role, nothing more.
        iamAction: 'sts:AssumeRole',
        iamResources: [this.installVssRole.roleArn],
        parameters: {
          DocumentName: CONFIGURE_PACKAGE_DOCUMENT,
          InstanceIds: sfn.JsonPath.array(sfn.JsonPath.stringAt('$.instanceId')),
          TimeoutSeconds: DELIVERY_TIMEOUT_SECONDS,
          Parameters: { action: ['Install'], name: ['AwsVssComponents'] },
        },
        resultPath: '$.vssInstallCommand',
        taskTimeout: seconds(SDK_TASK_SECONDS),
      })
        .addRetry({
          errors: ['Ssm.ThrottlingException', 'Ssm.InternalServerErrorException', 'States.Timeout'],
          interval: Duration.seconds(1),
          maxAttempts: 3,
          backoffRate: 2,
          jitterStrategy: sfn.JitterType.FULL,
        })
        .addCatch(startWindows, { errors: [sfn.Errors.ALL], resultPath: '$.vssInstallError' });
      const waitVss = invoke(
        STATE.waitVss,
        this.waiter,
        {
          kind: 'vss-install',
          command: sfn.JsonPath.objectAt('$.vssInstallCommand'),
          instanceId: sfn.JsonPath.stringAt('$.instanceId'),
          timeoutSeconds: timings.commandWaitSeconds,
        },
        '$.vssInstall',
        seconds(timings.commandTaskSeconds),
      ).addCatch(startWindows, { errors: [sfn.Errors.ALL], resultPath: '$.vssInstallError' });
      windowsPath = installVss.next(waitVss).next(startWindows);
    }

    // ---- Check Input routes by platform and state itself: one Wait per path, no extra Choice ----
    // Every input field a later state reads must exist and have its type before any state reads
    // it: a missing one would be an uncatchable States.Runtime error, perhaps while frozen.
    const wait = (name: string) =>
      new sfn.Wait(this, name, { time: sfn.WaitTime.timestampPath('$.startAt') });
    const definition = new sfn.Choice(this, STATE.checkInput)
      // A stopped instance is consistent by itself: no freeze, and no VSS on Windows either.
      .when(
        sfn.Condition.and(validInput(), sfn.Condition.stringEquals('$.instanceState', 'stopped')),
        wait(STATE.waitStopped).next(startUnfrozen),
      )
      .when(
        sfn.Condition.and(validInput(), sfn.Condition.stringEquals('$.platform', 'windows')),
        wait(STATE.waitWindows).next(windowsPath),
      )
      .when(validInput(), wait(STATE.waitForStart).next(freeze))
      .otherwise(
        new sfn.Fail(this, STATE.inputRejected, { error: INPUT_REJECTED, cause: inputRejectedCause() }),
      );

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.maxStagger = props.maxStagger ?? Duration.seconds(DEFAULT_MAX_STAGGER_SECONDS);
    this.timeout = executionTimeout(config, this.maxStagger);
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      comment: 'ec2-consistent-backup: freeze, back up, thaw as soon as the snapshots have started',
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      stateMachineType: sfn.StateMachineType.STANDARD,
      timeout: this.timeout,
      tracingEnabled: true,
      // ALL shows every transition with its timing; execution data stays out of the logs because
      // hook output in the freeze result may contain anything an application prints.
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });
    notifications.topic.grantPublish(this.stateMachine);

    const instanceWildcard = instanceWildcardFinding(this);
    if (this.installVssRole)
      Validations.of(this.installVssRole).acknowledge({ id: instanceWildcard, reason: optInReason(config) });
    Validations.of(this.stateMachine.role).acknowledge({
      id: instanceWildcard,
      reason:
        "ssm:SendCommand on any instance of this account and Region, with the thaw document as the only document this role may send: the thaw must not be denied when an instance's opt-in tag is removed or changed while it is frozen, and the thaw document is idempotent and does nothing on an instance without this execution's freeze.",
    });
    Validations.of(this.stateMachine.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'X-Ray (xray:PutTraceSegments, PutTelemetryRecords, GetSamplingRules/Targets) and CloudWatch Logs vended delivery (logs:CreateLogDelivery and related) support no resource-level permissions; Step Functions adds them for tracing and logging.',
    });
    Validations.of(this.stateMachine.role).acknowledge({
      id: 'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
      reason:
        'Publishing the last-resort message to the KMS-encrypted notification topic needs kms:GenerateDataKey* (GenerateDataKey and GenerateDataKeyWithoutPlaintext) on that topic key only, as granted by topic.grantPublish.',
    });
    for (const fn of [this.freezer, this.starter, this.waiter, this.recorder]) {
      Validations.of(this.stateMachine.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${stack.getLogicalId(fn.node.defaultChild as lambda.CfnFunction)}.Arn>:*]`,
        reason:
          'lambda:InvokeFunction on the function and its versions (the :* suffix), as Step Functions requires for invoking a function by ARN.',
      });
    }
  }
}
