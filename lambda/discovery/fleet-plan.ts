import { isValidGroup, tagValue } from '../shared/instance-options';
import { OPTION_TAGS } from '../shared/tags';
import type { FleetInstance } from './instances';
import {
  groupWaveTimes,
  lastWave,
  type StaggerSettings,
  type StartWindow,
  ungroupedTimes,
  waveOf,
} from './stagger';

/**
 * The order in which a run handles its instances, and each one's place in its group's waves.
 *
 * Order: grouped instances first (their waves have the tighter start slack), by group then
 * instance id; then instances without a group, by id. Every member of a group is therefore
 * handled consecutively, so a hand-over cursor only ever splits one group, and it carries that
 * one group's count of used slots: the cursor stays a few hundred bytes at any fleet size.
 *
 * Slots: every running member with a valid group tag takes the next slot of its group, whether or
 * not it turns out to be ready. A member that SSM later reports offline leaves its slot empty,
 * which never lets two members overlap, and keeps every member's wave independent of the others'
 * SSM state, so the waves computed by a later invocation agree with the earlier one's.
 */

export interface PlanEntry {
  readonly instance: FleetInstance;
  readonly key: string;
  /** The group, when the instance holds a slot in one. */
  readonly group?: string;
  readonly wave?: number;
  /** Slots used in this entry's group up to and including this entry (0 without a group). */
  readonly slotsThrough: number;
  readonly times: StartWindow;
  /**
   * Set when the entry's wave would start later than the workflow allows (maxStaggerSeconds after
   * the window): the entry must not be started. `groupMembers` counts the group's slot holders.
   */
  readonly beyondStagger?: { readonly groupMembers: number };
}

/** Where the previous invocation of a run stopped: everything at or before `afterKey` is handled. */
export interface ResumePoint {
  readonly afterKey: string;
  /** Slots already used in the group of `afterKey` (0 when it has none). */
  readonly boundarySlots: number;
}

/** Sort key; the NUL separators keep group prefixes ("db" before "db-2") in a consistent order. */
export function sortKey(instance: FleetInstance): string {
  const group = tagValue(instance.tags, OPTION_TAGS.group);
  return group === undefined
    ? `1\u0000\u0000${instance.instanceId}`
    : `0\u0000${group}\u0000${instance.instanceId}`;
}

export function groupOfKey(key: string): string | undefined {
  const [flag, group] = key.split('\u0000');
  return flag === '0' ? group : undefined;
}

export function planFleet(
  instances: readonly FleetInstance[],
  window: Date,
  stagger: StaggerSettings,
  resume?: ResumePoint,
): PlanEntry[] {
  const keyed = instances.map((instance) => ({ instance, key: sortKey(instance) }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const boundaryGroup = resume ? groupOfKey(resume.afterKey) : undefined;
  const last = lastWave(stagger);
  // Counted over the whole listing, so an invocation resuming mid-group names the same size.
  const members = new Map<string, number>();
  for (const { instance } of keyed) {
    const raw = tagValue(instance.tags, OPTION_TAGS.group);
    if (raw !== undefined && isValidGroup(raw) && instance.state === 'running') {
      members.set(raw, (members.get(raw) ?? 0) + 1);
    }
  }
  const entries: PlanEntry[] = [];
  let currentGroup: string | undefined;
  let slots = 0;
  for (const { instance, key } of keyed) {
    if (resume && key <= resume.afterKey) continue;
    const raw = tagValue(instance.tags, OPTION_TAGS.group);
    const group = raw !== undefined && isValidGroup(raw) ? raw : undefined;
    if (group !== currentGroup) {
      currentGroup = group;
      slots = group !== undefined && group === boundaryGroup ? resume!.boundarySlots : 0;
    }
    if (group !== undefined && instance.state === 'running') {
      const wave = waveOf(slots, stagger.maxFrozenPerGroup);
      slots++;
      entries.push({
        instance,
        key,
        group,
        wave,
        slotsThrough: slots,
        times: groupWaveTimes(window, wave, stagger),
        ...(wave > last ? { beyondStagger: { groupMembers: members.get(group) ?? slots } } : {}),
      });
    } else {
      entries.push({
        instance,
        key,
        ...(group !== undefined ? { group } : {}),
        slotsThrough: group !== undefined ? slots : 0,
        // Not frozen (stopped) or not in a group: no one to collide with.
        times: ungroupedTimes(window, stagger),
      });
    }
  }
  return entries;
}
