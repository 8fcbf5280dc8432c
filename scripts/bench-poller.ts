/**
 * `npm run bench:poller -- [--waiters 1000] [--spacing-ms 10] [--seed 14]`: the real snapshot poller
 * (lambda/snapshot-poller) against the fakes of sim/snapshot-poller-aws.ts on a virtual clock.
 * One freeze every spacing-ms; each waiter has 2 volumes, and AWS Backup's snapshots start 1-4 s
 * after its job. Prints how long after the last snapshot of each waiter its answer came (the time
 * the poller adds to a freeze), and the API calls it made.
 */

import { parseArgs } from 'node:util';
import { lcg } from '../sim/fleet/virtual-clock';
import { maxInWindow, T0, World } from '../sim/snapshot-poller-world';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      waiters: { type: 'string', default: '1000' },
      'spacing-ms': { type: 'string', default: '10' },
      seed: { type: 'string', default: '14' },
    },
  });
  const n = Number(values.waiters);
  const spacing = Number(values['spacing-ms']);
  if (!(Number.isInteger(n) && n > 0))
    throw new Error(`Invalid --waiters: got ${values.waiters}; allowed: a whole number above 0.`);
  if (!(spacing >= 0))
    throw new Error(`Invalid --spacing-ms: got ${values['spacing-ms']}; allowed: 0 or more.`);
  const w = new World();
  const random = lcg(Number(values.seed));
  const waiters = Array.from({ length: n }, (_, i) => w.waiter(i + 1, T0 + i * spacing));
  const lastStart = new Map(
    waiters.map((x) => {
      const start = x.jobCreatedAtMs + 1000 + Math.floor(random() * 3000);
      w.backupSnapshots(x, start);
      return [x.taskToken, start];
    }),
  );
  const register = async () => {
    for (const x of waiters) {
      await w.clock.sleep(x.registeredAtMs - w.clock.now());
      await w.register(x);
    }
  };
  const poll = async () => {
    // Woken by the first registration (T0 + 400 ms).
    await w.clock.sleep(T0 + 401 - w.clock.now());
    return w.poller('bench');
  };
  const [, run] = await w.clock.run(Promise.all([register(), poll()]));
  const lags = waiters
    .map((x) => (w.sfn.answers.get(x.taskToken)?.atMs ?? Number.NaN) - (lastStart.get(x.taskToken) ?? 0))
    .sort((a, b) => a - b);
  const q = (p: number) => lags[Math.min(lags.length - 1, Math.floor(p * lags.length))];
  const statuses = new Map<string, number>();
  for (const x of waiters) {
    const status = String(w.answerOf(x)?.status ?? 'unanswered');
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
  }
  console.log(`waiters ${n} (2 volumes each), one freeze every ${spacing} ms`);
  console.log(`answers: ${[...statuses].map(([s, c]) => `${s} ${c}`).join(', ')}; poller ${run.outcome}`);
  console.log(
    `answer after the last snapshot started, ms: p50 ${q(0.5)}, p95 ${q(0.95)}, p99 ${q(0.99)}, max ${lags[lags.length - 1]}`,
  );
  console.log(
    `DescribeSnapshots: ${w.ec2.calls.length} calls, at most ${Math.max(...w.ec2.calls.map((c) => c.volumeIds))} volume ids per call, at most ${maxInWindow(
      w.ec2.calls.map((c) => c.atMs),
      1000,
    )} in any second, ${w.ec2.calls.filter((c) => c.refused).length} refused`,
  );
  console.log(
    `ListBackupJobs: ${w.backup.calls.length} calls; SendTaskSuccess: ${w.sfn.calls.length} calls, at most ${maxInWindow(
      w.sfn.calls.map((c) => c.atMs),
      1000,
    )} in any second`,
  );
  w.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
