import { type OptionsResult, parseInstanceOptions } from '../shared/instance-options';
import type { FreezeFailurePolicy } from '../shared/options';
import { type ExclusionReason, MAX_FREEZE_VOLUMES } from '../shared/outcome';
import type { InstanceOptions } from '../shared/workflow-input';
import type { PlanEntry } from './fleet-plan';
import type { FleetInstance } from './instances';
import type { SsmReadiness } from './readiness';
import { DEFAULT_MAX_STAGGER_SECONDS, type StaggerSettings } from './stagger';

/**
 * What discovery does with one instance this window, and why. Pure: the same instance, SSM
 * answer and default always give the same decision, in the Lambda and in the dry-run plan.
 */
export type Decision =
  | {
      readonly action: 'freeze';
      readonly platform: 'linux' | 'windows';
      readonly options: InstanceOptions;
      readonly group?: string;
      readonly why: string;
    }
  | {
      readonly action: 'no-freeze';
      readonly platform: 'linux' | 'windows';
      readonly options: InstanceOptions;
      readonly group?: string;
      readonly why: string;
    }
  | { readonly action: 'excluded'; readonly reason: ExclusionReason; readonly detail: string };

/** Only running instances need SSM: a stopped one is backed up without a freeze. */
export function needsReadiness(instance: FleetInstance): boolean {
  return instance.state === 'running';
}

export function ec2Platform(instance: FleetInstance): 'linux' | 'windows' {
  if (instance.ec2Platform?.toLowerCase() === 'windows') return 'windows';
  return instance.platformDetails?.toLowerCase().includes('windows') ? 'windows' : 'linux';
}

/**
 * Everything that can be decided from EC2 alone. Undefined: a running instance that passed every
 * EC2 check and now needs its SSM readiness (so discovery only waits for SSM when it matters).
 */
export function decideFromEc2(
  instance: FleetInstance,
  parsed: OptionsResult,
): Exclude<Decision, { action: 'freeze' }> | undefined {
  const id = instance.instanceId;
  if (instance.state !== 'running' && instance.state !== 'stopped') {
    return {
      action: 'excluded',
      reason: 'unsupported-state',
      detail: `Instance ${id} is ${instance.state}; only running instances (frozen) and stopped instances (backed up without a freeze) are backed up. It is retried next window.`,
    };
  }
  if (instance.rootDeviceType === 'instance-store') {
    return {
      action: 'excluded',
      reason: 'no-ebs-volumes',
      detail: `Instance ${id} has an instance-store root device, which AWS Backup cannot back up.`,
    };
  }
  if (instance.volumeIds.length === 0) {
    return {
      action: 'excluded',
      reason: 'no-ebs-volumes',
      detail: `Instance ${id} has no attached EBS volume in its block device mappings; there is nothing to snapshot.`,
    };
  }
  if (!parsed.ok) return { action: 'excluded', reason: 'invalid-tag', detail: parsed.detail };
  if (instance.state === 'stopped') {
    return {
      action: 'no-freeze',
      platform: ec2Platform(instance),
      options: parsed.options,
      ...(parsed.group !== undefined ? { group: parsed.group } : {}),
      why: 'stopped: nothing is writing, so a backup without a freeze is consistent',
    };
  }
  return undefined;
}

/**
 * An entry whose group wave would start beyond the workflow's stagger limit is excluded: started,
 * its execution could time out while the instance is frozen. Undefined for every other entry.
 */
export function decideFromPlan(
  entry: PlanEntry,
  stagger: StaggerSettings,
): Extract<Decision, { action: 'excluded' }> | undefined {
  if (!entry.beyondStagger) return undefined;
  const seconds = stagger.maxStaggerSeconds ?? DEFAULT_MAX_STAGGER_SECONDS;
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  const limit =
    seconds % 86_400 === 0
      ? plural(seconds / 86_400, 'day')
      : seconds % 3600 === 0
        ? plural(seconds / 3600, 'hour')
        : plural(seconds, 'second');
  return {
    action: 'excluded',
    reason: 'stagger-limit',
    detail: `Instance ${entry.instance.instanceId} is in group ${entry.group} of ${entry.beyondStagger.groupMembers} running members; at maxFrozenPerGroup=${stagger.maxFrozenPerGroup} its wave ${entry.wave} would start ${entry.times.startAt.toISOString()}, and waves more than ${limit} after the window are not scheduled. Raise maxFrozenPerGroup or split the group.`,
  };
}

/**
 * The whole decision for a planned entry, in the order discovery makes it: EC2 alone, then the
 * entry's place in its group's waves, then SSM readiness. The dry-run plan calls this; the Lambda
 * makes the same three steps separately so that it only waits for SSM when it must.
 */
export function decideEntry(
  entry: PlanEntry,
  ssm: SsmReadiness | undefined,
  defaultOnFreezeFailure: FreezeFailurePolicy,
  stagger: StaggerSettings,
): Decision {
  const parsed = parseInstanceOptions(entry.instance.tags, defaultOnFreezeFailure);
  return (
    decideFromEc2(entry.instance, parsed) ??
    decideFromPlan(entry, stagger) ??
    classify(entry.instance, ssm, defaultOnFreezeFailure, parsed)
  );
}

export function classify(
  instance: FleetInstance,
  ssm: SsmReadiness | undefined,
  defaultOnFreezeFailure: FreezeFailurePolicy,
  parsed: OptionsResult = parseInstanceOptions(instance.tags, defaultOnFreezeFailure),
): Decision {
  const fromEc2 = decideFromEc2(instance, parsed);
  if (fromEc2) return fromEc2;
  if (!parsed.ok) return { action: 'excluded', reason: 'invalid-tag', detail: parsed.detail };
  const id = instance.instanceId;
  const group = parsed.group !== undefined ? { group: parsed.group } : {};
  let platform = ec2Platform(instance);
  if (!ssm) {
    return {
      action: 'excluded',
      reason: 'ssm-not-managed',
      detail: `Instance ${id} is running but is not a Systems Manager managed node, so it cannot be frozen. Install and start the SSM agent and give the instance profile AmazonSSMManagedInstanceCore.`,
    };
  }
  if (ssm.pingStatus !== 'Online') {
    return {
      action: 'excluded',
      reason: 'ssm-offline',
      detail: `Instance ${id} is running but its SSM agent is ${ssm.pingStatus}, not Online, so it cannot be frozen. Check the agent and the instance's route to the SSM endpoints.`,
    };
  }
  if (ssm.platformType === 'MacOS') {
    return {
      action: 'excluded',
      reason: 'unsupported-platform',
      detail: `Instance ${id} runs macOS (${ssm.platformName ?? 'unknown version'}); only Linux (fsfreeze) and Windows (VSS) are supported.`,
    };
  }
  if (ssm.platformType === 'Windows') platform = 'windows';
  // Decided after SSM, which knows the platform for sure: Windows takes no volume list (VSS).
  if (platform === 'linux' && instance.volumeIds.length > MAX_FREEZE_VOLUMES) {
    return {
      action: 'excluded',
      reason: 'too-many-volumes',
      detail: `Instance ${id} has ${instance.volumeIds.length} attached EBS volumes; the freeze document takes at most ${MAX_FREEZE_VOLUMES}, so it cannot be frozen. Detach volumes it does not need, or back it up with a plain AWS Backup plan.`,
    };
  }
  return {
    action: 'freeze',
    platform,
    options: parsed.options,
    ...group,
    why:
      platform === 'windows'
        ? `running, SSM Online (agent ${ssm.agentVersion ?? 'unknown'}): VSS snapshot`
        : `running, SSM Online (agent ${ssm.agentVersion ?? 'unknown'}): freeze, back up, thaw`,
  };
}
