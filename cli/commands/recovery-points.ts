import type { BackupClient } from '@aws-sdk/client-backup';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { listRecoveryPoints } from '../../scripts/recovery-points';
import { CONSISTENCY_FILTERS, type Options } from '../args';
import type { AwsClients } from '../aws';
import type { Deployment } from '../deployment';
import { EXIT, UsageError } from '../errors';
import { type Io, table } from '../io';

export async function recoveryPoints(
  aws: AwsClients,
  d: Deployment,
  options: Options,
  io: Io,
): Promise<number> {
  // parseArgs checked it already; a caller that built Options itself is checked here too.
  if (
    options.consistency !== undefined &&
    !(CONSISTENCY_FILTERS as readonly string[]).includes(options.consistency)
  ) {
    throw new UsageError(
      `--consistency: got ${JSON.stringify(options.consistency)}; allowed: ${CONSISTENCY_FILTERS.join(', ')}.`,
    );
  }
  io.progress(`listing recovery points of vault ${d.outputs.vaultName}...`);
  const all = await listRecoveryPoints(
    { backup: aws.backup as BackupClient, ec2: aws.ec2 as EC2Client },
    d.outputs.vaultName,
  );
  const instance = options.instances[0];
  const ofInstance = instance ? all.filter((p) => p.instanceArn.endsWith(`/${instance}`)) : all;
  const shown = options.consistency
    ? ofInstance.filter((p) => p.consistency === options.consistency)
    : ofInstance;
  const counts: Record<string, number> = {};
  for (const p of ofInstance) counts[p.consistency] = (counts[p.consistency] ?? 0) + 1;
  if (options.json) {
    io.out(
      JSON.stringify(
        { vault: d.outputs.vaultName, recoveryPoints: shown, countsByConsistency: counts },
        null,
        2,
      ),
    );
    return EXIT.ok;
  }
  const rows = [...shown]
    .sort((a, b) => b.created.localeCompare(a.created))
    .map((p) => [
      p.recoveryPointArn.split('/').pop() ?? p.recoveryPointArn,
      p.instanceArn.split('/').pop() ?? '',
      p.created.replace('.000Z', 'Z'),
      p.status,
      p.consistency,
      p.freezeMs ? `${p.freezeMs} ms` : '-',
      p.reason,
    ]);
  io.out(
    `Vault ${d.outputs.vaultName} (${d.region}): ${shown.length} recovery point(s)${options.consistency ? ` labelled ${options.consistency}` : ''}${instance ? ` of ${instance}` : ''}`,
  );
  for (const line of table(
    ['RECOVERY POINT', 'INSTANCE', 'CREATED', 'STATUS', 'LABEL', 'FREEZE', 'REASON'],
    rows,
  ))
    io.out(line);
  io.out(
    `By consistency: ${
      Object.entries(counts)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || 'none'
    }.`,
  );
  if (counts.pending)
    io.out('A recovery point still pending lost its verdict: treat it as crash-consistent.');
  return EXIT.ok;
}
