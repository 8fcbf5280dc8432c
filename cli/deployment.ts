/**
 * Finds the deployed stack: the caller's credentials, the Region, and the stack's outputs
 * (lib/output-keys.ts), with an error that says what to do when any of them is missing.
 */

import { DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { type DeployedSettings, OUTPUT_KEYS, OUTPUTS_VERSION } from '../lib/output-keys';
import type { AwsClients } from './aws';
import {
  CliError,
  CredentialsError,
  describe,
  EXIT,
  isCredentialsError,
  NotDeployedError,
  UsageError,
} from './errors';

export interface Deployment {
  readonly stackName: string;
  readonly region: string;
  readonly account: string;
  readonly stackStatus: string;
  readonly outputs: Readonly<Record<keyof typeof OUTPUT_KEYS, string>>;
  readonly settings: DeployedSettings;
}

const DEPLOYED =
  /^(CREATE_COMPLETE|UPDATE_COMPLETE|UPDATE_ROLLBACK_COMPLETE|UPDATE_IN_PROGRESS|UPDATE_COMPLETE_CLEANUP_IN_PROGRESS|UPDATE_ROLLBACK_IN_PROGRESS|UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS|IMPORT_COMPLETE|IMPORT_ROLLBACK_COMPLETE)$/;

export async function findDeployment(aws: AwsClients, stackName: string): Promise<Deployment> {
  let region: string;
  try {
    region = await aws.region();
  } catch (err) {
    throw new UsageError(`No AWS Region: give --region or set AWS_REGION (the SDK said ${describe(err)}).`);
  }
  if (!region || region === 'undefined') {
    throw new UsageError('No AWS Region: give --region or set AWS_REGION.');
  }
  let account: string;
  try {
    account = (await aws.sts.send(new GetCallerIdentityCommand({}))).Account ?? 'unknown';
  } catch (err) {
    if (isCredentialsError(err)) {
      throw new CredentialsError(
        `No usable AWS credentials (${describe(err)}). Set AWS_PROFILE, run aws sso login, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.`,
      );
    }
    throw new CliError(`Could not reach AWS STS in ${region}: ${describe(err)}`, EXIT.aws);
  }
  let stack: { StackStatus?: string; Outputs?: { OutputKey?: string; OutputValue?: string }[] } | undefined;
  try {
    stack = (await aws.cfn.send(new DescribeStacksCommand({ StackName: stackName }))).Stacks?.[0];
  } catch (err) {
    if (
      (err as { name?: string }).name === 'ValidationError' &&
      /does not exist/.test((err as Error).message)
    ) {
      stack = undefined;
    } else if (isCredentialsError(err)) {
      throw new CredentialsError(`The credentials were refused (${describe(err)}).`);
    } else {
      throw new CliError(`Could not read stack ${stackName} in ${region}: ${describe(err)}`, EXIT.aws);
    }
  }
  const where = `in ${region} (account ${account})`;
  if (!stack) {
    throw new NotDeployedError(
      `Stack ${stackName} is not deployed ${where}. Deploy it (npx cdk deploy), or name yours with --stack or EC2_CONSISTENT_BACKUP_STACK, or pick its Region with --region.`,
    );
  }
  const status = stack.StackStatus ?? 'UNKNOWN';
  if (!DEPLOYED.test(status)) {
    throw new NotDeployedError(
      `Stack ${stackName} ${where} is ${status}, not deployed: finish or fix its deployment first.`,
    );
  }
  const values = new Map((stack.Outputs ?? []).map((o) => [o.OutputKey ?? '', o.OutputValue ?? '']));
  if (values.get(OUTPUT_KEYS.outputsVersion) !== OUTPUTS_VERSION) {
    throw new NotDeployedError(
      `Stack ${stackName} ${where} has no ${OUTPUT_KEYS.outputsVersion} ${OUTPUTS_VERSION} output: it was deployed by another version of ec2-consistent-backup. Deploy this version (npx cdk deploy).`,
    );
  }
  const outputs = {} as Record<keyof typeof OUTPUT_KEYS, string>;
  for (const [key, outputKey] of Object.entries(OUTPUT_KEYS) as [keyof typeof OUTPUT_KEYS, string][]) {
    const value = values.get(outputKey);
    if (!value)
      throw new NotDeployedError(
        `Stack ${stackName} ${where} has no ${outputKey} output: deploy this version.`,
      );
    outputs[key] = value;
  }
  return {
    stackName,
    region,
    account,
    stackStatus: status,
    outputs,
    settings: JSON.parse(outputs.deployedSettings) as DeployedSettings,
  };
}
