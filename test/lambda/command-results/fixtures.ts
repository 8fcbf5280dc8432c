import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { TokenBucket } from '../../../lambda/discovery/rate';
import type { CommandResultsDeps } from '../../../lambda/command-results/results';
import { FakeDynamoDb } from '../../../sim/dynamodb';
import { VirtualClock } from '../../../sim/fleet/virtual-clock';
import { type FakeInvocation, FakeRunCommand, FakeTaskTokens } from '../../../sim/run-command';

export const T0 = Date.parse('2026-11-22T02:00:00.000Z');
export const TABLE = 'Coordination';
export const DOCUMENTS = { freeze: 'ecb-Freeze', thaw: 'ecb-Thaw' } as const;
export const INSTANCE = 'i-0123456789abcdef0';

/**
 * The freeze document's result line, as ssm-documents/scripts/freeze.sh prints it (its printf
 * fields), after a line of agent noise; `targets` sets its length.
 */
export function freezeStdout(frozenAtMs: number, targets = 1): string {
  const line = JSON.stringify({
    schemaVersion: 1,
    action: 'freeze',
    status: 'frozen',
    executionId: 'exec-1',
    duplicate: false,
    frozenAt: new Date(frozenAtMs).toISOString(),
    frozenAtMs,
    freezeStartedAtMs: frozenAtMs - 40,
    targets: Array.from({ length: targets }, (_, i) => ({
      mountpoint: `/data${i}`,
      fstype: 'xfs',
      source: `/dev/nvme${i + 1}n1`,
      volumeIds: [`vol-0aaaaaaaaaaaaa${String(i).padStart(3, '0')}`],
    })),
    unmapped: [],
    skipped: [
      { mountpoint: '/', reason: 'protected: root filesystem', volumeIds: ['vol-0bbbbbbbbbbbbbbb1'] },
    ],
    volumes: [],
    hooksConfigured: true,
    hooks: [{ phase: 'pre-freeze', name: '10-db', exitCode: 0, ms: 20 }],
    watchdog: { seconds: 90, deadline: new Date(frozenAtMs + 90_000).toISOString() },
    previous: null,
    warnings: [],
    truncated: false,
    fsfreeze: [],
    error: null,
  });
  return `agent: starting\n${line}\n`;
}

export function thawStdout(thawedAtMs: number, failed: string[] = []): string {
  return `${JSON.stringify({
    schemaVersion: 1,
    action: 'thaw',
    status: failed.length ? 'error' : 'thawed',
    executionId: 'exec-1',
    thawedAtMs,
    thawed: failed.length ? [] : ['/data0'],
    notFrozen: [],
    failed,
    freezeMs: 1800,
    watchdogFired: false,
    hooks: [],
    postThawHooksOk: true,
    warnings: [],
  })}\n`;
}

export interface World {
  readonly clock: VirtualClock;
  readonly table: FakeDynamoDb;
  readonly ssm: FakeRunCommand;
  readonly sfn: FakeTaskTokens;
  readonly deps: CommandResultsDeps;
  restore(): void;
  /** Runs `work` on the virtual clock. */
  run<T>(work: Promise<T>): Promise<T>;
  /** Advances the virtual clock by `ms`. */
  advance(ms: number): Promise<void>;
}

export interface WorldOptions {
  /** The fake's GetCommandInvocation / ListCommandInvocations buckets (unpublished: assumed). */
  readonly ssmRates?: ConstructorParameters<typeof FakeRunCommand>[1];
  /** The client's paces (calls per second, per function instance). */
  readonly paces?: { getInvocation: number; listInvocations: number; sendTask: number };
}

export function world(options: WorldOptions = {}): World {
  const clock = new VirtualClock(T0);
  const table = new FakeDynamoDb(TABLE);
  // The fake's own operations, called directly: the same semantics as through the mocked client
  // (sim/dynamodb.ts install), without its per-call overhead in the 1,000-command cases.
  const ddb = {
    send: async (command: unknown) => {
      const input = (command as { input: { TableName?: string } }).input;
      if (input.TableName !== TABLE) throw new Error(`table ${input.TableName} is not ${TABLE}`);
      if (command instanceof GetItemCommand) return table.get(command.input);
      if (command instanceof PutItemCommand) return table.put(command.input);
      if (command instanceof UpdateItemCommand) return table.update(command.input);
      if (command instanceof DeleteItemCommand) return table.delete(command.input);
      if (command instanceof QueryCommand) return table.query(command.input);
      throw new Error(`not modelled: ${(command as object).constructor.name}`);
    },
  } as unknown as CommandResultsDeps['ddb'];
  const mock = { restore: () => undefined };
  // SSM publishes no rate for these: the same assumption as admission (lambda/discovery/admission.ts).
  const ssm = new FakeRunCommand(
    clock,
    options.ssmRates ?? {
      getCommandInvocation: { burst: 100, perSecond: 20 },
      listCommandInvocations: { burst: 100, perSecond: 20 },
    },
  );
  const sfn = new FakeTaskTokens(clock);
  const paces = options.paces ?? { getInvocation: 10, listInvocations: 5, sendTask: 50 };
  const bucket = (perSecond: number) => new TokenBucket(Math.max(1, perSecond), perSecond, clock);
  const deps: CommandResultsDeps = {
    ddb,
    ssm: ssm.client(),
    sfn: sfn.client(),
    table: TABLE,
    documents: DOCUMENTS,
    clock,
    paces: {
      getInvocation: bucket(paces.getInvocation),
      listInvocations: bucket(paces.listInvocations),
      sendTask: bucket(paces.sendTask),
    },
  };
  return {
    clock,
    table,
    ssm,
    sfn,
    deps,
    restore: () => mock.restore(),
    run: (work) => clock.run(work),
    advance: (ms) => clock.run(clock.sleep(ms)),
  };
}

/** The state machine's `sqs:sendMessage.waitForTaskToken` body for a thaw (docs/fleet-design.md step 7). */
export function thawMessage(inv: FakeInvocation, taskToken: string, kind: 'thaw' | 'retried-thaw' = 'thaw') {
  return {
    taskToken,
    kind,
    command: {
      Command: {
        CommandId: inv.commandId,
        DocumentName: inv.documentName,
        InstanceIds: [inv.instanceId],
        RequestedDateTime: new Date(inv.requestedAtMs).toISOString(),
        Status: 'Pending',
      },
    },
    instanceId: inv.instanceId,
    execution: { name: `exec-${inv.commandId.slice(-6)}` },
  };
}
