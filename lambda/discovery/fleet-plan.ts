import { isValidGroup, tagValue } from '../shared/instance-options';
import { OPTION_TAGS } from '../shared/tags';
import { slotOffsetMs } from './admission';
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

/**
 * Admission slots (lambda/discovery/admission.ts): the instance at position k of the sorted
 * listing starts k / rate seconds after its wave's start. Every wave of a group also waits for the
 * whole listing's admission (its span, rounded up to whole minutes so that a listing that changes
 * by a few instances between invocations keeps the same waves), so a group's wave k+1 starts at
 * least the wave spacing after its wave k's last slot, and the waves of different groups never
 * admit at the same time: the admission rate holds at every moment.
 */
export interface AdmissionSlots {
  readonly ratePerSecond: number;
}

/** Seconds a listing of `size` instances takes to admit, rounded up to whole minutes. */
export function admissionSpanSeconds(size: number, ratePerSecond: number): number {
  return Math.ceil(size / ratePerSecond / 60) * 60;
}

export function planFleet(
  instances: readonly FleetInstance[],
  window: Date,
  baseStagger: StaggerSettings,
  resume?: ResumePoint,
  admission?: AdmissionSlots,
): PlanEntry[] {
  const keyed = instances.map((instance) => ({ instance, key: sortKey(instance) }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const stagger: StaggerSettings = admission
    ? {
        ...baseStagger,
        marginSeconds:
          baseStagger.marginSeconds + admissionSpanSeconds(keyed.length, admission.ratePerSecond),
      }
    : baseStagger;
  // The slot's offset from its wave's start, from the position in the whole listing.
  const slotted = (times: StartWindow, position: number): StartWindow => {
    if (!admission) return times;
    const offset = slotOffsetMs(position, admission.ratePerSecond);
    return {
      startAt: new Date(times.startAt.getTime() + offset),
      notAfter: new Date(times.notAfter.getTime() + offset),
    };
  };
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
  for (const [position, { instance, key }] of keyed.entries()) {
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
        times: slotted(groupWaveTimes(window, wave, stagger), position),
        ...(wave > last ? { beyondStagger: { groupMembers: members.get(group) ?? slots } } : {}),
      });
    } else {
      entries.push({
        instance,
        key,
        ...(group !== undefined ? { group } : {}),
        slotsThrough: group !== undefined ? slots : 0,
        // Not frozen (stopped) or not in a group: no one to collide with.
        times: slotted(ungroupedTimes(window, stagger), position),
      });
    }
  }
  return entries;
}
