import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { BackupConfig } from './config';
import { ConsistentBackup } from './consistent-backup';
import { type DeployedSettings, OUTPUT_KEYS, OUTPUTS_VERSION } from './output-keys';

export interface ConsistentBackupStackProps extends StackProps {
  readonly config: BackupConfig;
}

/** A thin stack around the ConsistentBackup construct, with the outputs the command-line tool reads. */
export class ConsistentBackupStack extends Stack {
  readonly backup: ConsistentBackup;

  constructor(scope: Construct, id: string, props: ConsistentBackupStackProps) {
    super(scope, id, props);
    const { config } = props;
    this.backup = new ConsistentBackup(this, 'ConsistentBackup', { config });
    const b = this.backup;
    const settings: DeployedSettings = {
      optInTagKey: config.optInTagKey,
      optInTagValue: config.optInTagValue,
      onFreezeFailure: config.onFreezeFailure,
      maxFrozenPerGroup: config.maxFrozenPerGroup,
      watchdogSeconds: config.watchdogSeconds,
      hookTimeoutSeconds: config.hookTimeoutSeconds,
      freezeBudgetSeconds: config.freezeBudgetSeconds,
      scheduleExpression: config.scheduleExpression,
      scheduleTimeZone: config.scheduleTimeZone,
    };
    const outputs: Record<keyof typeof OUTPUT_KEYS, [string, string]> = {
      outputsVersion: [OUTPUTS_VERSION, 'Version of these outputs, read by npx ec2-consistent-backup'],
      stateMachineArn: [b.workflow.stateMachine.stateMachineArn, 'The per-instance workflow'],
      discoveryFunctionName: [
        b.discovery.function.functionName,
        'Discovery, which `run` invokes for on-demand runs',
      ],
      notificationTopicArn: [b.notifications.topic.topicArn, 'Every notification and alarm'],
      stateTableName: [b.notifications.table.tableName, 'The notifier state: open problems, runs'],
      vaultName: [b.vault.vault.backupVaultName, 'Where the recovery points are'],
      preflightDocumentName: [b.documents.names.preflight, 'Checks an instance without freezing'],
      thawDocumentName: [b.documents.names.thaw, 'Thaws an instance by hand (docs/operating.md)'],
      dashboardName: [b.monitoring.dashboard.dashboardName, 'CloudWatch dashboard'],
      deployedSettings: [JSON.stringify(settings), 'Settings plan and run read (nothing secret)'],
    };
    for (const [key, [value, description]] of Object.entries(outputs)) {
      new CfnOutput(this, OUTPUT_KEYS[key as keyof typeof OUTPUT_KEYS], { value, description });
    }
  }
}
