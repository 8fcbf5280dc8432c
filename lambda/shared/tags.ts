/**
 * The one tag convention of ec2-consistent-backup, used by discovery, the workflow, the IAM
 * conditions in lib/ and the README.
 *
 * - Opt-in: `<optInTagKey>=<optInTagValue>` on the instance (configurable; default `ConsistentBackup=enabled`).
 * - Per-instance options: `ConsistentBackup:<Option>` tags on the instance, each validated.
 * - Results: `ConsistentBackup:<Field>` tags on every recovery point.
 */

export const TAG_PREFIX = 'ConsistentBackup';

/** Per-instance option tags, read by discovery and validated there. */
export const OPTION_TAGS = {
  /** Blast-radius group: at most maxFrozenPerGroup instances of one group are frozen at once. */
  group: `${TAG_PREFIX}:Group`,
  /** Mount points to freeze in addition to the discovered data filesystems (comma or space separated absolute paths). */
  include: `${TAG_PREFIX}:Include`,
  /** Mount points never to freeze (comma or space separated absolute paths). */
  exclude: `${TAG_PREFIX}:Exclude`,
  /** Per-instance override of onFreezeFailure: `crash-consistent` or `skip`. */
  onFreezeFailure: `${TAG_PREFIX}:OnFreezeFailure`,
  /** `skip` leaves the instance out of restore testing (read from its latest recovery point's copy of the tag). */
  restoreTest: `${TAG_PREFIX}:RestoreTest`,
  /** Packaged application hooks to run around the freeze: `postgresql`, `mysql`, `redis` (lambda/shared/apps.ts). */
  apps: `${TAG_PREFIX}:Apps`,
} as const;

/** Tags every recovery point carries. A user lists recovery points by consistency with these. */
export const RECOVERY_POINT_TAGS = {
  consistency: `${TAG_PREFIX}:Consistency`,
  reason: `${TAG_PREFIX}:Reason`,
  freezeMs: `${TAG_PREFIX}:FreezeMs`,
  execution: `${TAG_PREFIX}:Execution`,
  window: `${TAG_PREFIX}:Window`,
  instance: `${TAG_PREFIX}:Instance`,
  /** `<verified|failed|inconclusive> <yyyy-mm-ddThh:mmZ>`: the last restore test of this recovery point (lambda/restore-validation). */
  verified: `${TAG_PREFIX}:Verified`,
} as const;

/** AWS Backup tags every resource a restore test creates with this key (restore testing guide, "Data deletion"). */
export const RESTORE_TEST_TAG = 'awsbackup-restore-test';

/** Instance Name tag, shown in notifications. */
export const NAME_TAG = 'Name';
