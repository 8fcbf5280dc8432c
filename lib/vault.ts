import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import type { BackupConfig } from './config';

export interface VaultProps {
  readonly config: BackupConfig;
}

/**
 * The Vault Lock of a vault the app creates, in CDK's shape; undefined when `vaultLockMode` is none.
 * Governance mode has no lock date, so users with backup:DeleteBackupVaultLockConfiguration can still
 * remove it. Compliance mode sets `changeableFor`: after that many days the lock can never be changed
 * or deleted by anyone (AWS::Backup::BackupVault LockConfiguration, ChangeableForDays).
 */
export function lockConfiguration(
  config: Pick<
    BackupConfig,
    'vaultLockMode' | 'vaultLockMinRetentionDays' | 'vaultLockMaxRetentionDays' | 'vaultLockChangeableForDays'
  >,
): backup.LockConfiguration | undefined {
  if (config.vaultLockMode === 'none' || config.vaultLockMinRetentionDays === undefined) return undefined;
  return {
    minRetention: Duration.days(config.vaultLockMinRetentionDays),
    ...(config.vaultLockMaxRetentionDays !== undefined
      ? { maxRetention: Duration.days(config.vaultLockMaxRetentionDays) }
      : {}),
    ...(config.vaultLockMode === 'compliance'
      ? { changeableFor: Duration.days(config.vaultLockChangeableForDays) }
      : {}),
  };
}

/**
 * Where recovery points go and the role AWS Backup uses to make them: a vault created by the app,
 * or an existing vault by name (config `vaultName`).
 *
 * The created vault has no customer-managed KMS key. A vault's key encrypts only the backups of
 * resource types under full AWS Backup management; EC2 is not one of them, and its backups (AMIs
 * and their EBS snapshots) keep the encryption of the source volumes (AWS Backup developer guide,
 * "Encryption for backups in AWS Backup"). A key of our own would encrypt nothing this app stores,
 * so the vault takes AWS Backup's default key, and encryption at rest is the volumes' (EBS
 * encryption by default, or the volumes' own keys).
 */
export class Vault extends Construct {
  readonly vault: backup.IBackupVault;
  /** The role passed to StartBackupJob. */
  readonly backupRole: iam.Role;
  /**
   * Lifecycle for StartBackupJob, in the API's shape: retention only, because AWS Backup moves no
   * EC2 recovery point to cold storage (lib/config.ts refuses coldStorageAfterDays).
   */
  readonly lifecycle: { DeleteAfterDays: number };

  constructor(scope: Construct, id: string, props: VaultProps) {
    super(scope, id);
    const { config } = props;
    if (config.vaultName) {
      this.vault = backup.BackupVault.fromBackupVaultName(this, 'Existing', config.vaultName);
    } else {
      // A new construct id, so a stack deployed with the former customer-managed key gets a new
      // vault instead of a replacement that would fail on the fixed vault name: the old vault and
      // key stay (retained) with their recovery points until those expire (docs/operating.md).
      this.vault = new backup.BackupVault(this, 'RecoveryPoints', {
        // Recovery points outlive a stack deletion.
        removalPolicy: RemovalPolicy.RETAIN,
        lockConfiguration: lockConfiguration(config),
      });
    }
    this.backupRole = new iam.Role(this, 'BackupRole', {
      assumedBy: new iam.ServicePrincipal('backup.amazonaws.com'),
      description: 'Role AWS Backup assumes to back up the opted-in EC2 instances',
      // Backup only: restores are an operator's act and use their own role.
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSBackupServiceRolePolicyForBackup'),
      ],
    });
    Validations.of(this.backupRole).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup]',
      reason:
        'The AWS-maintained service-role policy for AWS Backup: it covers the EC2, EBS, KMS-grant and Windows VSS calls AWS Backup makes for an instance backup and AWS updates it as those change; a hand-written copy would silently break backups.',
    });
    this.lifecycle = { DeleteAfterDays: config.retentionDays };
  }
}
