/**
 * One simulated account for the snapshot poller's tests and `npm run bench:poller`: the Coordination table (sim/dynamodb.ts), EC2,
 * AWS Backup, Step Functions and Lambda fakes (sim/snapshot-poller-aws.ts), all on one virtual
 * clock, and helpers that register waiters the way start-backup does (registerWaiter).
 */

import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SnapshotWaiterItem } from '../lambda/shared/coordination';
import { registerWaiter } from '../lambda/shared/snapshot-waiters';
import { type PollerClients, type PollerRun, runPoller } from '../lambda/snapshot-poller/poller';
import { DEFAULT_POLLER_SETTINGS, type PollerSettings } from '../lambda/snapshot-poller/settings';
import { FakeDynamoDb } from './dynamodb';
import { VirtualClock } from './fleet/virtual-clock';
import {
  FAKE_ACCOUNT,
  FAKE_REGION,
  FakeBackupJobs,
  FakeEc2Snapshots,
  FakeLambdaInvoke,
  type FakeSnapshot,
  FakeStepFunctions,
} from './snapshot-poller-aws';

export const TABLE = 'Coordination';
/** A fixed start (2026-12-02T10:00:00Z): epoch milliseconds the waiters' validation accepts. */
export const T0 = Date.UTC(2026, 11, 2, 10, 0, 0);

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');
export const instanceId = (i: number) => `i-${hex(i, 17)}`;
export const volumeId = (i: number, v: number) => `vol-${hex(i * 16 + v, 17)}`;

export class World {
  readonly clock = new VirtualClock(T0 - 60_000);
  readonly table = new FakeDynamoDb(TABLE);
  readonly ddb: DynamoDBClient;
  readonly ec2: FakeEc2Snapshots;
  readonly backup: FakeBackupJobs;
  readonly sfn: FakeStepFunctions;
  readonly lambda: FakeLambdaInvoke;
  private readonly restoreMock: () => void;
  private snapshotSeq = 0;

  constructor() {
    const installed = this.table.install();
    this.ddb = installed.client;
    this.restoreMock = () => installed.mock.restore();
    this.ec2 = new FakeEc2Snapshots(this.clock);
    this.backup = new FakeBackupJobs(this.clock);
    this.sfn = new FakeStepFunctions(this.clock);
    this.lambda = new FakeLambdaInvoke(this.clock);
  }

  close(): void {
    this.restoreMock();
  }

  clients(): PollerClients {
    return { ddb: this.ddb, ec2: this.ec2, backup: this.backup, sfn: this.sfn, lambda: this.lambda };
  }

  settings(overrides: Partial<PollerSettings> = {}): PollerSettings {
    return { ...DEFAULT_POLLER_SETTINGS, tableName: TABLE, functionName: 'snapshot-poller', ...overrides };
  }

  poller(
    holder: string,
    overrides: Partial<PollerSettings> = {},
    clients: PollerClients = this.clients(),
  ): Promise<PollerRun> {
    return runPoller(clients, this.settings(overrides), {
      clock: this.clock,
      holder,
      remainingMs: () => 15 * 60_000,
    });
  }

  /** A waiter as start-backup builds it: job created 300 ms after the freeze, budget 10 s. */
  waiter(i: number, frozenAtMs: number, options: Partial<SnapshotWaiterItem> = {}): SnapshotWaiterItem {
    const jobCreatedAtMs = frozenAtMs + 300;
    return {
      taskToken: `token-${i}-${'x'.repeat(40)}`,
      executionName: `exec-${i}`,
      instanceId: instanceId(i),
      volumeIds: [volumeId(i, 0), volumeId(i, 1)],
      backupJobId: `job-${hex(i, 8)}`,
      jobCreatedAtMs,
      frozenAtAwsMs: frozenAtMs,
      watchdogExpiresAtMs: frozenAtMs + 60_000,
      deadlineMs: frozenAtMs + 10_000,
      registeredAtMs: jobCreatedAtMs + 100,
      ...options,
    };
  }

  /** Registers a waiter at its registeredAtMs (the clock must be there): the task now waits. */
  async register(w: SnapshotWaiterItem): Promise<{ wakePoller: boolean }> {
    this.sfn.wait(w.taskToken);
    this.backup.add({
      BackupJobId: w.backupJobId,
      ResourceArn: `arn:aws:ec2:${FAKE_REGION}:${FAKE_ACCOUNT}:instance/${w.instanceId}`,
      CreationDate: new Date(w.jobCreatedAtMs),
      State: 'RUNNING',
    });
    return registerWaiter(this.ddb, TABLE, w, this.clock.now());
  }

  /** AWS Backup's CreateImage snapshots of a waiter's volumes, starting at startMs. */
  backupSnapshots(w: SnapshotWaiterItem, startMs: number, imageId = `ami-${hex(this.snapshotSeq + 1, 17)}`) {
    const snaps: FakeSnapshot[] = w.volumeIds.map((v) => ({
      SnapshotId: `snap-${hex(++this.snapshotSeq, 17)}`,
      VolumeId: v,
      startMs,
      Description: `Created by CreateImage(${w.instanceId}) for ${imageId}`,
      Tags: [
        {
          Key: 'aws:backup:source-resource',
          Value: `arn:aws:ec2:${FAKE_REGION}:${FAKE_ACCOUNT}:instance/${w.instanceId}`,
        },
        { Key: 'Name', Value: 'copied from the volume, best effort' },
      ],
    }));
    this.ec2.add(...snaps);
    return snaps;
  }

  /** Snapshots of the same volumes that are not AWS Backup's snapshots of this job. */
  otherSnapshots(w: SnapshotWaiterItem, startMs: number): FakeSnapshot[] {
    const next = () => `snap-${hex(++this.snapshotSeq, 17)}`;
    const arn = (v: string) => `arn:aws:ec2:${FAKE_REGION}:${FAKE_ACCOUNT}:volume/${v}`;
    const snaps = w.volumeIds.flatMap((v): FakeSnapshot[] => [
      // DLM EBS snapshot policy (system tags: EBS user guide, Data Lifecycle Manager).
      {
        SnapshotId: next(),
        VolumeId: v,
        startMs,
        Description: 'Created for policy: policy-0123456789abcdef0 schedule: Default Schedule',
        Tags: [
          { Key: 'aws:dlm:lifecycle-policy-id', Value: 'policy-0123456789abcdef0' },
          { Key: 'aws:dlm:lifecycle-schedule-name', Value: 'Default Schedule' },
          { Key: 'dlm:managed', Value: 'true' },
        ],
      },
      // DLM AMI policy: CreateImage of this very instance, but DLM's.
      {
        SnapshotId: next(),
        VolumeId: v,
        startMs,
        Description: `Created by CreateImage(${w.instanceId}) for ami-0dddddddddddddddd`,
        Tags: [{ Key: 'aws:dlm:lifecycle-policy-id', Value: 'policy-0fedcba9876543210' }],
      },
      // A manual CreateSnapshot.
      { SnapshotId: next(), VolumeId: v, startMs, Description: 'before the upgrade' },
      // Someone's manual CreateImage of the instance: no AWS Backup tag.
      {
        SnapshotId: next(),
        VolumeId: v,
        startMs,
        Description: `Created by CreateImage(${w.instanceId}) for ami-0eeeeeeeeeeeeeeee`,
      },
      // Another backup plan's EBS-volume backup.
      {
        SnapshotId: next(),
        VolumeId: v,
        startMs,
        Description: 'This snapshot is created by the AWS Backup service.',
        Tags: [{ Key: 'aws:backup:source-resource', Value: arn(v) }],
      },
    ]);
    this.ec2.add(...snaps);
    return snaps;
  }

  /** The output each token's task accepted, parsed. */
  answerOf(w: SnapshotWaiterItem): Record<string, unknown> | undefined {
    const a = this.sfn.answers.get(w.taskToken);
    return a?.output ? (JSON.parse(a.output) as Record<string, unknown>) : undefined;
  }

  waiterItems(): number {
    return [...this.table.items.values()].filter((i) => i.pk?.S?.startsWith('WAITER#')).length;
  }
}

/** Most calls in any window of `windowMs` (sliding, anchored at each call). */
export function maxInWindow(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let j = 0;
  for (let i = 0; i < sorted.length; i += 1) {
    while (sorted[i] - sorted[j] >= windowMs) j += 1;
    best = Math.max(best, i - j + 1);
  }
  return best;
}
