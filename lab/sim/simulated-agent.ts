import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { run } from '../exec';
import type { LabInstance } from '../instance';
import type { ScriptExecutor } from './ssm';

/**
 * Without root there is no fsfreeze: this executor stands in for the freeze and thaw documents. It
 * runs the instance's hooks (they need no root) and prints the documents' stdout contract, with
 * `"simulated": true` so nothing downstream can mistake it for a real freeze. Only the demo's
 * no-root fallback uses it; the consistency experiment refuses to run simulated.
 */
export function simulatedExecutor(
  instances: ReadonlyMap<string, LabInstance>,
  names: { freeze: string; thaw: string },
): ScriptExecutor {
  const frozenAt = new Map<string, number>();
  const runHooks = async (inst: LabInstance, phase: 'pre-freeze' | 'post-thaw', timeoutSeconds: number) => {
    const dir = path.join(inst.configDir, `${phase}.d`);
    const files = (await fs.readdir(dir).catch(() => [] as string[])).sort();
    const hooks: { phase: string; name: string; exitCode: number; ms: number; output: string }[] = [];
    for (const name of files) {
      const started = Date.now();
      const r = await run(path.join(dir, name), [], {
        env: { ...inst.env, ECB_PHASE: phase },
        timeoutMs: timeoutSeconds * 1000,
      });
      hooks.push({
        phase,
        name,
        exitCode: r.code,
        ms: Date.now() - started,
        output: `${r.stdout}${r.stderr}`.slice(-500),
      });
      if (r.code !== 0 && phase === 'pre-freeze') break;
    }
    return hooks;
  };
  return async (instanceId, documentName, _script, parameters) => {
    const inst = instances.get(instanceId);
    if (!inst) throw new Error(`no lab instance ${instanceId}`);
    const hookTimeout = Number(parameters.HookTimeoutSeconds ?? 30);
    const executionId = parameters.ExecutionId ?? '';
    if (documentName === names.freeze) {
      const hooks = await runHooks(inst, 'pre-freeze', hookTimeout);
      const failed = hooks.find((h) => h.exitCode !== 0);
      if (failed) {
        await runHooks(inst, 'post-thaw', hookTimeout);
        const out = {
          schemaVersion: 1,
          action: 'freeze',
          status: 'error',
          simulated: true,
          executionId,
          hooksConfigured: true,
          hooks,
          error: { code: 'HOOK_FAILED', message: `pre-freeze hook ${failed.name} exited ${failed.exitCode}` },
        };
        return {
          code: 1,
          stdout: `${JSON.stringify(out)}\n`,
          stderr: 'simulated freeze: a pre-freeze hook failed\n',
        };
      }
      const at = Date.now();
      frozenAt.set(instanceId, at);
      const out = {
        schemaVersion: 1,
        action: 'freeze',
        status: 'frozen',
        simulated: true,
        executionId,
        frozenAt: new Date(at).toISOString(),
        frozenAtMs: at,
        targets: inst.volumes.map((v) => ({
          mountpoint: v.mountpoint,
          fstype: v.fstype,
          source: v.device,
          volumeIds: [v.volumeId],
        })),
        unmapped: [],
        skipped: [],
        hooksConfigured: hooks.length > 0,
        hooks,
        watchdog: {
          pid: 0,
          seconds: Number(parameters.WatchdogSeconds ?? 90),
          deadline: new Date(at + Number(parameters.WatchdogSeconds ?? 90) * 1000).toISOString(),
        },
        previous: null,
      };
      return {
        code: 0,
        stdout: `${JSON.stringify(out)}\n`,
        stderr: 'simulated freeze: no filesystem was frozen\n',
      };
    }
    if (documentName === names.thaw) {
      const at = Date.now();
      const since = frozenAt.get(instanceId);
      frozenAt.delete(instanceId);
      const hooks = await runHooks(inst, 'post-thaw', hookTimeout);
      const mounts = inst.volumes.map((v) => v.mountpoint);
      const out = {
        schemaVersion: 1,
        action: 'thaw',
        status: 'thawed',
        simulated: true,
        executionId,
        thawedAt: new Date(at).toISOString(),
        thawedAtMs: at,
        thawed: since === undefined ? [] : mounts,
        notFrozen: since === undefined ? mounts : [],
        failed: [],
        freezeMs: since === undefined ? 0 : at - since,
        watchdogFired: false,
        hooks,
      };
      return { code: 0, stdout: `${JSON.stringify(out)}\n`, stderr: '' };
    }
    return { code: 1, stdout: '', stderr: `the simulated lab does not run document ${documentName}\n` };
  };
}
