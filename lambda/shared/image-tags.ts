/**
 * Tags of the AMI an EC2 recovery point is. AWS Backup copies the instance's tags and the recovery
 * point tags of StartBackupJob onto the AMI ("Copying tags onto backups" in the AWS Backup guide),
 * and the consistency label is written there with ec2:CreateTags (recovery-point.ts), so the AMI's
 * tags are where a copy or a restore test reads the label, the window and the instance.
 */

import { CreateTagsCommand, DescribeImagesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { TAG_PREFIX } from './tags';

const IMAGE_ARN = /^arn:aws[a-z-]*:ec2:([a-z0-9-]+):\d*:image\/(ami-[0-9a-f]{8,17})$/;

/** `arn:aws:ec2:<region>::image/ami-...` (AWS Backup's EC2 recovery point ARN) -> region and image id. */
export function parseImageArn(arn: string | undefined): { region: string; imageId: string } | undefined {
  const m = arn ? IMAGE_ARN.exec(arn) : null;
  return m ? { region: m[1], imageId: m[2] } : undefined;
}

/** The image's tags, or undefined when the image no longer exists (deleted by its retention). */
export async function readImageTags(
  ec2: Pick<EC2Client, 'send'>,
  imageId: string,
): Promise<Record<string, string> | undefined> {
  try {
    const out = await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    const image = out.Images?.find((i) => i.ImageId === imageId);
    if (!image) return undefined;
    return Object.fromEntries((image.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
  } catch (err) {
    // EC2 answers a deleted image id with InvalidAMIID.NotFound rather than an empty list.
    if ((err as { name?: string }).name?.startsWith('InvalidAMIID')) return undefined;
    throw err;
  }
}

/** Only this app's tags: what a label copy may write (the IAM statements allow ConsistentBackup:* only). */
export function ownTags(tags: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(tags).filter(([k]) => k.startsWith(`${TAG_PREFIX}:`)));
}

export async function writeImageTags(
  ec2: Pick<EC2Client, 'send'>,
  imageId: string,
  tags: Readonly<Record<string, string>>,
): Promise<void> {
  const entries = Object.entries(tags);
  if (entries.length === 0) return;
  await ec2.send(
    new CreateTagsCommand({ Resources: [imageId], Tags: entries.map(([Key, Value]) => ({ Key, Value })) }),
  );
}
