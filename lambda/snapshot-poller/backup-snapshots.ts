/**
 * Which snapshot ends a freeze: only **AWS Backup's own snapshot of this job**, never just any
 * snapshot of the volume. A DLM, manual or other-plan snapshot that starts while the filesystems
 * are frozen says nothing about our backup's point in time, so it must never end the wait.
 *
 * The evidence (docs/aws-facts.md, "Identifying AWS Backup's snapshots of one EC2 job"):
 * 1. AWS Backup backs up an EC2 instance with EC2 CreateImage: its service role policy
 *    AWSBackupServiceRolePolicyForBackup grants `ec2:CreateImage` (statement EC2Permissions) and
 *    nothing that snapshots an instance's volumes otherwise (`ec2:CreateSnapshot` serves EBS-volume
 *    backups). [documented: AWS managed policy reference, AWSBackupServiceRolePolicyForBackup]
 * 2. The snapshots CreateImage takes carry the instance and the AMI in their Description:
 *    `Created by CreateImage(i-...) for ami-...` (some older ones add ` from vol-...`). The EC2
 *    guide says to find an AMI's snapshots by its AMI id in the Description column; the exact
 *    wording is what moto, public tools and observed accounts show. [documented + inferred]
 *    An EBS-volume backup of AWS Backup (another plan) reads `This snapshot is created by the AWS
 *    Backup service.`; a manual or DLM CreateSnapshot has its caller's description: neither matches.
 * 3. DLM tags everything it creates with system tags `aws:dlm:*` (`aws:dlm:lifecycle-policy-id`,
 *    `aws:dlm:managed`, ...), AMI policies included. [documented: EBS guide, Data Lifecycle Manager]
 * 4. AWS Backup's snapshots carry the system tag `aws:backup:source-resource` (its own policies
 *    condition ec2:ModifySnapshotAttribute/ModifySnapshotTier on that tag being present; its
 *    value names the protected resource). `aws:` keys cannot be written by anyone else.
 *    [documented that the tag exists on AWS Backup snapshots (managed policies); the value's exact
 *    format and *when* it appears are not published]
 * 5. AWS Backup runs one job per resource at a time (QUOTAS.md): no other plan's EC2 job of this
 *    instance can take snapshots while ours runs, so CreateImage snapshots of this instance that
 *    start at or after our job's CreationDate and carry AWS Backup's tag are our job's.
 * 6. One CreateImage makes one AMI: every volume of the waiter must be matched by snapshots of the
 *    same AMI, so a stray CreateImage cannot complete a set with ours.
 *
 * The tag rule is a setting (`backupTagRule`): `required` (default) counts a snapshot only once it
 * carries `aws:backup:source-resource` naming this instance, which excludes a manual CreateImage of
 * the same instance during the freeze; `if-present` also counts an untagged CreateImage snapshot
 * (faster if AWS Backup tags after creation, at the price of that exclusion). Whether the tag is
 * present while the snapshot is `pending` is to be verified once in a real account
 * (docs/aws-facts.md, "To verify once"): if it is not, `required` ends every freeze at its budget
 * (reported budget-exceeded, never silent), and the setting must move to `if-present`.
 */

import type { Snapshot } from '@aws-sdk/client-ec2';
import type { SnapshotWaiterItem } from '../shared/coordination';
import type { StartedSnapshot } from '../shared/workflow-results';

export type BackupTagRule = 'required' | 'if-present';
export const BACKUP_TAG_RULES: readonly BackupTagRule[] = ['required', 'if-present'];

/** Set by AWS Backup on what it creates; only AWS services write `aws:` tags. */
export const BACKUP_SOURCE_TAG = 'aws:backup:source-resource';
/** DLM's system tags all start with this. */
export const DLM_TAG_PREFIX = 'aws:dlm:';

const CREATE_IMAGE = /^Created by CreateImage\((i-[0-9a-f]+)\) for (ami-[0-9a-f]+)(?: from vol-[0-9a-f]+)?$/;

/** A snapshot counted for one volume of a waiter, with the AMI whose CreateImage took it. */
export interface BackupSnapshot extends StartedSnapshot {
  readonly imageId: string;
}

export type Verdict =
  | { readonly ok: true; readonly snapshot: BackupSnapshot }
  | {
      readonly ok: false;
      readonly reason:
        | 'other-volume'
        | 'failed'
        | 'no-start-time'
        | 'not-create-image'
        | 'other-instance'
        | 'dlm'
        | 'untagged'
        | 'other-source'
        | 'before-job'
        | 'after-watchdog';
    };

function toMs(value: unknown): number | undefined {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}

/** Does the tag value name this instance (an instance ARN, or the bare id)? */
function namesInstance(value: string, instanceId: string): boolean {
  return value === instanceId || value.endsWith(`:instance/${instanceId}`);
}

/** Is this snapshot AWS Backup's snapshot of this waiter's job, taken while frozen? */
export function judgeSnapshot(s: Snapshot, w: SnapshotWaiterItem, rule: BackupTagRule): Verdict {
  if (!s.VolumeId || !s.SnapshotId || !w.volumeIds.includes(s.VolumeId))
    return { ok: false, reason: 'other-volume' };
  // pending: its point in time is fixed (the EC2 guide); completed likewise. error never counts.
  if (s.State !== 'pending' && s.State !== 'completed') return { ok: false, reason: 'failed' };
  const startMs = toMs(s.StartTime);
  if (startMs === undefined) return { ok: false, reason: 'no-start-time' };
  const m = CREATE_IMAGE.exec(s.Description ?? '');
  if (!m) return { ok: false, reason: 'not-create-image' };
  if (m[1] !== w.instanceId) return { ok: false, reason: 'other-instance' };
  const tags = s.Tags ?? [];
  if (tags.some((t) => t.Key?.startsWith(DLM_TAG_PREFIX))) return { ok: false, reason: 'dlm' };
  const source = tags.find((t) => t.Key === BACKUP_SOURCE_TAG)?.Value;
  if (source === undefined && rule === 'required') return { ok: false, reason: 'untagged' };
  if (source !== undefined && !namesInstance(source, w.instanceId))
    return { ok: false, reason: 'other-source' };
  // At or after our job's creation (no earlier snapshot can be this job's) and the freeze.
  if (startMs < Math.max(w.jobCreatedAtMs, w.frozenAtAwsMs)) return { ok: false, reason: 'before-job' };
  // The watchdog may have thawed from then on: a later snapshot was not taken frozen.
  if (startMs >= w.watchdogExpiresAtMs) return { ok: false, reason: 'after-watchdog' };
  return {
    ok: true,
    snapshot: {
      volumeId: s.VolumeId,
      snapshotId: s.SnapshotId,
      startTime: new Date(startMs).toISOString(),
      imageId: m[2],
    },
  };
}

export interface Resolution {
  /** Every volume has a snapshot of one and the same AMI. */
  readonly complete: boolean;
  /** The best set found so far (of the AMI covering the most volumes), one per volume. */
  readonly snapshots: readonly BackupSnapshot[];
  readonly missingVolumeIds: readonly string[];
}

/**
 * The waiter's snapshots among those listed for its volumes: grouped by AMI, the AMI covering
 * every volume wins (the one whose last snapshot started first, if several do).
 */
export function resolveWaiter(
  listed: Iterable<Snapshot>,
  w: SnapshotWaiterItem,
  rule: BackupTagRule,
): Resolution {
  const byImage = new Map<string, Map<string, BackupSnapshot>>();
  for (const s of listed) {
    const v = judgeSnapshot(s, w, rule);
    if (!v.ok) continue;
    const perVolume = byImage.get(v.snapshot.imageId) ?? new Map<string, BackupSnapshot>();
    const seen = perVolume.get(v.snapshot.volumeId);
    if (!seen || v.snapshot.startTime < seen.startTime) perVolume.set(v.snapshot.volumeId, v.snapshot);
    byImage.set(v.snapshot.imageId, perVolume);
  }
  const lastStart = (m: Map<string, BackupSnapshot>) =>
    [...m.values()].reduce((max, s) => (s.startTime > max ? s.startTime : max), '');
  const best = [...byImage.values()].sort(
    (a, b) => b.size - a.size || lastStart(a).localeCompare(lastStart(b)),
  )[0];
  const snapshots = best
    ? w.volumeIds.flatMap((v) => (best.has(v) ? [best.get(v) as BackupSnapshot] : []))
    : [];
  const missingVolumeIds = w.volumeIds.filter((v) => !best?.has(v));
  return { complete: missingVolumeIds.length === 0, snapshots, missingVolumeIds };
}
