import { OPTION_TAGS } from './tags';

/**
 * The packaged application hooks (ssm-documents/apps/<app>.sh) an instance selects with its
 * `ConsistentBackup:Apps` tag. Discovery validates the tag here; lib/documents.ts builds the Apps
 * parameter's allowedPattern from the same list, so a value that passes here is never refused there.
 */
export const PACKAGED_APPS = ['postgresql', 'mysql', 'redis'] as const;
export type PackagedApp = (typeof PACKAGED_APPS)[number];

/** Names users also write for a packaged app: MariaDB is served by the mysql hook. */
export const APP_ALIASES: Readonly<Record<string, PackagedApp>> = {
  mariadb: 'mysql',
  postgres: 'postgresql',
};

export const APPS_ALLOWED =
  `empty, or one or more of ${PACKAGED_APPS.join(', ')} (aliases: ` +
  `${Object.entries(APP_ALIASES)
    .map(([a, b]) => `${a} for ${b}`)
    .join(', ')}) separated by commas or spaces, each at most once`;

/**
 * The Apps parameter's allowedPattern in the Freeze, Preflight and AppHooks documents: the canonical
 * comma-separated form parseApps returns (each app at most once, so at most PACKAGED_APPS.length).
 */
export function appsPattern(): string {
  const one = `(${PACKAGED_APPS.join('|')})`;
  return `^$|^${one}(,${one}){0,${PACKAGED_APPS.length - 1}}$`;
}

export type AppsResult = { readonly ok: true; readonly apps: string } | { readonly ok: false };

/** Splits, maps aliases and checks an Apps tag value; returns the canonical comma-separated list. */
export function parseApps(value: string): AppsResult {
  const names = value
    .toLowerCase()
    .split(/[\s,]+/)
    .filter((n) => n !== '');
  const apps: PackagedApp[] = [];
  for (const name of names) {
    const app = (PACKAGED_APPS as readonly string[]).includes(name)
      ? (name as PackagedApp)
      : APP_ALIASES[name];
    if (app === undefined || apps.includes(app)) return { ok: false };
    apps.push(app);
  }
  return { ok: true, apps: apps.join(',') };
}

/** The tag's problem in the shape the other option tags report, or undefined. */
export function appsTagProblem(
  value: string | undefined,
): { tag: string; value: string; allowed: string } | undefined {
  if (value === undefined || parseApps(value).ok) return undefined;
  return { tag: OPTION_TAGS.apps, value, allowed: APPS_ALLOWED };
}
