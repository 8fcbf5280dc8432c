/**
 * Writes the consistency label onto a recovery point. Called by the label-writer
 * (lambda/label-writer) once the job has completed and its verdict is recorded: StartBackupJob
 * names no recovery point for EC2, DescribeBackupJob does for the completed job
 * (lambda/shared/labels.ts).
 *
 * An EC2 recovery point is an AMI (`arn:aws:ec2:<region>::image/ami-...`). AWS Backup's TagResource
 * only manages tags of resource types under full AWS Backup management, which EC2 is not, and the
 * recovery point tags given to StartBackupJob land on the AMI: so an EC2 label is written with
 * ec2:CreateTags on the image. This app backs up EC2 instances only, so any other recovery point
 * is refused rather than tagged: no function holds backup:TagResource.
 */

import type { BackupClient } from '@aws-sdk/client-backup';
import { CreateTagsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { ConsistencyTag, ConsistencyVerdict } from './consistency';
import { RECOVERY_POINT_TAGS } from './tags';

/** What a tag value may hold across EC2 and AWS Backup (same set as lib/config.ts accepts). */
const TAG_VALUE_CHAR = /[^\p{L}\p{Z}\p{N}_.:/=+\-@]/gu;

/** Make free text a valid tag value: disallowed characters become spaces, 256 characters at most. */
export function tagValue(text: string): string {
  const cleaned = text.replace(TAG_VALUE_CHAR, ' ').replace(/\s+/g, ' ').trim();
  return (cleaned || '-').slice(0, 256);
}

/** The label tags for a verdict (`pending` before one exists). */
export function consistencyTags(
  verdict: ConsistencyVerdict | { consistency: ConsistencyTag; reason: string; freezeMs: number },
): Record<string, string> {
  return {
    [RECOVERY_POINT_TAGS.consistency]: verdict.consistency,
    [RECOVERY_POINT_TAGS.reason]: tagValue(verdict.reason),
    [RECOVERY_POINT_TAGS.freezeMs]: String(Math.max(0, Math.round(verdict.freezeMs))),
  };
}

export type RecoveryPointTarget =
  | { readonly kind: 'ec2-image'; readonly imageId: string; readonly region: string }
  | { readonly kind: 'backup'; readonly arn: string };

const IMAGE_ARN = /^arn:aws[a-z-]*:ec2:([a-z0-9-]+):\d*:image\/(ami-[0-9a-f]{8,17})$/;

/** Which API tags this recovery point. Throws, naming the value, for something that is not an ARN. */
export function recoveryPointTarget(arn: string): RecoveryPointTarget {
  const image = IMAGE_ARN.exec(arn);
  if (image) return { kind: 'ec2-image', imageId: image[2], region: image[1] };
  if (!/^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d*:.+/.test(arn)) {
    throw new Error(
      `Invalid recovery point ARN ${JSON.stringify(arn)}: expected arn:aws:ec2:<region>::image/ami-... or an AWS Backup recovery point ARN.`,
    );
  }
  return { kind: 'backup', arn };
}

export interface RecoveryPointClients {
  readonly ec2: Pick<EC2Client, 'send'>;
  /** Not called: EC2 recovery points are tagged through EC2. Optional so older callers compile. */
  readonly backup?: Pick<BackupClient, 'send'>;
}

export class NotAnEc2RecoveryPointError extends Error {
  override readonly name = 'NotAnEc2RecoveryPointError';
}

/**
 * Tag a recovery point with its consistency label. Throws the API's error: callers decide whether a
 * missing label is a warning (record-outcome: job-events re-asserts it) or a failure.
 */
export async function tagRecoveryPoint(
  clients: RecoveryPointClients,
  recoveryPointArn: string,
  verdict: ConsistencyVerdict,
): Promise<RecoveryPointTarget> {
  const target = recoveryPointTarget(recoveryPointArn);
  if (target.kind !== 'ec2-image') {
    throw new NotAnEc2RecoveryPointError(
      `Recovery point ${JSON.stringify(recoveryPointArn)} is not an EC2 image (arn:aws:ec2:<region>::image/ami-...): this app labels only the AMIs of its EC2 backups.`,
    );
  }
  const tags = consistencyTags(verdict);
  await clients.ec2.send(
    new CreateTagsCommand({
      Resources: [target.imageId],
      Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
    }),
  );
  return target;
}
