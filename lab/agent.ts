import type { LabDocuments } from './documents';
import type { LabInstance } from './instance';
import type { SimSsm } from './sim/ssm';

/** The freeze script's stdout contract (ssm-documents/README.md), the fields the lab reads. */
export interface FreezeResult {
  readonly status: 'frozen' | 'nothing-to-freeze' | 'error';
  readonly frozenAtMs?: number;
  readonly hooksConfigured?: boolean;
  readonly targets?: readonly { mountpoint: string; fstype: string }[];
  readonly hooks?: readonly { name: string; exitCode: number; ms: number }[];
  readonly error?: { code: string; message: string };
}

export interface ThawResult {
  readonly status: 'thawed' | 'error';
  readonly freezeMs?: number;
  readonly thawed?: readonly string[];
  readonly watchdogFired?: boolean;
  readonly error?: { code: string; message: string };
}

export class AgentError extends Error {
  override readonly name = 'AgentError';
}

function parseStdout<T>(action: string, inv: Record<string, unknown>): T {
  const stdout = String(inv.StandardOutputContent ?? '').trim();
  try {
    return JSON.parse(stdout) as T;
  } catch {
    throw new AgentError(
      `${action} printed no JSON object (status ${String(inv.Status)}, exit ${String(inv.ResponseCode)}): ${stdout.slice(0, 200)} ${String(inv.StandardErrorContent ?? '').slice(-400)}`,
    );
  }
}

/**
 * Drives the on-instance documents through the simulated SSM, exactly as the workflow sends them,
 * for the experiment, which needs the freeze and thaw without the rest of the state machine.
 */
export class Agent {
  constructor(
    private readonly ssm: SimSsm,
    documents: LabDocuments,
    private readonly names = { freeze: 'Freeze', thaw: 'Thaw' },
  ) {
    ssm.registerDocument([names.freeze], documents.freeze);
    ssm.registerDocument([names.thaw], documents.thaw);
  }

  async freeze(
    instance: LabInstance,
    executionId: string,
    opts: { watchdogSeconds: number; hookTimeoutSeconds: number; budgetMs: number },
  ): Promise<FreezeResult> {
    const notAfter = new Date(Date.now() + opts.budgetMs).toISOString();
    const inv = await this.ssm.runAndWait(this.names.freeze, instance.instanceId, {
      ExecutionId: [executionId],
      VolumeIds: [instance.volumes.map((v) => v.volumeId).join(',')],
      NotAfter: [notAfter],
      WatchdogSeconds: [String(opts.watchdogSeconds)],
      HookTimeoutSeconds: [String(opts.hookTimeoutSeconds)],
    });
    return parseStdout<FreezeResult>('freeze', inv);
  }

  async thaw(instance: LabInstance, executionId: string, hookTimeoutSeconds: number): Promise<ThawResult> {
    const inv = await this.ssm.runAndWait(this.names.thaw, instance.instanceId, {
      ExecutionId: [executionId],
      HookTimeoutSeconds: [String(hookTimeoutSeconds)],
    });
    return parseStdout<ThawResult>('thaw', inv);
  }
}
