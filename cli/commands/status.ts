import type { Options } from '../args';
import type { AwsClients } from '../aws';
import type { Deployment } from '../deployment';
import { CliError, EXIT } from '../errors';
import { type Io, table } from '../io';
import {
  addDetails,
  latestRunId,
  listRunExecutions,
  type RunExecution,
  type RunRecord,
  runIdForWindow,
  runRecord,
} from '../model';

const ENDED_BADLY = new Set(['FAILED', 'TIMED_OUT', 'ABORTED']);

export interface RunReport {
  readonly runId: string;
  readonly stack: string;
  readonly region: string;
  readonly record?: RunRecord;
  readonly executions: readonly RunExecution[];
  readonly counts: {
    readonly executions: Readonly<Record<string, number>>;
    readonly labels: Readonly<Record<string, number>>;
  };
  /** Why the run needs attention; empty when it does not. */
  readonly attention: readonly string[];
}

/** The run to show: --run, --window, or the newest run with an execution. */
export async function chooseRun(aws: AwsClients, d: Deployment, options: Options): Promise<string> {
  if (options.run) return options.run;
  if (options.window) {
    const at = Date.parse(options.window);
    if (Number.isNaN(at))
      throw new CliError(
        `--window: got ${JSON.stringify(options.window)}; allowed: an ISO time such as 2026-11-22T02:00:00Z.`,
        EXIT.usage,
      );
    return runIdForWindow(new Date(at));
  }
  const latest = await latestRunId(aws, d.outputs.stateMachineArn);
  if (!latest)
    throw new CliError(`No run yet: the workflow of stack ${d.stackName} has no execution.`, EXIT.attention);
  return latest;
}

function tally(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

export async function buildReport(aws: AwsClients, d: Deployment, runId: string): Promise<RunReport> {
  const [record, executions] = await Promise.all([
    runRecord(aws, d.outputs.stateTableName, runId),
    listRunExecutions(aws, d.outputs.stateMachineArn, runId),
  ]);
  executions.sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  await addDetails(aws, d.outputs.stateTableName, executions);
  const labels = tally(executions.filter((e) => e.outcome).map((e) => e.outcome?.consistency as string));
  const byStatus = tally(executions.map((e) => e.status));
  const attention: string[] = [];
  const bad = executions.filter((e) => ENDED_BADLY.has(e.status)).length;
  if (bad) attention.push(`${bad} execution(s) failed, timed out or were aborted`);
  if (labels.crash) attention.push(`${labels.crash} backup(s) only crash-consistent`);
  return {
    runId,
    stack: d.stackName,
    region: d.region,
    ...(record ? { record } : {}),
    executions,
    counts: { executions: byStatus, labels },
    attention,
  };
}

const counted = (counts: Readonly<Record<string, number>>) =>
  Object.entries(counts)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');

export function printReport(report: RunReport, io: Io, json: boolean): void {
  if (json) {
    io.out(JSON.stringify(report, null, 2));
    return;
  }
  const r = report.record;
  io.out(
    `Run ${report.runId}${r?.window ? ` (window ${r.window})` : ''}, stack ${report.stack} in ${report.region}`,
  );
  if (!r) {
    io.out('Discovery: no report yet.');
  } else {
    const excluded = Object.values(r.excluded).reduce((a, b) => a + b, 0);
    io.out(
      `Discovery: ${r.discovered ?? 0} discovered, ${r.expected ?? 0} started, ${excluded} excluded${excluded ? ` (${counted(r.excluded)})` : ''}${r.discoveryRecordedAt ? '' : ', still reporting'}. Summary: ${r.summarySentAt ? `sent ${r.summarySentAt} (${r.summaryReason ?? 'finished'})` : 'not sent yet'}.`,
    );
  }
  const rows = report.executions.map((e) => [
    e.instanceId,
    e.status,
    e.outcome?.outcome ?? (e.error?.error || '-'),
    e.outcome?.consistency ?? '-',
    e.outcome && e.outcome.freezeMs > 0 ? `${e.outcome.freezeMs} ms` : '-',
    e.jobState ?? '-',
    e.notification ?? '-',
    e.outcome?.reason ?? e.error?.cause ?? (e.status === 'RUNNING' ? 'running' : ''),
  ]);
  for (const line of table(
    ['INSTANCE', 'EXECUTION', 'OUTCOME', 'LABEL', 'FREEZE', 'JOB', 'NOTIFICATION', 'REASON'],
    rows,
  )) {
    io.out(line);
  }
  io.out(
    `${report.executions.length} execution(s): ${counted(report.counts.executions) || 'none'}; labels: ${counted(report.counts.labels) || 'none'}.${report.attention.length ? ` Needs attention: ${report.attention.join('; ')}.` : ''}`,
  );
}

export async function status(aws: AwsClients, d: Deployment, options: Options, io: Io): Promise<number> {
  const report = await buildReport(aws, d, await chooseRun(aws, d, options));
  printReport(report, io, options.json);
  return report.attention.length ? EXIT.attention : EXIT.ok;
}
