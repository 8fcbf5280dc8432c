/**
 * An in-memory DynamoDB table behind aws-sdk-client-mock, with real expression semantics for the
 * subset the notifier uses: condition expressions (comparisons, AND/OR/NOT, attribute_exists,
 * attribute_not_exists, begins_with), update expressions (SET with if_not_exists and +/-, ADD,
 * REMOVE), ReturnValues, key conditions on the table or a sparse GSI, and all-or-nothing
 * TransactWriteItems. It throws the SDK's own exception classes, so error handling is exercised too.
 * Anything outside that subset throws, rather than silently doing something else.
 *
 * Transactions take time and conflict, as DynamoDB's do. A TransactWriteItems holds its items from
 * when it is accepted until it commits (`transactionMs`, one macrotask by default), and meanwhile:
 * - another TransactWriteItems touching any of those items is cancelled: TransactionCanceledException
 *   whose CancellationReasons carry, in request order, `TransactionConflict` ("Transaction is ongoing
 *   for the item.") for each contended item and `None` for the others;
 * - a PutItem, UpdateItem or DeleteItem of one of those items fails with TransactionConflictException
 *   ("Operation was rejected because there is an ongoing transaction for the item.");
 * - a GetItem or Query reads the last committed value (read-committed).
 * Sources: the DynamoDB API reference, TransactWriteItems and TransactionCanceledException
 * ("Cancellation reason codes and possible error messages": None, ConditionalCheckFailed,
 * TransactionConflict, ...), as in botocore's dynamodb/2012-08-10/service-2.json; the developer
 * guide, "Amazon DynamoDB Transactions: How it works", section "Transaction conflict handling in
 * DynamoDB". Neither conflict error is retried by the SDK's standard retry strategy
 * (@smithy/service-error-classification lists neither): the caller must.
 * `conflicts` counts both kinds, for tests and measurements.
 */

import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DeleteItemCommandInput,
  DynamoDBClient,
  GetItemCommand,
  type GetItemCommandInput,
  PutItemCommand,
  type PutItemCommandInput,
  QueryCommand,
  type QueryCommandInput,
  TransactionCanceledException,
  TransactionConflictException,
  TransactWriteItemsCommand,
  type TransactWriteItemsCommandInput,
  UpdateItemCommand,
  type UpdateItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';

type Item = Record<string, AttributeValue>;
type Names = Record<string, string> | undefined;
type Values = Record<string, AttributeValue> | undefined;

export interface IndexDefinition {
  readonly partitionKey: string;
  readonly sortKey?: string;
}

/**
 * DynamoDB rejects these as bare attribute names in expressions ("Attribute name is a reserved
 * keyword"). A subset of the documented list: the words near this app's attribute names.
 */
const RESERVED = new Set(
  (
    'ACTION COUNT CONSISTENCY CURRENT DATA DATE DEFAULT ERROR FAIL FINAL FINISH GROUP HASH INDEX ITEM ITEMS KEY ' +
    'LEVEL NAME OPEN OUTPUT PARTIAL PATH RANGE REGION RESOURCE RESULT SESSION SIZE SOURCE STATE STATUS TIME ' +
    'TIMESTAMP TOTAL TTL TYPE USER VALUE WINDOW'
  ).split(' '),
);

// ---------------------------------------------------------------------------------------------
// Tokenizer and parser.

type Token = { kind: 'name' | 'value' | 'ident' | 'op' | 'punct'; text: string };

function tokenize(expression: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s*(#[A-Za-z0-9_]+|:[A-Za-z0-9_]+|<>|<=|>=|[=<>+\-(),]|[A-Za-z_][A-Za-z0-9_.]*)/y;
  let index = 0;
  while (index < expression.length) {
    if (/^\s*$/.test(expression.slice(index))) break;
    re.lastIndex = index;
    const m = re.exec(expression);
    if (!m) throw new Error(`Fake DynamoDB cannot parse ${JSON.stringify(expression)} at ${index}`);
    const text = m[1];
    index = re.lastIndex;
    if (text.startsWith('#')) tokens.push({ kind: 'name', text });
    else if (text.startsWith(':')) tokens.push({ kind: 'value', text });
    else if (/^(<>|<=|>=|=|<|>)$/.test(text)) tokens.push({ kind: 'op', text });
    else if (/^[+\-(),]$/.test(text)) tokens.push({ kind: 'punct', text });
    else tokens.push({ kind: 'ident', text });
  }
  return tokens;
}

class Parser {
  private pos = 0;
  constructor(
    private readonly tokens: Token[],
    private readonly names: Names,
    private readonly values: Values,
  ) {}

  peek(): Token | undefined {
    return this.tokens[this.pos];
  }
  next(): Token {
    const t = this.tokens[this.pos++];
    if (!t) throw new Error('Fake DynamoDB: unexpected end of expression');
    return t;
  }
  expect(text: string): void {
    const t = this.next();
    if (t.text.toUpperCase() !== text.toUpperCase())
      throw new Error(`Fake DynamoDB: expected ${text}, got ${t.text}`);
  }
  done(): boolean {
    return this.pos >= this.tokens.length;
  }
  isKeyword(word: string): boolean {
    const t = this.peek();
    return t?.kind === 'ident' && t.text.toUpperCase() === word;
  }

  path(): string {
    const t = this.next();
    if (t.kind === 'name') {
      const name = this.names?.[t.text];
      if (name === undefined)
        throw new Error(`Fake DynamoDB: ${t.text} has no ExpressionAttributeNames entry`);
      return name;
    }
    if (t.kind === 'ident') {
      if (RESERVED.has(t.text.toUpperCase())) {
        throw new Error(`Fake DynamoDB: Attribute name is a reserved keyword; reserved keyword: ${t.text}`);
      }
      return t.text;
    }
    throw new Error(`Fake DynamoDB: expected an attribute path, got ${t.text}`);
  }

  /** An operand: a path or a value; returns a reader over an item. */
  operand(): (item: Item) => AttributeValue | undefined {
    const t = this.peek();
    if (t?.kind === 'value') {
      this.next();
      const value = this.values?.[t.text];
      if (value === undefined)
        throw new Error(`Fake DynamoDB: ${t.text} has no ExpressionAttributeValues entry`);
      return () => value;
    }
    const path = this.path();
    return (item) => item[path];
  }

  condition(): (item: Item) => boolean {
    let left = this.conjunction();
    while (this.isKeyword('OR')) {
      this.next();
      const a = left;
      const b = this.conjunction();
      left = (item) => a(item) || b(item);
    }
    return left;
  }

  private conjunction(): (item: Item) => boolean {
    let left = this.negation();
    while (this.isKeyword('AND')) {
      this.next();
      const a = left;
      const b = this.negation();
      left = (item) => a(item) && b(item);
    }
    return left;
  }

  private negation(): (item: Item) => boolean {
    if (this.isKeyword('NOT')) {
      this.next();
      const inner = this.negation();
      return (item) => !inner(item);
    }
    return this.primary();
  }

  private primary(): (item: Item) => boolean {
    const t = this.peek();
    if (t?.text === '(') {
      this.next();
      const inner = this.condition();
      this.expect(')');
      return inner;
    }
    if (t?.kind === 'ident' && ['attribute_exists', 'attribute_not_exists', 'begins_with'].includes(t.text)) {
      this.next();
      this.expect('(');
      const path = this.path();
      if (t.text === 'begins_with') {
        this.expect(',');
        const prefix = this.operand();
        this.expect(')');
        return (item) => {
          const v = item[path];
          const p = prefix(item);
          return v?.S !== undefined && p?.S !== undefined && v.S.startsWith(p.S);
        };
      }
      this.expect(')');
      return t.text === 'attribute_exists'
        ? (item) => item[path] !== undefined
        : (item) => item[path] === undefined;
    }
    const left = this.operand();
    const op = this.next();
    if (op.kind !== 'op') throw new Error(`Fake DynamoDB: expected a comparator, got ${op.text}`);
    const right = this.operand();
    return (item) => compare(left(item), op.text, right(item));
  }
}

function scalar(v: AttributeValue | undefined): string | number | undefined {
  if (v === undefined) return undefined;
  if (v.S !== undefined) return v.S;
  if (v.N !== undefined) return Number(v.N);
  throw new Error(`Fake DynamoDB compares only S and N values, got ${JSON.stringify(v)}`);
}

function compare(a: AttributeValue | undefined, op: string, b: AttributeValue | undefined): boolean {
  const x = scalar(a);
  const y = scalar(b);
  // DynamoDB: a comparison with a missing attribute, or of different types, is false.
  if (x === undefined || y === undefined || typeof x !== typeof y) return op === '<>' && x !== y;
  switch (op) {
    case '=':
      return x === y;
    case '<>':
      return x !== y;
    case '<':
      return x < y;
    case '<=':
      return x <= y;
    case '>':
      return x > y;
    case '>=':
      return x >= y;
  }
  throw new Error(`Fake DynamoDB: unknown comparator ${op}`);
}

/** Parses a condition once, to test many items (a Query) against it. */
function compileCondition(
  expression: string | undefined,
  names: Names,
  values: Values,
): (item: Item) => boolean {
  if (!expression) return () => true;
  const parser = new Parser(tokenize(expression), names, values);
  const condition = parser.condition();
  if (!parser.done()) throw new Error(`Fake DynamoDB: trailing tokens in ${JSON.stringify(expression)}`);
  return condition;
}

function evaluateCondition(
  expression: string | undefined,
  names: Names,
  values: Values,
  item: Item,
): boolean {
  return compileCondition(expression, names, values)(item);
}

function numberOf(v: AttributeValue | undefined, what: string): number {
  if (v?.N === undefined) throw new Error(`Fake DynamoDB: ${what} is not a number: ${JSON.stringify(v)}`);
  return Number(v.N);
}

/** Applies an update expression to a copy of `item`. */
function applyUpdate(expression: string, names: Names, values: Values, original: Item): Item {
  const item: Item = { ...original };
  const parser = new Parser(tokenize(expression), names, values);
  while (!parser.done()) {
    const clause = parser.next().text.toUpperCase();
    const more = () => {
      if (parser.peek()?.text !== ',') return false;
      parser.next();
      return true;
    };
    if (clause === 'SET') {
      do {
        const path = parser.path();
        parser.expect('=');
        let value: AttributeValue | undefined;
        if (parser.peek()?.text === 'if_not_exists') {
          parser.next();
          parser.expect('(');
          const existing = parser.path();
          parser.expect(',');
          const fallback = parser.operand();
          parser.expect(')');
          value = item[existing] ?? fallback(item);
        } else {
          const first = parser.operand()(item);
          const op = parser.peek()?.text;
          if (op === '+' || op === '-') {
            parser.next();
            const second = parser.operand()(item);
            const sum =
              numberOf(first, 'left operand') + (op === '+' ? 1 : -1) * numberOf(second, 'right operand');
            value = { N: String(sum) };
          } else value = first;
        }
        if (value === undefined) throw new Error(`Fake DynamoDB: SET ${path} to a missing value`);
        item[path] = value;
      } while (more());
    } else if (clause === 'ADD') {
      do {
        const path = parser.path();
        const delta = parser.operand()(item);
        item[path] = {
          N: String((item[path] ? numberOf(item[path], path) : 0) + numberOf(delta, 'ADD value')),
        };
      } while (more());
    } else if (clause === 'REMOVE') {
      do delete item[parser.path()];
      while (more());
    } else throw new Error(`Fake DynamoDB: unsupported update clause ${clause}`);
  }
  return item;
}

function keyString(key: Item | undefined): string {
  if (!key?.pk?.S || !key.sk?.S)
    throw new Error(`Fake DynamoDB needs pk and sk strings, got ${JSON.stringify(key)}`);
  return `${key.pk.S}\u0000${key.sk.S}`;
}

function conditionFailed(): ConditionalCheckFailedException {
  return new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
}

// ---------------------------------------------------------------------------------------------

export interface FakeDynamoDbOptions {
  /**
   * How long a TransactWriteItems holds its items before it commits, in milliseconds; undefined
   * (the default) holds them for one macrotask, so that transactions started together overlap.
   */
  readonly transactionMs?: number;
}

export class FakeDynamoDb {
  readonly items = new Map<string, Item>();
  /** Every command input, in order, for assertions on what was written. */
  readonly calls: { command: string; input: unknown }[] = [];
  /** Requests refused because a transaction held an item they touch. */
  readonly conflicts = { transactions: 0, writes: 0 };
  /** Keys held by a transaction that has not committed yet. */
  private readonly held = new Set<string>();

  constructor(
    readonly tableName: string,
    private readonly indexes: Record<string, IndexDefinition> = {},
    private readonly options: FakeDynamoDbOptions = {},
  ) {}

  /** Routes a mocked DynamoDBClient's commands to this table; returns the client to pass on. */
  install(): { client: DynamoDBClient; mock: ReturnType<typeof mockClient> } {
    const mock = mockClient(DynamoDBClient);
    mock
      .on(GetItemCommand)
      .callsFake((input: GetItemCommandInput) => this.run('GetItem', input, () => this.get(input)));
    mock
      .on(PutItemCommand)
      .callsFake((input: PutItemCommandInput) => this.run('PutItem', input, () => this.put(input)));
    mock
      .on(UpdateItemCommand)
      .callsFake((input: UpdateItemCommandInput) => this.run('UpdateItem', input, () => this.update(input)));
    mock
      .on(DeleteItemCommand)
      .callsFake((input: DeleteItemCommandInput) => this.run('DeleteItem', input, () => this.delete(input)));
    mock
      .on(QueryCommand)
      .callsFake((input: QueryCommandInput) => this.run('Query', input, () => this.query(input)));
    mock
      .on(TransactWriteItemsCommand)
      .callsFake((input: TransactWriteItemsCommandInput) =>
        this.run('TransactWriteItems', input, () => this.transact(input)),
      );
    return { client: new DynamoDBClient({ region: 'eu-west-1' }), mock };
  }

  item(pk: string, sk: string): Item | undefined {
    return this.items.get(`${pk}\u0000${sk}`);
  }

  /** Async like the SDK's send: a failure is a rejected promise, never a synchronous throw. */
  private async run<T>(command: string, input: object, work: () => T | Promise<T>): Promise<T> {
    this.calls.push({ command, input });
    const tables =
      'TransactItems' in input
        ? ((input as TransactWriteItemsCommandInput).TransactItems ?? []).map(
            (op) => (op.Put ?? op.Update ?? op.Delete ?? op.ConditionCheck)?.TableName,
          )
        : [(input as { TableName?: string }).TableName];
    for (const table of tables) {
      if (table !== this.tableName) throw new Error(`Fake DynamoDB: table ${table} is not ${this.tableName}`);
    }
    return work();
  }

  get(input: GetItemCommandInput) {
    const item = this.items.get(keyString(input.Key));
    return { Item: item ? { ...item } : undefined };
  }

  /** DynamoDB refuses a single-item write to an item an ongoing transaction holds. */
  private refuseIfHeld(key: string): void {
    if (!this.held.has(key)) return;
    this.conflicts.writes++;
    throw new TransactionConflictException({
      message: 'Operation was rejected because there is an ongoing transaction for the item.',
      $metadata: {},
    });
  }

  put(input: PutItemCommandInput) {
    const key = keyString(input.Item);
    this.refuseIfHeld(key);
    const existing = this.items.get(key) ?? {};
    if (
      !evaluateCondition(
        input.ConditionExpression,
        input.ExpressionAttributeNames,
        input.ExpressionAttributeValues,
        existing,
      )
    ) {
      throw conditionFailed();
    }
    this.items.set(key, { ...input.Item });
    return {};
  }

  private planUpdate(input: UpdateItemCommandInput): { key: string; before?: Item; after: Item } {
    const key = keyString(input.Key);
    const before = this.items.get(key);
    if (
      !evaluateCondition(
        input.ConditionExpression,
        input.ExpressionAttributeNames,
        input.ExpressionAttributeValues,
        before ?? {},
      )
    ) {
      throw conditionFailed();
    }
    if (!input.UpdateExpression) throw new Error('Fake DynamoDB: UpdateItem without UpdateExpression');
    const after = applyUpdate(
      input.UpdateExpression,
      input.ExpressionAttributeNames,
      input.ExpressionAttributeValues,
      {
        ...(before ?? {}),
        ...input.Key,
      },
    );
    return { key, before, after };
  }

  update(input: UpdateItemCommandInput) {
    this.refuseIfHeld(keyString(input.Key));
    const { key, before, after } = this.planUpdate(input);
    this.items.set(key, after);
    switch (input.ReturnValues) {
      case 'ALL_NEW':
        return { Attributes: { ...after } };
      case 'UPDATED_OLD': {
        if (!before) return {};
        const changed: Item = {};
        for (const [name, value] of Object.entries(before)) {
          if (JSON.stringify(after[name]) !== JSON.stringify(value)) changed[name] = value;
        }
        return { Attributes: changed };
      }
      case undefined:
      case 'NONE':
        return {};
      default:
        throw new Error(`Fake DynamoDB: ReturnValues ${input.ReturnValues} not supported`);
    }
  }

  delete(input: DeleteItemCommandInput) {
    const key = keyString(input.Key);
    this.refuseIfHeld(key);
    const existing = this.items.get(key);
    if (
      !evaluateCondition(
        input.ConditionExpression,
        input.ExpressionAttributeNames,
        input.ExpressionAttributeValues,
        existing ?? {},
      )
    ) {
      throw conditionFailed();
    }
    this.items.delete(key);
    return {};
  }

  query(input: QueryCommandInput) {
    if (!input.KeyConditionExpression) throw new Error('Fake DynamoDB: Query without KeyConditionExpression');
    if (input.IndexName && input.ConsistentRead) {
      // DynamoDB: a ValidationException; a global secondary index is only eventually consistent.
      throw new Error('Fake DynamoDB: Consistent reads are not supported on global secondary indexes');
    }
    let source = [...this.items.values()];
    let sortKey = 'sk';
    if (input.IndexName) {
      const index = this.indexes[input.IndexName];
      if (!index) throw new Error(`Fake DynamoDB: no index ${input.IndexName}`);
      // A GSI holds only items that carry its key attributes.
      source = source.filter(
        (item) =>
          item[index.partitionKey] !== undefined && (!index.sortKey || item[index.sortKey] !== undefined),
      );
      sortKey = index.sortKey ?? sortKey;
    }
    const keyCondition = compileCondition(
      input.KeyConditionExpression,
      input.ExpressionAttributeNames,
      input.ExpressionAttributeValues,
    );
    const matches = source
      .filter(keyCondition)
      .sort((a, b) => String(scalar(a[sortKey])).localeCompare(String(scalar(b[sortKey]))));
    return { Items: matches.map((item) => ({ ...item })), Count: matches.length };
  }

  async transact(input: TransactWriteItemsCommandInput) {
    const ops = input.TransactItems ?? [];
    const keys = ops.map((op) => {
      if (op.Put) return keyString(op.Put.Item);
      const target = op.Update ?? op.Delete ?? op.ConditionCheck;
      return keyString(target?.Key);
    });
    if (new Set(keys).size !== keys.length) {
      throw new Error('Fake DynamoDB: a transaction cannot include more than one operation on one item');
    }
    if (keys.some((key) => this.held.has(key))) {
      this.conflicts.transactions++;
      const reasons = keys.map((key) =>
        this.held.has(key)
          ? { Code: 'TransactionConflict', Message: 'Transaction is ongoing for the item.' }
          : { Code: 'None' },
      );
      throw cancelled(reasons);
    }
    const plans: (() => void)[] = [];
    const reasons: { Code: string; Message?: string }[] = [];
    let failed = false;
    for (const op of ops) {
      try {
        if (op.Put) {
          const put = op.Put;
          const key = keyString(put.Item);
          if (
            !evaluateCondition(
              put.ConditionExpression,
              put.ExpressionAttributeNames,
              put.ExpressionAttributeValues,
              this.items.get(key) ?? {},
            )
          ) {
            throw conditionFailed();
          }
          plans.push(() => this.items.set(key, { ...put.Item }));
        } else if (op.Update) {
          const { key, after } = this.planUpdate(op.Update as UpdateItemCommandInput);
          plans.push(() => this.items.set(key, after));
        } else if (op.Delete) {
          const del = op.Delete;
          const key = keyString(del.Key);
          if (
            !evaluateCondition(
              del.ConditionExpression,
              del.ExpressionAttributeNames,
              del.ExpressionAttributeValues,
              this.items.get(key) ?? {},
            )
          ) {
            throw conditionFailed();
          }
          plans.push(() => this.items.delete(key));
        } else throw new Error('Fake DynamoDB: only Put, Update and Delete in transactions');
        reasons.push({ Code: 'None' });
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException)) throw err;
        failed = true;
        reasons.push({ Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' });
      }
    }
    if (failed) throw cancelled(reasons);
    // Accepted: the items are held until the commit, which applies the plans evaluated now (nothing
    // else can write a held item meanwhile).
    for (const key of keys) this.held.add(key);
    try {
      await this.hold();
      for (const apply of plans) apply();
    } finally {
      for (const key of keys) this.held.delete(key);
    }
    return {};
  }

  private hold(): Promise<void> {
    const ms = this.options.transactionMs;
    return new Promise((resolve) => (ms === undefined ? setImmediate(resolve) : setTimeout(resolve, ms)));
  }
}

function cancelled(reasons: { Code: string; Message?: string }[]): TransactionCanceledException {
  return new TransactionCanceledException({
    message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r.Code).join(', ')}]`,
    $metadata: {},
    CancellationReasons: reasons,
  });
}
