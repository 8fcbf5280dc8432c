import { BackupClient } from '@aws-sdk/client-backup';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { describe, expect, it } from 'vitest';
import { CLIENT_CONFIG } from '../../../lambda/shared/calls';

describe('the clients of the freeze path', () => {
  // Issue 13 items 2 and 3: no SDK retry (a resent SendCommand could freeze twice, and a retry is
  // invisible to the freeze budget), and no request without a time limit.
  it('builds every client with one attempt and a connection and request timeout', async () => {
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
