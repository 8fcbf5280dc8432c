/**
 * Reserved concurrency of every Lambda function of the app: the one table, read by BackupFunction
 * (lib/lambda-function.ts) for each function it creates and by discovery's admission (through
 * lib/discovery.ts) for the functions on the freeze path.
 *
 * Why reserve at all: a Region's 1,000 concurrent executions are shared by every function of the
 * account. Unbounded, a 50,000-instance run could take all of them (and starve the account's other
 * workloads), or be starved by them mid-freeze. Reserved concurrency is both a cap and a guarantee.
 *
 * The sum is the app's share of the Region: REGION_SHARE below, checked by test/lib/concurrency.test.ts.
 * Lambda keeps at least 100 unreserved executions per account, so the account's concurrency quota
 * must be at least RESERVED_TOTAL + 100 (the default 1,000 is); a new account with a lower quota
 * must raise it before deploying.
 */

export interface ConcurrencyChoice {
  /** Reserved concurrent executions. */
  readonly reserved: number;
  /** Why this many. */
  readonly why: string;
}

export const RESERVED_CONCURRENCY = {
  discovery: {
    reserved: 2,
    why: 'one hand-over chain per run; a second for an on-demand run beside the scheduled one (a throttled asynchronous invoke is retried by Lambda)',
  },
  'freeze-filesystems': {
    reserved: 25,
    why: 'held ~1.5 s per backup (active-job check, freeze): admission keeps rate x 1.5 s under half of it, so up to ~8 backups/s',
  },
  'start-backup': {
    reserved: 60,
    why: 'held ~0.5 s plus the snapshot start (3 s planned) per backup: admission keeps rate x 3.5 s under half of it, so up to ~8.5 backups/s',
  },
  'wait-for-command': {
    reserved: 15,
    why: 'held ~0.8 s per backup (the thaw): admission keeps rate x 0.8 s under half of it, so up to ~9 backups/s',
  },
  'record-outcome': {
    reserved: 20,
    why: '~1 s per backup; admission keeps rate x 1 s under half of it',
  },
  'job-events': {
    reserved: 5,
    why: 'one short invocation per final AWS Backup job state (the rule matches only those), asynchronous (throttled events are retried): about 2 per second at the admission rate',
  },
  'command-results': {
    reserved: 3,
    why: "its SQS event source's maxConcurrency (2: status-change events and thaw waiters, ten a batch) and the sweep a schedule starts each minute (1); each instance paces its calls to a third of the app's SSM and SendTask budgets",
  },
  'run-summary': { reserved: 2, why: 'one summary per run and window' },
  'copy-jobs': { reserved: 5, why: 'one short invocation per copy job event, asynchronous' },
  'dead-letters': { reserved: 2, why: "its SQS event source's maxConcurrency (2)" },
  'servicenow-forwarder': { reserved: 2, why: "its SQS event source's maxConcurrency (2)" },
  // 4, not 5: its fifth went to the snapshot poller, keeping the total at 150.
  'restore-validation': {
    reserved: 4,
    why: 'one invocation per restore test, weekly: rarely more than one at once',
  },
  'label-writer': {
    reserved: 2,
    why: "its SQS event source's maxConcurrency (2, lib/labels.ts): the pace of CreateTags (4/s of EC2's 10/s refill) depends on it",
  },
  'snapshot-poller': {
    reserved: 1,
    why: 'one poller per account and Region answers every snapshot wait (a lease in the Coordination table); 1 also makes a second concurrent poller impossible',
  },
  'execution-events': {
    reserved: 2,
    why: 'one short asynchronous invocation per failed, timed-out or aborted execution (throttled events are retried)',
  },
} as const satisfies Record<string, ConcurrencyChoice>;

export type FunctionName = keyof typeof RESERVED_CONCURRENCY;

/** The Region's default concurrency quota (Lambda developer guide, "Lambda quotas"). */
export const REGION_CONCURRENCY = 1000;

export const RESERVED_TOTAL = Object.values(RESERVED_CONCURRENCY).reduce((n, c) => n + c.reserved, 0);

/** The most of the Region's 1,000 the app ever takes, whatever the fleet size: 15 %. */
export const REGION_SHARE = 0.15;

/** The reserved concurrency of a function folder under lambda/; every function must have one. */
export function reservedConcurrency(handlerDir: string): number {
  const choice = (RESERVED_CONCURRENCY as Record<string, ConcurrencyChoice>)[handlerDir];
  if (!choice) {
    throw new Error(
      `lib/concurrency.ts has no reserved concurrency for lambda/${handlerDir}; add it to RESERVED_CONCURRENCY (every function is bounded).`,
    );
  }
  return choice.reserved;
}

/** `freeze-filesystems=25,...,record-outcome=20`: the freeze path's functions, for discovery's admission. */
export function freezePathConcurrency(): string {
  return (['freeze-filesystems', 'start-backup', 'wait-for-command', 'record-outcome'] as const)
    .map((fn) => `${fn}=${RESERVED_CONCURRENCY[fn].reserved}`)
    .join(',');
}
