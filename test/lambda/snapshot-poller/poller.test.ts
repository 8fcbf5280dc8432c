import { DeleteItemCommand, type DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { SendTaskSuccessCommand } from '@aws-sdk/client-sfn';
import { afterEach, describe, expect, it } from 'vitest';
import type { SnapshotWaiterItem } from '../../../lambda/shared/coordination';
import { waiterToItem } from '../../../lambda/shared/snapshot-waiters';
import type { PollerClients } from '../../../lambda/snapshot-poller/poller';
import { lcg } from '../../../sim/fleet/virtual-clock';
import { maxInWindow, T0, TABLE, World } from '../../../sim/snapshot-poller-world';

let world: World | undefined;
afterEach(() => {
  world?.close();
  world = undefined;
});

function setup(): World {
  world = new World();
  return world;
}

/** Registers each waiter at its registeredAtMs on the world's clock. */
async function registerAll(w: World, waiters: readonly SnapshotWaiterItem[]): Promise<void> {
  for (const x of [...waiters].sort((a, b) => a.registeredAtMs - b.registeredAtMs)) {
    await w.clock.sleep(x.registeredAtMs - w.clock.now());
    await w.register(x);
  }
}

/** A waiter frozen at T0 registers at T0 + 400 ms and wakes the poller: it runs from then on. */
const WOKEN = T0 + 401;

async function startAt<T>(w: World, atMs: number, work: () => Promise<T>): Promise<T> {
  await w.clock.sleep(atMs - w.clock.now());
  return work();
}

describe('snapshot poller', () => {
  it('answers 1,000 waiters x 2 volumes, at most 200 volume ids per DescribeSnapshots, within its 10/s bucket', async () => {
    const w = setup();
    const random = lcg(14);
    // A freeze every 10 ms for 10 s (100 a second: about what admission allows in the largest
    // Regions); AWS Backup's snapshots start 1-4 s after each job.
    const waiters = Array.from({ length: 1000 }, (_, i) => w.waiter(i + 1, T0 + i * 10));
    const ours = new Map(
      waiters.map((x) => [
        x.taskToken,
        w.backupSnapshots(x, x.jobCreatedAtMs + 1000 + Math.floor(random() * 3000)),
      ]),
    );
    const [, run] = await w.clock.run(
      Promise.all([registerAll(w, waiters), startAt(w, WOKEN, () => w.poller('poller-1'))]),
    );

    expect(run.outcome).toBe('idle');
    expect(run.answered).toBe(1000);
    for (const x of waiters) {
      const answer = w.answerOf(x);
      const snaps = ours.get(x.taskToken) ?? [];
      expect(answer).toMatchObject({
        status: 'started',
        missingVolumeIds: [],
        answeredBy: 'poller',
        backupJob: { backupJobId: x.backupJobId },
      });
      expect((answer?.snapshots as { snapshotId: string }[]).map((s) => s.snapshotId)).toEqual(
        snaps.map((s) => s.SnapshotId),
      );
      // Never before the last of its snapshots started, and within a second of it.
      const answeredAt = w.sfn.answers.get(x.taskToken)?.atMs ?? 0;
      const lastStart = Math.max(...snaps.map((s) => s.startMs));
      expect(answeredAt).toBeGreaterThanOrEqual(lastStart);
      expect(answeredAt - lastStart).toBeLessThanOrEqual(1000);
    }
    // Every token answered once, none refused.
    expect(w.sfn.calls.filter((c) => c.error)).toEqual([]);
    expect(w.sfn.calls).toHaveLength(1000);
    // DescribeSnapshots: <= 200 volume ids, never refused by EC2's bucket (100, 20/s), and within
    // the client's bucket (capacity 10, 10/s): at most 20 in any second.
    expect(w.ec2.calls.length).toBeGreaterThan(0);
    expect(Math.max(...w.ec2.calls.map((c) => c.volumeIds))).toBeLessThanOrEqual(200);
    expect(w.ec2.calls.filter((c) => c.refused)).toEqual([]);
    expect(
      maxInWindow(
        w.ec2.calls.map((c) => c.atMs),
        1000,
      ),
    ).toBeLessThanOrEqual(20);
    // SendTaskSuccess within its own bucket (capacity 100, 100/s).
    expect(
      maxInWindow(
        w.sfn.calls.map((c) => c.atMs),
        1000,
      ),
    ).toBeLessThanOrEqual(200);
    expect(w.waiterItems()).toBe(0);
  });

  it('never ends a wait on a DLM, manual or other-plan snapshot that starts mid-freeze, only on its own job snapshot', async () => {
    const w = setup();
    const x = w.waiter(1, T0);
    w.otherSnapshots(x, x.jobCreatedAtMs + 500);
    const ours = w.backupSnapshots(x, x.jobCreatedAtMs + 3000);
    await w.clock.run(Promise.all([registerAll(w, [x]), startAt(w, WOKEN, () => w.poller('poller-1'))]));
    const answer = w.answerOf(x);
    expect(answer?.status).toBe('started');
    expect((answer?.snapshots as { snapshotId: string }[]).map((s) => s.snapshotId)).toEqual(
      ours.map((s) => s.SnapshotId),
    );
    expect(w.sfn.answers.get(x.taskToken)?.atMs).toBeGreaterThanOrEqual(x.jobCreatedAtMs + 3000);
  });

  it('answers budget-exceeded when only other snapshots start', async () => {
    const w = setup();
    const x = w.waiter(1, T0);
    w.otherSnapshots(x, x.jobCreatedAtMs + 500);
    await w.clock.run(Promise.all([registerAll(w, [x]), startAt(w, WOKEN, () => w.poller('poller-1'))]));
    expect(w.answerOf(x)).toMatchObject({
      status: 'budget-exceeded',
      snapshots: [],
      missingVolumeIds: x.volumeIds,
    });
  });

  it('does not count a snapshot of this instance that started before the job was created', async () => {
    const w = setup();
    const x = w.waiter(1, T0);
    w.backupSnapshots(x, x.jobCreatedAtMs - 1); // an earlier job's, a millisecond too early
    w.backupSnapshots(x, T0 - 86_400_000); // yesterday's backup
    await w.clock.run(Promise.all([registerAll(w, [x]), startAt(w, WOKEN, () => w.poller('poller-1'))]));
    expect(w.answerOf(x)).toMatchObject({ status: 'budget-exceeded', snapshots: [] });
  });

  it('answers job-failed when the job fails first, within a ListBackupJobs interval', async () => {
    const w = setup();
    const x = w.waiter(1, T0);
    const failAt = x.registeredAtMs + 1500;
    const fail = async () => {
      await w.clock.sleep(failAt - w.clock.now());
      const job = w.backup.jobs.get(x.backupJobId);
      if (!job) throw new Error('no job');
      job.State = 'FAILED';
      job.StatusMessage = 'Insufficient privileges to perform this action.';
    };
    await w.clock.run(
      Promise.all([registerAll(w, [x]), fail(), startAt(w, WOKEN, () => w.poller('poller-1'))]),
    );
    expect(w.answerOf(x)).toMatchObject({
      status: 'job-failed',
      jobState: 'FAILED',
      jobStatusMessage: 'Insufficient privileges to perform this action.',
    });
    const answeredAt = w.sfn.answers.get(x.taskToken)?.atMs ?? 0;
    expect(answeredAt).toBeGreaterThanOrEqual(failAt);
    expect(answeredAt - failAt).toBeLessThanOrEqual(2000 + 200);
    // Batched: one call per failed state, at most every 2 s.
    expect(
      maxInWindow(
        w.backup.calls.map((c) => c.atMs),
        2000,
      ),
    ).toBeLessThanOrEqual(3);
    expect(w.backup.calls.every((c) => c.input.ByResourceType === 'EC2' && c.input.ByCreatedAfter)).toBe(
      true,
    );
  });

  it('answers budget-exceeded at the deadline, within one fast cadence, for young and old waiters alike', async () => {
    const w = setup();
    const young = w.waiter(1, T0, { deadlineMs: T0 + 4_321 });
    const old = w.waiter(2, T0, { deadlineMs: T0 + 27_777 });
    await w.clock.run(
      Promise.all([registerAll(w, [young, old]), startAt(w, WOKEN, () => w.poller('poller-1'))]),
    );
    for (const x of [young, old]) {
      expect(w.answerOf(x)?.status).toBe('budget-exceeded');
      const at = w.sfn.answers.get(x.taskToken)?.atMs ?? 0;
      expect(at).toBeGreaterThanOrEqual(x.deadlineMs);
      expect(at - x.deadlineMs).toBeLessThanOrEqual(200);
    }
  });

  it.each([
    ['after claiming, before SendTaskSuccess', 'SendTaskSuccess'],
    ['after SendTaskSuccess, before deleting the waiter', 'DeleteItem'],
  ] as const)('loses nothing when killed mid-sweep (%s): the replacement answers everyone, nobody twice', async (_, killAt) => {
    const w = setup();
    const waiters = Array.from({ length: 200 }, (_, i) =>
      w.waiter(i + 1, T0 + i * 5, { deadlineMs: T0 + i * 5 + 30_000 }),
    );
    for (const x of waiters) w.backupSnapshots(x, x.jobCreatedAtMs + 500);
    // Poller A dies at its 40th call of that kind: from then on nothing it sends arrives anywhere.
    let killed = false;
    let count = 0;
    const never = new Promise<never>(() => {});
    const dying = <T extends { send: (c: never) => Promise<unknown> }>(client: T): T =>
      ({
        send: (command: unknown) => {
          const hit =
            (killAt === 'SendTaskSuccess' && command instanceof SendTaskSuccessCommand) ||
            (killAt === 'DeleteItem' && command instanceof DeleteItemCommand);
          if (hit && ++count === 40) killed = true;
          return killed ? never : client.send(command as never);
        },
      }) as unknown as T;
    const c = w.clients();
    const clientsA: PollerClients = {
      ddb: dying(c.ddb as DynamoDBClient),
      ec2: dying(c.ec2 as never),
      backup: dying(c.backup as never),
      sfn: dying(c.sfn as never),
      lambda: dying(c.lambda as never),
    };
    const claimedByA = new Map<string, string>();
    const replacement = async () => {
      for (let waited = 0; !killed; waited += 50) {
        if (waited > 120_000) throw new Error(`poller A was never killed (${count} ${killAt} calls)`);
        await w.clock.sleep(50);
      }
      for (const item of w.table.items.values()) {
        if (item.answer?.S && item.taskToken?.S) claimedByA.set(item.taskToken.S, item.answer.S);
      }
      // The schedule (or a registration) starts a new poller a second later.
      await w.clock.sleep(1000);
      return w.poller('poller-B');
    };
    void startAt(w, WOKEN, () => w.poller('poller-A', {}, clientsA));
    const [, runB] = await w.clock.run(Promise.all([registerAll(w, waiters), replacement()]));

    expect(killed).toBe(true);
    expect(claimedByA.size).toBeGreaterThan(0);
    expect(runB.outcome).toBe('idle');
    for (const x of waiters) {
      const accepted = w.sfn.calls.filter((call) => call.token === x.taskToken && !call.error);
      expect(accepted).toHaveLength(1);
      expect(w.answerOf(x)?.status).toBe('started');
      const claimed = claimedByA.get(x.taskToken);
      if (claimed) expect(w.sfn.answers.get(x.taskToken)?.output).toBe(claimed);
    }
    // A repeated answer to a closed task is refused as TaskTimedOut, never accepted twice.
    expect(w.sfn.calls.filter((call) => call.error && call.error !== 'TaskTimedOut')).toEqual([]);
    expect(w.waiterItems()).toBe(0);
  });

  it('deletes a waiter whose task no longer waits (TaskTimedOut, InvalidToken), without retrying', async () => {
    const w = setup();
    const timedOut = w.waiter(1, T0);
    const unknown = w.waiter(2, T0);
    w.backupSnapshots(timedOut, timedOut.jobCreatedAtMs + 2000);
    w.backupSnapshots(unknown, unknown.jobCreatedAtMs + 2000);
    const expire = async () => {
      await w.clock.sleep(timedOut.registeredAtMs + 1000 - w.clock.now());
      w.sfn.timeOut(timedOut.taskToken);
      w.sfn.timeOut(unknown.taskToken);
    };
    const [, , run] = await w.clock.run(
      Promise.all([
        registerAll(w, [timedOut, unknown]),
        expire(),
        startAt(w, WOKEN, () => w.poller('poller-1')),
      ]),
    );
    expect(run.gone).toBe(2);
    expect(run.answered).toBe(0);
    expect(w.sfn.calls.map((c) => c.error)).toEqual(['TaskTimedOut', 'TaskTimedOut']);
    expect(w.waiterItems()).toBe(0);
  });

  it('fails the task of a waiter item it cannot read, at once, and deletes the item', async () => {
    const w = setup();
    const x = w.waiter(1, T0);
    w.sfn.wait(x.taskToken);
    // Written by something other than registerWaiter: no volume to wait for.
    await w.ddb.send(
      new PutItemCommand({ TableName: TABLE, Item: { ...waiterToItem(x), volumeIds: { L: [] } } }),
    );
    await w.clock.run(startAt(w, T0, () => w.poller('poller-1')));
    expect(w.sfn.answers.get(x.taskToken)).toMatchObject({
      kind: 'failure',
      error: 'SnapshotPoller.InvalidWaiter',
    });
    expect(w.sfn.answers.get(x.taskToken)?.atMs).toBe(T0);
    expect(w.waiterItems()).toBe(0);
  });

  it('a second poller finds the lease held and leaves; a registration meanwhile does not wake anyone', async () => {
    const w = setup();
    const x = w.waiter(1, T0);
    const y = w.waiter(2, T0 + 2000);
    w.backupSnapshots(x, x.jobCreatedAtMs + 2000);
    w.backupSnapshots(y, y.jobCreatedAtMs + 2000);
    const wakes: boolean[] = [];
    const register = async (z: SnapshotWaiterItem) => {
      await w.clock.sleep(z.registeredAtMs - w.clock.now());
      wakes.push((await w.register(z)).wakePoller);
    };
    const [, , first, second] = await w.clock.run(
      Promise.all([
        register(x),
        register(y),
        startAt(w, x.registeredAtMs + 1, () => w.poller('poller-1')),
        startAt(w, x.registeredAtMs + 100, () => w.poller('poller-2')),
      ]),
    );
    expect(first.outcome).toBe('idle');
    expect(second.outcome).toBe('lease-held');
    // No lease before the first poller; a fresh one when the second waiter comes.
    expect(wakes).toEqual([true, false]);
    expect(w.answerOf(x)?.status).toBe('started');
    expect(w.answerOf(y)?.status).toBe('started');
  });

  it('exits at once when woken with nothing to do (a wake-up Lambda delivered late)', async () => {
    const w = setup();
    const run = await w.clock.run(startAt(w, T0, () => w.poller('poller-1')));
    expect(run).toMatchObject({ outcome: 'idle', sweeps: 1 });
    expect(w.clock.now()).toBe(T0);
  });

  it('answers a waiter registered with a clock 30 s behind (every shard is read in full every 10 s)', async () => {
    const w = setup();
    const x = w.waiter(1, T0, { deadlineMs: T0 + 30_000 });
    const late = w.waiter(2, T0 - 30_000, { deadlineMs: T0 + 30_000, watchdogExpiresAtMs: T0 + 30_000 });
    w.backupSnapshots(x, x.jobCreatedAtMs + 1000);
    w.backupSnapshots(late, T0 + 1000);
    const registerLate = async () => {
      await w.clock.sleep(T0 + 2000 - w.clock.now());
      await w.register(late); // registeredAtMs T0 - 29.6 s: behind the cursor
    };
    await w.clock.run(
      Promise.all([
        registerAll(w, [x]),
        registerLate(),
        startAt(w, x.registeredAtMs, () => w.poller('poller-1')),
      ]),
    );
    expect(w.answerOf(late)?.status).toBe('started');
    expect(w.sfn.answers.get(late.taskToken)?.atMs).toBeLessThanOrEqual(T0 + 2000 + 10_000 + 1000);
  });

  it('after an idle exit the lease is stale: the next registration wakes the poller', async () => {
    const w = setup();
    const run = await w.clock.run(startAt(w, T0, () => w.poller('poller-1', { idleExitMs: 5000 })));
    expect(run.outcome).toBe('idle');
    const x = w.waiter(1, w.clock.now() + 10);
    await w.clock.run(w.clock.sleep(x.registeredAtMs - w.clock.now()));
    expect((await w.register(x)).wakePoller).toBe(true);
  });

  it('hands over before its own timeout: releases the lease and invokes itself asynchronously', async () => {
    const w = setup();
    const x = w.waiter(1, T0, { deadlineMs: T0 + 30_000 });
    const run = await w.clock.run(
      Promise.all([
        registerAll(w, [x]),
        startAt(w, WOKEN, () =>
          import('../../../lambda/snapshot-poller/poller').then(({ runPoller }) =>
            runPoller(w.clients(), w.settings(), {
              clock: w.clock,
              holder: 'poller-1',
              // The function's timeout comes 25 s after the start: it hands over 20 s before it.
              remainingMs: () => T0 + 25_000 - w.clock.now(),
            }),
          ),
        ),
      ]),
    );
    expect(run[1].outcome).toBe('handed-over');
    expect(w.lambda.invokes).toHaveLength(1);
    const invoke = w.lambda.invokes[0].input;
    expect(invoke).toMatchObject({ FunctionName: 'snapshot-poller', InvocationType: 'Event' });
    expect(JSON.parse(new TextDecoder().decode(invoke.Payload as Uint8Array))).toEqual({
      source: 'handover',
    });
    // The waiter is still there for the next poller, and the lease is free for it.
    expect(w.waiterItems()).toBe(1);
    const lease = w.table.item('LEASE', 'POLLER');
    expect(Number(lease?.expiresAtMs?.N)).toBeLessThanOrEqual(w.clock.now());
  });
});
