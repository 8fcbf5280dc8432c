import type { Options } from '../args';
import type { AwsClients } from '../aws';
import type { Deployment } from '../deployment';
import { EXIT } from '../errors';
import type { Io } from '../io';
import { listRunExecutions, runRecord } from '../model';
import { buildReport, chooseRun, printReport } from './status';

/** Follows `runId` until the notifier has sent its summary (or the timeout), then prints its status. */
export async function follow(
  aws: AwsClients,
  d: Deployment,
  runId: string,
  options: Options,
  io: Io,
): Promise<number> {
  const started = io.now().getTime();
  let last = '';
  for (;;) {
    const [record, executions] = await Promise.all([
      runRecord(aws, d.outputs.stateTableName, runId),
      listRunExecutions(aws, d.outputs.stateMachineArn, runId),
    ]);
    const running = executions.filter((e) => e.status === 'RUNNING').length;
    const succeeded = executions.filter((e) => e.status === 'SUCCEEDED').length;
    const ended = executions.length - running;
    const elapsed = Math.round((io.now().getTime() - started) / 1000);
    const line = !record
      ? `${runId}: waiting for discovery to report (${executions.length} execution(s) so far)`
      : `${runId}: ${ended}/${record.expected ?? executions.length} ended (${succeeded} succeeded, ${ended - succeeded} did not), ${running} running${record.discoveryRecordedAt ? '' : ', discovery still starting'}`;
    if (io.interactive) io.progress(`${line} [${elapsed} s]`);
    else if (line !== last) io.err(line);
    last = line;
    if (record?.summarySentAt) break;
    if (options.timeoutSeconds && elapsed >= options.timeoutSeconds) {
      io.err(`${runId}: still running after ${options.timeoutSeconds} s; showing it as it is.`);
      printReport(await buildReport(aws, d, runId), io, options.json);
      return EXIT.attention;
    }
    await io.sleep(options.intervalSeconds * 1000);
  }
  const report = await buildReport(aws, d, runId);
  printReport(report, io, options.json);
  return report.attention.length ? EXIT.attention : EXIT.ok;
}

export async function watch(aws: AwsClients, d: Deployment, options: Options, io: Io): Promise<number> {
  return follow(aws, d, await chooseRun(aws, d, options), options, io);
}
