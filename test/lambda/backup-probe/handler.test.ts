import { BackupClient, ListBackupJobsCommand } from '@aws-sdk/client-backup';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, vi } from 'vitest';

afterEach(() => {
  vi.resetModules();
});

describe('backup-probe handler', () => {
  it('validates the event and dispatches to the logic with module-scope clients', async () => {
    const backup = mockClient(BackupClient);
    backup.on(ListBackupJobsCommand).resolves({ BackupJobs: [] });
    const { handler } = await import('../../../lambda/backup-probe/handler');
    await expect(
      handler({
        action: 'activeJobs',
        instanceArn: 'arn:aws:ec2:eu-west-1:111122223333:instance/i-0123456789abcdef0',
      }),
    ).resolves.toEqual({
      active: false,
      jobIds: [],
    });
    await expect(handler({ action: 'sleep' })).rejects.toThrow('Invalid action: got "sleep"');
    backup.restore();
  });
});
