import { DescribeInstancesCommand, type EC2Client, type Instance } from '@aws-sdk/client-ec2';
import { NAME_TAG, TAG_PREFIX } from '../shared/tags';
import { VOLUME_DEVICE_ENTRY } from '../shared/workflow-input';

/**
 * The opted-in fleet, from paginated DescribeInstances. Each instance is reduced to the few fields
 * discovery uses, so 100,000 of them fit comfortably in a Lambda's memory.
 */
export interface FleetInstance {
  readonly instanceId: string;
  /** The account that owns the instance (the reservation's owner), used in its ARN. */
  readonly ownerId: string;
  /** EC2 state name: pending, running, stopping, stopped, shutting-down. */
  readonly state: string;
  readonly instanceType?: string;
  /** EC2 says 'windows' for Windows instances and nothing otherwise. */
  readonly ec2Platform?: string;
  /** e.g. 'Windows', 'Linux/UNIX', 'Red Hat Enterprise Linux'. */
  readonly platformDetails?: string;
  /** 'ebs' or 'instance-store'. */
  readonly rootDeviceType?: string;
  /** Attached EBS volumes from the block device mappings, in mapping order. */
  readonly volumeIds: readonly string[];
  /** `vol-id=/dev/name` for the attached volumes whose DeviceName fits the freeze document's pattern. */
  readonly volumeDevices: readonly string[];
  /** Only the Name tag and the ConsistentBackup:* option tags. */
  readonly tags: readonly { readonly Key: string; readonly Value: string }[];
}

/** States discovery reports on. Terminated instances are gone and not worth a notification. */
export const LISTED_STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down'];

/** The largest page DescribeInstances returns. */
const PAGE_SIZE = 1000;

export function toFleetInstance(instance: Instance, ownerId: string): FleetInstance | undefined {
  if (!instance.InstanceId) return undefined;
  const volumeIds: string[] = [];
  const volumeDevices: string[] = [];
  for (const mapping of instance.BlockDeviceMappings ?? []) {
    const ebs = mapping.Ebs;
    // A volume being detached is no longer part of the instance's data.
    if (
      ebs?.VolumeId &&
      (ebs.Status === undefined || ebs.Status === 'attached' || ebs.Status === 'attaching')
    ) {
      volumeIds.push(ebs.VolumeId);
      const device = `${ebs.VolumeId}=${mapping.DeviceName ?? ''}`;
      if (VOLUME_DEVICE_ENTRY.test(device)) volumeDevices.push(device);
    }
  }
  const tags: { Key: string; Value: string }[] = [];
  for (const tag of instance.Tags ?? []) {
    if (tag.Key && (tag.Key === NAME_TAG || tag.Key.startsWith(`${TAG_PREFIX}:`))) {
      tags.push({ Key: tag.Key, Value: tag.Value ?? '' });
    }
  }
  return {
    instanceId: instance.InstanceId,
    ownerId,
    state: instance.State?.Name ?? 'unknown',
    ...(instance.InstanceType ? { instanceType: instance.InstanceType } : {}),
    ...(instance.Platform ? { ec2Platform: instance.Platform } : {}),
    ...(instance.PlatformDetails ? { platformDetails: instance.PlatformDetails } : {}),
    ...(instance.RootDeviceType ? { rootDeviceType: instance.RootDeviceType } : {}),
    volumeIds,
    volumeDevices,
    tags,
  };
}

/** Every instance carrying `<tagKey>=<tagValue>` in a listed state, across all pages. */
export async function listOptedInInstances(
  ec2: EC2Client,
  tagKey: string,
  tagValue: string,
): Promise<{ instances: FleetInstance[]; pages: number }> {
  const instances: FleetInstance[] = [];
  const seen = new Set<string>();
  let nextToken: string | undefined;
  let pages = 0;
  do {
    const page = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: `tag:${tagKey}`, Values: [tagValue] },
          { Name: 'instance-state-name', Values: LISTED_STATES },
        ],
        MaxResults: PAGE_SIZE,
        NextToken: nextToken,
      }),
    );
    pages++;
    for (const reservation of page.Reservations ?? []) {
      for (const raw of reservation.Instances ?? []) {
        const instance = toFleetInstance(raw, reservation.OwnerId ?? '');
        // Pages are snapshots taken at different moments; an instance must not count twice.
        if (instance && !seen.has(instance.instanceId)) {
          seen.add(instance.instanceId);
          instances.push(instance);
        }
      }
    }
    nextToken = page.NextToken || undefined;
  } while (nextToken);
  return { instances, pages };
}
