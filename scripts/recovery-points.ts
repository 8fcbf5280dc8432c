/**
 * npx tsx scripts/recovery-points.ts --vault <name> [--consistency application|filesystem|crash|pending] [--region r]
 *
 * Lists the vault's EC2 recovery points with the consistency label the workflow wrote on their AMI
 * (ConsistentBackup:Consistency/Reason/FreezeMs). A point still `pending` lost its verdict: treat it
 * as crash-consistent.
 */
import '../sim/local-node';
import { BackupClient, ListRecoveryPointsByBackupVaultCommand } from '@aws-sdk/client-backup';
import { DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { recoveryPointTarget } from '../lambda/shared/recovery-point';
import { RECOVERY_POINT_TAGS } from '../lambda/shared/tags';

export interface LabelledRecoveryPoint {
  readonly recoveryPointArn: string;
  readonly instanceArn: string;
  readonly created: string;
  readonly status: string;
  readonly consistency: string;
  readonly reason: string;
  readonly freezeMs: string;
}

const LABELS = ['application', 'filesystem', 'crash', 'pending'];

export async function listRecoveryPoints(
  clients: { backup: Pick<BackupClient, 'send'>; ec2: Pick<EC2Client, 'send'> },
  vaultName: string,
): Promise<LabelledRecoveryPoint[]> {
  const points: { arn: string; resource: string; created: string; status: string }[] = [];
  let NextToken: string | undefined;
  do {
    const page = await clients.backup.send(
      new ListRecoveryPointsByBackupVaultCommand({
        BackupVaultName: vaultName,
        ByResourceType: 'EC2',
        NextToken,
      }),
    );
    for (const p of page.RecoveryPoints ?? []) {
      if (!p.RecoveryPointArn) continue;
      points.push({
        arn: p.RecoveryPointArn,
        resource: p.ResourceArn ?? '',
        created: p.CreationDate ? new Date(p.CreationDate).toISOString() : '',
        status: p.Status ?? '',
      });
    }
    NextToken = page.NextToken;
  } while (NextToken);

  const tags = new Map<string, Record<string, string>>();
  const imageIds = points.flatMap((p) => {
    const t = recoveryPointTarget(p.arn);
    return t.kind === 'ec2-image' ? [t.imageId] : [];
  });
  for (let i = 0; i < imageIds.length; i += 100) {
    const res = await clients.ec2.send(new DescribeImagesCommand({ ImageIds: imageIds.slice(i, i + 100) }));
    for (const image of res.Images ?? []) {
      if (image.ImageId)
        tags.set(
          image.ImageId,
          Object.fromEntries((image.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])),
        );
    }
  }
  return points.map((p) => {
    const t = recoveryPointTarget(p.arn);
    const imageTags = t.kind === 'ec2-image' ? (tags.get(t.imageId) ?? {}) : {};
    return {
      recoveryPointArn: p.arn,
      instanceArn: p.resource,
      created: p.created,
      status: p.status,
      // No label at all: not made by this workflow, or its tags were lost; either way not known consistent.
      consistency: imageTags[RECOVERY_POINT_TAGS.consistency] ?? 'unlabelled',
      reason: imageTags[RECOVERY_POINT_TAGS.reason] ?? '',
      freezeMs: imageTags[RECOVERY_POINT_TAGS.freezeMs] ?? '',
    };
  });
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const vault = arg('vault');
  const consistency = arg('consistency');
  if (!vault || !/^[a-zA-Z0-9\-_]{2,50}$/.test(vault)) {
    throw new Error(
      `Invalid --vault: got ${JSON.stringify(vault)}; allowed: a backup vault name of 2-50 letters, digits, - or _.`,
    );
  }
  if (consistency !== undefined && !LABELS.includes(consistency)) {
    throw new Error(
      `Invalid --consistency: got ${JSON.stringify(consistency)}; allowed: ${LABELS.join(', ')}.`,
    );
  }
  const region = arg('region');
  const points = await listRecoveryPoints(
    { backup: new BackupClient(region ? { region } : {}), ec2: new EC2Client(region ? { region } : {}) },
    vault,
  );
  const shown = consistency ? points.filter((p) => p.consistency === consistency) : points;
  console.table(
    shown.map(({ recoveryPointArn, instanceArn, ...rest }) => ({
      recoveryPoint: recoveryPointArn.split('/').pop(),
      instance: instanceArn.split('/').pop(),
      ...rest,
    })),
  );
  const counts: Record<string, number> = {};
  for (const p of points) counts[p.consistency] = (counts[p.consistency] ?? 0) + 1;
  console.log(`by consistency: ${JSON.stringify(counts)}`);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
