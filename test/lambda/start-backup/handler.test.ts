import { BackupClient, ListBackupJobsCommand, StartBackupJobCommand } from '@aws-sdk/client-backup';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, vi } from 'vitest';

afterEach(() => {
  vi.resetModules();
});

const job = {
  instanceArn: 'arn:aws:ec2:eu-west-1:111122223333:instance/i-0123456789abcdef0',
  backupVaultName: 'ec2-consistent-backup',
  iamRoleArn: 'arn:aws:iam::111122223333:role/ConsistentBackupRole',
  idempotencyToken: 'i-0123456789abcdef0-20261122T0200Z',
  recoveryPointTags: { 'ConsistentBackup:Consistency': 'pending' },
  startWindowMinutes: 60,
  freezeBudgetSeconds: 60,
  thawMarginSeconds: 3,
  startAt: '2026-11-22T02:00:00Z',
};

describe('start-backup handler', () => {
  it('validates the event and dispatches by mode with module-scope clients', async () => {
    const backup = mockClient(BackupClient);
    backup.on(ListBackupJobsCommand).resolves({ BackupJobs: [] });
    backup.on(StartBackupJobCommand).resolves({ BackupJobId: 'job-1', CreationDate: new Date(0) });
    const { handler } = await import('../../../lambda/start-backup/handler');
    await expect(handler({ mode: 'windows-vss', ...job })).resolves.toEqual({
      started: true,
      backupJob: { backupJobId: 'job-1', creationDate: '1970-01-01T00:00:00.000Z' },
      windowsVss: true,
    });
    expect(backup.commandCalls(StartBackupJobCommand)[0].args[0].input).toMatchObject({
      IdempotencyToken: job.idempotencyToken,
      BackupOptions: { WindowsVSS: 'enabled' },
    });
    await expect(handler({ mode: 'sleep' })).rejects.toThrow('Invalid mode: got "sleep"');
    backup.restore();
  });
});
