import { BackupClient, TagResourceCommand } from '@aws-sdk/client-backup';
import { CreateTagsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { recordOutcome, RecordOutcomeInputError } from '../../../lambda/record-outcome/record';
import type { LabelRequest } from '../../../lambda/shared/labels';
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

/** A label queue that records what was asked, or refuses. */
function labelQueue(fail?: Error) {
  const requests: LabelRequest[] = [];
  return {
    requests,
    requestLabel: async (r: LabelRequest) => {
      if (fail) throw fail;
      requests.push(r);
    },
  };
}

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
    // StartBackupJob's output for EC2: no RecoveryPointArn (API reference, StartBackupJob).
    backupJob: { BackupJobId: 'job-1', CreationDate: '2026-11-22T02:00:03Z', IsParent: false },
  },
  execution: {
    arn: 'arn:aws:states:eu-west-1:111122223333:execution:Wf:i-0123456789abcdef0-20261122T0200Z',
    name: 'n',
  },
};

describe('recordOutcome', () => {
  it('records once, then requests the label of the job (no recovery point is known yet), and returns the verdict', async () => {
    const s = sink();
    const order: string[] = [];
    const q = labelQueue();
    const out = await recordOutcome(
      event,
      {
        sink: {
          ...s,
          recordOutcome: async (o) => {
            order.push('recorded');
            await s.recordOutcome(o);
          },
        },
        requestLabel: async (r) => {
          order.push('requested');
          await q.requestLabel(r);
        },
        settings,
      },
      new Date(),
    );
    expect(out).toMatchObject({
      outcome: 'backed-up',
      consistency: 'application',
      labelRequested: true,
      instanceId: 'i-0123456789abcdef0',
    });
    expect(out.recoveryPointArn).toBeUndefined();
    expect(s.outcomes).toHaveLength(1);
    expect(s.outcomes[0]).toMatchObject({
      schemaVersion: 1,
      outcome: 'backed-up',
      backupJobId: 'job-1',
      platform: 'windows',
    });
    // The verdict is stored before the request, so the label-writer always finds it.
    expect(order).toEqual(['recorded', 'requested']);
    expect(q.requests).toEqual([{ kind: 'label', backupJobId: 'job-1', cause: 'verdict-recorded' }]);
    expect(ec2.commandCalls(CreateTagsCommand)).toHaveLength(0);
  });

  it('a label queue that refuses becomes a warning of the execution output, never a lost outcome', async () => {
    const s = sink();
    const q = labelQueue(Object.assign(new Error('slow down'), { name: 'ThrottlingException' }));
    const out = await recordOutcome(event, { sink: s, requestLabel: q.requestLabel, settings }, new Date());
    expect(out.labelRequested).toBe(false);
    expect(out.warnings.join()).toMatch(/ThrottlingException.*hourly label sweep/);
    expect(s.outcomes).toHaveLength(1);
    expect(s.outcomes[0].warnings).toEqual([]);
  });

  it('a job that failed while frozen: no label on the missing recovery point, the job state for the notifier', async () => {
    const s = sink();
    const q = labelQueue();
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
      { sink: s, requestLabel: q.requestLabel, settings },
      new Date(frozenAtMs + 2000),
    );
    expect(out).toMatchObject({ outcome: 'backup-job-failed', consistency: 'none', failed: true });
    expect(out.labelRequested).toBe(false);
    expect(q.requests).toEqual([]);
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
        { sink: sink(), requestLabel: labelQueue().requestLabel, settings },
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
