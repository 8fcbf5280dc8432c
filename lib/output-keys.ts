/**
 * The stack's CloudFormation outputs: the contract between the deployed stack and the command-line
 * tool (cli/), which finds everything it needs here instead of guessing resource names. Free of
 * CDK imports, so the tool loads it without the CDK.
 */

export const OUTPUT_KEYS = {
  /** Version of this set of outputs; the tool refuses a stack whose version it does not know. */
  outputsVersion: 'ConsistentBackupOutputsVersion',
  stateMachineArn: 'WorkflowStateMachineArn',
  discoveryFunctionName: 'DiscoveryFunctionName',
  notificationTopicArn: 'NotificationTopicArn',
  stateTableName: 'NotificationStateTableName',
  vaultName: 'BackupVaultName',
  preflightDocumentName: 'PreflightDocumentName',
  thawDocumentName: 'ThawDocumentName',
  dashboardName: 'DashboardName',
  /** JSON of the settings `plan` needs (DeployedSettings); nothing secret. */
  deployedSettings: 'DeployedSettings',
} as const;

export const OUTPUTS_VERSION = '1';

/** What `plan` and `run` need to know about the deployment's config. */
export interface DeployedSettings {
  readonly optInTagKey: string;
  readonly optInTagValue: string;
  readonly onFreezeFailure: string;
  readonly maxFrozenPerGroup: number;
  readonly watchdogSeconds: number;
  readonly hookTimeoutSeconds: number;
  readonly freezeBudgetSeconds: number;
  readonly scheduleExpression: string;
  readonly scheduleTimeZone: string;
}
