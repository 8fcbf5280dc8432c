import { windowFromScheduledTime } from '../lambda/discovery/window';
import { UsageError } from './errors';

export const COMMANDS = ['plan', 'run', 'status', 'recovery-points', 'preflight', 'watch'] as const;
export type Command = (typeof COMMANDS)[number];

export interface Options {
  readonly stack: string;
  readonly region?: string;
  readonly json: boolean;
  readonly window?: string;
  readonly instances: readonly string[];
  readonly group?: string;
  readonly all: boolean;
  readonly yes: boolean;
  readonly wait: boolean;
  readonly run?: string;
  readonly consistency?: string;
  readonly intervalSeconds: number;
  readonly timeoutSeconds?: number;
}

export type Parsed =
  | { readonly kind: 'help'; readonly command?: Command }
  | { readonly kind: 'version' }
  | { readonly kind: 'command'; readonly command: Command; readonly options: Options };

export const DEFAULT_STACK = 'Ec2ConsistentBackup';

export const USAGE = `Usage: npx ec2-consistent-backup <command> [options]

Operate a deployed ec2-consistent-backup stack (found by its CloudFormation outputs).

Commands:
  plan              what discovery would do for a window now (dry run: nothing is started)
  run               back up one instance, a group or all now, through the same workflow
  status            the last (or a named) run: per instance label, reason, freeze, job, notification
  recovery-points   the vault's recovery points by consistency label
  preflight         run the preflight document on an instance and show its readiness
  watch             follow a run until it ends

Options for every command:
  --stack <name>    the stack (default ${DEFAULT_STACK}, or EC2_CONSISTENT_BACKUP_STACK)
  --region <name>   the Region (default AWS_REGION, AWS_DEFAULT_REGION or the profile's)
  --json            one JSON document on stdout instead of text
  -h, --help        this help, or a command's: npx ec2-consistent-backup <command> --help
  --version         the tool's version

Credentials: the AWS SDK's default chain (AWS_PROFILE, environment, SSO, instance role).
Exit codes: 0 ok, 1 needs attention (failures, not ready), 2 usage, 3 no credentials,
4 stack not deployed, 5 AWS error.`;

export const COMMAND_HELP: Record<Command, string> = {
  plan: `Usage: npx ec2-consistent-backup plan [--window <ISO time>]

Lists every opted-in instance with what discovery would do for the window (default: now): back up
with a freeze, with VSS, without a freeze, or exclude it and why; its group wave and start time.
Uses the deployed settings (stack output DeployedSettings). Starts nothing.`,
  run: `Usage: npx ec2-consistent-backup run (--instance <id> [--instance <id> ...] | --group <name> | --all) [--yes] [--wait]

Backs up now through the same discovery and workflow as the schedule: readiness checks, exclusions,
group waves and notifications apply. The run is named run-od<time> and its executions
<instance>-od<time>, which no schedule window can produce. --all asks for confirmation unless
--yes is given (required when not on a terminal). --wait follows the run to its end (as watch).`,
  status: `Usage: npx ec2-consistent-backup status [--run <run id> | --window <ISO time>]

Shows the run (default: the latest) per instance: execution status, outcome, consistency label,
freeze time, backup job state, the notification sent, and the reason. Exit code 1 when an
execution failed or a backup is only crash-consistent.`,
  'recovery-points': `Usage: npx ec2-consistent-backup recovery-points [--consistency application|filesystem|crash|pending|unlabelled] [--instance <id>]

Lists the vault's EC2 recovery points with the consistency label on their AMI, and counts them by
label. A recovery point still pending lost its verdict: treat it as crash-consistent.`,
  preflight: `Usage: npx ec2-consistent-backup preflight --instance <id> [--timeout <seconds>]

Sends the preflight document (no freeze) to the instance with its volumes and option tags, waits
for it (default 120 s), and shows whether it is ready and what is missing. Exit code 1 when not ready.`,
  watch: `Usage: npx ec2-consistent-backup watch [--run <run id>] [--interval <seconds>] [--timeout <seconds>]

Follows a run (default: the latest) until its summary is sent, showing progress, then prints its
status. Exit codes as status.`,
};

/** The labels `recovery-points --consistency` filters on. */
export const CONSISTENCY_FILTERS = ['application', 'filesystem', 'crash', 'pending', 'unlabelled'] as const;

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
const RUN_ID = /^run-(\d{8}T\d{4}Z|od\d{8}T\d{6}Z)$/;

function positiveInt(flag: string, value: string, max: number): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw new UsageError(`${flag}: got ${JSON.stringify(value)}; allowed: a whole number from 1 to ${max}.`);
  }
  return Number(value);
}

export function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Parsed {
  if (argv.includes('--version')) return { kind: 'version' };
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    const named = rest[0] as Command | undefined;
    return { kind: 'help', ...(named && COMMANDS.includes(named) ? { command: named } : {}) };
  }
  if (!COMMANDS.includes(first as Command)) {
    throw new UsageError(
      `Unknown command ${JSON.stringify(first)}; allowed: ${COMMANDS.join(', ')} (or --help).`,
    );
  }
  const command = first as Command;
  if (rest.includes('-h') || rest.includes('--help')) return { kind: 'help', command };

  let stack = env.EC2_CONSISTENT_BACKUP_STACK || DEFAULT_STACK;
  let region: string | undefined;
  let json = false;
  let window: string | undefined;
  const instances: string[] = [];
  let group: string | undefined;
  let all = false;
  let yes = false;
  let wait = false;
  let run: string | undefined;
  let consistency: string | undefined;
  let intervalSeconds = 15;
  let timeoutSeconds: number | undefined;
  const allowed: Record<Command, readonly string[]> = {
    plan: ['--window'],
    run: ['--instance', '--group', '--all', '--yes', '--wait', '--interval'],
    status: ['--run', '--window'],
    'recovery-points': ['--consistency', '--instance'],
    preflight: ['--instance', '--timeout'],
    watch: ['--run', '--interval', '--timeout'],
  };
  const globals = ['--stack', '--region', '--json'];
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i] as string;
    if (!globals.includes(flag) && !allowed[command].includes(flag)) {
      throw new UsageError(
        `${command}: unknown option ${JSON.stringify(flag)}; allowed: ${[...allowed[command], ...globals].join(', ')}.`,
      );
    }
    const value = (): string => {
      const v = rest[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${flag} needs a value.`);
      return v;
    };
    switch (flag) {
      case '--stack':
        stack = value();
        break;
      case '--region':
        region = value();
        break;
      case '--json':
        json = true;
        break;
      case '--window':
        window = value();
        try {
          windowFromScheduledTime(window);
        } catch {
          throw new UsageError(
            `--window: got ${JSON.stringify(window)}; allowed: an ISO-8601 time with a zone, such as 2026-11-22T02:00:00Z.`,
          );
        }
        break;
      case '--instance':
        for (const id of value().split(',')) {
          if (!INSTANCE_ID.test(id)) {
            throw new UsageError(
              `--instance: got ${JSON.stringify(id)}; allowed: an instance id such as i-0123456789abcdef0.`,
            );
          }
          instances.push(id);
        }
        break;
      case '--group':
        group = value();
        break;
      case '--all':
        all = true;
        break;
      case '--yes':
        yes = true;
        break;
      case '--wait':
        wait = true;
        break;
      case '--run':
        run = value();
        if (!RUN_ID.test(run)) {
          throw new UsageError(
            `--run: got ${JSON.stringify(run)}; allowed: a run id such as run-20261122T0200Z or run-od20261202T081522Z.`,
          );
        }
        break;
      case '--consistency':
        consistency = value();
        if (!(CONSISTENCY_FILTERS as readonly string[]).includes(consistency)) {
          throw new UsageError(
            `--consistency: got ${JSON.stringify(consistency)}; allowed: ${CONSISTENCY_FILTERS.join(', ')}.`,
          );
        }
        break;
      case '--interval':
        intervalSeconds = positiveInt(flag, value(), 3600);
        break;
      case '--timeout':
        timeoutSeconds = positiveInt(flag, value(), 86_400);
        break;
    }
  }
  if (!/^[A-Za-z][A-Za-z0-9-]{0,127}$/.test(stack)) {
    throw new UsageError(`--stack: got ${JSON.stringify(stack)}; allowed: a CloudFormation stack name.`);
  }
  if (region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) {
    throw new UsageError(
      `--region: got ${JSON.stringify(region)}; allowed: a Region name such as eu-west-1.`,
    );
  }
  if (command === 'run') {
    const chosen = [instances.length > 0, group !== undefined, all].filter(Boolean).length;
    if (chosen !== 1)
      throw new UsageError('run: give exactly one of --instance <id>, --group <name> or --all.');
  }
  if (command === 'preflight' && instances.length !== 1) {
    throw new UsageError('preflight: give one --instance <id>.');
  }
  if (command === 'recovery-points' && instances.length > 1) {
    throw new UsageError('recovery-points: give at most one --instance <id>.');
  }
  if (run !== undefined && window !== undefined)
    throw new UsageError('status: give --run or --window, not both.');
  return {
    kind: 'command',
    command,
    options: {
      stack,
      ...(region ? { region } : {}),
      json,
      ...(window ? { window } : {}),
      instances,
      ...(group !== undefined ? { group } : {}),
      all,
      yes,
      wait,
      ...(run ? { run } : {}),
      ...(consistency ? { consistency } : {}),
      intervalSeconds,
      ...(timeoutSeconds ? { timeoutSeconds } : {}),
    },
  };
}
