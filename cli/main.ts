/**
 * `npx ec2-consistent-backup <command>`: operate a deployed stack. Exit codes in cli/errors.ts.
 */

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { COMMAND_HELP, type Command, type Options, parseArgs, USAGE } from './args';
import { type ClientFactory, sdkClients } from './aws';
import { plan } from './commands/plan';
import { preflight } from './commands/preflight';
import { recoveryPoints } from './commands/recovery-points';
import { run } from './commands/run';
import { status } from './commands/status';
import { watch } from './commands/watch';
import { type Deployment, findDeployment } from './deployment';
import { CliError, CredentialsError, describe, EXIT, isCredentialsError } from './errors';
import { type Io, processIo } from './io';

type Handler = (aws: ReturnType<ClientFactory>, d: Deployment, options: Options, io: Io) => Promise<number>;

const HANDLERS: Record<Command, Handler> = {
  plan,
  run,
  status,
  'recovery-points': recoveryPoints,
  preflight,
  watch,
};

export async function main(
  argv: readonly string[],
  io: Io,
  clients: ClientFactory,
  env = process.env,
): Promise<number> {
  try {
    const parsed = parseArgs(argv, env);
    if (parsed.kind === 'version') {
      const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as {
        version: string;
      };
      io.out(pkg.version);
      return EXIT.ok;
    }
    if (parsed.kind === 'help') {
      io.out(parsed.command ? COMMAND_HELP[parsed.command] : USAGE);
      return EXIT.ok;
    }
    const aws = clients(parsed.options.region);
    io.progress(`finding stack ${parsed.options.stack}...`);
    const deployment = await findDeployment(aws, parsed.options.stack);
    return await HANDLERS[parsed.command](aws, deployment, parsed.options, io);
  } catch (err) {
    if (err instanceof CliError) {
      io.err(`ec2-consistent-backup: ${err.message}`);
      return err.exitCode;
    }
    if (isCredentialsError(err)) {
      const e = new CredentialsError(`AWS refused the credentials: ${describe(err)}`);
      io.err(`ec2-consistent-backup: ${e.message}`);
      return e.exitCode;
    }
    io.err(`ec2-consistent-backup: ${describe(err)}`);
    return EXIT.aws;
  }
}

/** The entry point of bin (cli/ec2-consistent-backup.cjs). */
export async function runCli(argv: readonly string[]): Promise<number> {
  return main(argv, processIo(), sdkClients);
}
