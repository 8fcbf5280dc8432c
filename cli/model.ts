/**
 * What the tool reads about runs, in one place: execution names, the workflow's execution output,
 * the notifier's state table. Written against the workflow as it is today (one Standard execution
 * per instance and window, ending in Record Outcome, whose output is the ExecutionResult of
 * lambda/record-outcome/record.ts; the notifier's `RUN#<runId>` and `INSTANCE#<id>` items). When
 * the fleet-scale workflow (docs/fleet-design.md) changes those, this file is what changes.
 */

import { DescribeBackupJobCommand } from '@aws-sdk/client-backup';
import { type AttributeValue, QueryCommand } from '@aws-sdk/client-dynamodb';
import {
  DescribeExecutionCommand,
  type ExecutionListItem,
  GetExecutionHistoryCommand,
  ListExecutionsCommand,
} from '@aws-sdk/client-sfn';
import { runPk, viewRun } from '../lambda/shared/run-ledger';
import type { AwsClients } from './aws';

const NAME = /^(i-[0-9a-f]{8,17})-(\d{8}T\d{4}Z|od\d{8}T\d{6}Z)$/;

/** The run an execution belongs to, from its name; undefined for a name the workflow never makes. */
export function runOfExecution(name: string): { instanceId: string; runId: string } | undefined {
  const m = NAME.exec(name);
  return m ? { instanceId: m[1] as string, runId: `run-${m[2]}` } : undefined;
}

/** When a run began: its window, or the time of an on-demand request. */
export function runStart(runId: string): Date {
  const m = /^run-(?:od)?(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)?Z$/.exec(runId);
  if (!m) throw new Error(`Not a run id: ${runId}`);
  const [, y, mo, d, h, mi, s] = m;
  return new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s ?? 0)));
}

/** A scheduled run's id for a window (the minute, as discovery names it). */
export function runIdForWindow(window: Date): string {
  const iso = window.toISOString();
  return `run-${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}Z`;
}

export interface ExecutionOutcome {
  readonly outcome: string;
  readonly consistency: string;
  readonly reason: string;
  readonly freezeMs: number;
  readonly backupJobId?: string;
  readonly warnings: readonly string[];
}

export interface RunExecution {
  readonly name: string;
  readonly instanceId: string;
  readonly executionArn: string;
  readonly status: string;
  readonly startDate?: Date;
  readonly stopDate?: Date;
  /** Record Outcome's verdict, when the execution got that far. */
  outcome?: ExecutionOutcome;
  /** How a failed execution ended, when it has no recorded outcome. */
  error?: { readonly error: string; readonly cause: string };
  jobState?: string;
  /** `Severity event-type` of the notification this execution sent, `-` when none. */
  notification?: string;
}

/** Executions are listed newest first; a run's are no older than this before its start. */
const RUN_SLACK_MS = 15 * 60_000;

/** Every execution of the run (names only, no details), newest first. */
export async function listRunExecutions(
  aws: AwsClients,
  stateMachineArn: string,
  runId: string,
): Promise<RunExecution[]> {
  const since = runStart(runId).getTime() - RUN_SLACK_MS;
  const found: RunExecution[] = [];
  let nextToken: string | undefined;
  do {
    const page = await aws.sfn.send(
      new ListExecutionsCommand({ stateMachineArn, maxResults: 1000, nextToken }),
    );
    for (const e of page.executions ?? []) {
      const run = runOfExecution(e.name ?? '');
      if (run?.runId === runId) found.push(toRow(e, run.instanceId));
    }
    const oldest = page.executions?.at(-1)?.startDate;
    nextToken = oldest && new Date(oldest).getTime() < since ? undefined : page.nextToken;
  } while (nextToken);
  return found;
}

function toRow(e: ExecutionListItem, instanceId: string): RunExecution {
  return {
    name: e.name ?? '',
    instanceId,
    executionArn: e.executionArn ?? '',
    status: e.status ?? 'UNKNOWN',
    ...(e.startDate ? { startDate: new Date(e.startDate) } : {}),
    ...(e.stopDate ? { stopDate: new Date(e.stopDate) } : {}),
  };
}

/** The newest run with an execution, or undefined when the workflow never ran. */
export async function latestRunId(aws: AwsClients, stateMachineArn: string): Promise<string | undefined> {
  let nextToken: string | undefined;
  do {
    const page = await aws.sfn.send(
      new ListExecutionsCommand({ stateMachineArn, maxResults: 100, nextToken }),
    );
    for (const e of page.executions ?? []) {
      const run = runOfExecution(e.name ?? '');
      if (run) return run.runId;
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return undefined;
}

function asOutcome(value: unknown): ExecutionOutcome | undefined {
  const o = value as Partial<ExecutionOutcome> | null;
  if (!o || typeof o.outcome !== 'string' || typeof o.consistency !== 'string') return undefined;
  return {
    outcome: o.outcome,
    consistency: o.consistency,
    reason: typeof o.reason === 'string' ? o.reason : '',
    freezeMs: typeof o.freezeMs === 'number' ? o.freezeMs : 0,
    ...(typeof o.backupJobId === 'string' ? { backupJobId: o.backupJobId } : {}),
    warnings: Array.isArray(o.warnings) ? (o.warnings as string[]) : [],
  };
}

function parse(text: string | undefined): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

/** Record Outcome's output: the execution's output when it succeeded, from its history when it failed. */
async function outcomeOf(aws: AwsClients, row: RunExecution): Promise<void> {
  if (row.status === 'RUNNING') return;
  const described = await aws.sfn.send(new DescribeExecutionCommand({ executionArn: row.executionArn }));
  const output = asOutcome(parse(described.output));
  if (output) {
    row.outcome = output;
    return;
  }
  if (row.status === 'FAILED') {
    const history = await aws.sfn.send(
      new GetExecutionHistoryCommand({ executionArn: row.executionArn, reverseOrder: true, maxResults: 40 }),
    );
    for (const event of history.events ?? []) {
      const text =
        event.lambdaFunctionSucceededEventDetails?.output ?? event.taskSucceededEventDetails?.output;
      const recorded = asOutcome(parse(text));
      if (recorded) {
        row.outcome = recorded;
        return;
      }
    }
  }
  if (described.error || described.cause) {
    row.error = { error: described.error ?? '', cause: described.cause ?? '' };
  }
}

async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

/** Fills in each execution's outcome, its backup job's state and the notification it sent. */
export async function addDetails(aws: AwsClients, tableName: string, rows: RunExecution[]): Promise<void> {
  await pool(rows, 8, (row) => outcomeOf(aws, row));
  await pool(rows, 8, async (row) => {
    const jobId = row.outcome?.backupJobId;
    if (!jobId) return;
    try {
      row.jobState = (await aws.backup.send(new DescribeBackupJobCommand({ BackupJobId: jobId }))).State;
    } catch (err) {
      row.jobState = `unknown (${(err as Error).name})`;
    }
  });
  const instances = [...new Set(rows.map((r) => r.instanceId))];
  await pool(instances, 8, async (instanceId) => {
    const problems = await aws.dynamodb.send(
      new QueryCommand({
        TableName: tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :problem)',
        ExpressionAttributeValues: { ':pk': { S: `INSTANCE#${instanceId}` }, ':problem': { S: 'PROBLEM#' } },
      }),
    );
    for (const row of rows.filter((r) => r.instanceId === instanceId)) {
      // The notifier keeps, per instance and problem, the id of the event that last notified it:
      // this execution's ARN, or for a job failure the job's id and state.
      const sent = (problems.Items ?? []).find((item) => {
        const id = item.lastEventId?.S ?? '';
        return (
          id === row.executionArn ||
          (row.outcome?.backupJobId && id.startsWith(`job:${row.outcome.backupJobId}:`))
        );
      });
      row.notification = sent ? `${sent.severity?.S ?? '?'} ${sent.eventType?.S ?? '?'}` : '-';
    }
  });
}

export interface RunRecord {
  readonly window?: string;
  readonly discovered?: number;
  readonly expected?: number;
  readonly completed?: number;
  readonly excluded: Readonly<Record<string, number>>;
  readonly discoveryRecordedAt?: string;
  readonly summarySentAt?: string;
  readonly summaryReason?: string;
}

/**
 * The notifier's record of the run, undefined until discovery or an execution reported. Outcomes
 * are counted on shard items beside the run item (lambda/shared/run-ledger.ts): one consistent
 * Query of the run's collection, summed as the run summary sums it.
 */
export async function runRecord(
  aws: AwsClients,
  tableName: string,
  runId: string,
): Promise<RunRecord | undefined> {
  const items: Record<string, AttributeValue>[] = [];
  let startKey: Record<string, AttributeValue> | undefined;
  do {
    const page = await aws.dynamodb.send(
      new QueryCommand({
        TableName: tableName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': { S: runPk(runId) } },
        ConsistentRead: true,
        ExclusiveStartKey: startKey,
      }),
    );
    items.push(...(page.Items ?? []));
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  const view = viewRun(items);
  const item = view.run;
  if (!item) return undefined;
  const counted = view.present.has('completed') ? view.totals.completed : undefined;
  const n = (key: string) => (item[key]?.N !== undefined ? Number(item[key]?.N) : undefined);
  const s = (key: string) => item[key]?.S;
  return {
    ...(s('window') ? { window: s('window') } : {}),
    ...(n('discovered') !== undefined ? { discovered: n('discovered') } : {}),
    ...(n('expected') !== undefined ? { expected: n('expected') } : {}),
    ...(counted !== undefined ? { completed: counted } : {}),
    excluded: (parse(s('excluded')) as Record<string, number> | undefined) ?? {},
    ...(s('discoveryRecordedAt') ? { discoveryRecordedAt: s('discoveryRecordedAt') } : {}),
    ...(s('summarySentAt') ? { summarySentAt: s('summarySentAt') } : {}),
    ...(s('summaryReason') ? { summaryReason: s('summaryReason') } : {}),
  };
}
