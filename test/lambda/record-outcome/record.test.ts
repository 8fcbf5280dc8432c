import { BackupClient, TagResourceCommand } from '@aws-sdk/client-backup';
import { CreateTagsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { recordOutcome, RecordOutcomeInputError } from '../../../lambda/record-outcome/record';
import type { OutcomeSink, WorkflowOutcome } from '../../../lambda/shared/outcome';
import {
  consistencyTags,
  recoveryPointTarget,
  tagRecoveryPoint,
  tagValue,
} from '../../../lambda/shared/recovery-point';

const ec2 = mockClient(EC2Client);
const backup = mockClient(BackupClient);
afterEach(() => {
  ec2.reset();
  backup.reset();
});

const AMI = 'arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0';
const settings = {
  freezeBudgetSeconds: 60,
  watchdogSeconds: 90,
  defaultOnFreezeFailure: 'crash-consistent' as const,
};

function sink(): OutcomeSink & { outcomes: WorkflowOutcome[] } {
  const outcomes: WorkflowOutcome[] = [];
  return {
    outcomes,
    recordOutcome: async (o) => {
      outcomes.push(o);
    },
    recordDiscovery: async () => {
      throw new Error('not used');
    },
  };
}

const event = {
  state: {
    instanceId: 'i-0123456789abcdef0',
    runId: 'run-1',
    window: '2026-11-22T02:00:00Z',
    accountId: '111122223333',
    region: 'eu-west-1',
    platform: 'windows',
    instanceState: 'running',
    backupJob: { BackupJobId: 'job-1', RecoveryPointArn: AMI },
  },
  execution: {
    arn: 'arn:aws:states:eu-west-1:111122223333:execution:Wf:i-0123456789abcdef0-20261122T0200Z',
    name: 'n',
  },
};

describe('recordOutcome', () => {
  it('labels the recovery point, notifies once, and returns the verdict as the execution output', async () => {
    ec2.on(CreateTagsCommand).resolves({});
    const s = sink();
    const out = await recordOutcome(
      event,
      { sink: s, clients: { ec2: new EC2Client({}), backup: new BackupClient({}) }, settings },
      new Date(),
    );
    expect(out).toMatchObject({
      outcome: 'backed-up',
      consistency: 'application',
      recoveryPointTagged: true,
      instanceId: 'i-0123456789abcdef0',
    });
    expect(s.outcomes).toHaveLength(1);
    expect(s.outcomes[0]).toMatchObject({
      schemaVersion: 1,
      outcome: 'backed-up',
      backupJobId: 'job-1',
      platform: 'windows',
    });
    expect(ec2.commandCalls(CreateTagsCommand)[0].args[0].input).toMatchObject({
      Resources: ['ami-0123456789abcdef0'],
    });
  });

  it('a tagging failure becomes a warning, never a lost notification', async () => {
    ec2
      .on(CreateTagsCommand)
      .rejects(Object.assign(new Error('no such image'), { name: 'InvalidAMIID.NotFound' }));
    const s = sink();
    const out = await recordOutcome(
      event,
      { sink: s, clients: { ec2: new EC2Client({}), backup: new BackupClient({}) }, settings },
      new Date(),
    );
    expect(out.recoveryPointTagged).toBe(false);
    expect(s.outcomes[0].warnings.join()).toMatch(/InvalidAMIID.NotFound/);
  });

  it('a job that failed while frozen: no label on the missing recovery point, the job state for the notifier', async () => {
    ec2.on(CreateTagsCommand).resolves({});
    const s = sink();
    const frozenAtMs = Date.parse('2026-11-22T02:00:01Z');
    const failedWhileFrozen = {
      ...event,
      state: {
        ...event.state,
        platform: 'linux',
        freeze: {
          succeeded: true,
          status: 'Success',
          stdout: JSON.stringify({ action: 'freeze', status: 'frozen', frozenAtMs, targets: [] }),
        },
        snapshots: {
          status: 'job-failed',
          jobState: 'EXPIRED',
          jobStatusMessage: 'Start window passed',
          snapshots: [],
          missingVolumeIds: ['vol-0123456789abcdef0'],
          waitedMs: 900,
        },
        thaw: {
          result: {
            succeeded: true,
            status: 'Success',
            stdout: JSON.stringify({ action: 'thaw', status: 'thawed', freezeMs: 1200 }),
          },
        },
      },
    };
    const out = await recordOutcome(
      failedWhileFrozen,
      { sink: s, clients: { ec2: new EC2Client({}), backup: new BackupClient({}) }, settings },
      new Date(frozenAtMs + 2000),
    );
    expect(out).toMatchObject({ outcome: 'backup-job-failed', consistency: 'none', failed: true });
    expect(out.recoveryPointTagged).toBe(false);
    expect(ec2.commandCalls(CreateTagsCommand)).toHaveLength(0);
    expect(s.outcomes[0]).toMatchObject({
      outcome: 'backup-job-failed',
      backupJobId: 'job-1',
      backupJobState: 'EXPIRED',
      backupJobStatusMessage: 'Start window passed',
      verdict: { consistency: 'crash', freezeMs: 1200 },
      warnings: [],
    });
  });

  it('rejects a state without an instance id, naming it', async () => {
    await expect(
      recordOutcome(
        { ...event, state: { ...event.state, instanceId: '' } },
        { sink: sink(), clients: { ec2: new EC2Client({}), backup: new BackupClient({}) }, settings },
        new Date(),
      ),
    ).rejects.toThrow(RecordOutcomeInputError);
  });
});

describe('recovery point labels', () => {
  it('tags an EC2 recovery point on its AMI and refuses any other (no function has backup:TagResource)', async () => {
    ec2.on(CreateTagsCommand).resolves({});
    backup.on(TagResourceCommand).resolves({});
    const clients = { ec2: new EC2Client({}), backup: new BackupClient({}) };
    const verdict = {
      consistency: 'crash' as const,
      reason: 'budget (60 s) exceeded; thawed!',
      freezeMs: 57_001.4,
    };
    await tagRecoveryPoint(clients, AMI, verdict);
    expect(ec2.commandCalls(CreateTagsCommand)[0].args[0].input.Tags).toEqual([
      { Key: 'ConsistentBackup:Consistency', Value: 'crash' },
      { Key: 'ConsistentBackup:Reason', Value: 'budget 60 s exceeded thawed' },
      { Key: 'ConsistentBackup:FreezeMs', Value: '57001' },
    ]);
    const rp = 'arn:aws:backup:eu-west-1:111122223333:recovery-point:abc';
    await expect(tagRecoveryPoint(clients, rp, verdict)).rejects.toThrow(
      /is not an EC2 image .* this app labels only the AMIs of its EC2 backups/,
    );
    expect(backup.commandCalls(TagResourceCommand)).toHaveLength(0);
  });

  it('keeps tag values within what EC2 and AWS Backup accept', () => {
    expect(tagValue('x'.repeat(300))).toHaveLength(256);
    expect(tagValue('a\nb;c')).toBe('a b c');
    expect(tagValue('!!!')).toBe('-');
    expect(
      consistencyTags({ consistency: 'pending', reason: 'started', freezeMs: 0 })[
        'ConsistentBackup:Consistency'
      ],
    ).toBe('pending');
  });

  it('names an invalid recovery point ARN', () => {
    expect(() => recoveryPointTarget('ami-123')).toThrow('Invalid recovery point ARN "ami-123"');
  });
});
