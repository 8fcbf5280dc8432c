import { BackupClient, DescribeBackupJobCommand } from '@aws-sdk/client-backup';
import { CreateTagsCommand, DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { harness, outcome, REGION, TABLE } from '../notifications/fixtures';

const QUEUE = 'https://sqs.eu-west-1.amazonaws.com/111122223333/labels';

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
  vi.resetModules();
  vi.unstubAllEnvs();
});

function env(intervalMs = '150') {
  vi.stubEnv('AWS_REGION', REGION);
  vi.stubEnv('NOTIFICATION_TABLE_NAME', TABLE);
  vi.stubEnv('LABEL_QUEUE_URL', QUEUE);
  vi.stubEnv('LABEL_VAULT_NAME', 'ecb-vault');
  vi.stubEnv('LABEL_INTERVAL_MS', intervalMs);
  vi.stubEnv('LABEL_MAX_RECEIVES', '5');
}

function sqsEvent(bodies: unknown[], receiveCount = 1): SQSEvent {
  return {
    Records: bodies.map((b, i) => ({
      messageId: `m-${i}`,
      body: JSON.stringify(b),
      attributes: { ApproximateReceiveCount: String(receiveCount) },
    })),
  } as unknown as SQSEvent;
}

function mocks() {
  const h = harness();
  const backup = mockClient(BackupClient);
  const ec2 = mockClient(EC2Client);
  const sqs = mockClient(SQSClient);
  cleanup.push(() => {
    h.snsMock.restore();
    h.dynamodbMock.restore();
    backup.restore();
    ec2.restore();
    sqs.restore();
  });
  return { h, backup, ec2, sqs };
}

describe('label-writer handler', () => {
  it('checks its environment at cold start, naming the variable and what is allowed', async () => {
    env('20');
    await expect(import('../../../lambda/label-writer/handler')).rejects.toThrow(
      'Environment variable LABEL_INTERVAL_MS is "20"; allowed: a whole number of milliseconds from 100 to 60000.',
    );
  });

  it('writes a batch of labels no faster than its interval, and hands back only what failed', async () => {
    env('150');
    const { h, backup, ec2 } = mocks();
    const ids = ['j-1', 'j-2', 'j-3'];
    for (const [i, id] of ids.entries()) {
      await h.notifier.recordOutcome(
        outcome({
          outcome: 'backed-up',
          instanceId: `i-000000000000000${i}a`,
          backupJobId: id,
          verdict: { consistency: 'application', reason: 'hooks ran', freezeMs: 900 },
        }),
      );
    }
    backup.on(DescribeBackupJobCommand).callsFake((input: { BackupJobId: string }) => ({
      BackupJobId: input.BackupJobId,
      State: 'COMPLETED',
      RecoveryPointArn: `arn:aws:ec2:${REGION}::image/ami-0${input.BackupJobId.slice(-1).repeat(16)}`,
    }));
    const at: number[] = [];
    ec2.on(CreateTagsCommand).callsFake(() => {
      at.push(Date.now());
      return {};
    });
    const { handler } = await import('../../../lambda/label-writer/handler');
    const response = await handler(
      sqsEvent([
        ...ids.map((backupJobId) => ({ kind: 'label', backupJobId, cause: 'job-ended' })),
        { kind: 'something-else' },
      ]),
    );
    // The malformed message is retried until the dead-letter queue takes it (alarmed), never dropped.
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'm-3' }] });
    expect(ec2.commandCalls(CreateTagsCommand).map((c) => c.args[0].input.Resources)).toEqual([
      ['ami-01111111111111111'],
      ['ami-02222222222222222'],
      ['ami-03333333333333333'],
    ]);
    // The handler wires the pacer (150 ms between the moments CreateTags may start; its exact
    // spacing is tested on a virtual clock in label-writer.test.ts). On the wall clock a loaded
    // machine can delay one request after its moment by tens of ms, so this only checks that the
    // three calls were spread over at least one interval, which unpaced calls (a few ms) never are.
    expect(at[at.length - 1] - at[0]).toBeGreaterThanOrEqual(150);
  });

  it('answers the sweep message by queueing the requests it finds, ten per call', async () => {
    env();
    const { ec2, backup, sqs } = mocks();
    ec2.on(DescribeImagesCommand).resolves({
      Images: Array.from({ length: 12 }, (_, i) => ({
        ImageId: `ami-0${i.toString(16).repeat(16)}`,
        CreationDate: new Date(Date.now() - 3_600_000).toISOString(),
      })),
    });
    backup.onAnyCommand().resolves({
      BackupJobs: Array.from({ length: 12 }, (_, i) => ({
        BackupJobId: `job-${i}`,
        State: 'COMPLETED',
        RecoveryPointArn: `arn:aws:ec2:${REGION}::image/ami-0${i.toString(16).repeat(16)}`,
      })),
    });
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    const { handler } = await import('../../../lambda/label-writer/handler');
    expect(await handler(sqsEvent([{ kind: 'label-sweep' }]))).toEqual({ batchItemFailures: [] });
    const batches = sqs.commandCalls(SendMessageBatchCommand).map((c) => c.args[0].input);
    expect(batches.map((b) => b.Entries?.length)).toEqual([10, 2]);
    expect(batches[0].QueueUrl).toBe(QUEUE);
    expect(JSON.parse(batches[1].Entries?.[1].MessageBody ?? '')).toEqual({
      kind: 'label',
      backupJobId: 'job-11',
      cause: 'sweep',
    });
  });
});
