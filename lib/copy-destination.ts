import { type App, Duration, RemovalPolicy, Stack, type StackProps, Token } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as kms from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';
import type { BackupConfig } from './config';
import { copyKeyAlias, copyVaultName } from './copies';
import { lockConfiguration } from './vault';

export interface CopyDestinationStackProps extends StackProps {
  readonly config: BackupConfig;
  /** The main stack's name: the vault and key alias are named after it (lib/copies.ts). */
  readonly mainStackName: string;
}

/**
 * The destination vault of `copyRegions` in one other Region of this account: a KMS key of its own
 * (AWS Backup re-encrypts a cross-Region copy with the destination vault's key) and a vault with
 * the same Vault Lock as the source vault. A stack of its own because a CloudFormation stack lives
 * in one Region; `cdk deploy --all` deploys it before the main stack, which depends on it.
 * Copies into another account need a vault there, which this app does not create: see
 * docs/protecting-backups.md for its access policy and key policy.
 */
export class CopyDestinationStack extends Stack {
  readonly vault: backup.BackupVault;
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: CopyDestinationStackProps) {
    super(scope, id, props);
    this.key = new kms.Key(this, 'Key', {
      description: `Encrypts the ec2-consistent-backup copies of ${props.mainStackName}`,
      alias: copyKeyAlias(props.mainStackName),
      enableKeyRotation: true,
      // The copies outlive a stack deletion, and so must the key that decrypts them.
      removalPolicy: RemovalPolicy.RETAIN,
      pendingWindow: Duration.days(30),
    });
    this.vault = new backup.BackupVault(this, 'Vault', {
      backupVaultName: copyVaultName(props.mainStackName),
      encryptionKey: this.key,
      removalPolicy: RemovalPolicy.RETAIN,
      lockConfiguration: lockConfiguration(props.config),
    });
  }
}

/**
 * One CopyDestinationStack per `copyRegions` entry, each deployed before `main`. Called by
 * bin/app.ts and by the tests, so both synthesize the same app.
 */
export function addCopyDestinationStacks(
  app: App,
  main: Stack,
  config: BackupConfig,
): CopyDestinationStack[] {
  return config.copyRegions.map((r) => {
    const stack = new CopyDestinationStack(app, `${main.node.id}-Copy-${r.region}`, {
      config,
      mainStackName: main.stackName,
      env: { account: Token.isUnresolved(main.account) ? undefined : main.account, region: r.region },
      description: `ec2-consistent-backup: destination vault in ${r.region} for copies of ${main.stackName}`,
    });
    main.addStackDependency(stack, 'The copy-jobs function copies into this vault');
    return stack;
  });
}
