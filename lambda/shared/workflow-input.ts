import type { FreezeFailurePolicy } from './options';

/**
 * What discovery hands each per-instance Step Functions execution, so the workflow repeats no
 * look-up discovery already made. Defined once here; lib/workflow.ts reads these paths.
 */
export interface WorkflowInput {
  readonly schemaVersion: 1;
  /** The scheduled run this execution belongs to (one per schedule window). */
  readonly runId: string;
  /** ISO-8601 UTC start of the schedule window, e.g. 2026-11-22T02:00:00Z. */
  readonly window: string;
  readonly accountId: string;
  readonly region: string;
  readonly instanceId: string;
  /** arn:aws:ec2:<region>:<account>:instance/<id>, the resource AWS Backup backs up. */
  readonly instanceArn: string;
  /** The Name tag, when present. */
  readonly instanceName?: string;
  readonly platform: 'linux' | 'windows';
  /** `stopped` instances are backed up without a freeze. */
  readonly instanceState: 'running' | 'stopped';
  /** Attached EBS volume ids from the block device mappings. */
  readonly volumeIds: readonly string[];
  /**
   * `vol-id=/dev/name`, one per attached volume whose block device mapping's DeviceName fits
   * {@link VOLUME_DEVICE_ENTRY}; freeze-filesystems joins them into the freeze's `VolumeDevices`. Xen instances
   * need them: no device there carries its volume id. Optional so that input written before the
   * field existed still runs (the workflow then sends none, as before).
   */
  readonly volumeDevices?: readonly string[];
  /** ISO-8601 UTC: the execution waits until then before freezing (blast-radius staggering). */
  readonly startAt: string;
  /** ISO-8601 UTC: the instance refuses a freeze command that arrives after this. */
  readonly notAfter: string;
  /** Blast-radius group from the group tag, when present. */
  readonly group?: string;
  readonly options: InstanceOptions;
}

export interface InstanceOptions {
  /** Extra mount points to freeze, comma separated, validated (may be empty). */
  readonly include: string;
  /** Mount points never to freeze, comma separated, validated (may be empty). */
  readonly exclude: string;
  readonly onFreezeFailure: FreezeFailurePolicy;
  /**
   * Packaged application hooks from the Apps tag, canonical and comma separated (lambda/shared/apps.ts).
   * Absent without the tag (nothing installed or removed); empty with an empty tag (installed ones removed).
   */
  readonly apps?: string;
}

/**
 * One entry of the freeze document's `VolumeDevices` parameter (ssm-documents/freeze.yml allowedPattern,
 * which also caps the list at MAX_FREEZE_VOLUMES entries). A device name outside this is left out,
 * never passed raw: the document would refuse the whole command.
 */
export const VOLUME_DEVICE_ENTRY = /^vol-[0-9a-f]{8,17}=\/dev\/[a-z0-9]{1,16}$/;

/**
 * What the workflow's first state (`Check Input`, lib/workflow.ts) requires of its input: every
 * field a later state reads. A state reading a missing field fails with an uncatchable
 * States.Runtime (perhaps while frozen), so input that breaks one of these never starts. Each check
 * is expressed in what an ASL Choice can test (IsPresent, IsString, IsTimestamp, StringMatches with
 * `*` as its only wildcard); {@link inputProblems} applies the same checks in TypeScript to name
 * the offending value in a notification.
 */
export interface InputCheck {
  /** JSONPath of the field, as the states read it. */
  readonly path: string;
  /** present: any value; string: a string; timestamp: an RFC 3339 timestamp (ASL IsTimestamp). */
  readonly kind: 'present' | 'string' | 'timestamp';
  /** StringMatches pattern (only `*` is a wildcard). */
  readonly matches?: string;
  /** What is allowed, for the error message. */
  readonly allowed: string;
}

export const INPUT_CHECKS: readonly InputCheck[] = [
  { path: '$.startAt', kind: 'timestamp', allowed: 'an RFC 3339 timestamp, e.g. 2026-11-22T02:00:00Z' },
  {
    path: '$.instanceId',
    kind: 'string',
    matches: 'i-*',
    allowed: 'an EC2 instance id, e.g. i-0123456789abcdef0',
  },
  {
    path: '$.instanceArn',
    kind: 'string',
    matches: 'arn:aws*:ec2:*:*:instance/i-*',
    allowed: 'an EC2 instance ARN, arn:aws:ec2:<region>:<account>:instance/i-...',
  },
  { path: '$.accountId', kind: 'string', allowed: 'a string (the account id)' },
  { path: '$.region', kind: 'string', allowed: 'a string (the Region)' },
  { path: '$.window', kind: 'string', allowed: 'a string (the window start, ISO-8601)' },
  { path: '$.platform', kind: 'string', allowed: 'a string: linux or windows' },
  { path: '$.instanceState', kind: 'string', allowed: 'a string: running or stopped' },
  { path: '$.volumeIds', kind: 'present', allowed: 'a list of EBS volume ids' },
  { path: '$.notAfter', kind: 'string', allowed: 'a string (ISO-8601 UTC)' },
  { path: '$.options.include', kind: 'string', allowed: 'a string (mount points, comma separated)' },
  { path: '$.options.exclude', kind: 'string', allowed: 'a string (mount points, comma separated)' },
];

/** ASL's IsTimestamp: RFC 3339, upper-case T, Z or a numeric offset. */
const RFC3339 =
  /^\d{4}-(0[1-9]|1[012])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$/;

function wildcard(pattern: string): RegExp {
  return new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
    's',
  );
}

function valueAt(input: unknown, path: string): { found: boolean; value?: unknown } {
  let value: unknown = input;
  for (const key of path.replace(/^\$\./, '').split('.')) {
    if (value === null || typeof value !== 'object' || !(key in value)) return { found: false };
    value = (value as Record<string, unknown>)[key];
  }
  return { found: true, value };
}

/** Every check of {@link INPUT_CHECKS} `input` fails, as "<field> is <value>; allowed: <what>". */
export function inputProblems(input: unknown): string[] {
  const problems: string[] = [];
  for (const check of INPUT_CHECKS) {
    const field = check.path.replace(/^\$\./, '');
    const { found, value } = valueAt(input, check.path);
    const ok =
      found &&
      (check.kind === 'present' ||
        (typeof value === 'string' &&
          (check.kind !== 'timestamp' || RFC3339.test(value)) &&
          (!check.matches || wildcard(check.matches).test(value))));
    if (!ok) {
      const shown = found ? JSON.stringify(value)?.slice(0, 120) : 'missing';
      problems.push(`${field} is ${shown}; allowed: ${check.allowed}`);
    }
  }
  return problems;
}
