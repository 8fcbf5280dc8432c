/**
 * The ServiceNow forwarder's environment and secret: the contract with lib/servicenow.ts, free of
 * SDK imports so the CDK app can use it.
 */

export const FORWARDER_ENV = {
  /** ARN of the Secrets Manager secret with the instance URL and the integration user's credentials. */
  secretArn: 'SERVICENOW_SECRET_ARN',
  /** URL of the queue that keeps what could not be delivered. */
  deadLetterQueueUrl: 'SERVICENOW_DEAD_LETTER_QUEUE_URL',
} as const;

/** Event Management's inbound event web service ("Pushing events to the instance using web service API"). */
export const INBOUND_EVENT_PATH = '/api/global/em/jsonv2';

/**
 * What the secret holds, as JSON. The stack creates it with empty values; an operator fills them in
 * (docs/servicenow.md).
 */
export interface ServiceNowCredentials {
  /** `https://<instance>.service-now.com` (http only for a loopback test server). */
  readonly instanceUrl: string;
  /** A user with the evt_mgmt_integration role only. */
  readonly username: string;
  readonly password: string;
}

/** The secret shape the stack stores, with nothing filled in. */
export const EMPTY_SECRET: ServiceNowCredentials = { instanceUrl: '', username: '', password: '' };

export interface ForwarderSettings {
  readonly secretArn: string;
  readonly deadLetterQueueUrl: string;
}

export class ForwarderConfigError extends Error {
  override readonly name = 'ForwarderConfigError';
}

const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/;
const QUEUE_URL = /^https:\/\/sqs\.[a-z0-9-]+\.amazonaws\.com(\.cn)?\/\d{12}\/[A-Za-z0-9_-]{1,80}$/;

/** Reads and checks the environment; throws naming the variable and what is allowed. */
export function readForwarderSettings(env: NodeJS.ProcessEnv): ForwarderSettings {
  const get = (name: string, pattern: RegExp, allowed: string): string => {
    const value = env[name];
    if (!value || !pattern.test(value)) {
      throw new ForwarderConfigError(
        `Environment variable ${name} is ${JSON.stringify(value)}; allowed: ${allowed}.`,
      );
    }
    return value;
  };
  return {
    secretArn: get(FORWARDER_ENV.secretArn, SECRET_ARN, 'a Secrets Manager secret ARN'),
    deadLetterQueueUrl: get(FORWARDER_ENV.deadLetterQueueUrl, QUEUE_URL, 'an SQS queue URL'),
  };
}

/** Why the secret cannot be used yet, in words that say what to put there; undefined when it can. */
export function credentialsProblem(value: unknown): string | undefined {
  const fill =
    'put {"instanceUrl":"https://<instance>.service-now.com","username":"<user with evt_mgmt_integration>","password":"..."} in it (docs/servicenow.md)';
  if (typeof value !== 'object' || value === null) return `the secret is not a JSON object: ${fill}`;
  const c = value as Record<string, unknown>;
  for (const key of ['instanceUrl', 'username', 'password'] as const) {
    if (typeof c[key] !== 'string' || c[key] === '') return `the secret has no ${key}: ${fill}`;
  }
  let url: URL;
  try {
    url = new URL(c.instanceUrl as string);
  } catch {
    return `instanceUrl ${JSON.stringify(c.instanceUrl)} is not a URL: ${fill}`;
  }
  const loopback = url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    return `instanceUrl ${JSON.stringify(c.instanceUrl)} is not https: the credentials travel in every request`;
  }
  if (url.pathname !== '/' || url.search || url.username || url.password) {
    return `instanceUrl ${JSON.stringify(c.instanceUrl)} must be the instance's base URL only, e.g. https://example.service-now.com (the path ${INBOUND_EVENT_PATH} is added, the credentials are separate keys)`;
  }
  return undefined;
}
