/**
 * A simulated account with a deployed ec2-consistent-backup stack, for the command-line tool's
 * tests and for the example output in docs/cli.md (scripts/cli-docs.ts). Each client answers only
 * the commands the tool sends, with only the fields AWS returns for them, per the API references:
 * - CloudFormation DescribeStacks (Stacks[].StackStatus, Outputs[].OutputKey/OutputValue; a missing
 *   stack is a ValidationError "Stack with id X does not exist"); STS GetCallerIdentity.
 * - Step Functions ListExecutions (newest first: executionArn, stateMachineArn, name, status,
 *   startDate, stopDate), DescribeExecution (output only when SUCCEEDED; error/cause when FAILED),
 *   GetExecutionHistory (events with lambdaFunctionSucceededEventDetails.output).
 * - AWS Backup DescribeBackupJob (State); ListRecoveryPointsByBackupVault for EC2: RecoveryPointArn
 *   is the AMI's ARN (arn:aws:ec2:<region>::image/ami-...), ResourceArn the instance.
 * - EC2 DescribeInstances (Reservations[].OwnerId, Instances[] with State, BlockDeviceMappings,
 *   Tags, Platform only for Windows), DescribeImages (Tags).
 * - SSM DescribeInstanceInformation (PingStatus, PlatformType), SendCommand (Command.CommandId),
 *   GetCommandInvocation (Status, StatusDetails, StandardOutputContent; InvocationDoesNotExist
 *   right after the send).
 * - DynamoDB GetItem/Query on the notifier's table (lambda/shared/notifier.ts's item shapes).
 * - Lambda Invoke with InvocationType Event: StatusCode 202.
 */

import { OUTPUT_KEYS, OUTPUTS_VERSION } from '../lib/output-keys';
import type { AwsClients } from '../cli/aws';

export const ACCOUNT = '111122223333';
export const REGION = 'eu-west-1';
export const STACK = 'Ec2ConsistentBackup';
export const STATE_MACHINE = `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:ConsistentBackupWorkflowStateMachine1A2B3C4D-x9Yz8Wv7Ut6S`;
export const TABLE = 'Ec2ConsistentBackup-ConsistentBackupNotificationsState5A6B7C8D-1Q2W3E4R5T6Y';
export const VAULT = 'Ec2ConsistentBackupConsistentBackupVaultRecoveryPoints3E2F1A0B';
export const DISCOVERY = 'Ec2ConsistentBackup-ConsistentBackupDiscoveryFunct-AbCdEf012345';

type Handler = (input: Record<string, unknown>) => unknown;

class FakeClient {
  readonly calls: { command: string; input: Record<string, unknown> }[] = [];
  constructor(
    private readonly service: string,
    private readonly handlers: Record<string, Handler>,
  ) {}
  async send(command: { constructor: { name: string }; input: Record<string, unknown> }): Promise<unknown> {
    const name = command.constructor.name;
    this.calls.push({ command: name, input: command.input });
    const handler = this.handlers[name];
    if (!handler) throw new Error(`The simulated ${this.service} does not answer ${name}`);
    return handler(command.input);
  }
}

function awsError(name: string, message: string): Error {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode: 400 } });
}

export interface SimInstance {
  readonly id: string;
  readonly name: string;
  readonly state?: 'running' | 'stopped';
  readonly group?: string;
  readonly windows?: boolean;
  readonly optedIn?: boolean;
  readonly ping?: 'Online' | 'ConnectionLost' | null;
  readonly volumes: readonly string[];
  /** Its ConsistentBackup:Apps tag, when it has one. */
  readonly apps?: string;
}

export interface SimExecution {
  readonly instanceId: string;
  readonly suffix: string;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  readonly start: string;
  stop?: string;
  /** Record Outcome's output (lambda/record-outcome/record.ts ExecutionResult). */
  result?: Record<string, unknown>;
}

export interface SimState {
  stackStatus: string | undefined;
  instances: SimInstance[];
  executions: SimExecution[];
  /** The notifier's items, keyed `pk|sk`. */
  items: Map<string, Record<string, { S?: string; N?: string }>>;
  jobs: Map<string, string>;
  recoveryPoints: { ami: string; instanceId: string; created: string; tags: Record<string, string> }[];
  /**
   * What the Preflight document prints on the instance. Its `apps` lists every application whose
   * hook the instance could check; the answer keeps those the sent Apps parameter names, as the
   * document reports only those (ssm-documents/scripts/preflight.sh).
   */
  preflightOutput: string;
  preflightPolls: number;
  /** The Apps parameter of the last SendCommand, '' without one (the document's default). */
  preflightApps?: string;
  invokes: unknown[];
  /** Called on every ListExecutions: lets a test move a run on. */
  onList?: () => void;
}

const outputs = (): Record<string, string> => ({
  [OUTPUT_KEYS.outputsVersion]: OUTPUTS_VERSION,
  [OUTPUT_KEYS.stateMachineArn]: STATE_MACHINE,
  [OUTPUT_KEYS.discoveryFunctionName]: DISCOVERY,
  [OUTPUT_KEYS.notificationTopicArn]: `arn:aws:sns:${REGION}:${ACCOUNT}:Ec2ConsistentBackup-ConsistentBackupNotificationsTopic-Q1w2E3r4T5y6`,
  [OUTPUT_KEYS.stateTableName]: TABLE,
  [OUTPUT_KEYS.vaultName]: VAULT,
  [OUTPUT_KEYS.preflightDocumentName]: 'Ec2ConsistentBackup-Preflight',
  [OUTPUT_KEYS.thawDocumentName]: 'Ec2ConsistentBackup-Thaw',
  [OUTPUT_KEYS.dashboardName]: 'ConsistentBackupMonitoringDashboard9F8E7D6C-AbCdEfGhIjKl',
  [OUTPUT_KEYS.deployedSettings]: JSON.stringify({
    optInTagKey: 'ConsistentBackup',
    optInTagValue: 'enabled',
    onFreezeFailure: 'crash-consistent',
    maxFrozenPerGroup: 1,
    watchdogSeconds: 90,
    hookTimeoutSeconds: 30,
    freezeBudgetSeconds: 60,
    scheduleExpression: 'cron(0 2 * * ? *)',
    scheduleTimeZone: 'UTC',
  }),
});

/** The example fleet and its 2026-12-01 02:00 run. */
export function exampleState(): SimState {
  const instances: SimInstance[] = [
    {
      id: 'i-0a1b2c3d4e5f60718',
      name: 'ledger-db-1',
      group: 'ledger',
      ping: 'Online',
      volumes: ['vol-0a1b2c3d4e5f60001', 'vol-0a1b2c3d4e5f60002'],
      apps: 'postgresql',
    },
    {
      id: 'i-0a1b2c3d4e5f60719',
      name: 'ledger-db-2',
      group: 'ledger',
      ping: 'Online',
      volumes: ['vol-0a1b2c3d4e5f60003', 'vol-0a1b2c3d4e5f60004'],
    },
    { id: 'i-0b2c3d4e5f6071829', name: 'web-1', ping: 'Online', volumes: ['vol-0b2c3d4e5f6070001'] },
    {
      id: 'i-0c3d4e5f607182930',
      name: 'reports-win',
      windows: true,
      ping: 'Online',
      volumes: ['vol-0c3d4e5f6070001'],
    },
    { id: 'i-0d4e5f60718293a41', name: 'batch-7', ping: 'ConnectionLost', volumes: ['vol-0d4e5f6070001'] },
    {
      id: 'i-0e5f60718293a4b52',
      name: 'scratch',
      optedIn: false,
      ping: 'Online',
      volumes: ['vol-0e5f6070001'],
    },
  ];
  const run = '20261201T0200Z';
  const job = (n: number) => `D1E2F3A4-B5C6-7D8E-9F0A-1B2C3D4E5F6${n}`;
  const executions: SimExecution[] = [
    {
      instanceId: 'i-0a1b2c3d4e5f60718',
      suffix: run,
      status: 'SUCCEEDED',
      start: '2026-12-01T02:00:04Z',
      stop: '2026-12-01T02:01:12Z',
      result: {
        outcome: 'backed-up',
        consistency: 'application',
        reason: 'pre-freeze hooks ran (postgresql); /data frozen while the snapshots started',
        freezeMs: 2480,
        backupJobId: job(1),
        warnings: [],
        failed: false,
      },
    },
    {
      instanceId: 'i-0a1b2c3d4e5f60719',
      suffix: run,
      status: 'SUCCEEDED',
      start: '2026-12-01T02:00:04Z',
      stop: '2026-12-01T02:20:31Z',
      result: {
        outcome: 'backed-up',
        consistency: 'crash',
        reason: 'freeze budget (60 s) exceeded before every snapshot started: vol-0a1b2c3d4e5f60004',
        freezeMs: 57_004,
        backupJobId: job(2),
        warnings: ['freeze budget exceeded'],
        failed: false,
      },
    },
    {
      instanceId: 'i-0b2c3d4e5f6071829',
      suffix: run,
      status: 'SUCCEEDED',
      start: '2026-12-01T02:00:05Z',
      stop: '2026-12-01T02:01:02Z',
      result: {
        outcome: 'backed-up',
        consistency: 'filesystem',
        reason: 'no pre-freeze hooks; /srv frozen while the snapshots started',
        freezeMs: 2310,
        backupJobId: job(3),
        warnings: [],
        failed: false,
      },
    },
    {
      instanceId: 'i-0c3d4e5f607182930',
      suffix: run,
      status: 'FAILED',
      start: '2026-12-01T02:00:05Z',
      stop: '2026-12-01T02:00:41Z',
      result: {
        outcome: 'backup-start-failed',
        consistency: 'none',
        reason:
          'StartBackupJob failed after retries: AccessDeniedException: the backup role cannot pass iam:PassRole',
        freezeMs: 0,
        warnings: [],
        failed: true,
      },
    },
  ];
  const items = new Map<string, Record<string, { S?: string; N?: string }>>();
  items.set(`RUN#run-${run}|RUN`, {
    pk: { S: `RUN#run-${run}` },
    sk: { S: 'RUN' },
    window: { S: '2026-12-01T02:00:00Z' },
    discovered: { N: '5' },
    expected: { N: '4' },
    completed: { N: '4' },
    excluded: { S: JSON.stringify({ 'ssm-offline': 1 }) },
    discoveryRecordedAt: { S: '2026-12-01T02:00:06.118Z' },
    summarySentAt: { S: '2026-12-01T02:20:32.007Z' },
    summaryReason: { S: 'finished' },
  });
  const arn = (e: SimExecution) =>
    `arn:aws:states:${REGION}:${ACCOUNT}:execution:${STATE_MACHINE.split(':').pop()}:${e.instanceId}-${e.suffix}`;
  const problem = (
    instanceId: string,
    klass: string,
    severity: string,
    eventType: string,
    lastEventId: string,
  ) =>
    items.set(`INSTANCE#${instanceId}|PROBLEM#${klass}`, {
      pk: { S: `INSTANCE#${instanceId}` },
      sk: { S: `PROBLEM#${klass}` },
      severity: { S: severity },
      eventType: { S: eventType },
      lastEventId: { S: lastEventId },
    });
  problem(
    'i-0a1b2c3d4e5f60719',
    'consistency',
    'Warning',
    'crash-consistent-fallback',
    arn(executions[1] as SimExecution),
  );
  problem(
    'i-0c3d4e5f607182930',
    'backup',
    'Major',
    'backup-start-failed',
    arn(executions[3] as SimExecution),
  );
  return {
    stackStatus: 'UPDATE_COMPLETE',
    instances,
    executions,
    items,
    jobs: new Map([
      [job(1), 'COMPLETED'],
      [job(2), 'COMPLETED'],
      [job(3), 'RUNNING'],
    ]),
    recoveryPoints: [
      {
        ami: 'ami-0f1e2d3c4b5a69781',
        instanceId: 'i-0a1b2c3d4e5f60718',
        created: '2026-12-01T02:00:09Z',
        tags: {
          'ConsistentBackup:Consistency': 'application',
          'ConsistentBackup:Reason':
            'pre-freeze hooks ran postgresql data frozen while the snapshots started',
          'ConsistentBackup:FreezeMs': '2480',
        },
      },
      {
        ami: 'ami-0f1e2d3c4b5a69782',
        instanceId: 'i-0a1b2c3d4e5f60719',
        created: '2026-12-01T02:00:10Z',
        tags: {
          'ConsistentBackup:Consistency': 'crash',
          'ConsistentBackup:Reason': 'freeze budget 60 s exceeded before every snapshot started',
          'ConsistentBackup:FreezeMs': '57004',
        },
      },
      {
        ami: 'ami-0f1e2d3c4b5a69783',
        instanceId: 'i-0b2c3d4e5f6071829',
        created: '2026-12-01T02:00:09Z',
        tags: { 'ConsistentBackup:Consistency': 'pending' },
      },
      {
        ami: 'ami-0f1e2d3c4b5a69770',
        instanceId: 'i-0a1b2c3d4e5f60718',
        created: '2026-11-30T02:00:08Z',
        tags: {
          'ConsistentBackup:Consistency': 'application',
          'ConsistentBackup:Reason':
            'pre-freeze hooks ran postgresql data frozen while the snapshots started',
          'ConsistentBackup:FreezeMs': '2391',
        },
      },
    ],
    preflightOutput: JSON.stringify({
      schemaVersion: 1,
      action: 'preflight',
      status: 'ready',
      ready: true,
      problems: [],
      warnings: [],
      fsfreeze: '/usr/sbin/fsfreeze',
      bash: '5.2.15(1)-release',
      stateDir: { path: '/run/ec2-consistent-backup', tmpfs: true },
      active: null,
      targets: [
        { mountpoint: '/data', fstype: 'xfs', source: '/dev/nvme1n1', volumeIds: ['vol-0a1b2c3d4e5f60002'] },
      ],
      unmapped: [],
      skipped: [],
      volumes: [
        { volumeId: 'vol-0a1b2c3d4e5f60001', device: '/dev/nvme0n1', filesystems: ['/', '/boot'] },
        { volumeId: 'vol-0a1b2c3d4e5f60002', device: '/dev/nvme1n1', filesystems: ['/data'] },
      ],
      protected: [
        { mountpoint: '/', holds: 'root, /usr, /var, the SSM agent' },
        { mountpoint: '/boot', holds: 'boot' },
      ],
      hooksConfigured: true,
      hooks: { preFreeze: ['50-ecb-postgresql'], postThaw: ['50-ecb-postgresql'] },
      apps: [
        {
          app: 'postgresql',
          ready: true,
          exitCode: 0,
          message:
            'postgresql: reachable on /var/run/postgresql:5432 as postgres, may CHECKPOINT\n(postgresql hook 3f9a1c0b7d2e)',
        },
      ],
    }),
    preflightPolls: 2,
    invokes: [],
  };
}

/**
 * What discovery then does for an on-demand request, in this account: it starts one execution per
 * ready target (batch-7's agent is offline: excluded) and reports the run; each later listing of
 * executions sees one more of them end, and the summary goes out when the last has.
 */
function simulateDiscovery(
  state: SimState,
  payload: { scheduledTime: string; onDemand: { id: string; instanceIds?: string[]; group?: string } },
): void {
  const { id, instanceIds, group } = payload.onDemand;
  const targets = state.instances.filter(
    (i) =>
      i.optedIn !== false &&
      (instanceIds ? instanceIds.includes(i.id) : group !== undefined ? i.group === group : true),
  );
  const ready = targets.filter((i) => i.ping === 'Online');
  const runId = `run-${id}`;
  const started = ready.map((i, n) => ({
    instanceId: i.id,
    suffix: id,
    status: 'RUNNING' as const,
    start: new Date(Date.parse(payload.scheduledTime) + 2000 + n * 10).toISOString(),
  }));
  state.executions.push(...started);
  const excluded = targets.length - ready.length;
  state.items.set(`RUN#${runId}|RUN`, {
    pk: { S: `RUN#${runId}` },
    sk: { S: 'RUN' },
    window: { S: `${payload.scheduledTime.slice(0, 16)}:00Z` },
    discovered: { N: String(targets.length) },
    expected: { N: String(ready.length) },
    completed: { N: '0' },
    excluded: { S: JSON.stringify(excluded ? { 'ssm-offline': excluded } : {}) },
    discoveryRecordedAt: { S: new Date(Date.parse(payload.scheduledTime) + 1500).toISOString() },
  });
  const previous = state.onList;
  let step = 0;
  state.onList = () => {
    previous?.();
    const next = started.find((e) => e.status === 'RUNNING');
    const run = state.items.get(`RUN#${runId}|RUN`) as Record<string, { S?: string; N?: string }>;
    if (!next) {
      run.summarySentAt ??= {
        S: new Date(Date.parse(payload.scheduledTime) + 60_000 * (step + 1)).toISOString(),
      };
      run.summaryReason ??= { S: 'finished' };
      return;
    }
    step++;
    const jobId = `E1F2A3B4-C5D6-7E8F-9A0B-1C2D3E4F5A6${step}`;
    const windows = state.instances.find((i) => i.id === next.instanceId)?.windows;
    Object.assign(next, {
      status: 'SUCCEEDED',
      stop: new Date(Date.parse(next.start) + 45_000 * step).toISOString(),
      result: windows
        ? {
            outcome: 'backed-up',
            consistency: 'application',
            reason: 'Windows VSS',
            freezeMs: 0,
            backupJobId: jobId,
            warnings: [],
            failed: false,
          }
        : {
            outcome: 'backed-up',
            consistency: 'application',
            reason: 'pre-freeze hooks ran (postgresql); /data frozen while the snapshots started',
            freezeMs: 2200 + 90 * step,
            backupJobId: jobId,
            warnings: [],
            failed: false,
          },
    });
    state.jobs.set(jobId, 'COMPLETED');
    run.completed = { N: String(started.filter((e) => e.status !== 'RUNNING').length) };
  };
}

function executionArn(e: SimExecution): string {
  return `arn:aws:states:${REGION}:${ACCOUNT}:execution:${STATE_MACHINE.split(':').pop()}:${e.instanceId}-${e.suffix}`;
}

/** Clients over `state`; each one's calls are recorded. */
export function simulatedAccount(
  state: SimState = exampleState(),
): AwsClients & { readonly fakes: Record<string, FakeClient> } {
  const tagsOf = (i: SimInstance) => [
    { Key: 'Name', Value: i.name },
    ...(i.optedIn === false ? [] : [{ Key: 'ConsistentBackup', Value: 'enabled' }]),
    ...(i.group ? [{ Key: 'ConsistentBackup:Group', Value: i.group }] : []),
    ...(i.apps !== undefined ? [{ Key: 'ConsistentBackup:Apps', Value: i.apps }] : []),
  ];
  const ec2Instance = (i: SimInstance) => ({
    InstanceId: i.id,
    InstanceType: 'm6i.large',
    State: { Name: i.state ?? 'running', Code: i.state === 'stopped' ? 80 : 16 },
    RootDeviceType: 'ebs',
    ...(i.windows ? { Platform: 'windows', PlatformDetails: 'Windows' } : { PlatformDetails: 'Linux/UNIX' }),
    BlockDeviceMappings: i.volumes.map((v, n) => ({
      DeviceName: n === 0 ? '/dev/xvda' : `/dev/sd${String.fromCharCode(102 + n - 1)}`,
      Ebs: {
        VolumeId: v,
        Status: 'attached',
        DeleteOnTermination: n === 0,
        AttachTime: new Date('2026-10-01T00:00:00Z'),
      },
    })),
    Tags: tagsOf(i),
  });
  const fakes = {
    cfn: new FakeClient('CloudFormation', {
      DescribeStacksCommand: (input) => {
        if (!state.stackStatus)
          throw awsError('ValidationError', `Stack with id ${input.StackName} does not exist`);
        return {
          Stacks: [
            {
              StackName: STACK,
              StackId: `arn:aws:cloudformation:${REGION}:${ACCOUNT}:stack/${STACK}/0f1e2d3c-4b5a-6978-8899-aabbccddeeff`,
              StackStatus: state.stackStatus,
              CreationTime: new Date('2026-11-20T09:00:00Z'),
              Outputs: Object.entries(outputs()).map(([OutputKey, OutputValue]) => ({
                OutputKey,
                OutputValue,
              })),
            },
          ],
        };
      },
    }),
    sts: new FakeClient('STS', {
      GetCallerIdentityCommand: () => ({
        Account: ACCOUNT,
        Arn: `arn:aws:sts::${ACCOUNT}:assumed-role/Operator/jane`,
        UserId: 'AROAEXAMPLE:jane',
      }),
    }),
    sfn: new FakeClient('Step Functions', {
      ListExecutionsCommand: () => {
        state.onList?.();
        const sorted = [...state.executions].sort((a, b) => b.start.localeCompare(a.start));
        return {
          executions: sorted.map((e) => ({
            executionArn: executionArn(e),
            stateMachineArn: STATE_MACHINE,
            name: `${e.instanceId}-${e.suffix}`,
            status: e.status,
            startDate: new Date(e.start),
            ...(e.stop ? { stopDate: new Date(e.stop) } : {}),
          })),
        };
      },
      DescribeExecutionCommand: (input) => {
        const e = state.executions.find((x) => executionArn(x) === input.executionArn);
        if (!e) throw awsError('ExecutionDoesNotExist', `Execution Does Not Exist: '${input.executionArn}'`);
        return {
          executionArn: input.executionArn,
          stateMachineArn: STATE_MACHINE,
          name: `${e.instanceId}-${e.suffix}`,
          status: e.status,
          startDate: new Date(e.start),
          ...(e.status === 'SUCCEEDED' && e.result
            ? { output: JSON.stringify({ ...e.result, instanceId: e.instanceId }) }
            : {}),
          ...(e.status === 'FAILED' && e.result
            ? { error: String(e.result.outcome), cause: String(e.result.reason) }
            : {}),
        };
      },
      GetExecutionHistoryCommand: (input) => {
        const e = state.executions.find((x) => executionArn(x) === input.executionArn);
        return {
          events: e?.result
            ? [
                {
                  id: 31,
                  type: 'ExecutionFailed',
                  timestamp: new Date(e.stop ?? e.start),
                  executionFailedEventDetails: {
                    error: String(e.result.outcome),
                    cause: String(e.result.reason),
                  },
                },
                {
                  id: 30,
                  type: 'LambdaFunctionSucceeded',
                  timestamp: new Date(e.stop ?? e.start),
                  lambdaFunctionSucceededEventDetails: {
                    output: JSON.stringify({ ...e.result, instanceId: e.instanceId }),
                  },
                },
              ]
            : [],
        };
      },
    }),
    lambda: new FakeClient('Lambda', {
      InvokeCommand: (input) => {
        const payload = JSON.parse(new TextDecoder().decode(input.Payload as Uint8Array));
        state.invokes.push({ ...input, Payload: payload });
        if (payload.onDemand) simulateDiscovery(state, payload);
        return { StatusCode: 202 };
      },
    }),
    ec2: new FakeClient('EC2', {
      DescribeInstancesCommand: (input) => {
        const ids = input.InstanceIds as string[] | undefined;
        const filters = (input.Filters as { Name: string; Values: string[] }[] | undefined) ?? [];
        if (ids) {
          const missing = ids.filter((id) => !state.instances.some((i) => i.id === id));
          if (missing.length)
            throw awsError('InvalidInstanceID.NotFound', `The instance ID '${missing[0]}' does not exist`);
        }
        const matches = state.instances.filter(
          (i) =>
            (!ids || ids.includes(i.id)) &&
            filters.every((f) => {
              if (f.Name === 'instance-state-name') return f.Values.includes(i.state ?? 'running');
              if (f.Name.startsWith('tag:'))
                return tagsOf(i).some((t) => t.Key === f.Name.slice(4) && f.Values.includes(t.Value));
              throw new Error(`The simulated EC2 has no filter ${f.Name}`);
            }),
        );
        return {
          Reservations: matches.map((i) => ({
            OwnerId: ACCOUNT,
            ReservationId: `r-${i.id.slice(2, 19)}`,
            Instances: [ec2Instance(i)],
          })),
        };
      },
      DescribeImagesCommand: (input) => ({
        Images: state.recoveryPoints
          .filter((p) => (input.ImageIds as string[]).includes(p.ami))
          .map((p) => ({
            ImageId: p.ami,
            Tags: Object.entries(p.tags).map(([Key, Value]) => ({ Key, Value })),
          })),
      }),
    }),
    ssm: new FakeClient('SSM', {
      DescribeInstanceInformationCommand: (input) => {
        const ids = ((input.Filters as { Key: string; Values: string[] }[])[0]?.Values ?? []) as string[];
        return {
          InstanceInformationList: state.instances
            .filter((i) => ids.includes(i.id) && i.ping)
            .map((i) => ({
              InstanceId: i.id,
              PingStatus: i.ping,
              PlatformType: i.windows ? 'Windows' : 'Linux',
              AgentVersion: '3.3.1142.0',
            })),
        };
      },
      SendCommandCommand: (input) => {
        state.preflightApps = (input.Parameters as Record<string, string[]> | undefined)?.Apps?.[0] ?? '';
        return {
          Command: {
            CommandId: '7b6f5a41-2c3d-4e5f-8a9b-0c1d2e3f4a5b',
            DocumentName: input.DocumentName,
            InstanceIds: input.InstanceIds,
            Status: 'Pending',
          },
        };
      },
      GetCommandInvocationCommand: (input) => {
        state.preflightPolls--;
        if (state.preflightPolls > 0) {
          throw awsError('InvocationDoesNotExist', 'An error occurred (InvocationDoesNotExist)');
        }
        const output = JSON.parse(state.preflightOutput) as { status: string; apps?: { app: string }[] };
        const ready = output.status === 'ready';
        const sent = (state.preflightApps ?? '').split(',');
        if (output.apps) output.apps = output.apps.filter((a) => sent.includes(a.app));
        return {
          CommandId: input.CommandId,
          InstanceId: input.InstanceId,
          Status: ready ? 'Success' : 'Failed',
          StatusDetails: ready ? 'Success' : 'Failed',
          ResponseCode: ready ? 0 : 1,
          StandardOutputContent: `${JSON.stringify(output)}\n`,
          StandardErrorContent: '',
        };
      },
    }),
    backup: new FakeClient('AWS Backup', {
      DescribeBackupJobCommand: (input) => {
        const s = state.jobs.get(String(input.BackupJobId));
        if (!s) throw awsError('ResourceNotFoundException', `Backup job ${input.BackupJobId} not found`);
        return { BackupJobId: input.BackupJobId, State: s, ResourceType: 'EC2' };
      },
      ListRecoveryPointsByBackupVaultCommand: () => ({
        RecoveryPoints: state.recoveryPoints.map((p) => ({
          RecoveryPointArn: `arn:aws:ec2:${REGION}::image/${p.ami}`,
          BackupVaultName: VAULT,
          ResourceArn: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${p.instanceId}`,
          ResourceType: 'EC2',
          CreationDate: new Date(p.created),
          Status: 'COMPLETED',
        })),
      }),
    }),
    dynamodb: new FakeClient('DynamoDB', {
      GetItemCommand: (input) => {
        const key = input.Key as Record<string, { S: string }>;
        const item = state.items.get(`${key.pk?.S}|${key.sk?.S}`);
        return item ? { Item: item } : {};
      },
      QueryCommand: (input) => {
        const values = input.ExpressionAttributeValues as Record<string, { S: string }>;
        const pk = values[':pk']?.S;
        const prefix = values[':problem']?.S ?? '';
        return {
          Items: [...state.items.values()].filter(
            (i) => i.pk?.S === pk && (i.sk?.S ?? '').startsWith(prefix),
          ),
        };
      },
    }),
  };
  return {
    ...(fakes as unknown as Omit<AwsClients, 'region'>),
    region: async () => REGION,
    fakes,
  };
}
