import { DescribeInstancesCommand, type DescribeInstancesCommandOutput } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import { toFleetInstance } from '../../lambda/discovery/instances';
import { parseInstanceOptions } from '../../lambda/shared/instance-options';
import type { FreezeFailurePolicy } from '../../lambda/shared/options';
import { OPTION_TAGS } from '../../lambda/shared/tags';
import type { Options } from '../args';
import type { AwsClients } from '../aws';
import type { Deployment } from '../deployment';
import { CliError, describe, EXIT, UsageError } from '../errors';
import { type Io, table } from '../io';

const TERMINAL = new Set(['Success', 'Failed', 'Cancelled', 'TimedOut']);

interface PreflightResult {
  readonly status?: string;
  readonly problems?: { code: string; message: string }[];
  readonly warnings?: string[];
  readonly targets?: { mountpoint: string; fstype: string; volumeIds: string[] }[];
  readonly skipped?: { mountpoint: string; fstype: string; reason: string }[];
  readonly unmapped?: { volumeId: string; reason: string }[];
  readonly protected?: { mountpoint: string; holds: string }[];
  readonly hooks?: { preFreeze: string[]; postThaw: string[] };
  /** Each application the Apps parameter named, its packaged hook run in its check phase. */
  readonly apps?: { app: string; ready: boolean; exitCode: number | null; message: string }[];
}

export async function preflight(aws: AwsClients, d: Deployment, options: Options, io: Io): Promise<number> {
  const instanceId = options.instances[0] as string;
  let raw: DescribeInstancesCommandOutput;
  try {
    raw = await aws.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  } catch (err) {
    if ((err as Error).name === 'InvalidInstanceID.NotFound')
      throw new UsageError(`${(err as Error).message} (Region ${d.region}).`);
    throw err;
  }
  const reservation = raw.Reservations?.[0];
  const found = reservation?.Instances?.[0];
  const instance = found ? toFleetInstance(found, reservation?.OwnerId ?? d.account) : undefined;
  if (!instance) throw new UsageError(`Instance ${instanceId} not found in ${d.region}.`);
  if (instance.state !== 'running') {
    throw new CliError(
      `${instanceId} is ${instance.state}: preflight runs on a running instance (a stopped one is backed up without a freeze).`,
      EXIT.attention,
    );
  }
  if (instance.volumeIds.length === 0)
    throw new CliError(`${instanceId} has no attached EBS volume.`, EXIT.attention);
  const parsed = parseInstanceOptions(instance.tags, d.settings.onFreezeFailure as FreezeFailurePolicy);
  const opts: { include: string; exclude: string; apps?: string } = parsed.ok
    ? parsed.options
    : { include: '', exclude: '' };
  // A tag discovery refuses excludes the instance from every backup: as much a problem as any the
  // document finds. The document still runs, without the options it could not read.
  const tagProblems = parsed.ok ? [] : parsed.problems;
  let commandId: string;
  try {
    const sent = await aws.ssm.send(
      new SendCommandCommand({
        DocumentName: d.outputs.preflightDocumentName,
        InstanceIds: [instanceId],
        Parameters: {
          VolumeIds: [instance.volumeIds.join(',')],
          VolumeDevices: [instance.volumeDevices.join(',')],
          Include: [opts.include],
          Exclude: [opts.exclude],
          // The applications the instance's Apps tag selects: the document checks each one's hook.
          ...(opts.apps !== undefined ? { Apps: [opts.apps] } : {}),
        },
        TimeoutSeconds: 30,
        Comment: 'ec2-consistent-backup preflight (npx ec2-consistent-backup)',
      }),
    );
    commandId = sent.Command?.CommandId as string;
  } catch (err) {
    throw new CliError(`Could not send the preflight document to ${instanceId}: ${describe(err)}`, EXIT.aws);
  }
  const started = io.now().getTime();
  const limit = (options.timeoutSeconds ?? 120) * 1000;
  let invocation: {
    Status?: string;
    StandardOutputContent?: string;
    StandardErrorContent?: string;
    StatusDetails?: string;
  } = {};
  for (;;) {
    await io.sleep(1000);
    try {
      invocation = await aws.ssm.send(
        new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
      );
    } catch (err) {
      // Right after SendCommand the invocation may not exist yet.
      if ((err as Error).name !== 'InvocationDoesNotExist') throw err;
    }
    const elapsed = io.now().getTime() - started;
    io.progress(
      `preflight on ${instanceId}: ${invocation.StatusDetails ?? invocation.Status ?? 'sent'} (${Math.round(elapsed / 1000)} s)`,
    );
    if (invocation.Status && TERMINAL.has(invocation.Status)) break;
    if (elapsed >= limit) {
      throw new CliError(
        `preflight on ${instanceId} did not finish within ${limit / 1000} s (command ${commandId}, status ${invocation.Status ?? 'unknown'}). Is the SSM agent online?`,
        EXIT.attention,
      );
    }
  }
  let result: PreflightResult = {};
  try {
    result = JSON.parse(invocation.StandardOutputContent ?? '') as PreflightResult;
  } catch {
    throw new CliError(
      `preflight on ${instanceId} ended ${invocation.Status} without its JSON result (command ${commandId}): ${(invocation.StandardErrorContent ?? '').trim().slice(-500)}`,
      EXIT.attention,
    );
  }
  const ready = result.status === 'ready' && tagProblems.length === 0;
  if (options.json) {
    io.out(
      JSON.stringify(
        { instanceId, commandId, ready, ...(tagProblems.length ? { tagProblems } : {}), result },
        null,
        2,
      ),
    );
    return ready ? EXIT.ok : EXIT.attention;
  }
  io.out(
    `${instanceId}: ${ready ? 'ready' : 'NOT READY'} for a consistent backup (preflight command ${commandId})`,
  );
  const rows = [
    ...(result.targets ?? []).map((t) => ['freeze', t.mountpoint, t.fstype, t.volumeIds.join(',')]),
    ...(result.protected ?? []).map((p) => ['protected', p.mountpoint, '', `holds ${p.holds}`]),
    ...(result.skipped ?? []).map((s) => ['skipped', s.mountpoint, s.fstype, s.reason]),
    ...(result.unmapped ?? []).map((u) => ['unmapped', u.volumeId, '', u.reason]),
  ];
  for (const line of table(['WHAT', 'MOUNT/VOLUME', 'FSTYPE', 'DETAIL'], rows)) io.out(line);
  const hooks = result.hooks;
  io.out(
    `Hooks: pre-freeze ${hooks?.preFreeze.length ? hooks.preFreeze.join(', ') : 'none'}; post-thaw ${hooks?.postThaw.length ? hooks.postThaw.join(', ') : 'none'}.`,
  );
  if (opts.apps !== undefined) {
    const apps = result.apps ?? [];
    const selected = `Applications (tag ${OPTION_TAGS.apps}=${opts.apps || '""'})`;
    if (apps.length === 0) io.out(`${selected}: none selected.`);
    else {
      io.out(`${selected}:`);
      const rows = apps.map((a) => [
        a.app,
        a.ready ? 'yes' : a.exitCode === null ? 'not installed' : 'NO',
        // The check's first line; the second names the hook's version.
        a.message.split('\n')[0],
      ]);
      for (const line of table(['APP', 'READY', 'DETAIL'], rows)) io.out(line);
    }
  }
  for (const w of result.warnings ?? []) io.out(`Warning: ${w}`);
  for (const p of result.problems ?? []) io.out(`Problem (${p.code}): ${p.message}`);
  for (const p of tagProblems)
    io.out(
      `Problem (TAG_INVALID): Tag ${p.tag} has the invalid value ${JSON.stringify(p.value)}; allowed: ${p.allowed}. Discovery excludes this instance until it is fixed.`,
    );
  return ready ? EXIT.ok : EXIT.attention;
}
