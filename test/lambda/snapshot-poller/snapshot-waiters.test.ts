import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { coordinationKeys, shardOf } from '../../../lambda/shared/coordination';
import {
  registerWaiter,
  waiterFromItem,
  waiterToItem,
  wakeSnapshotPoller,
} from '../../../lambda/shared/snapshot-waiters';
import { DEFAULT_POLLER_SETTINGS, settingsFromEnv } from '../../../lambda/snapshot-poller/settings';
import { T0, TABLE, World } from '../../../sim/snapshot-poller-world';

let world: World | undefined;
afterEach(() => {
  world?.close();
  world = undefined;
});

describe('snapshot waiters', () => {
  it('stores a waiter in its shard, keyed by registration time and execution, with a TTL', async () => {
    world = new World();
    const w = world.waiter(7, T0);
    const result = await registerWaiter(world.ddb, TABLE, w, w.registeredAtMs);
    expect(result).toEqual({ created: true, wakePoller: true });
    const key = coordinationKeys.waiter(w.executionName, w.registeredAtMs);
    expect(key.pk).toBe(`WAITER#${shardOf(w.executionName)}`);
    const item = world.table.item(key.pk, key.sk);
    expect(item?.expiresAt?.N).toBe(String(Math.floor(w.registeredAtMs / 1000) + 24 * 3600));
    expect(waiterFromItem(item ?? {})).toEqual({ waiter: w, key });
  });

  it('is idempotent: a retried registration writes nothing', async () => {
    world = new World();
    const w = world.waiter(7, T0);
    await registerWaiter(world.ddb, TABLE, w, w.registeredAtMs);
    const puts = () => world?.table.calls.filter((c) => c.command === 'PutItem').length;
    expect(puts()).toBe(1);
    expect((await registerWaiter(world.ddb, TABLE, w, w.registeredAtMs)).created).toBe(false);
    expect(puts()).toBe(2); // refused by its condition
  });

  it('wakes the poller only when the lease is missing, expired or about to expire', async () => {
    world = new World();
    const w = world.waiter(7, T0);
    const lease = (expiresAtMs: number) =>
      world?.ddb.send(
        new PutItemCommand({
          TableName: TABLE,
          Item: {
            pk: { S: 'LEASE' },
            sk: { S: 'POLLER' },
            holder: { S: 'poller-1' },
            expiresAtMs: { N: String(expiresAtMs) },
            acquiredAtMs: { N: String(T0) },
          },
        }),
      );
    const now = w.registeredAtMs;
    await lease(now + 8000);
    expect((await registerWaiter(world.ddb, TABLE, w, now)).wakePoller).toBe(false);
    await lease(now + 1500); // within the 2 s margin: the holder stopped renewing
    expect((await registerWaiter(world.ddb, TABLE, w, now)).wakePoller).toBe(true);
    await lease(now - 1);
    expect((await registerWaiter(world.ddb, TABLE, w, now)).wakePoller).toBe(true);
  });

  it('refuses a waiter the poller could not answer, naming the field and what is allowed', async () => {
    world = new World();
    const w = world.waiter(7, T0);
    const bad = [
      [{ volumeIds: [] }, /volumeIds: got \[\]; allowed: a non-empty list of volume ids/],
      [{ volumeIds: ['vol-0aaaaaaaaaaaaaaaa', 'vol-0aaaaaaaaaaaaaaaa'] }, /allowed: no volume twice/],
      [{ instanceId: 'i-xyz' }, /instanceId: got "i-xyz"; allowed: an instance id/],
      [{ taskToken: '' }, /taskToken: got ""; allowed: a string of 1 to 2048 characters/],
      [{ deadlineMs: w.watchdogExpiresAtMs + 1 }, /deadlineMs: .* allowed: at most watchdogExpiresAtMs/],
      [{ jobCreatedAtMs: Number.NaN }, /jobCreatedAtMs: got null; allowed: epoch milliseconds/],
    ] as const;
    for (const [over, message] of bad) {
      await expect(registerWaiter(world.ddb, TABLE, { ...w, ...over }, T0)).rejects.toThrow(message);
    }
    expect(world.table.calls).toEqual([]);
  });

  it('reads a claimed answer back with the waiter', () => {
    const w = new World();
    world = w;
    const x = w.waiter(3, T0);
    const answer = {
      status: 'budget-exceeded',
      snapshots: [],
      missingVolumeIds: x.volumeIds,
      waitedMs: 1,
      answeredBy: 'poller',
    };
    expect(waiterFromItem({ ...waiterToItem(x), answer: { S: JSON.stringify(answer) } })?.answer).toEqual(
      answer,
    );
    expect(waiterFromItem({ ...waiterToItem(x), volumeIds: { L: [] } })).toBeUndefined();
  });

  it('wakes the poller with an asynchronous Invoke', async () => {
    world = new World();
    await wakeSnapshotPoller(world.lambda, 'poller-fn');
    expect(world.lambda.invokes[0].input).toMatchObject({
      FunctionName: 'poller-fn',
      InvocationType: 'Event',
    });
  });
});

describe('poller settings', () => {
  it('reads the defaults and validates every override, naming the variable', () => {
    expect(settingsFromEnv({ COORDINATION_TABLE_NAME: 't' }, 'fn')).toEqual({
      ...DEFAULT_POLLER_SETTINGS,
      tableName: 't',
      functionName: 'fn',
    });
    expect(() => settingsFromEnv({}, 'fn')).toThrow('Missing environment variable COORDINATION_TABLE_NAME.');
    expect(() =>
      settingsFromEnv({ COORDINATION_TABLE_NAME: 't', DESCRIBE_SNAPSHOTS_PER_SECOND: '25' }, 'fn'),
    ).toThrow('Invalid DESCRIBE_SNAPSHOTS_PER_SECOND: got "25"; allowed: a number above 0 and at most 20.');
    expect(() => settingsFromEnv({ COORDINATION_TABLE_NAME: 't', BACKUP_TAG_RULE: 'never' }, 'fn')).toThrow(
      'Invalid BACKUP_TAG_RULE: got "never"; allowed: required, if-present.',
    );
    expect(
      settingsFromEnv(
        { COORDINATION_TABLE_NAME: 't', BACKUP_TAG_RULE: 'if-present', SEND_TASK_PER_SECOND: '50' },
        'fn',
      ),
    ).toMatchObject({ backupTagRule: 'if-present', sendTaskPerSecond: 50 });
  });
});
