import { Duration, Lazy, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
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
import type { BackupConfig } from './config';
import { commandStepSeconds } from './documents';
import { BackupFunction } from './lambda-function';
import type { Vault } from './vault';
import { inputRejectedCause, validInput } from './workflow/input-check';
import { LAST_RESORT_STATE, lastResort } from './workflow/last-resort';

export { OUTCOME_ALREADY_NOTIFIED, OUTCOME_NOT_NOTIFIED, OUTCOME_NOT_RECORDED } from './workflow/last-resort';

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
/** Seconds kept back from the freeze budget for the thaw command to reach the instance. */
export const THAW_MARGIN_SECONDS = 3;
/** SSM's smallest delivery timeout for SendCommand. */
const DELIVERY_TIMEOUT_SECONDS = 30;
/** Time for the agent to report a command's end after the instance ended (or killed) it. */
export const COMMAND_REPORT_MARGIN_SECONDS = 30;
/**
 * The longest the probe waits for the AppHooks command it sends before the freeze of an instance
 * with an Apps tag (lambda/backup-probe APP_HOOKS_*): delivery, a step of a second or two, reporting.
 */
export const APP_HOOKS_WAIT_SECONDS = 60;

/** State names, read as sentences; tests and the README diagram refer to them. */
export const STATE = {
  checkInput: 'Check Input',
  waitForStart: 'Wait For Start Time',
  checkActiveJobs: 'Check For Active Backup Jobs',
  choosePath: 'Choose Backup Path',
  inputRejected: 'Input Rejected',
  defaultVolumeDevices: 'Default Volume Devices',
  freeze: 'Freeze Filesystems',
  checkFreeze: 'Check Freeze Result',
  startBackup: 'Start Backup Job',
  waitSnapshots: 'Wait For Snapshots To Start',
  thaw: 'Thaw Filesystems',
  sendThaw: 'Send Thaw Command',
  waitThaw: 'Wait For Thaw Command',
  checkThaw: 'Check Thaw Result',
  thawConfirmed: 'Thaw Confirmed',
  thawNotConfirmed: 'Thaw Not Confirmed',
  routeAfterThaw: 'Route After Thaw',
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

/** The error of the Input Rejected state. */
export const INPUT_REJECTED = 'InvalidWorkflowInput';
/** The error of the Backup Failed state: Record Outcome recorded a failure and notified it. */
export const BACKUP_FAILED = 'BackupFailed';

/** Input fields (lambda/shared/workflow-input.ts) that Check Input guarantees to every later state. */
export const REQUIRED_INPUT: readonly string[] = INPUT_CHECKS.map((c) => c.path);

/**
 * Invocation errors of the Lambda service or client rather than of the function. The functions
 * these retries cover only read or wait (record-outcome's notifier de-duplicates), so a repeat is
 * harmless; the freeze retries only TooManyRequests, where the function certainly did not run.
 */
const LAMBDA_NOT_RUN = [
  'Lambda.TooManyRequestsException',
  'Lambda.ServiceException',
  'Lambda.SdkClientException',
];

/** Time budgets derived from config, shared with tests and the execution timeout. */
export function workflowTimings(config: BackupConfig) {
  // The freeze and thaw documents run at most commandStepSeconds on the instance (SSM kills them
  // then); delivery takes at most DELIVERY_TIMEOUT_SECONDS before that, and the agent needs a moment
  // to report. Waiting this long, the probe sees the command's own end instead of giving up while
  // the instance may still freeze.
  const commandStepTimeoutSeconds = commandStepSeconds(config);
  const commandWaitSeconds =
    DELIVERY_TIMEOUT_SECONDS + commandStepTimeoutSeconds + COMMAND_REPORT_MARGIN_SECONDS;
  const snapshotWaitSeconds = config.freezeBudgetSeconds + 15;
  const probeTimeoutSeconds = Math.min(
    Math.max(commandWaitSeconds + DELIVERY_TIMEOUT_SECONDS + APP_HOOKS_WAIT_SECONDS, snapshotWaitSeconds) +
      30,
    900,
  );
  return { commandStepTimeoutSeconds, commandWaitSeconds, snapshotWaitSeconds, probeTimeoutSeconds };
}

/**
 * The per-instance workflow: one Standard execution per instance and window. Linux: freeze → start
 * the backup job → wait until every volume's snapshot has started (or the budget runs out) → thaw →
 * record the verdict. Every state after the freeze routes any error to the thaw; the thaw retries
 * with backoff; every path ends in Record Outcome, which notifies exactly once.
 */
export class Workflow extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly probe: BackupFunction;
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
    const documentArn = (name: string) =>
      stack.formatArn({ service: 'ssm', resource: 'document', resourceName: name });
    // Instances of this account and Region only.
    const instanceArn = stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' });
    const optInCondition = {
      StringEquals: { [`ssm:resourceTag/${config.optInTagKey}`]: config.optInTagValue },
    };
    // SendCommand authorizes the document and every target separately: the document statement has no
    // condition, the instance statement only matches instances carrying the opt-in tag.
    const sendToOptedIn = (documentArns: string[]) => [
      new iam.PolicyStatement({ actions: ['ssm:SendCommand'], resources: documentArns }),
      new iam.PolicyStatement({
        actions: ['ssm:SendCommand'],
        resources: [instanceArn],
        conditions: optInCondition,
      }),
    ];

    this.probe = new BackupFunction(this, 'BackupProbe', {
      handlerDir: 'backup-probe',
      description: 'Checks for active backup jobs, freezes, and waits for commands and snapshots',
      timeout: Duration.seconds(timings.probeTimeoutSeconds),
    });
    const probeDocuments = [documents.freeze, ...(documents.appHooks ? [documents.appHooks] : [])];
    for (const s of sendToOptedIn(probeDocuments.map((d) => documentArn(d.ref))))
      this.probe.addToRolePolicy(s);
    this.probe.addToRolePolicy(
      new iam.PolicyStatement({
        // None of these supports resource-level permissions (service authorization reference).
        actions: [
          'ssm:GetCommandInvocation',
          // The freeze's look-up after an ambiguous SendCommand failure (probe.ts findFreezeCommand).
          'ssm:ListCommands',
          'backup:ListBackupJobs',
          'backup:DescribeBackupJob',
          'ec2:DescribeSnapshots',
        ],
        resources: ['*'],
      }),
    );

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

    // ---- states ----
    const postFreezeCatch = (state: sfn.TaskStateBase, resultPath: string) =>
      state.addCatch(thaw, { errors: [sfn.Errors.ALL], resultPath });
    const lambdaRetry = (errors: string[], state: sfn.TaskStateBase) =>
      state.addRetry({
        errors,
        interval: Duration.seconds(1),
        maxAttempts: 3,
        backoffRate: 2,
        jitterStrategy: sfn.JitterType.FULL,
      });
    const probe = (
      name: string,
      payload: Record<string, unknown>,
      resultPath: string,
      timeoutSeconds: number,
      retryErrors: string[] = LAMBDA_NOT_RUN,
    ) =>
      lambdaRetry(
        retryErrors,
        new tasks.LambdaInvoke(this, name, {
          lambdaFunction: this.probe,
          payload: sfn.TaskInput.fromObject(payload),
          payloadResponseOnly: true,
          retryOnServiceExceptions: false,
          resultPath,
          taskTimeout: sfn.Timeout.duration(Duration.seconds(timeoutSeconds)),
        }),
      );
    const startBackup = (name: string, windowsVss: boolean) =>
      new tasks.CallAwsService(this, name, {
        service: 'backup',
        action: 'startBackupJob',
        iamAction: 'backup:StartBackupJob',
        iamResources: [vault.vault.backupVaultArn],
        additionalIamStatements: [
          new iam.PolicyStatement({
            actions: ['iam:PassRole'],
            resources: [vault.backupRole.roleArn],
            conditions: { StringEquals: { 'iam:PassedToService': 'backup.amazonaws.com' } },
          }),
        ],
        parameters: {
          BackupVaultName: vault.vault.backupVaultName,
          ResourceArn: sfn.JsonPath.stringAt('$.instanceArn'),
          IamRoleArn: vault.backupRole.roleArn,
          // One job per execution, however often this state is retried.
          IdempotencyToken: sfn.JsonPath.executionName,
          StartWindowMinutes: 60,
          Lifecycle: vault.lifecycle,
          RecoveryPointTags: {
            [RECOVERY_POINT_TAGS.consistency]: 'pending',
            [RECOVERY_POINT_TAGS.execution]: sfn.JsonPath.executionName,
            [RECOVERY_POINT_TAGS.window]: sfn.JsonPath.stringAt('$.window'),
            [RECOVERY_POINT_TAGS.instance]: sfn.JsonPath.stringAt('$.instanceId'),
          },
          ...(windowsVss ? { BackupOptions: { WindowsVSS: 'enabled' } } : {}),
        },
        // The whole response: a ResultSelector path missing from a response would be an uncatchable
        // States.Runtime error; record-outcome reads the fields defensively.
        resultPath: '$.backupJob',
        taskTimeout: sfn.Timeout.duration(Duration.seconds(20)),
      }).addRetry({
        errors: [
          'Backup.ThrottlingException',
          'Backup.ServiceUnavailableException',
          'Backup.BackupException',
          'States.Timeout',
        ],
        interval: Duration.seconds(1),
        maxAttempts: 3,
        backoffRate: 2,
        jitterStrategy: sfn.JitterType.FULL,
      });

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
        taskTimeout: sfn.Timeout.duration(Duration.seconds(70)),
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
          sfn.Condition.and(
            sfn.Condition.isPresent('$.failed'),
            sfn.Condition.booleanEquals('$.failed', true),
          ),
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

    // Thaw: SendCommand from the state machine itself, so a thaw is sent even if Lambda is unavailable.
    // The thaw may target any instance of this account and Region, with no tag condition: removing
    // or changing the opt-in tag while an instance is frozen must not deny its thaw (issue 13). The
    // thaw document is idempotent and does nothing on an instance without this execution's freeze.
    // So that no other document rides on this unconditioned instance grant, the thaw document is the
    // only one the state machine's own role may send; the VSS install runs under a role of its own.
    const sendThaw = new tasks.CallAwsService(this, STATE.sendThaw, {
      service: 'ssm',
      action: 'sendCommand',
      iamAction: 'ssm:SendCommand',
      iamResources: [documentArn(documents.thaw.ref)],
      additionalIamStatements: [
        new iam.PolicyStatement({ actions: ['ssm:SendCommand'], resources: [instanceArn] }),
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
      resultPath: '$.thawCommand',
      taskTimeout: sfn.Timeout.duration(Duration.seconds(20)),
    }).addRetry({
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
    const waitThaw = probe(
      STATE.waitThaw,
      {
        action: 'waitForCommand',
        command: sfn.JsonPath.objectAt('$.thawCommand'),
        instanceId: sfn.JsonPath.stringAt('$.instanceId'),
        timeoutSeconds: timings.commandWaitSeconds,
      },
      '$.thaw',
      timings.commandWaitSeconds + 30,
    );
    const checkThaw = new sfn.Choice(this, STATE.checkThaw)
      .when(
        sfn.Condition.and(
          sfn.Condition.isPresent('$.thaw.succeeded'),
          sfn.Condition.booleanEquals('$.thaw.succeeded', true),
        ),
        new sfn.Succeed(this, STATE.thawConfirmed),
      )
      .otherwise(
        new sfn.Fail(this, STATE.thawNotConfirmed, {
          error: 'ThawCommandFailed',
          cause: 'The thaw command did not end in Success.',
        }),
      );
    const thaw: sfn.Parallel = new sfn.Parallel(this, STATE.thaw, {
      comment: 'Send the thaw and confirm it; a failed command fails the branch, so the Retry resends it.',
      // Only `$[0].thaw`, which Check Thaw Result guarantees exists: a ResultSelector path that
      // might be missing would be an uncatchable States.Runtime error.
      resultSelector: { 'result.$': '$[0].thaw' },
      resultPath: '$.thaw',
    })
      .branch(sendThaw.next(waitThaw).next(checkThaw))
      // Everything is retried: the thaw is idempotent and the one step that must not give up early.
      .addRetry({
        errors: [sfn.Errors.ALL],
        interval: Duration.seconds(2),
        maxAttempts: 3,
        backoffRate: 2,
        maxDelay: Duration.seconds(10),
        jitterStrategy: sfn.JitterType.FULL,
      })
      .addCatch(recordOutcome, { errors: [sfn.Errors.ALL], resultPath: '$.thawError' });

    const startUnfrozen = startBackup(STATE.startUnfrozenBackup, false)
      .addCatch(recordOutcome, { errors: [sfn.Errors.ALL], resultPath: '$.backupError' })
      .next(recordOutcome);

    // Not(IsPresent) rather than IsPresent:false: same meaning, and aws-local-stepfunctions 3
    // evaluates IsPresent:false as always false, which would hide this branch from the local tests.
    const crashOnFreezeFailure = sfn.Condition.and(
      sfn.Condition.not(sfn.Condition.isPresent('$.backupJob')),
      sfn.Condition.not(sfn.Condition.isPresent('$.backupError')),
      config.onFreezeFailure === 'skip'
        ? sfn.Condition.and(
            sfn.Condition.isPresent('$.options.onFreezeFailure'),
            sfn.Condition.stringEquals('$.options.onFreezeFailure', 'crash-consistent'),
          )
        : sfn.Condition.not(
            sfn.Condition.and(
              sfn.Condition.isPresent('$.options.onFreezeFailure'),
              sfn.Condition.stringEquals('$.options.onFreezeFailure', 'skip'),
            ),
          ),
    );
    thaw.next(
      new sfn.Choice(this, STATE.routeAfterThaw)
        // Only a failed freeze reaches the thaw without a job or a job error: apply the policy.
        .when(crashOnFreezeFailure, startUnfrozen)
        .otherwise(recordOutcome),
    );

    const freeze = probe(
      STATE.freeze,
      {
        action: 'freeze',
        documentName: documents.freeze.ref,
        instanceId: sfn.JsonPath.stringAt('$.instanceId'),
        executionId: sfn.JsonPath.executionName,
        volumeIds: sfn.JsonPath.listAt('$.volumeIds'),
        volumeDevices: sfn.JsonPath.listAt('$.volumeDevices'),
        notAfter: sfn.JsonPath.stringAt('$.notAfter'),
        watchdogSeconds: config.watchdogSeconds,
        hookTimeoutSeconds: config.hookTimeoutSeconds,
        include: sfn.JsonPath.stringAt('$.options.include'),
        exclude: sfn.JsonPath.stringAt('$.options.exclude'),
        // The whole object: `apps` is there only when the instance has an Apps tag.
        ...(documents.appHooks
          ? { options: sfn.JsonPath.objectAt('$.options'), appHooksDocumentName: documents.appHooks.ref }
          : {}),
        timeoutSeconds: timings.commandWaitSeconds,
      },
      '$.freeze',
      timings.commandWaitSeconds + DELIVERY_TIMEOUT_SECONDS + APP_HOOKS_WAIT_SECONDS + 30,
      // Only a throttled invocation is certain not to have run: anything else could freeze twice.
      ['Lambda.TooManyRequestsException'],
    );
    postFreezeCatch(freeze, '$.freezeError');
    const startFrozen = startBackup(STATE.startBackup, false);
    postFreezeCatch(startFrozen, '$.backupError');
    const waitSnapshots = probe(
      STATE.waitSnapshots,
      {
        action: 'waitForSnapshots',
        volumeIds: sfn.JsonPath.listAt('$.volumeIds'),
        freeze: sfn.JsonPath.objectAt('$.freeze'),
        backupJob: sfn.JsonPath.objectAt('$.backupJob'),
        freezeBudgetSeconds: config.freezeBudgetSeconds,
        thawMarginSeconds: THAW_MARGIN_SECONDS,
      },
      '$.snapshots',
      timings.snapshotWaitSeconds + 15,
    );
    postFreezeCatch(waitSnapshots, '$.snapshotsError');
    freeze.next(
      new sfn.Choice(this, STATE.checkFreeze)
        .when(
          sfn.Condition.and(
            sfn.Condition.isPresent('$.freeze.succeeded'),
            sfn.Condition.booleanEquals('$.freeze.succeeded', true),
          ),
          startFrozen.next(waitSnapshots).next(thaw),
        )
        .otherwise(thaw),
    );

    const startWindows = startBackup(STATE.startWindowsBackup, true)
      .addCatch(recordOutcome, { errors: [sfn.Errors.ALL], resultPath: '$.backupError' })
      .next(recordOutcome);
    let windowsPath: sfn.IChainable = startWindows;
    if (config.installVssComponents) {
      // Under a role of its own (Step Functions task credentials): on the state machine's role, the
      // thaw's any-instance grant would let this document reach instances that are not opted in.
      this.installVssRole = new iam.Role(this, 'InstallVssRole', {
        assumedBy: new iam.ArnPrincipal(Lazy.string({ produce: () => this.stateMachine.role.roleArn })),
        description: 'Sends AWS-ConfigureAWSPackage (AwsVssComponents) to opted-in instances',
      });
      for (const s of sendToOptedIn([
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
        taskTimeout: sfn.Timeout.duration(Duration.seconds(20)),
      })
        .addRetry({
          errors: ['Ssm.ThrottlingException', 'Ssm.InternalServerErrorException', 'States.Timeout'],
          interval: Duration.seconds(1),
          maxAttempts: 3,
          backoffRate: 2,
          jitterStrategy: sfn.JitterType.FULL,
        })
        .addCatch(startWindows, { errors: [sfn.Errors.ALL], resultPath: '$.vssInstallError' });
      const waitVss = probe(
        STATE.waitVss,
        {
          action: 'waitForCommand',
          command: sfn.JsonPath.objectAt('$.vssInstallCommand'),
          instanceId: sfn.JsonPath.stringAt('$.instanceId'),
          timeoutSeconds: timings.commandWaitSeconds,
        },
        '$.vssInstall',
        timings.commandWaitSeconds + 30,
      ).addCatch(startWindows, { errors: [sfn.Errors.ALL], resultPath: '$.vssInstallError' });
      windowsPath = installVss.next(waitVss).next(startWindows);
    }

    const choosePath = new sfn.Choice(this, STATE.choosePath)
      .when(
        sfn.Condition.and(
          sfn.Condition.isPresent('$.activeJobs.active'),
          sfn.Condition.booleanEquals('$.activeJobs.active', true),
        ),
        recordOutcome,
      )
      // A stopped instance is consistent by itself: no freeze, and no VSS on Windows either.
      .when(sfn.Condition.stringEquals('$.instanceState', 'stopped'), startUnfrozen)
      .when(sfn.Condition.stringEquals('$.platform', 'windows'), windowsPath)
      // volumeDevices is optional (input written before it existed lacks it), and reading a missing
      // path in the freeze's parameters would be an uncatchable States.Runtime: default it to none.
      .when(
        sfn.Condition.not(sfn.Condition.isPresent('$.volumeDevices')),
        new sfn.Pass(this, STATE.defaultVolumeDevices, {
          result: sfn.Result.fromArray([]),
          resultPath: '$.volumeDevices',
        }).next(freeze),
      )
      .otherwise(freeze);
    const checkActiveJobs = probe(
      STATE.checkActiveJobs,
      { action: 'activeJobs', instanceArn: sfn.JsonPath.stringAt('$.instanceArn') },
      '$.activeJobs',
      30,
    )
      // If the check itself fails, back up anyway (record-outcome adds a warning): a skipped window
      // is worse than a job AWS Backup refuses.
      .addCatch(choosePath, { errors: [sfn.Errors.ALL], resultPath: '$.activeJobsError' });
    const waitForStart = new sfn.Wait(this, STATE.waitForStart, {
      time: sfn.WaitTime.timestampPath('$.startAt'),
    });
    waitForStart.next(checkActiveJobs).next(choosePath);
    // Every input field a later state reads must exist and have its type before any state reads
    // it: a missing one would be an uncatchable States.Runtime error, perhaps while frozen.
    const definition = new sfn.Choice(this, STATE.checkInput)
      .when(validInput(), waitForStart)
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

    // cdk-nag names a finding by the rendered ARN: an environment-agnostic stack renders its
    // region and account as pseudo-parameters, a concrete one as values.
    const region = Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
    const account = Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
    const instanceWildcard = `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${region}:${account}:instance/*]`;
    const optInReason = `ssm:SendCommand may target any instance only under the condition ssm:resourceTag/${config.optInTagKey}=${config.optInTagValue}: instances are discovered at run time, so the opt-in tag is what scopes the grant.`;
    Validations.of(this.probe.role!).acknowledge({ id: instanceWildcard, reason: optInReason });
    if (this.installVssRole)
      Validations.of(this.installVssRole).acknowledge({ id: instanceWildcard, reason: optInReason });
    Validations.of(this.stateMachine.role).acknowledge({
      id: instanceWildcard,
      reason:
        "ssm:SendCommand on any instance of this account and Region, with the thaw document as the only document this role may send: the thaw must not be denied when an instance's opt-in tag is removed or changed while it is frozen, and the thaw document is idempotent and does nothing on an instance without this execution's freeze.",
    });
    Validations.of(this.probe.role!).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ssm:GetCommandInvocation, ssm:ListCommands, backup:ListBackupJobs, backup:DescribeBackupJob and ec2:DescribeSnapshots support no resource-level permissions (service authorization reference: no resource type for these actions).',
    });
    Validations.of(this.recorder.role!).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${region}::image/*]`,
      reason:
        'The AMI of a recovery point is created by AWS Backup at run time; ec2:CreateTags is limited to AMIs already carrying the ConsistentBackup:Consistency tag and to the three label tag keys.',
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
    for (const fn of [this.probe, this.recorder]) {
      Validations.of(this.stateMachine.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${stack.getLogicalId(fn.node.defaultChild as lambda.CfnFunction)}.Arn>:*]`,
        reason:
          'lambda:InvokeFunction on the function and its versions (the :* suffix), as Step Functions requires for invoking a function by ARN.',
      });
    }
  }
}

/**
 * The execution timeout: the longest path's worst case (every task timing out on every attempt,
 * every retry waiting its longest) plus the stagger, rounded up generously. test/workflow checks
 * it against the synthesized definition.
 */
export function executionTimeout(config: BackupConfig, maxStagger: Duration): Duration {
  const t = workflowTimings(config);
  const worst =
    4 * 30 +
    7 + // active jobs check
    4 * (t.commandWaitSeconds + DELIVERY_TIMEOUT_SECONDS + 30) +
    7 + // freeze
    4 * 20 +
    7 + // start backup
    4 * (t.snapshotWaitSeconds + 15) +
    7 + // snapshot wait
    4 * (4 * 20 + 7 + 4 * (t.commandWaitSeconds + 30) + 7) +
    30 + // thaw, retried
    4 * 20 +
    7 + // start backup without freeze
    4 * 70 +
    7 +
    4 * 70 +
    14 + // record outcome, both retriers
    4 * 20 +
    7; // last-resort publish
  return Duration.seconds(maxStagger.toSeconds() + Math.ceil((worst * 1.2) / 60) * 60);
}
