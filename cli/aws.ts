import { BackupClient } from '@aws-sdk/client-backup';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { STSClient } from '@aws-sdk/client-sts';

type Sender<C> = Pick<C, Extract<keyof C, 'send'>>;

/** The clients the tool uses; tests pass mocked ones. */
export interface AwsClients {
  readonly cfn: Sender<CloudFormationClient>;
  readonly sts: Sender<STSClient>;
  readonly sfn: Sender<SFNClient>;
  readonly lambda: Sender<LambdaClient>;
  readonly ec2: Sender<EC2Client>;
  readonly ssm: Sender<SSMClient>;
  readonly backup: Sender<BackupClient>;
  readonly dynamodb: Sender<DynamoDBClient>;
  /** The Region the clients call. */
  readonly region: () => Promise<string>;
}

export type ClientFactory = (region: string | undefined) => AwsClients;

/** Real clients on the SDK's default credential chain, in `region` or the SDK's default one. */
export const sdkClients: ClientFactory = (region) => {
  const config = region ? { region } : {};
  const sts = new STSClient(config);
  return {
    cfn: new CloudFormationClient(config),
    sts,
    sfn: new SFNClient(config),
    lambda: new LambdaClient(config),
    ec2: new EC2Client(config),
    ssm: new SSMClient(config),
    backup: new BackupClient(config),
    dynamodb: new DynamoDBClient(config),
    region: async () =>
      typeof sts.config.region === 'function' ? await sts.config.region() : String(sts.config.region),
  };
};
