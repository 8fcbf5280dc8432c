/**
 * Exit codes of `ec2-consistent-backup`, one per kind of ending a script can act on.
 */
export const EXIT = {
  ok: 0,
  /** The command ran, and what it checked needs attention (failed executions, not ready, ...). */
  attention: 1,
  /** Wrong arguments. */
  usage: 2,
  /** No usable AWS credentials. */
  credentials: 3,
  /** The stack is not deployed (or not by a version of this tool). */
  notDeployed: 4,
  /** AWS refused or failed a call the tool needed. */
  aws: 5,
} as const;

export class CliError extends Error {
  override readonly name: string = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export class UsageError extends CliError {
  override readonly name = 'UsageError';
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}

export class CredentialsError extends CliError {
  override readonly name = 'CredentialsError';
  constructor(message: string) {
    super(message, EXIT.credentials);
  }
}

export class NotDeployedError extends CliError {
  override readonly name = 'NotDeployedError';
  constructor(message: string) {
    super(message, EXIT.notDeployed);
  }
}

/** SDK errors that mean "these credentials are missing, expired or not valid". */
const CREDENTIAL_ERRORS = new Set([
  'CredentialsProviderError',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'TokenRefreshRequired',
]);

export function isCredentialsError(err: unknown): boolean {
  const name = (err as { name?: string })?.name ?? '';
  return CREDENTIAL_ERRORS.has(name) || /Could not load credentials|credential/i.test(name);
}

export function describe(err: unknown): string {
  const e = err as { name?: string; message?: string };
  return `${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`;
}
