import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import type { LabInstance } from '../instance';
import { SimServiceError } from './ssm';

export const LAB_ACCOUNT = '111122223333';
export const LAB_REGION = 'eu-west-1';

type Cmd = { input: Record<string, unknown>; constructor: { name: string } };
const hex = (n: number) =>
  randomBytes(Math.ceil(n / 2))
    .toString('hex')
    .slice(0, n);

/** The lab's EC2: instances with their tags and volumes, and the snapshots the simulated Backup takes. */
export class SimEc2 {
  readonly snapshots: {
    SnapshotId: string;
    VolumeId: string;
    StartTime: Date;
    State: string;
    copy: string;
    instanceId: string;
  }[] = [];
  readonly imageTags = new Map<string, Record<string, string>>();

  constructor(
    private readonly instances: ReadonlyMap<string, LabInstance>,
    private readonly tags: ReadonlyMap<string, Record<string, string>>,
  ) {}

  async send(command: Cmd): Promise<Record<string, unknown>> {
    const input = command.input;
    switch (command.constructor.name) {
      case 'DescribeInstancesCommand':
        return this.describeInstances(input);
      case 'DescribeSnapshotsCommand': {
        const filters = (input.Filters as { Name: string; Values: string[] }[] | undefined) ?? [];
        const volumes = filters.find((f) => f.Name === 'volume-id')?.Values;
        return {
          Snapshots: this.snapshots
            .filter((s) => !volumes || volumes.includes(s.VolumeId))
            .map(({ copy: _copy, instanceId: _i, ...s }) => ({ ...s, OwnerId: LAB_ACCOUNT })),
        };
      }
      case 'CreateTagsCommand': {
        for (const id of input.Resources as string[]) {
          const t = this.imageTags.get(id) ?? {};
          for (const { Key, Value } of input.Tags as { Key: string; Value: string }[]) t[Key] = Value;
          this.imageTags.set(id, t);
        }
        return {};
      }
      default:
        throw new SimServiceError(
          'UnsupportedOperation',
          `the lab's EC2 does not implement ${command.constructor.name}`,
        );
    }
  }

  private describeInstances(input: Record<string, unknown>): Record<string, unknown> {
    const filters = (input.Filters as { Name: string; Values: string[] }[] | undefined) ?? [];
    const matches = (id: string) =>
      filters.every((f) => {
        if (f.Name.startsWith('tag:'))
          return f.Values.includes(this.tags.get(id)?.[f.Name.slice(4)] ?? '\u0000');
        if (f.Name === 'instance-state-name') return f.Values.includes('running');
        return true;
      });
    const Instances = [...this.instances.values()]
      .filter((i) => matches(i.instanceId))
      .map((i) => ({
        InstanceId: i.instanceId,
        State: { Name: 'running', Code: 16 },
        Platform: undefined,
        PlatformDetails: 'Linux/UNIX',
        Architecture: 'x86_64',
        RootDeviceType: 'ebs',
        RootDeviceName: '/dev/xvda',
        Tags: Object.entries(this.tags.get(i.instanceId) ?? {}).map(([Key, Value]) => ({ Key, Value })),
        BlockDeviceMappings: i.volumes.map((v, n) => ({
          DeviceName: `/dev/sd${String.fromCharCode(102 + n)}`,
          Ebs: { VolumeId: v.volumeId, Status: 'attached', DeleteOnTermination: true },
        })),
      }));
    return {
      Reservations: Instances.length
        ? [{ OwnerId: LAB_ACCOUNT, ReservationId: `r-${hex(17)}`, Instances }]
        : [],
    };
  }
}

export interface SimBackupProps {
  /** StartBackupJob to the moment the snapshots' point in time is fixed. */
  readonly startLatencyMs: number;
  /** Snapshot start to job completion. */
  readonly completionMs: number;
  /** Where snapshot copies go (on the reflink pool). */
  readonly snapshotDir: string;
}

interface Job {
  BackupJobId: string;
  ResourceArn: string;
  State: string;
  /** Set when the job completes: the AMI AWS Backup made (see SimBackup). */
  RecoveryPointArn?: string;
  CreationDate: Date;
  CompletionDate?: Date;
  IdempotencyToken?: string;
  StatusMessage?: string;
  done: Promise<void>;
}

/**
 * The lab's AWS Backup: StartBackupJob returns at once; after the start latency every volume of the
 * instance is copied at one instant each (the EBS snapshot's point in time) and the snapshots appear
 * as `pending` with their StartTime; the job completes later. Emits 'snapshot' and 'job' events.
 *
 * It returns what AWS Backup returns for an EC2 resource, following the AWS Backup API reference
 * (and botocore's backup 2018-11-15 model, which carries the same text):
 * - StartBackupJob, response elements: BackupJobId, CreationDate, IsParent; no RecoveryPointArn,
 *   which "is only returned for Amazon EFS and Advanced DynamoDB resources".
 * - DescribeBackupJob / ListBackupJobs (BackupJob): RecoveryPointArn is not required; the lab sets
 *   it when the job completes, the AMI `arn:aws:ec2:<region>::image/ami-...` AWS Backup's EC2
 *   recovery points are, and returns it only from then on.
 */
export class SimBackup extends EventEmitter {
  readonly jobs: Job[] = [];
  private readonly startTags = new Map<string, Record<string, string>>();

  constructor(
    private readonly instances: ReadonlyMap<string, LabInstance>,
    private readonly ec2: SimEc2,
    private readonly props: SimBackupProps,
  ) {
    super();
  }

  async send(command: Cmd): Promise<Record<string, unknown>> {
    const input = command.input;
    switch (command.constructor.name) {
      case 'StartBackupJobCommand':
        return this.startBackupJob(input);
      case 'DescribeBackupJobCommand': {
        const job = this.jobs.find((j) => j.BackupJobId === input.BackupJobId);
        if (!job)
          throw new SimServiceError(
            'ResourceNotFoundException',
            `no backup job ${String(input.BackupJobId)}`,
          );
        return this.view(job);
      }
      case 'ListBackupJobsCommand':
        return {
          BackupJobs: this.jobs
            .filter((j) => !input.ByResourceArn || j.ResourceArn === input.ByResourceArn)
            .filter((j) => !input.ByState || j.State === input.ByState)
            .filter(
              (j) => !input.ByCompleteAfter || (j.CompletionDate ?? 0) > (input.ByCompleteAfter as Date),
            )
            .filter(
              (j) =>
                !input.ByCompleteBefore || (j.CompletionDate ?? Infinity) < (input.ByCompleteBefore as Date),
            )
            .map((j) => this.view(j)),
        };
      case 'TagResourceCommand':
        return {};
      default:
        throw new SimServiceError(
          'UnsupportedOperation',
          `the lab's Backup does not implement ${command.constructor.name}`,
        );
    }
  }

  private view(j: Job): Record<string, unknown> {
    const { done: _done, IdempotencyToken: _t, ...rest } = j;
    // Absent, not undefined, before the job has a recovery point (or a completion date).
    const present = Object.entries(rest).filter(([, v]) => v !== undefined);
    return { ...Object.fromEntries(present), ResourceType: 'EC2' };
  }

  startBackupJob(input: Record<string, unknown>): Record<string, unknown> {
    const token = input.IdempotencyToken as string | undefined;
    const existing = token ? this.jobs.find((j) => j.IdempotencyToken === token) : undefined;
    if (existing)
      return { BackupJobId: existing.BackupJobId, CreationDate: existing.CreationDate, IsParent: false };
    const arn = String(input.ResourceArn);
    const instanceId = arn.split('/').pop() ?? '';
    const instance = this.instances.get(instanceId);
    if (!instance)
      throw new SimServiceError('InvalidParameterValueException', `resource ${arn} is not a lab instance`);
    const job: Job = {
      BackupJobId: `${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}`.toUpperCase(),
      ResourceArn: arn,
      State: 'CREATED',
      CreationDate: new Date(),
      IdempotencyToken: token,
      done: Promise.resolve(),
    };
    this.jobs.push(job);
    this.startTags.set(job.BackupJobId, (input.RecoveryPointTags as Record<string, string>) ?? {});
    job.done = this.run(job, instance);
    return { BackupJobId: job.BackupJobId, CreationDate: job.CreationDate, IsParent: false };
  }

  private async run(job: Job, instance: LabInstance): Promise<void> {
    await new Promise((r) => setTimeout(r, this.props.startLatencyMs));
    job.State = 'RUNNING';
    try {
      for (const v of instance.volumes) {
        const SnapshotId = `snap-${hex(17)}`;
        const copy = path.join(this.props.snapshotDir, `${SnapshotId}.img`);
        const StartTime = new Date();
        await v.snapshot(copy);
        this.ec2.snapshots.push({
          SnapshotId,
          VolumeId: v.volumeId,
          StartTime,
          State: 'pending',
          copy,
          instanceId: instance.instanceId,
        });
        this.emit('snapshot', {
          instanceId: instance.instanceId,
          volumeId: v.volumeId,
          snapshotId: SnapshotId,
          at: StartTime.getTime(),
        });
      }
    } catch (err) {
      job.State = 'FAILED';
      job.StatusMessage = (err as Error).message;
      this.emit('job', job);
      return;
    }
    await new Promise((r) => setTimeout(r, this.props.completionMs));
    for (const s of this.ec2.snapshots) if (s.instanceId === instance.instanceId) s.State = 'completed';
    // The AMI carries the recovery point tags of StartBackupJob (the `pending` label among them).
    const imageId = `ami-${hex(17)}`;
    this.ec2.imageTags.set(imageId, { ...(this.startTags.get(job.BackupJobId) ?? {}) });
    job.RecoveryPointArn = `arn:aws:ec2:${LAB_REGION}::image/${imageId}`;
    job.State = 'COMPLETED';
    job.CompletionDate = new Date();
    this.emit('job', job);
  }

  /** Every job finished (completed or failed). */
  async settled(): Promise<void> {
    await Promise.all(this.jobs.map((j) => j.done));
  }
}

/** The lab's SNS: every publish is kept, in order, to be printed as it would have been delivered. */
export class SimSns {
  readonly published: {
    TopicArn?: string;
    Subject?: string;
    Message: string;
    MessageAttributes?: unknown;
  }[] = [];

  async send(command: Cmd): Promise<Record<string, unknown>> {
    if (command.constructor.name !== 'PublishCommand') {
      throw new SimServiceError(
        'UnsupportedOperation',
        `the lab's SNS does not implement ${command.constructor.name}`,
      );
    }
    const i = command.input;
    this.published.push({
      TopicArn: i.TopicArn as string,
      Subject: i.Subject as string,
      Message: String(i.Message),
      MessageAttributes: i.MessageAttributes,
    });
    return { MessageId: `${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}` };
  }
}
