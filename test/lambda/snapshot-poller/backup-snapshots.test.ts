import type { Snapshot } from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import type { SnapshotWaiterItem } from '../../../lambda/shared/coordination';
import { judgeSnapshot, resolveWaiter } from '../../../lambda/snapshot-poller/backup-snapshots';

const frozen = Date.UTC(2026, 11, 2, 10, 0, 0);
const waiter: SnapshotWaiterItem = {
  taskToken: 'token',
  executionName: 'exec-1',
  instanceId: 'i-0123456789abcdef0',
  volumeIds: ['vol-0aaaaaaaaaaaaaaaa', 'vol-0bbbbbbbbbbbbbbbb'],
  backupJobId: 'B6EC38D2-CB3C-EF0A-F5A4-3CF324EF4945',
  jobCreatedAtMs: frozen + 300,
  frozenAtAwsMs: frozen,
  watchdogExpiresAtMs: frozen + 60_000,
  deadlineMs: frozen + 10_000,
  registeredAtMs: frozen + 400,
};
const source = {
  Key: 'aws:backup:source-resource',
  Value: 'arn:aws:ec2:eu-west-1:111122223333:instance/i-0123456789abcdef0',
};

/** A snapshot of AWS Backup's CreateImage of this instance, as DescribeSnapshots returns it. */
function ours(volumeId: string, startMs: number, over: Partial<Snapshot> = {}): Snapshot {
  return {
    SnapshotId: `snap-${volumeId.slice(4)}`,
    VolumeId: volumeId,
    State: 'pending',
    StartTime: new Date(startMs),
    Progress: '0%',
    OwnerId: '111122223333',
    Description: 'Created by CreateImage(i-0123456789abcdef0) for ami-0123456789abcdef0',
    VolumeSize: 8,
    Encrypted: false,
    Tags: [source],
    ...over,
  };
}

describe("AWS Backup's own snapshot of the job", () => {
  const start = frozen + 2000;
  it.each([
    ['a pending CreateImage snapshot of this instance with the AWS Backup tag', {}, true],
    ['a completed one', { State: 'completed' }, true],
    [
      'the older description form with " from vol-..."',
      {
        Description:
          'Created by CreateImage(i-0123456789abcdef0) for ami-0123456789abcdef0 from vol-0aaaaaaaaaaaaaaaa',
      },
      true,
    ],
    ['an error snapshot', { State: 'error' }, 'failed'],
    ['a manual CreateSnapshot', { Description: 'before the upgrade', Tags: undefined }, 'not-create-image'],
    [
      'another plan’s EBS-volume backup',
      {
        Description: 'This snapshot is created by the AWS Backup service.',
        Tags: [
          {
            Key: 'aws:backup:source-resource',
            Value: 'arn:aws:ec2:eu-west-1:111122223333:volume/vol-0aaaaaaaaaaaaaaaa',
          },
        ],
      },
      'not-create-image',
    ],
    [
      'a DLM AMI policy’s CreateImage of this instance',
      { Tags: [{ Key: 'aws:dlm:lifecycle-policy-id', Value: 'policy-0123456789abcdef0' }] },
      'dlm',
    ],
    ['a manual CreateImage of this instance (no AWS Backup tag)', { Tags: undefined }, 'untagged'],
    [
      'a CreateImage of another instance',
      { Description: 'Created by CreateImage(i-0fffffffffffffff0) for ami-0123456789abcdef0' },
      'other-instance',
    ],
    [
      'AWS Backup’s tag naming another resource',
      {
        Tags: [
          {
            Key: 'aws:backup:source-resource',
            Value: 'arn:aws:ec2:eu-west-1:111122223333:instance/i-0fffffffffffffff0',
          },
        ],
      },
      'other-source',
    ],
    [
      'one that started before the job existed',
      { StartTime: new Date(waiter.jobCreatedAtMs - 1) },
      'before-job',
    ],
    [
      'one that started once the watchdog may have thawed',
      { StartTime: new Date(waiter.watchdogExpiresAtMs) },
      'after-watchdog',
    ],
    ['one of another volume', { VolumeId: 'vol-0cccccccccccccccc' }, 'other-volume'],
  ] as [string, Partial<Snapshot>, true | string][])('%s', (_, over, expected) => {
    const verdict = judgeSnapshot(ours('vol-0aaaaaaaaaaaaaaaa', start, over), waiter, 'required');
    if (expected === true) {
      expect(verdict).toEqual({
        ok: true,
        snapshot: {
          volumeId: 'vol-0aaaaaaaaaaaaaaaa',
          snapshotId: 'snap-0aaaaaaaaaaaaaaaa',
          startTime: new Date(start).toISOString(),
          imageId: 'ami-0123456789abcdef0',
        },
      });
    } else expect(verdict).toEqual({ ok: false, reason: expected });
  });

  it('counts an untagged CreateImage snapshot only under the if-present rule', () => {
    const untagged = ours('vol-0aaaaaaaaaaaaaaaa', start, { Tags: undefined });
    expect(judgeSnapshot(untagged, waiter, 'required')).toMatchObject({ ok: false, reason: 'untagged' });
    expect(judgeSnapshot(untagged, waiter, 'if-present')).toMatchObject({ ok: true });
  });

  it('needs every volume covered by one AMI: a stray CreateImage cannot complete a set', () => {
    const [a, b] = waiter.volumeIds;
    const stray = ours(b, start, {
      SnapshotId: 'snap-0stray0000000000',
      Description: 'Created by CreateImage(i-0123456789abcdef0) for ami-0ffffffffffffffff',
    });
    const partial = resolveWaiter([ours(a, start), stray], waiter, 'required');
    expect(partial.complete).toBe(false);
    expect(partial.missingVolumeIds).toHaveLength(1);
    const whole = resolveWaiter([ours(a, start), stray, ours(b, start + 40)], waiter, 'required');
    expect(whole).toMatchObject({ complete: true, missingVolumeIds: [] });
    expect(whole.snapshots.map((s) => s.imageId)).toEqual(['ami-0123456789abcdef0', 'ami-0123456789abcdef0']);
  });
});
