import {
  ConditionalCheckFailedException,
  PutItemCommand,
  QueryCommand,
  GetItemCommand,
  TransactionCanceledException,
  TransactionConflictException,
  TransactWriteItemsCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeDynamoDb } from '../../sim/dynamodb';

const TABLE = 't';
let restore: () => void = () => undefined;
afterEach(() => restore());

function setup() {
  const table = new FakeDynamoDb(TABLE, { ByDeadline: { partitionKey: 'pending', sortKey: 'deadline' } });
  const { client, mock } = table.install();
  restore = () => mock.restore();
  return { table, client };
}
const key = (pk: string) => ({ pk: { S: pk }, sk: { S: 'X' } });

describe('the in-memory DynamoDB the notifier tests use', () => {
  it('applies SET with if_not_exists, ADD and REMOVE, and evaluates conditions on the old item', async () => {
    const { table, client } = setup();
    const update = (extra: object = {}) =>
      client.send(
        new UpdateItemCommand({
          TableName: TABLE,
          Key: key('a'),
          UpdateExpression: 'SET first = if_not_exists(first, :v), last = :v ADD n :one REMOVE gone',
          ExpressionAttributeValues: { ':v': { S: 'x' }, ':one': { N: '1' } },
          ...extra,
        }),
      );
    await update();
    await update({
      ConditionExpression: 'n >= :one AND attribute_not_exists(gone)',
      ExpressionAttributeValues: { ':v': { S: 'y' }, ':one': { N: '1' } },
    });
    expect(table.item('a', 'X')).toEqual({ ...key('a'), first: { S: 'x' }, last: { S: 'y' }, n: { N: '2' } });
    await expect(update({ ConditionExpression: 'attribute_not_exists(n)' })).rejects.toBeInstanceOf(
      ConditionalCheckFailedException,
    );
  });

  it('rejects reserved words used as bare attribute names, as DynamoDB does', async () => {
    const { client } = setup();
    await expect(
      client.send(
        new UpdateItemCommand({
          TableName: TABLE,
          Key: key('a'),
          UpdateExpression: 'SET consistency = :v',
          ExpressionAttributeValues: { ':v': { S: 'x' } },
        }),
      ),
    ).rejects.toThrow(/reserved keyword: consistency/);
  });

  it('applies a transaction all or nothing', async () => {
    const { table, client } = setup();
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key('taken') } }));
    const err = await client
      .send(
        new TransactWriteItemsCommand({
          TransactItems: [
            { Put: { TableName: TABLE, Item: { ...key('new') } } },
            {
              Put: {
                TableName: TABLE,
                Item: { ...key('taken') },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
          ],
        }),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionCanceledException);
    expect((err as TransactionCanceledException).CancellationReasons?.map((r) => r.Code)).toEqual([
      'None',
      'ConditionalCheckFailed',
    ]);
    expect(table.item('new', 'X')).toBeUndefined();
  });

  it('cancels a transaction that touches an item another ongoing transaction holds, with TransactionConflict for that item', async () => {
    const { table, client } = setup();
    const add = (pk: string) => ({
      Update: {
        TableName: TABLE,
        Key: key(pk),
        UpdateExpression: 'ADD n :one',
        ExpressionAttributeValues: { ':one': { N: '1' } },
      },
    });
    const transaction = (...ops: ReturnType<typeof add>[]) =>
      client.send(new TransactWriteItemsCommand({ TransactItems: ops }));
    // Started together: the first holds `hot` until it commits, so the second is cancelled whole.
    const [first, second] = await Promise.allSettled([
      transaction(add('hot'), add('a')),
      transaction(add('b'), add('hot')),
    ]);
    expect(first.status).toBe('fulfilled');
    expect(second.status).toBe('rejected');
    const err = (second as PromiseRejectedResult).reason as TransactionCanceledException;
    expect(err).toBeInstanceOf(TransactionCanceledException);
    expect(err.CancellationReasons).toEqual([
      { Code: 'None' },
      { Code: 'TransactionConflict', Message: 'Transaction is ongoing for the item.' },
    ]);
    expect(table.item('hot', 'X')?.n).toEqual({ N: '1' });
    expect(table.item('b', 'X')).toBeUndefined();
    expect(table.conflicts).toEqual({ transactions: 1, writes: 0 });

    // One after the other, nothing conflicts; transactions on different items never do.
    await transaction(add('b'), add('hot'));
    await Promise.all([transaction(add('c')), transaction(add('d'))]);
    expect(table.item('hot', 'X')?.n).toEqual({ N: '2' });
    expect(table.conflicts.transactions).toBe(1);
  });

  it('refuses a single-item write to an item a transaction holds, and lets reads see the committed value', async () => {
    const { table, client } = setup();
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key('hot'), v: { S: 'old' } } }));
    const pending = client.send(
      new TransactWriteItemsCommand({
        TransactItems: [{ Put: { TableName: TABLE, Item: { ...key('hot'), v: { S: 'new' } } } }],
      }),
    );
    const during = client.send(new GetItemCommand({ TableName: TABLE, Key: key('hot') }));
    const write = client
      .send(
        new UpdateItemCommand({
          TableName: TABLE,
          Key: key('hot'),
          UpdateExpression: 'SET v = :v',
          ExpressionAttributeValues: { ':v': { S: 'single' } },
        }),
      )
      .catch((e: unknown) => e);
    expect((await during).Item?.v).toEqual({ S: 'old' });
    const refused = await write;
    expect(refused).toBeInstanceOf(TransactionConflictException);
    expect((refused as Error).message).toBe(
      'Operation was rejected because there is an ongoing transaction for the item.',
    );
    await pending;
    expect(table.item('hot', 'X')?.v).toEqual({ S: 'new' });
    expect(table.conflicts).toEqual({ transactions: 0, writes: 1 });
  });

  it('queries a sparse index by key condition', async () => {
    const { client } = setup();
    for (const [pk, deadline] of [
      ['a', '2026-01-01'],
      ['b', '2026-03-01'],
      ['c', undefined],
    ] as const) {
      await client.send(
        new PutItemCommand({
          TableName: TABLE,
          Item: { ...key(pk), ...(deadline ? { pending: { S: 'RUN' }, deadline: { S: deadline } } : {}) },
        }),
      );
    }
    const result = await client.send(
      new QueryCommand({
        TableName: TABLE,
        IndexName: 'ByDeadline',
        KeyConditionExpression: 'pending = :p AND deadline <= :d',
        ExpressionAttributeValues: { ':p': { S: 'RUN' }, ':d': { S: '2026-02-01' } },
      }),
    );
    expect(result.Items?.map((i) => i.pk.S)).toEqual(['a']);
  });
});
