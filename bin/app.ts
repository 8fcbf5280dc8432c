#!/usr/bin/env -S npx tsx
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError, readConfig } from '../lib/config';
import { ConsistentBackupStack } from '../lib/stack';

const app = new App();
let config;
try {
  config = readConfig(app.node);
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(1);
  }
  throw err;
}
new ConsistentBackupStack(app, 'Ec2ConsistentBackup', {
  config,
  description: 'ec2-consistent-backup: application-consistent AWS Backup for EC2 instances',
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
