import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { StateMachine } from 'aws-local-stepfunctions';
import { freezeStep, parseFreezeStepRequest } from '../lambda/freeze-filesystems/step';
import { type ExecutionResult, recordOutcome } from '../lambda/record-outcome/record';
import { systemClock } from '../lambda/shared/calls';
import type { RequestLabel } from '../lambda/shared/labels';
import type { OutcomeSink } from '../lambda/shared/outcome';
import type { BackupConfig } from '../lib/config';
import { ConsistentBackupStack } from '../lib/stack';
import {
  parseStartBackupStepRequest,
  startFrozenBackup,
  startUnfrozenBackup,
} from '../lambda/start-backup/step';
import { parseWaitRequest, waitStep } from '../lambda/wait-for-command/wait';
import { type Asl, aslFromTemplate, resolveIntrinsics } from '../sim/asl';
import { LAB_ACCOUNT, LAB_REGION, type SimBackup, type SimEc2, type SimSns } from './sim/aws';
import { SimServiceError, type SimSsm } from './sim/ssm';

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON.
type Json = any;

/** What the lab needs from the synthesized app: the definition, document names, and each function's environment. */
export interface LabApp {
  readonly asl: Asl;
  readonly stateMachineArn: string;
  readonly freezeDocument: string;
  readonly thawDocument: string;
  /** Environment variables of the deployed functions, keyed by handler dir (discovery, record-outcome, ...). */
  readonly environments: Record<string, Record<string, string>>;
}

/**
 * Synthesize the real stack (no bundling) and read back what the lab runs: the state machine as plain
 * ASL (intrinsics evaluated with placeholder ARNs by the workflow tests' helper) and the functions'
 * environment, so the discovery and record-outcome logic get the settings the deployment gives them.
 */
export function synthLabApp(config: BackupConfig): LabApp {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new ConsistentBackupStack(app, 'Lab', {
    config,
    env: { account: LAB_ACCOUNT, region: LAB_REGION },
  });
  const template = Template.fromStack(stack).toJSON() as Json;
  const resources = template.Resources as Record<string, { Type: string; Properties: Json }>;
  const asl = aslFromTemplate(template);
  const freezeDocument = String(asl.States['Freeze Filesystems']?.Parameters?.documentName ?? '');
  const thawDocument = String(asl.States['Send Thaw Command']?.Parameters?.DocumentName ?? '');
  if (!freezeDocument || !thawDocument)
    throw new Error('the synthesized workflow has no Freeze Filesystems / Send Thaw Command document names');
  const environments: Record<string, Record<string, string>> = {};
  for (const r of Object.values(resources)) {
    if (r.Type !== 'AWS::Lambda::Function') continue;
    const vars = resolveIntrinsics(r.Properties?.Environment?.Variables ?? {}, resources) as Record<
      string,
      string
    >;
    const description = String(r.Properties?.Description ?? '');
    environments[description] = vars;
  }
  const machineId =
    Object.entries(resources).find(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine')?.[0] ??
    'Workflow';
  return {
    asl,
    stateMachineArn: `arn:aws:states:${LAB_REGION}:${LAB_ACCOUNT}:stateMachine:${machineId}`,
    freezeDocument,
    thawDocument,
    environments,
  };
}

/** Find a function's environment by a word of its description (descriptions are set in lib/). */
export function environmentOf(app: LabApp, containing: RegExp): Record<string, string> {
  const match = Object.entries(app.environments).find(([d]) => containing.test(d));
  if (!match) throw new Error(`no synthesized function whose description matches ${containing}`);
  return match[1];
}

export interface ExecutionView {
  readonly name: string;
  readonly arn: string;
  readonly instanceId: string;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED';
  stage: string;
  output?: ExecutionResult;
  error?: string;
  freezeMs?: number;
  done: Promise<void>;
}

export interface SimSfnDeps {
  readonly app: LabApp;
  readonly ssm: SimSsm;
  readonly ec2: SimEc2;
  readonly backup: SimBackup;
  readonly sns: SimSns;
  readonly sink: OutcomeSink;
  /** What record-outcome calls to have the recovery point labelled (the demo runs the real label-writer). */
  readonly requestLabel: RequestLabel;
  readonly settings: {
    freezeBudgetSeconds: number;
    watchdogSeconds: number;
    defaultOnFreezeFailure: 'crash-consistent' | 'skip';
  };
  /** Called whenever an execution enters a state. */
  readonly onProgress?: (e: ExecutionView) => void;
}

function sfnError(name: string, message: string): Error {
  const e = new Error(message);
  e.name = name;
  return e;
}

/**
 * The lab's Step Functions: StartExecution runs the real synthesized definition in-process with
 * aws-local-stepfunctions. Lambda task states call the real freeze-filesystems, start-backup,
 * wait-for-command and record-outcome logic with the
 * lab's clients; CallAwsService states call the lab's services. Waits for start time are skipped
 * (the lab starts every instance at once); every other wait and timeout is real time.
 */
export class SimSfn {
  readonly executions = new Map<string, ExecutionView>();
  private readonly machine: StateMachine;

  constructor(private readonly deps: SimSfnDeps) {
    this.machine = new StateMachine(deps.app.asl as never, {
      validationOptions: { checkArn: false, checkPaths: false },
    });
  }

  async send(command: {
    input: Record<string, unknown>;
    constructor: { name: string };
  }): Promise<Record<string, unknown>> {
    if (command.constructor.name !== 'StartExecutionCommand') {
      throw new SimServiceError(
        'UnsupportedOperation',
        `the lab's Step Functions does not implement ${command.constructor.name}`,
      );
    }
    const name = String(command.input.name);
    if (this.executions.has(name))
      throw new SimServiceError('ExecutionAlreadyExists', `execution ${name} already exists`);
    const input = JSON.parse(String(command.input.input)) as { instanceId: string };
    const arn = `${this.deps.app.stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
    const view: ExecutionView = {
      name,
      arn,
      instanceId: input.instanceId,
      status: 'RUNNING',
      stage: 'Started',
      done: Promise.resolve(),
    };
    this.executions.set(name, view);
    view.done = this.run(view, input);
    return { executionArn: arn, startDate: new Date() };
  }

  private handlers(): Record<string, (input: unknown) => Promise<unknown>> {
    const { ssm, ec2, backup, sns, sink, requestLabel, settings } = this.deps;
    const lambdaTask = (run: (input: unknown) => Promise<unknown>) => async (input: unknown) => {
      try {
        return JSON.parse(JSON.stringify(await run(input)));
      } catch (err) {
        throw sfnError((err as Error).name || 'Error', (err as Error).message);
      }
    };
    const sdkTask =
      (service: string, run: (input: Record<string, unknown>) => Promise<unknown>) =>
      async (input: unknown) => {
        try {
          return JSON.parse(JSON.stringify(await run(input as Record<string, unknown>)));
        } catch (err) {
          // Step Functions names SDK integration errors <Service>.<Exception>.
          throw sfnError(`${service}.${(err as Error).name}`, (err as Error).message);
        }
      };
    const wait = lambdaTask(async (i) => waitStep(ssm as never, systemClock, parseWaitRequest(i)));
    const startUnfrozen = lambdaTask(async (i) => {
      const r = parseStartBackupStepRequest(i);
      if (r.mode === 'frozen') throw new Error('unexpected start-backup mode frozen');
      return startUnfrozenBackup(backup as never, systemClock, r);
    });
    return {
      'Freeze Filesystems': lambdaTask(async (i) =>
        freezeStep({ ssm: ssm as never, backup: backup as never }, systemClock, parseFreezeStepRequest(i)),
      ),
      'Start Backup Job': lambdaTask(async (i) => {
        const r = parseStartBackupStepRequest(i);
        if (r.mode !== 'frozen') throw new Error(`unexpected start-backup mode ${r.mode}`);
        return startFrozenBackup({ ec2: ec2 as never, backup: backup as never }, systemClock, r);
      }),
      'Wait For Thaw Command': wait,
      'Wait For Retried Thaw': wait,
      'Send Thaw Command': sdkTask('Ssm', async (i) => ssm.sendCommand(i)),
      'Retry Thaw Command': sdkTask('Ssm', async (i) => ssm.sendCommand(i)),
      'Start Backup Job Without Freeze': startUnfrozen,
      'Record Outcome': lambdaTask(async (i) =>
        recordOutcome(i as Parameters<typeof recordOutcome>[0], { sink, requestLabel, settings }, new Date()),
      ),
      'Publish Unrecorded Outcome': sdkTask('SNS', async (i) =>
        sns.send({ input: i, constructor: { name: 'PublishCommand' } }),
      ),
    };
  }

  private async run(view: ExecutionView, input: unknown): Promise<void> {
    const asl = this.deps.app.asl;
    const waits = Object.fromEntries(
      Object.entries(asl.States)
        .filter(([n, st]) => st.Type === 'Wait' && n !== 'Wait Before Retrying Thaw')
        .map(([n]) => [n, 0]),
    );
    const execution = this.machine.run(input as never, {
      overrides: { taskResourceLocalHandlers: this.handlers() as never, waitTimeOverrides: waits },
      context: {
        Execution: { Id: view.arn, Name: view.name, StartTime: new Date().toISOString() },
        State: { EnteredTime: new Date().toISOString(), Name: 'Start' },
      },
    });
    const drain = (async () => {
      for await (const ev of execution.eventLogs) {
        if (ev.type === 'StateEntered') {
          view.stage = ev.state.name;
          this.deps.onProgress?.(view);
        }
        if (
          ev.type === 'StateExited' &&
          (ev.state.name === 'Wait For Thaw Command' || ev.state.name === 'Wait For Retried Thaw')
        ) {
          const out = ev.state.output as
            | { thaw?: { command?: { stdout?: string } }; retriedThaw?: { command?: { stdout?: string } } }
            | undefined;
          try {
            const step = ev.state.name === 'Wait For Thaw Command' ? out?.thaw : out?.retriedThaw;
            const thaw = JSON.parse(step?.command?.stdout ?? '') as { freezeMs?: number };
            if (typeof thaw.freezeMs === 'number') view.freezeMs = thaw.freezeMs;
          } catch {
            // The verdict carries freeze ms too; this is only for live progress.
          }
        }
      }
    })();
    try {
      view.output = (await execution.result) as unknown as ExecutionResult;
      view.status = 'SUCCEEDED';
    } catch (err) {
      view.status = 'FAILED';
      view.error = (err as Error).message;
    }
    await drain;
    view.stage = view.status === 'SUCCEEDED' ? 'Succeeded' : 'Failed';
    this.deps.onProgress?.(view);
  }

  async settled(): Promise<void> {
    await Promise.all([...this.executions.values()].map((e) => e.done));
  }
}
