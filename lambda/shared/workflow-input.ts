import type { FreezeFailurePolicy } from './options';

/**
 * What discovery hands each per-instance Step Functions execution, so the workflow repeats no
 * look-up discovery already made. Defined once here; lib/workflow.ts reads these paths.
 */
export interface WorkflowInput {
  readonly schemaVersion: 1;
  /** The scheduled run this execution belongs to (one per schedule window). */
  readonly runId: string;
  /** ISO-8601 UTC start of the schedule window, e.g. 2026-11-22T02:00:00Z. */
  readonly window: string;
  readonly accountId: string;
  readonly region: string;
  readonly instanceId: string;
  /** arn:aws:ec2:<region>:<account>:instance/<id>, the resource AWS Backup backs up. */
  readonly instanceArn: string;
  /** The Name tag, when present. */
  readonly instanceName?: string;
  readonly platform: 'linux' | 'windows';
  /** `stopped` instances are backed up without a freeze. */
  readonly instanceState: 'running' | 'stopped';
  /** Attached EBS volume ids from the block device mappings. */
  readonly volumeIds: readonly string[];
  /**
   * `vol-id=/dev/name`, one per attached volume whose block device mapping's DeviceName fits
   * {@link VOLUME_DEVICE_ENTRY}; the probe joins them into the freeze's `VolumeDevices`. Xen instances
   * need them: no device there carries its volume id. Optional so that input written before the
   * field existed still runs (the workflow then sends none, as before).
   */
  readonly volumeDevices?: readonly string[];
  /** ISO-8601 UTC: the execution waits until then before freezing (blast-radius staggering). */
  readonly startAt: string;
  /** ISO-8601 UTC: the instance refuses a freeze command that arrives after this. */
  readonly notAfter: string;
  /** Blast-radius group from the group tag, when present. */
  readonly group?: string;
  readonly options: InstanceOptions;
}

export interface InstanceOptions {
  /** Extra mount points to freeze, comma separated, validated (may be empty). */
  readonly include: string;
  /** Mount points never to freeze, comma separated, validated (may be empty). */
  readonly exclude: string;
  readonly onFreezeFailure: FreezeFailurePolicy;
  /**
   * Packaged application hooks from the Apps tag, canonical and comma separated (lambda/shared/apps.ts).
   * Absent without the tag (nothing installed or removed); empty with an empty tag (installed ones removed).
   */
  readonly apps?: string;
}

/**
 * One entry of the freeze document's `VolumeDevices` parameter (ssm-documents/freeze.yml allowedPattern,
 * which also caps the list at MAX_FREEZE_VOLUMES entries). A device name outside this is left out,
 * never passed raw: the document would refuse the whole command.
 */
export const VOLUME_DEVICE_ENTRY = /^vol-[0-9a-f]{8,17}=\/dev\/[a-z0-9]{1,16}$/;
