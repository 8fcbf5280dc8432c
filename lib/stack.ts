import { Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { BackupConfig } from './config';
import { ConsistentBackup } from './consistent-backup';

export interface ConsistentBackupStackProps extends StackProps {
  readonly config: BackupConfig;
}

/** A thin stack around the ConsistentBackup construct. */
export class ConsistentBackupStack extends Stack {
  readonly backup: ConsistentBackup;

  constructor(scope: Construct, id: string, props: ConsistentBackupStackProps) {
    super(scope, id, props);
    this.backup = new ConsistentBackup(this, 'ConsistentBackup', { config: props.config });
  }
}
