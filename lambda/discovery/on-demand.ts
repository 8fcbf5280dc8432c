/**
 * An on-demand run: the same discovery (readiness, exclusions, blast-radius waves, pacing, the run
 * summary) for some instances now, started by an operator (`npx ec2-consistent-backup run`) instead
 * of the schedule.
 *
 * Its names cannot collide with a scheduled window's: a scheduled run is `run-<yyyymmddThhmmZ>`
 * and its executions `<instanceId>-<yyyymmddThhmmZ>`; an on-demand run's id is `od` followed by
 * the request time to the second (`od20261202T081522Z`), its run `run-od...` and its executions
 * `<instanceId>-od...`, which no schedule window's stamp can equal. Repeating the same request
 * (a retried invoke, a hand-over) starts nothing twice, as for a window.
 */

import { OPTION_TAGS } from '../shared/tags';
import type { FleetInstance } from './instances';
import { InvalidEventError } from './window';

export interface OnDemandRequest {
  /** `od<yyyymmddThhmmss>Z`: the request time, which also names the run and its executions. */
  readonly id: string;
  /** Back up only these instances (each must be opted in). */
  readonly instanceIds?: readonly string[];
  /** Back up only the instances of this blast-radius group. */
  readonly group?: string;
}

const ID = /^od\d{8}T\d{6}Z$/;
const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
const GROUP = /^[\p{L}\p{N}_.:/=+\-@ ]{1,256}$/u;

/** `od20261202T081522Z` for a time. */
export function onDemandId(at: Date): string {
  const iso = at.toISOString();
  return `od${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

/** The request in a discovery event, checked; undefined for a scheduled run. */
export function parseOnDemand(raw: unknown): OnDemandRequest | undefined {
  if (raw === undefined) return undefined;
  const bad = (allowed: string): never => {
    throw new InvalidEventError(`Invalid event "onDemand": got ${JSON.stringify(raw)}; allowed: ${allowed}.`);
  };
  if (typeof raw !== 'object' || raw === null) return bad('an object {id, instanceIds? | group?}');
  const r = raw as Record<string, unknown>;
  if (typeof r.id !== 'string' || !ID.test(r.id)) return bad('an id od<yyyymmddThhmmss>Z');
  const ids = r.instanceIds;
  if (
    ids !== undefined &&
    (!Array.isArray(ids) ||
      ids.length === 0 ||
      ids.length > 1000 ||
      !ids.every((i) => typeof i === 'string' && INSTANCE_ID.test(i)))
  ) {
    return bad('instanceIds as 1-1000 instance ids (i-...)');
  }
  if (r.group !== undefined && (typeof r.group !== 'string' || !GROUP.test(r.group))) {
    return bad('group as a group tag value (1-256 characters)');
  }
  if (ids !== undefined && r.group !== undefined) return bad('instanceIds or group, not both');
  return {
    id: r.id,
    ...(ids ? { instanceIds: ids as string[] } : {}),
    ...(r.group ? { group: r.group as string } : {}),
  };
}

export function onDemandRunId(request: OnDemandRequest): string {
  return `run-${request.id}`;
}

export function onDemandExecutionName(instanceId: string, request: OnDemandRequest): string {
  return `${instanceId}-${request.id}`;
}

/** The opted-in instances the request names (all of them when it names none). */
export function selectOnDemand(
  instances: readonly FleetInstance[],
  request: OnDemandRequest,
): FleetInstance[] {
  if (request.instanceIds) {
    const wanted = new Set(request.instanceIds);
    return instances.filter((i) => wanted.has(i.instanceId));
  }
  if (request.group !== undefined) {
    return instances.filter((i) => i.tags.find((t) => t.Key === OPTION_TAGS.group)?.Value === request.group);
  }
  return [...instances];
}
