/**
 * AWS Backup and EC2 as the copy-jobs function meets them, for EC2 recovery points only. Each
 * response carries only what the API returns for that resource type:
 * - DescribeBackupJob (API reference, DescribeBackupJob): RecoveryPointArn is the AMI's ARN
 *   (`arn:aws:ec2:<region>::image/ami-...`, "AWS Backup resource ARNs"), present once COMPLETED; an
 *   on-demand job has no CreatedBy.
 * - StartCopyJob: CopyJobId, CreationDate, IsParent; "retrying a successful request with the same
 *   idempotency token results in a success message with no action taken" (IdempotencyToken).
 * - DescribeCopyJob: CopyJob with SourceRecoveryPointArn (the source AMI) and, once COMPLETED,
 *   DestinationRecoveryPointArn (the AMI in the destination Region); a failed job has none.
 * - EC2 DescribeImages: the image with its Tags; an unknown id is the InvalidAMIID.NotFound error.
 * - ListBackupJobs / ListCopyJobs: BackupJob / CopyJob list members (the Describe fields), filtered
 *   by the query parameters the sweep uses, one page.
 * Every field is a member of its shape in botocore's model (backup 2018-11-15: DescribeBackupJobOutput,
 * BackupJob, StartCopyJobOutput, CopyJob; CopyJobState is CREATED, RUNNING, COMPLETED, FAILED or
 * PARTIAL). The events the tests feed in follow the Backup Job and Copy Job examples of the AWS
 * Backup guide, "Monitoring AWS Backup events using Amazon EventBridge"; tags reach a copy as
 * "Copying tags onto backups" says: "If you copy your backup to another AWS Region, AWS Backup
 * copies all tags of the original backup to the destination AWS Region".
 */

import {
  BackupClient,
  DescribeBackupJobCommand,
  type DescribeBackupJobCommandInput,
  DescribeCopyJobCommand,
  type DescribeCopyJobCommandInput,
  ListBackupJobsCommand,
  type ListBackupJobsCommandInput,
  ListCopyJobsCommand,
  type ListCopyJobsCommandInput,
  StartCopyJobCommand,
  type StartCopyJobCommandInput,
} from '@aws-sdk/client-backup';
import {
  CreateTagsCommand,
  type CreateTagsCommandInput,
  DescribeImagesCommand,
  type DescribeImagesCommandInput,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';

export const ACCOUNT = '111122223333';
export const OTHER_ACCOUNT = '444455556666';
export const REGION = 'eu-west-1';
export const VAULT = 'ecb-vault';
export const VAULT_ARN = `arn:aws:backup:${REGION}:${ACCOUNT}:backup-vault:${VAULT}`;
export const BACKUP_ROLE = `arn:aws:iam::${ACCOUNT}:role/Ec2ConsistentBackup-BackupRole1234`;

export interface FakeImage {
  readonly region: string;
  readonly imageId: string;
  tags: Record<string, string>;
}

export interface FakeBackupJob {
  readonly backupJobId: string;
  readonly instanceId: string;
  readonly imageId: string;
  readonly completedAt: Date;
  readonly role?: string;
  readonly vaultName?: string;
}

function awsError(name: string, message: string, status = 400): Error {
  return Object.assign(new Error(message), { name, $fault: 'client', $metadata: { httpStatusCode: status } });
}

export class FakeCopyAws {
  readonly images = new Map<string, FakeImage>();
  readonly jobs = new Map<string, FakeBackupJob>();
  readonly copyJobs = new Map<
    string,
    {
      input: StartCopyJobCommandInput;
      state: string;
      createdAt: Date;
      destinationImageId?: string;
      statusMessage?: string;
    }
  >();
  readonly startCalls: StartCopyJobCommandInput[] = [];
  readonly createTags: { region: string; input: CreateTagsCommandInput }[] = [];
  /** Errors StartCopyJob throws per destination vault ARN, consumed in order. */
  readonly startErrors = new Map<string, Error[]>();
  private readonly tokens = new Map<string, string>();
  /** The time AWS Backup stamps on new copy jobs. */
  clock: () => Date = () => new Date();
  private copies = 0;

  install() {
    const backup = mockClient(BackupClient);
    const ec2 = mockClient(EC2Client);
    backup.on(DescribeBackupJobCommand).callsFake((input: DescribeBackupJobCommandInput) => {
      const job = this.jobs.get(input.BackupJobId ?? '');
      if (!job) throw awsError('ResourceNotFoundException', `Backup job ${input.BackupJobId} not found`);
      return this.backupJob(job);
    });
    backup.on(ListBackupJobsCommand).callsFake((input: ListBackupJobsCommandInput) => ({
      BackupJobs: [...this.jobs.values()]
        .map((j) => this.backupJob(j))
        .filter(
          (j) =>
            (!input.ByBackupVaultName || j.BackupVaultName === input.ByBackupVaultName) &&
            (!input.ByState || j.State === input.ByState) &&
            (!input.ByCompleteAfter || j.CompletionDate > input.ByCompleteAfter),
        ),
    }));
    backup.on(ListCopyJobsCommand).callsFake((input: ListCopyJobsCommandInput) => ({
      CopyJobs: [...this.copyJobs.entries()]
        .filter(([, c]) => !input.ByCreatedAfter || c.createdAt > input.ByCreatedAfter)
        .map(([id]) => this.copyJob(id)),
    }));
    backup.on(StartCopyJobCommand).callsFake((input: StartCopyJobCommandInput) => {
      this.startCalls.push(input);
      const queued = this.startErrors.get(input.DestinationBackupVaultArn ?? '');
      const error = queued?.shift();
      if (error) throw error;
      const known = input.IdempotencyToken ? this.tokens.get(input.IdempotencyToken) : undefined;
      if (known) return { CopyJobId: known, CreationDate: new Date(), IsParent: false };
      this.copies += 1;
      const id = `0C${String(this.copies).padStart(6, '0')}-74D8-059D-1301-C5BE1D5C926E`;
      if (input.IdempotencyToken) this.tokens.set(input.IdempotencyToken, id);
      this.copyJobs.set(id, { input, state: 'CREATED', createdAt: this.clock() });
      return { CopyJobId: id, CreationDate: new Date(), IsParent: false };
    });
    backup.on(DescribeCopyJobCommand).callsFake((input: DescribeCopyJobCommandInput) => {
      if (!this.copyJobs.has(input.CopyJobId ?? '')) {
        throw awsError('ResourceNotFoundException', `Copy job ${input.CopyJobId} not found`);
      }
      return { CopyJob: this.copyJob(input.CopyJobId ?? '') };
    });
    ec2.on(DescribeImagesCommand).callsFake((input: DescribeImagesCommandInput) => {
      const id = input.ImageIds?.[0] ?? '';
      const image = [...this.images.values()].find((i) => i.imageId === id && i.region === REGION);
      if (!image) throw awsError('InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`);
      return {
        Images: [
          {
            ImageId: image.imageId,
            State: 'available',
            OwnerId: ACCOUNT,
            Tags: Object.entries(image.tags).map(([Key, Value]) => ({ Key, Value })),
          },
        ],
      };
    });
    ec2.on(CreateTagsCommand).resolves({});
    return { backup, ec2 };
  }

  /** A BackupJob as DescribeBackupJob and ListBackupJobs return it, for an EC2 job that completed. */
  backupJob(job: FakeBackupJob) {
    return {
      AccountId: ACCOUNT,
      BackupJobId: job.backupJobId,
      BackupVaultName: job.vaultName ?? VAULT,
      BackupVaultArn: `arn:aws:backup:${REGION}:${ACCOUNT}:backup-vault:${job.vaultName ?? VAULT}`,
      RecoveryPointArn: `arn:aws:ec2:${REGION}::image/${job.imageId}`,
      ResourceArn: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${job.instanceId}`,
      CreationDate: new Date(job.completedAt.getTime() - 300_000),
      CompletionDate: job.completedAt,
      State: 'COMPLETED',
      PercentDone: '100.0',
      BackupSizeInBytes: 8589934592,
      IamRoleArn: job.role ?? BACKUP_ROLE,
      ResourceType: 'EC2',
      StartBy: new Date(job.completedAt.getTime() + 3_600_000),
      BackupType: 'Backup',
      IsParent: false,
    };
  }

  /** A CopyJob as DescribeCopyJob and ListCopyJobs return it. */
  copyJob(id: string) {
    const job = this.copyJobs.get(id)!;
    const destinationRegion = (job.input.DestinationBackupVaultArn ?? '').split(':')[3];
    const sourceImage = (job.input.RecoveryPointArn ?? '').split('/')[1];
    const sourceJob = [...this.jobs.values()].find((j) => j.imageId === sourceImage);
    return {
      AccountId: ACCOUNT,
      CopyJobId: id,
      SourceBackupVaultArn: VAULT_ARN,
      SourceRecoveryPointArn: job.input.RecoveryPointArn,
      DestinationBackupVaultArn: job.input.DestinationBackupVaultArn,
      ...(job.state === 'COMPLETED' && job.destinationImageId
        ? {
            DestinationRecoveryPointArn: `arn:aws:ec2:${destinationRegion}::image/${job.destinationImageId}`,
          }
        : {}),
      ResourceArn: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${sourceJob?.instanceId ?? 'i-00000000'}`,
      CreationDate: job.createdAt,
      State: job.state,
      ...(job.statusMessage ? { StatusMessage: job.statusMessage } : {}),
      BackupSizeInBytes: 8589934592,
      IamRoleArn: job.input.IamRoleArn,
      ResourceType: 'EC2',
      IsParent: false,
    };
  }

  /** A recording EC2 client per Region: CreateTags lands in that Region's image. */
  ec2In(region: string): Pick<EC2Client, 'send'> {
    const client = new EC2Client({ region });
    return {
      send: (async (command: unknown) => {
        if (command instanceof CreateTagsCommand) {
          this.createTags.push({ region, input: command.input });
          const id = command.input.Resources?.[0] ?? '';
          const image = [...this.images.values()].find((i) => i.imageId === id && i.region === region);
          if (!image) throw awsError('InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`);
          for (const t of command.input.Tags ?? []) image.tags[t.Key ?? ''] = t.Value ?? '';
          return {};
        }
        return client.send(command as never);
      }) as EC2Client['send'],
    };
  }

  /** AWS Backup finishes a copy job: a new AMI in the destination Region with the tags the source had then. */
  finishCopy(copyJobId: string, state: 'COMPLETED' | 'FAILED', statusMessage?: string): void {
    const job = this.copyJobs.get(copyJobId);
    if (!job) throw new Error(`no copy job ${copyJobId}`);
    job.state = state;
    job.statusMessage = statusMessage;
    if (state !== 'COMPLETED') return;
    const [, , , region, account] = (job.input.DestinationBackupVaultArn ?? '').split(':');
    const sourceId = (job.input.RecoveryPointArn ?? '').split('/')[1];
    const source = [...this.images.values()].find((i) => i.imageId === sourceId);
    const imageId = `ami-0c0${String(this.images.size).padStart(14, '0')}`;
    job.destinationImageId = imageId;
    // Only images of this account are visible to it (a copy in another account is not).
    if (account === ACCOUNT)
      this.images.set(`${region}/${imageId}`, { region, imageId, tags: { ...source?.tags } });
  }
}
