import { Duration, Stack, Token, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import type { BackupConfig } from '../config';
import { BackupFunction } from '../lambda-function';
import type { Vault } from '../vault';
import { UNFROZEN_START_TASK_SECONDS, workflowTimings } from './timings';

/** The documents the functions send. */
export interface FunctionDocuments {
  readonly freeze: ssm.CfnDocument;
  readonly appHooks?: ssm.CfnDocument;
}

/** The Lambda functions of the per-instance workflow, each with only the permissions its step needs. */
export interface WorkflowFunctions {
  /** Freeze Filesystems: the active-job check, the hooks install, the freeze and its result. */
  readonly freezer: BackupFunction;
  /** Start Backup Job (frozen, inside the budget, then the snapshot wait) and the unfrozen starts. */
  readonly starter: BackupFunction;
  /** Wait For Thaw Command (and the VSS components install): one command's end. */
  readonly waiter: BackupFunction;
}

/** The ARN pattern of every instance of this account and Region. */
export function instanceArnPattern(scope: Construct): string {
  return Stack.of(scope).formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' });
}

/** The ARN of a document of this account and Region. */
export function documentArn(scope: Construct, name: string): string {
  return Stack.of(scope).formatArn({ service: 'ssm', resource: 'document', resourceName: name });
}

/**
 * SendCommand authorizes the document and every target separately: the document statement has no
 * condition, the instance statement only matches instances carrying the opt-in tag.
 */
export function sendToOptedIn(scope: Construct, config: BackupConfig, documentArns: string[]) {
  return [
    new iam.PolicyStatement({ actions: ['ssm:SendCommand'], resources: documentArns }),
    new iam.PolicyStatement({
      actions: ['ssm:SendCommand'],
      resources: [instanceArnPattern(scope)],
      conditions: { StringEquals: { [`ssm:resourceTag/${config.optInTagKey}`]: config.optInTagValue } },
    }),
  ];
}

/** The cdk-nag id of the instance wildcard, as cdk-nag renders it for this stack. */
export function instanceWildcardFinding(scope: Construct): string {
  const stack = Stack.of(scope);
  // cdk-nag names a finding by the rendered ARN: an environment-agnostic stack renders its region
  // and account as pseudo-parameters, a concrete one as values.
  const region = Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
  const account = Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
  return `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${region}:${account}:instance/*]`;
}

export function optInReason(config: BackupConfig): string {
  return `ssm:SendCommand may target any instance only under the condition ssm:resourceTag/${config.optInTagKey}=${config.optInTagValue}: instances are discovered at run time, so the opt-in tag is what scopes the grant.`;
}

function noResourceLevel(fn: BackupFunction, actions: string[]): void {
  fn.addToRolePolicy(new iam.PolicyStatement({ actions, resources: ['*'] }));
  Validations.of(fn.role as iam.IRole).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason: `${actions.join(', ')} support no resource-level permissions (service authorization reference: no resource type for these actions).`,
  });
}

export function createWorkflowFunctions(
  scope: Construct,
  props: {
    readonly config: BackupConfig;
    readonly vault: Pick<Vault, 'vault' | 'backupRole'>;
    readonly documents: FunctionDocuments;
  },
): WorkflowFunctions {
  const { config, vault, documents } = props;
  const timings = workflowTimings(config);

  const freezer = new BackupFunction(scope, 'FreezeFilesystems', {
    handlerDir: 'freeze-filesystems',
    description:
      'Checks for an active backup job, installs the app hooks, sends the freeze and waits for its result',
    // A little longer than its task: the task's timeout, not the function's, ends a hung freeze step.
    timeout: Duration.seconds(Math.min(timings.freezeTaskSeconds + 5, 900)),
  });
  const freezeDocuments = [documents.freeze, ...(documents.appHooks ? [documents.appHooks] : [])];
  for (const s of sendToOptedIn(
    scope,
    config,
    freezeDocuments.map((d) => documentArn(scope, d.ref)),
  ))
    freezer.addToRolePolicy(s);
  Validations.of(freezer.role as iam.IRole).acknowledge({
    id: instanceWildcardFinding(scope),
    reason: optInReason(config),
  });
  // ssm:ListCommands: the freeze's look-up after an ambiguous SendCommand failure (findFreezeCommand).
  noResourceLevel(freezer, ['ssm:GetCommandInvocation', 'ssm:ListCommands', 'backup:ListBackupJobs']);

  const starter = new BackupFunction(scope, 'StartBackup', {
    handlerDir: 'start-backup',
    description:
      'Starts the backup job inside the freeze budget and waits for the snapshots to start; starts unfrozen jobs',
    timeout: Duration.seconds(Math.max(timings.startBackupTaskSeconds, UNFROZEN_START_TASK_SECONDS) + 5),
  });
  starter.addToRolePolicy(
    new iam.PolicyStatement({ actions: ['backup:StartBackupJob'], resources: [vault.vault.backupVaultArn] }),
  );
  starter.addToRolePolicy(
    new iam.PolicyStatement({
      actions: ['iam:PassRole'],
      resources: [vault.backupRole.roleArn],
      conditions: { StringEquals: { 'iam:PassedToService': 'backup.amazonaws.com' } },
    }),
  );
  noResourceLevel(starter, ['backup:ListBackupJobs', 'backup:DescribeBackupJob', 'ec2:DescribeSnapshots']);

  const waiter = new BackupFunction(scope, 'WaitForCommand', {
    handlerDir: 'wait-for-command',
    description: 'Waits for a thaw (or VSS install) command to end and confirms the thaw from its output',
    timeout: Duration.seconds(Math.min(timings.commandTaskSeconds + 5, 900)),
  });
  noResourceLevel(waiter, ['ssm:GetCommandInvocation']);

  return { freezer, starter, waiter };
}
