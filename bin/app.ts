#!/usr/bin/env -S npx tsx
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { type BackupConfig, ConfigError, readConfig } from '../lib/config';
import { ConsistentBackupStack } from '../lib/stack';

const app = new App();

function configOrExit(): BackupConfig {
  try {
    return readConfig(app.node);
  } catch (err) {
    if (err instanceof ConfigError) {
      // A bad value stops synth with the key, the value and what is allowed, and no stack trace.
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
}

new ConsistentBackupStack(app, 'Ec2ConsistentBackup', {
  config: configOrExit(),
  description: 'ec2-consistent-backup: application-consistent AWS Backup for EC2 instances',
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
// Every synth checks the AwsSolutions rules; an unacknowledged finding fails it.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
