import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { expectValidPublish, harness, REGION, TABLE, TOPIC } from '../notifications/fixtures';

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
  vi.resetModules();
  vi.unstubAllEnvs();
});

function env() {
  vi.stubEnv('NOTIFICATION_TOPIC_ARN', TOPIC);
  vi.stubEnv('NOTIFICATION_TABLE_NAME', TABLE);
  vi.stubEnv('AWS_REGION', REGION);
  vi.stubEnv('FREEZE_BUDGET_SECONDS', '60');
  vi.stubEnv('WATCHDOG_SECONDS', '90');
  vi.stubEnv('ON_FREEZE_FAILURE', 'crash-consistent');
  vi.stubEnv('LABEL_QUEUE_URL', QUEUE);
}

const QUEUE = 'https://sqs.eu-west-1.amazonaws.com/111122223333/labels';

describe('record-outcome handler', () => {
  it('checks its environment at cold start, naming the variable and what is allowed', async () => {
    env();
    vi.stubEnv('ON_FREEZE_FAILURE', 'maybe');
    await expect(import('../../../lambda/record-outcome/handler')).rejects.toThrow(
      'Environment variable ON_FREEZE_FAILURE is "maybe"; allowed: crash-consistent or skip.',
    );
  });

  it('refuses to start without the label queue, naming the variable', async () => {
    env();
    vi.stubEnv('LABEL_QUEUE_URL', '');
    await expect(import('../../../lambda/record-outcome/handler')).rejects.toThrow(
      /Environment variable LABEL_QUEUE_URL is ""; allowed: the URL of the label queue/,
    );
  });

  it('turns a failed thaw into one critical notification through the real notifier', async () => {
    env();
    const h = harness();
    const sqs = mockClient(SQSClient);
    sqs.on(SendMessageCommand).resolves({ MessageId: 'm-1' });
    cleanup.push(() => {
      h.snsMock.restore();
      h.dynamodbMock.restore();
      sqs.restore();
    });
    const { handler } = await import('../../../lambda/record-outcome/handler');
    const result = await handler({
      state: {
        schemaVersion: 1,
        runId: 'run-1',
        window: '2026-11-22T02:00:00Z',
        accountId: '111122223333',
        region: REGION,
        instanceId: 'i-0123456789abcdef0',
        platform: 'linux',
        instanceState: 'running',
        options: { onFreezeFailure: 'crash-consistent' },
        freeze: {
          succeeded: true,
          status: 'Success',
          stdout: JSON.stringify({
            action: 'freeze',
            status: 'frozen',
            frozenAtMs: Date.parse('2026-11-22T02:00:01Z'),
          }),
        },
        // What StartBackupJob returns for EC2: no RecoveryPointArn.
        backupJob: { BackupJobId: 'job-1', CreationDate: '2026-11-22T02:00:02Z', IsParent: false },
        snapshots: { status: 'started', snapshots: [], missingVolumeIds: [], waitedMs: 1 },
        thawError: { Error: 'ThawCommandFailed', Cause: 'The thaw command did not end in Success.' },
      },
      execution: {
        arn: 'arn:aws:states:eu-west-1:111122223333:execution:Wf:i-0123456789abcdef0-20261122T0200Z',
        name: 'x',
      },
    });
    expect(result).toMatchObject({ outcome: 'thaw-failed', failed: true, consistency: 'filesystem' });
    expect(h.published.map((p) => expectValidPublish(p).eventType)).toEqual(['thaw-failed']);
    // The label is requested on the label queue, for the label-writer to write once the job completes.
    expect(sqs.commandCalls(SendMessageCommand).map((c) => c.args[0].input)).toEqual([
      {
        QueueUrl: QUEUE,
        MessageBody: JSON.stringify({ kind: 'label', backupJobId: 'job-1', cause: 'verdict-recorded' }),
      },
    ]);
  });
});
