import { ArnFormat, Duration, Stack, Token, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { RegionInfo } from 'aws-cdk-lib/region-info';
import { Construct } from 'constructs';
import { COPY_JOB_DETAIL_TYPE, COPY_SWEEP, FINAL_COPY_STATES } from '../lambda/copy-jobs/copies';
import { COPY_ENV, type CopyTarget } from '../lambda/copy-jobs/settings';
import { BACKUP_JOB_DETAIL_TYPE } from '../lambda/shared/notification';
import { TAG_PREFIX } from '../lambda/shared/tags';
import { type BackupConfig, ConfigError } from './config';
import { BackupFunction } from './lambda-function';
import { type Notifications, nagText } from './notifications';
import type { Vault } from './vault';

/** Name of the destination vault the app creates in each of `copyRegions` (lib/copy-destination.ts). */
export function copyVaultName(mainStackName: string): string {
  return `${mainStackName}-copy`.slice(0, 50);
}

/** Alias of the KMS key of that vault: the backup role's KMS statement is scoped to it. */
export function copyKeyAlias(mainStackName: string): string {
  return `alias/${mainStackName}-copy`;
}

/** A destination as the function and the IAM statements need it. */
export interface ResolvedDestination extends CopyTarget {
  readonly region: string;
  /** Undefined: this account (a token in an environment-agnostic synth). */
  readonly accountId?: string;
  /** Created by the app in one of copyRegions. */
  readonly appCreated: boolean;
}

/** How long a copy waits after its backup job completed for the final label on the source AMI. */
export const LABEL_WAIT_MINUTES = 30;
/** One redelivery a minute (the queue's visibility timeout); well above LABEL_WAIT_MINUTES. */
export const COPY_QUEUE_MAX_RECEIVES = 50;

export interface CopiesProps {
  /** The validated configuration: `copyDestinations`, `copyRegions`. */
  readonly config: BackupConfig;
  /** The source vault and the backup role AWS Backup uses for the copies too. */
  readonly vault: Vault;
  readonly notifications: Notifications;
}

/**
 * Copies of every recovery point this app makes to other Regions and accounts: the two AWS Backup
 * events that drive them (a backup job of ours completed, a copy job of ours ended) go to one queue
 * read by the copy-jobs function (lambda/copy-jobs). Created only when there is a destination.
 */
export class Copies extends Construct {
  readonly function: BackupFunction;
  readonly queue: sqs.Queue;
  readonly destinations: readonly ResolvedDestination[];

  constructor(scope: Construct, id: string, props: CopiesProps) {
    super(scope, id);
    const { config, vault, notifications } = props;
    const stack = Stack.of(this);
    this.destinations = resolveDestinations(stack, config);
    if (this.destinations.length === 0) {
      throw new Error('Copies needs at least one destination (copyDestinations or copyRegions).');
    }

    const deadLetters = new sqs.Queue(this, 'DeadLetters', {
      retentionPeriod: Duration.days(14),
      enforceSSL: true,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
    });
    // The visibility timeout is the pace of retries (lambda/shared/deferred-queue.ts): a label not
    // final yet is looked at again a minute later.
    this.queue = new sqs.Queue(this, 'Events', {
      visibilityTimeout: Duration.seconds(60),
      retentionPeriod: Duration.days(4),
      enforceSSL: true,
      // SQS-managed keys: EventBridge can send to the queue without a KMS key policy for it.
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      deadLetterQueue: { queue: deadLetters, maxReceiveCount: COPY_QUEUE_MAX_RECEIVES },
    });

    new events.Rule(this, 'BackupJobCompleted', {
      description:
        'Backup jobs in the ec2-consistent-backup vault that completed: copy their recovery points',
      eventPattern: {
        source: ['aws.backup'],
        detailType: [BACKUP_JOB_DETAIL_TYPE],
        detail: { backupVaultName: [vault.vault.backupVaultName], state: ['COMPLETED'] },
      },
      targets: [new eventsTargets.SqsQueue(this.queue, { retryAttempts: 8 })],
    });
    new events.Rule(this, 'CopyJobEnded', {
      description: 'Copy jobs out of the ec2-consistent-backup vault that ended: label the copy or report it',
      eventPattern: {
        source: ['aws.backup'],
        detailType: [COPY_JOB_DETAIL_TYPE],
        detail: { sourceBackupVaultArn: [vault.vault.backupVaultArn], state: [...FINAL_COPY_STATES] },
      },
      targets: [new eventsTargets.SqsQueue(this.queue, { retryAttempts: 8 })],
    });

    // AWS Backup delivers its events best-effort: once an hour the function catches up on the last day.
    new events.Rule(this, 'Sweep', {
      description:
        'Hourly catch-up of ec2-consistent-backup copies whose AWS Backup events were not delivered',
      schedule: events.Schedule.rate(Duration.hours(1)),
      targets: [
        new eventsTargets.SqsQueue(this.queue, { message: events.RuleTargetInput.fromObject(COPY_SWEEP) }),
      ],
    });

    this.function = new BackupFunction(this, 'Function', {
      handlerDir: 'copy-jobs',
      description:
        'Copies ec2-consistent-backup recovery points to other Regions and accounts, labels and reports the copies',
      timeout: Duration.seconds(50),
      environment: {
        [COPY_ENV.sourceVaultName]: vault.vault.backupVaultName,
        [COPY_ENV.backupRoleArn]: vault.backupRole.roleArn,
        [COPY_ENV.destinations]: stack.toJsonString(
          this.destinations.map((d) => ({ vaultArn: d.vaultArn, retentionDays: d.retentionDays })),
        ),
        [COPY_ENV.labelWaitMinutes]: String(LABEL_WAIT_MINUTES),
        [COPY_ENV.maxReceives]: String(COPY_QUEUE_MAX_RECEIVES),
      },
    });
    const fn = this.function;
    notifications.grantNotify(fn, ['track-copies']);
    fn.addEventSource(new SqsEventSource(this.queue, { batchSize: 5, reportBatchItemFailures: true }));
    this.grant(fn, stack, vault);
  }

  private grant(fn: BackupFunction, stack: Stack, vault: Vault): void {
    const role = fn.role!;
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        // No resource-level permissions (Service Authorization Reference, AWS Backup and EC2).
        actions: [
          'backup:DescribeBackupJob',
          'backup:DescribeCopyJob',
          'backup:ListBackupJobs',
          'backup:ListCopyJobs',
          'ec2:DescribeImages',
        ],
        resources: ['*'],
      }),
    );
    // An EC2 recovery point's ARN is its AMI's; other types use the backup recovery-point ARN.
    const sourceImages = stack.formatArn({
      service: 'ec2',
      account: '',
      resource: 'image',
      resourceName: '*',
    });
    const recoveryPoints = stack.formatArn({
      service: 'backup',
      resource: 'recovery-point',
      resourceName: '*',
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['backup:StartCopyJob'],
        resources: [sourceImages, recoveryPoints],
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['iam:PassRole'],
        resources: [vault.backupRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'backup.amazonaws.com' } },
      }),
    );
    // EC2 image ARNs carry no account, and another account's images cannot be tagged from here
    // anyway: every destination Region is allowed, so an environment-agnostic synth loses nothing.
    const tagRegions = [...new Set(this.destinations.map((d) => d.region))];
    const copyImages = tagRegions.map((region) => `arn:${stack.partition}:ec2:${region}::image/*`);
    if (copyImages.length > 0) {
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['ec2:CreateTags'],
          resources: copyImages,
          conditions: { 'ForAllValues:StringLike': { 'aws:TagKeys': [`${TAG_PREFIX}:*`] } },
        }),
      );
    }
    const reasons: [string, string][] = [
      [
        sourceImages,
        'Recovery point AMIs get their ids only when AWS Backup creates them; the statement allows only StartCopyJob from them.',
      ],
      [
        recoveryPoints,
        'Recovery point ids exist only once AWS Backup creates them; the statement allows only StartCopyJob from them.',
      ],
      ...copyImages.map((arn): [string, string] => [
        arn,
        'Copied AMIs get their ids only when the copy completes; the statement may only write ConsistentBackup:* tags (aws:TagKeys condition).',
      ]),
    ];
    for (const [arn, reason] of reasons) {
      Validations.of(role).acknowledge({ id: `AwsSolutions-IAM5[Resource::${nagText(stack, arn)}]`, reason });
    }

    // The backup role makes the copies (StartCopyJob passes it).
    vault.backupRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['backup:CopyIntoBackupVault'],
        resources: this.destinations.map((d) => d.vaultArn),
      }),
    );
    const appRegions = [...new Set(this.destinations.filter((d) => d.appCreated).map((d) => d.region))];
    if (appRegions.length > 0) {
      const keys = appRegions.map((region) => `arn:${stack.partition}:kms:${region}:${stack.account}:key/*`);
      // A copy to another Region is re-encrypted with the destination vault's key; this reaches only
      // the keys of the vaults the app created there (by their alias), nothing else in the account.
      vault.backupRole.addToPolicy(
        new iam.PolicyStatement({
          actions: [
            'kms:CreateGrant',
            'kms:DescribeKey',
            'kms:Decrypt',
            'kms:Encrypt',
            'kms:GenerateDataKey*',
            'kms:ReEncrypt*',
          ],
          resources: keys,
          conditions: {
            'ForAnyValue:StringEquals': { 'kms:ResourceAliases': [copyKeyAlias(stack.stackName)] },
          },
        }),
      );
      for (const arn of keys) {
        Validations.of(vault.backupRole).acknowledge({
          id: `AwsSolutions-IAM5[Resource::${nagText(stack, arn)}]`,
          reason:
            "The destination key lives in another Region's stack, so its id is not known here; the kms:ResourceAliases condition limits the statement to the key aliased for the app's copy vault.",
        });
        Validations.of(vault.backupRole).acknowledge({
          id: 'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
          reason:
            'AWS Backup re-encrypts copies with GenerateDataKey and GenerateDataKeyWithoutPlaintext; limited to the copy vault key by alias.',
        });
        Validations.of(vault.backupRole).acknowledge({
          id: 'AwsSolutions-IAM5[Action::kms:ReEncrypt*]',
          reason:
            'ReEncryptFrom and ReEncryptTo are both used when a copy changes keys; limited to the copy vault key by alias.',
        });
      }
    }
  }
}

/**
 * The destinations, validated against the stack's own account and Region where they are known:
 * a copy in the same account and Region protects against nothing this feature is for, and AWS
 * Backup copies only within a partition.
 */
export function resolveDestinations(stack: Stack, config: BackupConfig): ResolvedDestination[] {
  const known = (v: string) => !Token.isUnresolved(v);
  const out: ResolvedDestination[] = [];
  for (const d of config.copyDestinations) {
    const partition = known(stack.region) ? RegionInfo.get(stack.region).partition : undefined;
    if (partition && d.partition !== partition) {
      throw new ConfigError(
        'copyDestinations',
        d.vaultArn,
        `a vault in this stack's partition ${partition} (AWS Backup copies within a partition)`,
      );
    }
    const sameAccount = known(stack.account) && d.accountId === stack.account;
    if (sameAccount && known(stack.region) && d.region === stack.region) {
      throw new ConfigError(
        'copyDestinations',
        d.vaultArn,
        `a vault in another Region or another account than the stack's own (${stack.account}, ${stack.region})`,
      );
    }
    out.push({
      vaultArn: d.vaultArn,
      retentionDays: d.retentionDays,
      region: d.region,
      accountId: sameAccount ? undefined : d.accountId,
      appCreated: false,
    });
  }
  for (const r of config.copyRegions) {
    if (known(stack.region) && r.region === stack.region) {
      throw new ConfigError('copyRegions', r.region, `a Region other than the stack's own (${stack.region})`);
    }
    out.push({
      vaultArn: `arn:${stack.partition}:backup:${r.region}:${stack.account}:backup-vault:${copyVaultName(stack.stackName)}`,
      retentionDays: r.retentionDays,
      region: r.region,
      accountId: undefined,
      appCreated: true,
    });
  }
  return out;
}
