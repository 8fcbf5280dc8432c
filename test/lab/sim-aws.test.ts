import * as os from 'node:os';
import {
  DescribeBackupJobCommand,
  ListBackupJobsCommand,
  StartBackupJobCommand,
} from '@aws-sdk/client-backup';
import { describe, expect, it } from 'vitest';
import type { LabInstance } from '../../lab/instance';
import { LAB_ACCOUNT, LAB_REGION, SimBackup, SimEc2 } from '../../lab/sim/aws';

// No root, no loop devices: the volumes' snapshot is a no-op here.
const INSTANCE = 'i-0123456789abcdef0';
const instance = {
  instanceId: INSTANCE,
  volumes: [{ volumeId: 'vol-0123456789abcdef0', snapshot: async () => undefined }],
} as unknown as LabInstance;

describe("the lab's AWS Backup answers as AWS does for EC2", () => {
  it('never returns a RecoveryPointArn from StartBackupJob; DescribeBackupJob returns the AMI once the job has completed', async () => {
    const ec2 = new SimEc2(new Map([[INSTANCE, instance]]), new Map());
    const backup = new SimBackup(new Map([[INSTANCE, instance]]), ec2, {
      startLatencyMs: 5,
      completionMs: 40,
      snapshotDir: os.tmpdir(),
    });
    const start = (token?: string) =>
      backup.send(
        new StartBackupJobCommand({
          BackupVaultName: 'ecb-vault',
          IamRoleArn: `arn:aws:iam::${LAB_ACCOUNT}:role/backup`,
          ResourceArn: `arn:aws:ec2:${LAB_REGION}:${LAB_ACCOUNT}:instance/${INSTANCE}`,
          IdempotencyToken: token,
          RecoveryPointTags: { 'ConsistentBackup:Consistency': 'pending' },
        }) as never,
      );
    const started = await start('t-1');
    expect(Object.keys(started).sort()).toEqual(['BackupJobId', 'CreationDate', 'IsParent']);
    // The idempotent repeat too.
    expect(await start('t-1')).not.toHaveProperty('RecoveryPointArn');

    const describe = () =>
      backup.send(new DescribeBackupJobCommand({ BackupJobId: String(started.BackupJobId) }) as never);
    const running = await describe();
    expect(running.State).not.toBe('COMPLETED');
    expect(running).not.toHaveProperty('RecoveryPointArn');

    await backup.settled();
    const completed = await describe();
    expect(completed).toMatchObject({ State: 'COMPLETED', ResourceType: 'EC2' });
    expect(completed.RecoveryPointArn).toMatch(/^arn:aws:ec2:eu-west-1::image\/ami-[0-9a-f]{17}$/);
    // The AMI carries StartBackupJob's recovery point tags, the pending label among them.
    const imageId = String(completed.RecoveryPointArn).split('/')[1];
    expect(ec2.imageTags.get(imageId)).toEqual({ 'ConsistentBackup:Consistency': 'pending' });
    const listed = await backup.send(
      new ListBackupJobsCommand({ ByState: 'COMPLETED', ByCompleteAfter: new Date(0) }) as never,
    );
    expect((listed.BackupJobs as unknown[]).length).toBe(1);
  });
});
