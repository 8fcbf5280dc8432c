import { BackupClient, ListBackupJobsCommand } from '@aws-sdk/client-backup';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
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

  // Issue 13 items 2 and 3: no SDK retry (a resent SendCommand could freeze twice, and a retry is
  // invisible to the freeze budget), and no request without a time limit.
  it('builds every client with one attempt and a connection and request timeout', async () => {
    const { CLIENT_CONFIG } = await import('../../../lambda/backup-probe/handler');
    expect(CLIENT_CONFIG).toEqual({
      maxAttempts: 1,
      requestHandler: { connectionTimeout: 2000, requestTimeout: 5000 },
    });
    for (const Client of [SSMClient, BackupClient, EC2Client]) {
      const client = new Client({ ...CLIENT_CONFIG, region: 'eu-west-1' });
      expect(await client.config.maxAttempts()).toBe(1);
      // NodeHttpHandler (@smithy/node-http-handler 4.14.2) resolves its options into configProvider.
      const handlerConfig = await (
        client.config.requestHandler as unknown as { configProvider: Promise<Record<string, unknown>> }
      ).configProvider;
      expect(handlerConfig).toMatchObject({ connectionTimeout: 2000, requestTimeout: 5000 });
    }
  });
});
