/**
 * A stand-in for ServiceNow's inbound event web service on 127.0.0.1 that checks every request
 * the way ServiceNow documents it ("Pushing events to the instance using web service API"; field
 * lengths from "Event field format for event collection"):
 * - `POST /api/global/em/jsonv2`, anything else is 404 (or 405 for another method);
 * - basic authentication of the configured integration user, else 401;
 * - `Content-Type: application/json` (415) and `Accept: application/json` (406);
 * - a body `{"records": [...]}` of one or more events, each with source, node, type and resource
 *   of at most 100 characters, message_key at most 1024, description at most 4000, severity a
 *   string "0" (Clear) to "5" (OK), time_of_event `yyyy-MM-dd HH:mm:ss`, resolution_state `New` or
 *   `Closing`, and additional_info a string holding a JSON object; else 400 naming every problem.
 * Faults are scripted per request: a status (with optional Retry-After) or a hang.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault = { status: number; retryAfter?: string; body?: string } | { hang: true };

export interface ReceivedRequest {
  readonly method?: string;
  readonly path?: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  readonly status: number;
  readonly problems: string[];
}

const LIMITS: Record<string, number> = {
  source: 100,
  node: 100,
  type: 100,
  resource: 100,
  event_class: 100,
  message_key: 1024,
  description: 4000,
};

/** Every way a body breaks the documented request; empty when it is one ServiceNow accepts. */
export function inboundEventProblems(body: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return ['body is not JSON'];
  }
  const records = (parsed as { records?: unknown })?.records;
  if (!Array.isArray(records) || records.length === 0) return ['body has no "records" array of events'];
  const problems: string[] = [];
  records.forEach((r: Record<string, unknown>, i) => {
    for (const [field, max] of Object.entries(LIMITS)) {
      const v = r[field];
      if (typeof v !== 'string' || v.length === 0 || v.length > max) {
        problems.push(`records[${i}].${field} must be a string of 1-${max} characters`);
      }
    }
    if (!['0', '1', '2', '3', '4', '5'].includes(r.severity as string)) {
      problems.push(`records[${i}].severity must be "0" to "5"`);
    }
    if (typeof r.time_of_event !== 'string' || !/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(r.time_of_event)) {
      problems.push(`records[${i}].time_of_event must be yyyy-MM-dd HH:mm:ss (GMT)`);
    }
    if (r.resolution_state !== 'New' && r.resolution_state !== 'Closing') {
      problems.push(`records[${i}].resolution_state must be New or Closing`);
    }
    let info: unknown;
    try {
      info = typeof r.additional_info === 'string' ? JSON.parse(r.additional_info) : undefined;
    } catch {
      info = undefined;
    }
    if (typeof info !== 'object' || info === null || Array.isArray(info)) {
      problems.push(`records[${i}].additional_info must be stringified JSON of an object`);
    }
  });
  return problems;
}

export class InboundEventServer {
  readonly received: ReceivedRequest[] = [];
  /** Accepted events, in order. */
  readonly events: Record<string, unknown>[] = [];
  private readonly faults: Fault[] = [];
  private readonly hanging = new Set<http.ServerResponse>();
  private server?: http.Server;

  constructor(
    readonly username = 'ecb.integration',
    readonly password = 'pa55:word with spaces',
  ) {}

  /** Scripts the next responses, one per request, before the normal behaviour resumes. */
  fail(...faults: Fault[]): void {
    this.faults.push(...faults);
  }

  get url(): string {
    const port = (this.server?.address() as AddressInfo).port;
    return `http://127.0.0.1:${port}`;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk) => {
        body += chunk;
      });
      req.on('end', () => this.answer(req, res, body));
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    return this;
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    // Keep-alive connections would hold close() until they time out.
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
    const record = (
      status: number,
      problems: string[],
      extra: http.OutgoingHttpHeaders = {},
      text?: string,
    ) => {
      this.received.push({ method: req.method, path: req.url, headers: req.headers, body, status, problems });
      res.writeHead(status, { 'Content-Type': 'application/json', ...extra });
      res.end(
        text ??
          JSON.stringify(problems.length ? { error: { message: problems.join('; ') } } : { result: {} }),
      );
    };
    const expectedAuth = `Basic ${Buffer.from(`${this.username}:${this.password}`).toString('base64')}`;
    const refusal = ((): [number, string[]] | undefined => {
      if (req.url !== '/api/global/em/jsonv2') return [404, [`no such path ${req.url}`]];
      if (req.method !== 'POST') return [405, [`method ${req.method} is not POST`]];
      if (req.headers.authorization !== expectedAuth) return [401, ['User Not Authenticated']];
      if (!req.headers['content-type']?.startsWith('application/json')) return [415, ['Content-Type']];
      if (req.headers.accept !== 'application/json') return [406, ['Accept']];
      return undefined;
    })();
    if (refusal) {
      record(...refusal);
      return;
    }
    const fault = this.faults.shift();
    if (fault && 'hang' in fault) {
      this.received.push({
        method: req.method,
        path: req.url,
        headers: req.headers,
        body,
        status: 0,
        problems: [],
      });
      this.hanging.add(res);
      return;
    }
    if (fault) {
      record(
        fault.status,
        [],
        fault.retryAfter ? { 'Retry-After': fault.retryAfter } : {},
        fault.body ?? '{}',
      );
      return;
    }
    const problems = inboundEventProblems(body);
    if (problems.length === 0) this.events.push(...(JSON.parse(body).records as Record<string, unknown>[]));
    record(problems.length ? 400 : 200, problems);
  }
}
