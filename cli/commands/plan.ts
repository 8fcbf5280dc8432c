import type { EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { windowFromScheduledTime } from '../../lambda/discovery/window';
import { parseConfig } from '../../lib/config';
import { runPlan } from '../../scripts/plan';
import type { Options } from '../args';
import type { AwsClients } from '../aws';
import type { Deployment } from '../deployment';
import { EXIT, UsageError } from '../errors';
import type { Io } from '../io';

export async function plan(aws: AwsClients, d: Deployment, options: Options, io: Io): Promise<number> {
  let window: Date;
  try {
    window = windowFromScheduledTime(options.window ?? io.now().toISOString());
  } catch (err) {
    throw new UsageError((err as Error).message.replace('event "scheduledTime"', '--window'));
  }
  // The deployed settings, not this checkout's cdk.json: what discovery will really do.
  const config = parseConfig({ ...d.settings });
  await runPlan(
    { ec2: aws.ec2 as EC2Client, ssm: aws.ssm as SSMClient },
    { region: d.region, window, config, json: options.json },
    (line) => io.out(line),
  );
  return EXIT.ok;
}
