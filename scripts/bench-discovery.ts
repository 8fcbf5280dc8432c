/**
 * Discovery at fleet scale: runs the real Lambda handler (lambda/discovery/handler.ts, module-scope
 * clients and all) on N opted-in instances against mocked AWS clients with real timers:
 *
 * - DescribeInstances: 150-400 ms per page of 1,000;
 * - DescribeInstanceInformation: 50-150 ms per batch of 50;
 * - StartExecution: 20-60 ms, behind the service's token bucket (burst 1,300, refill 300/s),
 *   ThrottlingException beyond it; idempotent for a running execution with the same input,
 *   ExecutionAlreadyExists otherwise.
 *
 * Prints wall time against the bucket's theoretical minimum, started / lost / duplicated, the
 * throttles met, and peak memory. A hand-over, should one happen, is followed like Lambda would.
 *
 *   npm run bench:discovery                      # 10,000 instances
 *   npm run bench:discovery -- --count 100000
 *   npm run bench:discovery -- --timeout 12 --reserve 2   # a 12 s Lambda: forces hand-overs
 */
import '../sim/local-node';
import { ConditionalCheckFailedException, DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import type { DiscoveryResult } from '../lambda/discovery/discover';
import { FakeAws, fleet } from '../sim/discovery-aws';

const BURST = 1300;
const RATE = 300;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isInteger(value) || value < 1) {
    console.error(
      `--${name} must be a whole number of at least 1; got ${JSON.stringify(process.argv[i + 1])}`,
    );
    process.exit(2);
  }
  return value;
}

async function main(): Promise<void> {
  const count = arg('count', 10_000);
  // The Lambda's time limit and the hand-over reserve, in seconds; small values force hand-overs.
  const timeoutS = arg('timeout', 900);
  const reserveS = arg('reserve', 60);
  Object.assign(process.env, {
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'bench',
    AWS_SECRET_ACCESS_KEY: 'bench',
    STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:111122223333:stateMachine:Workflow',
    OPT_IN_TAG_KEY: 'ConsistentBackup',
    OPT_IN_TAG_VALUE: 'enabled',
    ON_FREEZE_FAILURE: 'crash-consistent',
    MAX_FROZEN_PER_GROUP: '1',
    WATCHDOG_SECONDS: '90',
    HOOK_TIMEOUT_SECONDS: '30',
    NOTIFICATION_TOPIC_ARN: 'arn:aws:sns:eu-west-1:111122223333:Notifications',
    NOTIFICATION_TABLE_NAME: 'Notifications',
    POWERTOOLS_LOG_LEVEL: 'WARN',
    HANDOVER_RESERVE_SECONDS: String(reserveS),
  });

  // A realistic mix: a tenth stopped (backed up without a freeze), a third in clusters of three.
  const instances = fleet(count, (i) => ({
    ...(i % 10 === 9 ? { state: 'stopped' } : {}),
    ...(i % 3 === 0 ? { tags: { 'ConsistentBackup:Group': `cluster-${Math.floor(i / 9)}` } } : {}),
  }));
  const fake = new FakeAws(instances, {
    keepInputs: false,
    latency: { describe: [150, 400], ssm: [50, 150], start: [20, 60] },
    throttle: { burst: BURST, ratePerSecond: RATE },
  });
  // The notifier records the run; its table and topic answer at once here. No execution has
  // finished yet, so the table refuses to close the run, as DynamoDB's condition would.
  const table = mockClient(DynamoDBClient);
  table.onAnyCommand().resolves({});
  table.on(UpdateItemCommand).callsFake(async (input) => {
    if (String(input.ConditionExpression ?? '').includes('completed >= expected')) {
      throw new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
    }
    return {};
  });
  mockClient(SNSClient).onAnyCommand().resolves({ MessageId: 'bench' });

  const { handler } = await import('../lambda/discovery/handler');
  const baseline = process.memoryUsage();
  let peakRss = baseline.rss;
  let peakHeap = baseline.heapUsed;
  const sampler = setInterval(() => {
    fake.resetHistory();
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  }, 100);

  const startedAt = Date.now();
  let event: Record<string, unknown> = { scheduledTime: '2026-11-22T02:00:00Z', scheduleArn: 'bench' };
  const results: DiscoveryResult[] = [];
  for (;;) {
    const deadline = Date.now() + timeoutS * 1000;
    const context = {
      invokedFunctionArn: 'arn:aws:lambda:eu-west-1:111122223333:function:Discovery',
      functionName: 'Discovery',
      awsRequestId: `bench-${results.length + 1}`,
      getRemainingTimeInMillis: () => deadline - Date.now(),
    } as unknown as Context;
    const before = fake.invocations.length;
    results.push(await handler(event as never, context));
    if (fake.invocations.length === before) break;
    event = fake.invocations.at(-1) as Record<string, unknown>;
  }
  const wallS = (Date.now() - startedAt) / 1000;
  clearInterval(sampler);
  const end = process.memoryUsage();
  peakRss = Math.max(peakRss, end.rss);
  peakHeap = Math.max(peakHeap, end.heapUsed);

  const last = results.at(-1)!;
  const excluded = results.reduce((n, r) => n + r.excluded.length, 0);
  const created = fake.counts.created;
  const lost = count - excluded - created;
  const duplicates = fake.duplicates().length;
  const minimumS = Math.max(0, (count - BURST) / RATE);
  const mb = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MB`;
  const report = {
    instances: count,
    lambdaTimeoutSeconds: timeoutS,
    invocations: results.length,
    perInvocation: results.map((r) => r.slice.discovered),
    wallSeconds: Number(wallS.toFixed(2)),
    theoreticalMinimumSeconds: Number(minimumS.toFixed(2)),
    ratio: minimumS > 0 ? Number((wallS / minimumS).toFixed(3)) : null,
    started: created,
    alreadyRunning: last.summary.alreadyRunning,
    excluded,
    lost,
    duplicates,
    startCalls: fake.counts.start,
    throttled: fake.counts.throttled,
    describePages: fake.counts.describe,
    ssmCalls: fake.counts.ssm,
    peakRss: mb(peakRss),
    peakHeapUsed: mb(peakHeap),
    baselineRss: mb(baseline.rss),
  };
  console.log(JSON.stringify(report, null, 2));
  const ok = lost === 0 && duplicates === 0 && (minimumS === 0 || wallS / minimumS <= 1.15);
  console.log(
    ok
      ? 'PASS: <= 1.15x the minimum, 0 lost, 0 duplicates'
      : 'FAIL: target is <= 1.15x, 0 lost, 0 duplicates',
  );
  process.exit(ok ? 0 : 1);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
