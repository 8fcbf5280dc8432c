import { BackupClient, ListRecoveryPointsByBackupVaultCommand } from '@aws-sdk/client-backup';
import { DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { listRecoveryPoints } from '../../scripts/recovery-points';

describe('scripts/recovery-points.ts', () => {
  it('lists EC2 recovery points with the label written on their AMI, unlabelled when there is none', async () => {
    const backup = mockClient(BackupClient);
    const ec2 = mockClient(EC2Client);
    backup
      .on(ListRecoveryPointsByBackupVaultCommand)
      .resolvesOnce({
        RecoveryPoints: [
          {
            RecoveryPointArn: 'arn:aws:ec2:eu-west-1::image/ami-0000000000000000a',
            ResourceArn: 'arn:aws:ec2:eu-west-1:1:instance/i-1',
            Status: 'COMPLETED',
          },
        ],
        NextToken: 't',
      })
      .resolves({
        RecoveryPoints: [
          { RecoveryPointArn: 'arn:aws:ec2:eu-west-1::image/ami-0000000000000000b', Status: 'COMPLETED' },
        ],
      });
    ec2.on(DescribeImagesCommand).resolves({
      Images: [
        {
          ImageId: 'ami-0000000000000000a',
          Tags: [
            { Key: 'ConsistentBackup:Consistency', Value: 'crash' },
            { Key: 'ConsistentBackup:Reason', Value: 'budget exceeded' },
          ],
        },
      ],
    });
    const points = await listRecoveryPoints(
      { backup: new BackupClient({}), ec2: new EC2Client({}) },
      'vault',
    );
    expect(points.map((p) => [p.consistency, p.reason])).toEqual([
      ['crash', 'budget exceeded'],
      ['unlabelled', ''],
    ]);
    expect(backup.commandCalls(ListRecoveryPointsByBackupVaultCommand)[1].args[0].input).toMatchObject({
      NextToken: 't',
      ByResourceType: 'EC2',
    });
    backup.restore();
    ec2.restore();
  });
});
