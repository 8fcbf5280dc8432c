#!/usr/bin/env -S npx tsx
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { type BackupConfig, ConfigError, readConfig } from '../lib/config';
import { addCopyDestinationStacks } from '../lib/copy-destination';
import { ConsistentBackupStack } from '../lib/stack';

const app = new App();

/** Runs `build`; a bad value (found while reading the config or checking it against the stack) exits with its message. */
function orExit<T>(build: () => T): T {
  try {
    return build();
  } catch (err) {
    if (err instanceof ConfigError) {
      // A bad value stops synth with the key, the value and what is allowed, and no stack trace.
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
}

const config: BackupConfig = orExit(() => readConfig(app.node));
orExit(() => {
  const main = new ConsistentBackupStack(app, 'Ec2ConsistentBackup', {
    config,
    description: 'ec2-consistent-backup: application-consistent AWS Backup for EC2 instances',
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  });
  // copyRegions: a small stack per Region holds the destination vault there.
  addCopyDestinationStacks(app, main, config);
});
// Every synth checks the AwsSolutions rules; an unacknowledged finding fails it.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
