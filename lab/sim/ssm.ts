import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type LabDocument, substituteParameters } from '../documents';
import { run } from '../exec';

/** What runs a rendered document on one instance; the real lab runs bash as root, the simulated lab fakes it. */
export type ScriptExecutor = (
  instanceId: string,
  documentName: string,
  script: string,
  parameters: Record<string, string>,
  timeoutSeconds: number,
) => Promise<{ code: number; stdout: string; stderr: string }>;

export interface SimInstance {
  readonly instanceId: string;
  /** Environment the agent gives commands on this instance (the lab's ECB_* seams). */
  readonly env: Record<string, string>;
  /** A working directory on unfrozen storage where the "agent" writes its script files. */
  readonly workDir: string;
}

type Status = 'Pending' | 'InProgress' | 'Success' | 'Failed' | 'TimedOut' | 'Cancelled';

interface Invocation {
  commandId: string;
  instanceId: string;
  documentName: string;
  status: Status;
  responseCode: number;
  stdout: string;
  stderr: string;
  requestedAt: Date;
  done: Promise<void>;
}

/** A named error, as the SDK throws it: Step Functions Retry/Catch and the handlers match on the name. */
export class SimServiceError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

// SSM truncates command output in GetCommandInvocation to 24,000 characters.
const OUTPUT_LIMIT = 24_000;

/** Runs a script the way the SSM agent runs aws:runShellScript: written to _script.sh, run by sh, as root. */
export function realExecutor(instances: ReadonlyMap<string, SimInstance>): ScriptExecutor {
  return async (instanceId, _documentName, script, _parameters, timeoutSeconds) => {
    const inst = instances.get(instanceId);
    if (!inst) throw new Error(`no lab instance ${instanceId}`);
    const dir = path.join(inst.workDir, 'ssm', randomUUID());
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, '_script.sh');
    await fs.writeFile(file, script, { mode: 0o700 });
    try {
      // The agent runs `sh _script.sh` (amazon-ssm-agent runshellscript.go: shellCommand = "sh"), so a
      // shebang is ignored and on Debian/Ubuntu the script starts under dash: run it the same way.
      return await run('sh', [file], { env: inst.env, timeoutMs: timeoutSeconds * 1000, cwd: dir });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  };
}

/**
 * The subset of SSM the app uses: SendCommand runs the real document text (parameters substituted as
 * SSM does) on the lab instance; GetCommandInvocation reports InProgress until it finishes;
 * DescribeInstanceInformation lists the lab instances as online managed Linux nodes.
 */
export class SimSsm {
  readonly invocations: Invocation[] = [];
  private readonly documents = new Map<string, LabDocument>();

  constructor(
    private readonly instances: ReadonlyMap<string, SimInstance>,
    private readonly execute: ScriptExecutor,
  ) {}

  /** Register a document under every name the workflow may use for it (name and ARN). */
  registerDocument(names: readonly string[], doc: LabDocument): void {
    for (const n of names) this.documents.set(n, doc);
  }

  async send(command: {
    input: Record<string, unknown>;
    constructor: { name: string };
  }): Promise<Record<string, unknown>> {
    const input = command.input;
    switch (command.constructor.name) {
      case 'SendCommandCommand':
        return this.sendCommand(input);
      case 'GetCommandInvocationCommand':
        return this.getCommandInvocation(input);
      case 'DescribeInstanceInformationCommand':
        return this.describeInstanceInformation();
      default:
        throw new SimServiceError(
          'UnsupportedOperation',
          `the lab's SSM does not implement ${command.constructor.name}`,
        );
    }
  }

  sendCommand(input: Record<string, unknown>): { Command: Record<string, unknown> } {
    const documentName = String(input.DocumentName);
    const doc = this.documents.get(documentName);
    if (!doc)
      throw new SimServiceError('InvalidDocument', `document ${documentName} does not exist in the lab`);
    const instanceIds = (input.InstanceIds as string[] | undefined) ?? [];
    for (const id of instanceIds) {
      if (!this.instances.has(id))
        throw new SimServiceError('InvalidInstanceId', `instance ${id} is not a lab instance`);
    }
    const parameters = (input.Parameters as Record<string, string[]> | undefined) ?? {};
    const script = substituteParameters(doc, parameters);
    const flat = Object.fromEntries(Object.entries(parameters).map(([k, v]) => [k, v.join(',')]));
    const timeout = Number(input.TimeoutSeconds ?? 3600);
    const commandId = randomUUID();
    for (const instanceId of instanceIds) {
      const inv: Invocation = {
        commandId,
        instanceId,
        documentName,
        status: 'InProgress',
        responseCode: -1,
        stdout: '',
        stderr: '',
        requestedAt: new Date(),
        done: Promise.resolve(),
      };
      inv.done = this.execute(instanceId, documentName, script, flat, timeout).then(
        (r) => {
          inv.status = r.code === 124 ? 'TimedOut' : r.code === 0 ? 'Success' : 'Failed';
          inv.responseCode = r.code;
          inv.stdout = r.stdout.slice(0, OUTPUT_LIMIT);
          inv.stderr = r.stderr.slice(0, OUTPUT_LIMIT);
        },
        (err: Error) => {
          inv.status = 'Failed';
          inv.responseCode = 1;
          inv.stderr = err.message;
        },
      );
      this.invocations.push(inv);
    }
    return {
      Command: {
        CommandId: commandId,
        DocumentName: documentName,
        InstanceIds: instanceIds,
        Status: 'Pending',
      },
    };
  }

  getCommandInvocation(input: Record<string, unknown>): Record<string, unknown> {
    const inv = this.invocations.find(
      (i) => i.commandId === input.CommandId && i.instanceId === input.InstanceId,
    );
    if (!inv)
      throw new SimServiceError(
        'InvocationDoesNotExist',
        `no invocation ${String(input.CommandId)} on ${String(input.InstanceId)}`,
      );
    return {
      CommandId: inv.commandId,
      InstanceId: inv.instanceId,
      DocumentName: inv.documentName,
      Status: inv.status,
      StatusDetails: inv.status,
      ResponseCode: inv.responseCode,
      StandardOutputContent: inv.stdout,
      StandardErrorContent: inv.stderr,
    };
  }

  describeInstanceInformation(): { InstanceInformationList: Record<string, unknown>[] } {
    return {
      InstanceInformationList: [...this.instances.keys()].map((id) => ({
        InstanceId: id,
        PingStatus: 'Online',
        PlatformType: 'Linux',
        ResourceType: 'EC2Instance',
        AgentVersion: '3.3.0.0',
        LastPingDateTime: new Date(),
      })),
    };
  }

  /** Run a document on one instance and wait for it: what the experiment driver uses directly. */
  async runAndWait(
    documentName: string,
    instanceId: string,
    parameters: Record<string, string[]>,
  ): Promise<Record<string, unknown>> {
    const { Command } = this.sendCommand({
      DocumentName: documentName,
      InstanceIds: [instanceId],
      Parameters: parameters,
    });
    const inv = this.invocations.find(
      (i) => i.commandId === Command.CommandId && i.instanceId === instanceId,
    );
    await inv?.done;
    return this.getCommandInvocation({ CommandId: Command.CommandId, InstanceId: instanceId });
  }
}
