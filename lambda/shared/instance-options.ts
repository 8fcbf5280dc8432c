import { appsTagProblem, parseApps } from './apps';
import { FREEZE_FAILURE_POLICIES, type FreezeFailurePolicy } from './options';
import { OPTION_TAGS } from './tags';
import type { InstanceOptions } from './workflow-input';

/**
 * Validation of the per-instance option tags (lambda/shared/tags.ts). Discovery runs it on every
 * instance; an instance with an invalid value is excluded with the problems listed here, and the
 * rest of the fleet proceeds. The path rules are the ones the on-instance Freeze document accepts
 * (ssm-documents/README.md), so nothing that passes here can be refused there.
 */

/** At most this many paths in one Include or Exclude tag. */
export const MAX_PATHS = 16;
/** At most this many characters in one Include or Exclude tag (AWS allows 256 in any tag value). */
export const MAX_PATHS_CHARS = 256;
/** Group names: printable ASCII that is safe in logs, JSON and ServiceNow fields. */
export const MAX_GROUP_CHARS = 128;

const PATH = /^\/[A-Za-z0-9._/-]*$/;
const GROUP = /^[A-Za-z0-9_.:/=+@-](?:[A-Za-z0-9 _.:/=+@-]*[A-Za-z0-9_.:/=+@-])?$/;

export const PATHS_ALLOWED =
  `empty, or up to ${MAX_PATHS} absolute paths separated by commas or spaces, ` +
  `each made of letters, digits and . _ / - with no ".." segment, ${MAX_PATHS_CHARS} characters in all`;
export const GROUP_ALLOWED = `1-${MAX_GROUP_CHARS} letters, digits, spaces or _ . : / = + @ -, not starting or ending with a space`;
export const ON_FREEZE_FAILURE_ALLOWED = `${FREEZE_FAILURE_POLICIES.join(' or ')}, or absent for the deployment default`;

export interface TagProblem {
  readonly tag: string;
  readonly value: string;
  readonly allowed: string;
}

export type OptionsResult =
  | { readonly ok: true; readonly options: InstanceOptions; readonly group?: string }
  | { readonly ok: false; readonly problems: readonly TagProblem[]; readonly detail: string };

/** Tags as EC2 returns them, or as a plain map. */
export type TagList = readonly { readonly Key?: string; readonly Value?: string }[] | undefined;

export function tagValue(tags: TagList, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}

/**
 * Splits and checks an Include/Exclude value; returns the canonical comma-separated form the
 * Freeze document takes, or the reason it is refused.
 */
export function parsePaths(value: string): { ok: true; paths: string } | { ok: false } {
  if (value.length > MAX_PATHS_CHARS) return { ok: false };
  const paths = value.split(/[\s,]+/).filter((p) => p !== '');
  if (paths.length > MAX_PATHS) return { ok: false };
  for (const p of paths) {
    if (!PATH.test(p)) return { ok: false };
    if (p.split('/').includes('..')) return { ok: false };
  }
  return { ok: true, paths: paths.join(',') };
}

export function isValidGroup(value: string): boolean {
  return value.length <= MAX_GROUP_CHARS && GROUP.test(value);
}

/**
 * Reads and validates every option tag of one instance. All problems are reported at once, so an
 * operator fixes the tags in one go.
 */
export function parseInstanceOptions(
  tags: TagList,
  defaultOnFreezeFailure: FreezeFailurePolicy,
): OptionsResult {
  const problems: TagProblem[] = [];

  const include = tagValue(tags, OPTION_TAGS.include) ?? '';
  const includeParsed = parsePaths(include);
  if (!includeParsed.ok) problems.push({ tag: OPTION_TAGS.include, value: include, allowed: PATHS_ALLOWED });

  const exclude = tagValue(tags, OPTION_TAGS.exclude) ?? '';
  const excludeParsed = parsePaths(exclude);
  if (!excludeParsed.ok) problems.push({ tag: OPTION_TAGS.exclude, value: exclude, allowed: PATHS_ALLOWED });

  const policyRaw = tagValue(tags, OPTION_TAGS.onFreezeFailure);
  let onFreezeFailure = defaultOnFreezeFailure;
  if (policyRaw !== undefined) {
    if (FREEZE_FAILURE_POLICIES.includes(policyRaw as FreezeFailurePolicy)) {
      onFreezeFailure = policyRaw as FreezeFailurePolicy;
    } else {
      problems.push({
        tag: OPTION_TAGS.onFreezeFailure,
        value: policyRaw,
        allowed: ON_FREEZE_FAILURE_ALLOWED,
      });
    }
  }

  const groupRaw = tagValue(tags, OPTION_TAGS.group);
  if (groupRaw !== undefined && !isValidGroup(groupRaw)) {
    problems.push({ tag: OPTION_TAGS.group, value: groupRaw, allowed: GROUP_ALLOWED });
  }

  const appsRaw = tagValue(tags, OPTION_TAGS.apps);
  const appsProblem = appsTagProblem(appsRaw);
  if (appsProblem) problems.push(appsProblem);
  const apps = parseApps(appsRaw ?? '');

  if (problems.length > 0 || !apps.ok || !includeParsed.ok || !excludeParsed.ok) {
    return { ok: false, problems, detail: describeProblems(problems) };
  }
  return {
    ok: true,
    options: {
      include: includeParsed.paths,
      exclude: excludeParsed.paths,
      onFreezeFailure,
      // Only with the tag: an empty Apps tag still removes packaged hooks installed earlier.
      ...(appsRaw !== undefined ? { apps: apps.apps } : {}),
    },
    ...(groupRaw !== undefined ? { group: groupRaw } : {}),
  };
}

export function describeProblems(problems: readonly TagProblem[]): string {
  return problems
    .map((p) => `Tag ${p.tag} has the invalid value ${JSON.stringify(p.value)}; allowed: ${p.allowed}.`)
    .join(' ');
}
