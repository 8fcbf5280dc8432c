import { DescribeInstancesCommand, type Filter, type Instance } from '@aws-sdk/client-ec2';
import { InvokeCommand } from '@aws-sdk/client-lambda';
import { onDemandId } from '../../lambda/discovery/on-demand';
import { OPTION_TAGS } from '../../lambda/shared/tags';
import type { Options } from '../args';
import type { AwsClients } from '../aws';
import type { Deployment } from '../deployment';
import { CliError, describe, EXIT, UsageError } from '../errors';
import type { Io } from '../io';
import { follow } from './watch';

async function describeInstances(
  aws: AwsClients,
  input: { InstanceIds?: string[]; Filters?: Filter[] },
): Promise<Instance[]> {
  const found: Instance[] = [];
  let NextToken: string | undefined;
  do {
    const page = await aws.ec2.send(new DescribeInstancesCommand({ ...input, NextToken }));
    for (const r of page.Reservations ?? []) found.push(...(r.Instances ?? []));
    NextToken = page.NextToken;
  } while (NextToken);
  return found;
}

/** The instances the request covers, checked to be opted in: discovery would leave out any other. */
async function targets(aws: AwsClients, d: Deployment, options: Options): Promise<string[]> {
  const { optInTagKey: key, optInTagValue: value } = d.settings;
  const optIn = `${key}=${value}`;
  const live = { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] };
  if (options.instances.length > 0) {
    let instances: Instance[];
    try {
      instances = await describeInstances(aws, { InstanceIds: [...options.instances] });
    } catch (err) {
      if ((err as Error).name === 'InvalidInstanceID.NotFound') {
        throw new UsageError(`${(err as Error).message} (Region ${d.region}).`);
      }
      throw err;
    }
    const notOptedIn = instances
      .filter((i) => !(i.Tags ?? []).some((t) => t.Key === key && t.Value === value))
      .map((i) => i.InstanceId);
    if (notOptedIn.length) {
      throw new UsageError(
        `Not opted in (no tag ${optIn}): ${notOptedIn.join(', ')}. Tag them first; discovery backs up only opted-in instances.`,
      );
    }
    return [...options.instances];
  }
  const filters: Filter[] = [{ Name: `tag:${key}`, Values: [value] }, live];
  if (options.group !== undefined)
    filters.push({ Name: `tag:${OPTION_TAGS.group}`, Values: [options.group] });
  const ids = (await describeInstances(aws, { Filters: filters })).map((i) => i.InstanceId as string);
  if (ids.length === 0) {
    throw new UsageError(
      options.group !== undefined
        ? `No opted-in instance (${optIn}) is in group ${JSON.stringify(options.group)} (tag ${OPTION_TAGS.group}).`
        : `No instance is opted in (${optIn}) in ${d.region}.`,
    );
  }
  return ids;
}

export async function run(aws: AwsClients, d: Deployment, options: Options, io: Io): Promise<number> {
  const ids = await targets(aws, d, options);
  if (options.all && !options.yes) {
    if (!io.interactive)
      throw new UsageError(
        'run --all starts a backup of every opted-in instance: add --yes to confirm it when not on a terminal.',
      );
    const answer = await io.ask(
      `Back up all ${ids.length} opted-in instances of ${d.stackName} in ${d.region} now? [y/N] `,
    );
    if (!/^y(es)?$/i.test(answer.trim())) {
      io.err('Nothing started.');
      return EXIT.attention;
    }
  }
  const at = new Date(Math.floor(io.now().getTime() / 1000) * 1000);
  const id = onDemandId(at);
  const runId = `run-${id}`;
  const onDemand = options.instances.length
    ? { id, instanceIds: ids }
    : options.group !== undefined
      ? { id, group: options.group }
      : { id };
  const payload = { scheduledTime: at.toISOString().replace('.000Z', 'Z'), onDemand };
  try {
    // Asynchronous, as the schedule invokes it: discovery may take minutes for a large fleet and
    // hands over to itself; failures land in its dead-letter queue and are notified.
    await aws.lambda.send(
      new InvokeCommand({
        FunctionName: d.outputs.discoveryFunctionName,
        InvocationType: 'Event',
        Payload: new TextEncoder().encode(JSON.stringify(payload)),
      }),
    );
  } catch (err) {
    throw new CliError(
      `Could not invoke discovery (${d.outputs.discoveryFunctionName}): ${describe(err)}`,
      EXIT.aws,
    );
  }
  const what = options.instances.length
    ? `${ids.length} instance(s): ${ids.join(', ')}`
    : options.group !== undefined
      ? `group ${options.group} (${ids.length} opted-in instance(s))`
      : `all ${ids.length} opted-in instance(s)`;
  if (options.json && !options.wait) {
    io.out(JSON.stringify({ runId, stack: d.stackName, region: d.region, instances: ids, payload }, null, 2));
    return EXIT.ok;
  }
  io.err(`Started on-demand run ${runId} for ${what}: discovery checks readiness and starts the workflow.`);
  if (!options.wait) {
    io.out(runId);
    io.err(`Follow it: npx ec2-consistent-backup watch --run ${runId}`);
    return EXIT.ok;
  }
  return follow(aws, d, runId, options, io);
}
