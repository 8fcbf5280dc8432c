import { afterEach, describe, expect, it } from 'vitest';
import { waitForCommand } from '../../../lambda/shared/command-wait';
import {
  handleCommandEvent,
  handleQueueBody,
  parseCommandEvent,
  runSweep,
  sweepPendingCommands,
} from '../../../lambda/command-results/results';
import {
  type CommandWaiterRegistration,
  FIRST_CHECK_MS,
  readStoredCommand,
  registerCommandWaiter,
} from '../../../lambda/shared/command-waiters';
import { parseFreezeOutput } from '../../../lambda/shared/verdict';
import type { FreezeStepResult, ThawStepResult } from '../../../lambda/shared/workflow-results';
import { lcg as lcgRandom } from '../../../sim/fleet/virtual-clock';
import type { FakeInvocation } from '../../../sim/run-command';
import {
  DOCUMENTS,
  freezeStdout,
  INSTANCE,
  T0,
  thawMessage,
  thawStdout,
  type World,
  world,
} from './fixtures';

let w: World;
afterEach(() => w?.restore());

const stored = (commandId: string) => {
  const item = w.table.item(`CMD#${commandId}`, 'CMD');
  return item ? readStoredCommand(item) : undefined;
};
const pendingEntries = () => [...w.table.items.keys()].filter((k) => k.startsWith('PENDINGCMD#'));

function sendThaw(overrides: { runMs?: number; visibleAfterMs?: number; stdout?: string } = {}) {
  return w.ssm.send({
    instanceId: INSTANCE,
    documentName: DOCUMENTS.thaw,
    endStatus: 'Success',
    responseCode: 0,
    stdout: overrides.stdout ?? thawStdout(T0 + 1000),
    stderr: '',
    runMs: overrides.runMs ?? 300,
    ...(overrides.visibleAfterMs !== undefined ? { visibleAfterMs: overrides.visibleAfterMs } : {}),
  });
}

function freezeRegistration(
  commandId: string,
  sentAtMs: number,
  taskToken: string,
): CommandWaiterRegistration {
  return {
    commandId,
    kind: 'freeze',
    executionName: 'exec-1',
    instanceId: INSTANCE,
    sentAtMs,
    taskToken,
    freeze: {
      notAfter: new Date(sentAtMs + 150_000).toISOString(),
      freezeBudgetSeconds: 60,
      thawMarginSeconds: 3,
    },
  };
}

describe('command-results: pairing', () => {
  it('token then event: the terminal event answers the thaw once; non-terminal events do nothing', async () => {
    w = world();
    const inv = sendThaw();
    const token = w.sfn.issue('thaw-1', 60_000);
    expect(await w.run(handleQueueBody(w.deps, thawMessage(inv, token)))).toEqual({
      input: 'waiter',
      outcome: 'waiting-for-result',
    });
    expect(pendingEntries()).toHaveLength(1);
    for (const { at, event } of w.ssm.eventsOf(inv)) {
      await w.advance(at - w.clock.now());
      await w.run(handleQueueBody(w.deps, event));
    }
    const task = w.sfn.tasks.get(token);
    expect(task?.answers).toHaveLength(1);
    const out = task?.answers[0].output as ThawStepResult;
    expect(out).toMatchObject({
      confirmed: true,
      attempt: 1,
      command: { status: 'Success', succeeded: true },
    });
    // Pending and InProgress cost nothing: one GetCommandInvocation, for the terminal event.
    expect(w.ssm.calls.getCommandInvocation).toBe(1);
    expect(stored(inv.commandId)?.answerState).toBe('answered');
    expect(pendingEntries()).toHaveLength(0);
    // The confirmed thaw is a fact of the execution, for execution-events and record-outcome.
    const execution = thawMessage(inv, token).execution.name;
    expect(w.table.item(`EXEC#${execution}`, 'EXEC')?.thawConfirmedAtMs).toEqual({
      N: String(task?.answers[0].at),
    });
  });

  it('event then token: the freeze result waits in the table and the registration answers it once', async () => {
    w = world();
    const frozenAt = T0 + 900;
    const inv = w.ssm.send({
      instanceId: INSTANCE,
      documentName: DOCUMENTS.freeze,
      endStatus: 'Success',
      responseCode: 0,
      stdout: freezeStdout(frozenAt),
      stderr: '',
      runMs: 800,
    });
    const end = w.ssm.eventsOf(inv)[2];
    await w.advance(end.at - w.clock.now() + 20);
    const recorded = await w.run(handleCommandEvent(w.deps, end.event));
    expect(recorded).toEqual({ action: 'recorded', pairing: 'waiting-for-token' });
    const token = w.sfn.issue('freeze-1', 180_000);
    const answerDeps = { sfn: w.deps.sfn, now: () => w.clock.now(), sendTaskPace: w.deps.paces.sendTask };
    const registration = freezeRegistration(inv.commandId, inv.requestedAtMs, token);
    expect(await w.run(registerCommandWaiter(w.deps.ddb, 'Coordination', registration, answerDeps))).toBe(
      'answered',
    );
    // A second registration (a retried send-freeze) and a duplicated event change nothing.
    expect(await w.run(registerCommandWaiter(w.deps.ddb, 'Coordination', registration, answerDeps))).toBe(
      'already-answered',
    );
    expect(await w.run(handleCommandEvent(w.deps, end.event))).toEqual({
      action: 'recorded',
      pairing: 'already-answered',
    });
    const answers = w.sfn.tasks.get(token)?.answers ?? [];
    expect(answers).toHaveLength(1);
    const out = answers[0].output as FreezeStepResult;
    expect(out).toMatchObject({
      outcome: 'frozen',
      commandId: inv.commandId,
      sentAtMs: inv.requestedAtMs,
      frozenAtMs: frozenAt,
      frozenAtAwsMs: frozenAt,
      watchdogDeadline: new Date(frozenAt + 90_000).toISOString(),
    });
    // 60 s budget less the 3 s margin, counted from the freeze; answered ~0.2 s after it (+2 backstop).
    expect(out.budgetSeconds).toBe(Math.ceil((frozenAt + 57_000 - answers[0].at) / 1000) + 2);
    expect(w.ssm.calls.getCommandInvocation).toBe(1);
    expect(pendingEntries()).toHaveLength(0);
  });

  it('duplicated and out-of-order events: the first terminal result stands, one answer, other documents ignored', async () => {
    w = world();
    const inv = sendThaw();
    const token = w.sfn.issue('thaw-2', 60_000);
    await w.run(handleQueueBody(w.deps, thawMessage(inv, token, 'retried-thaw')));
    const [pending, running, ended] = w.ssm.eventsOf(inv);
    await w.advance(ended.at - w.clock.now() + 5);
    // The end first, then twice again, then the earlier statuses late.
    for (const e of [ended, ended, running, pending, ended]) await w.run(handleQueueBody(w.deps, e.event));
    const other = {
      ...ended.event,
      detail: { ...ended.event.detail, 'document-name': 'AWS-RunShellScript' },
    };
    expect(await w.run(handleCommandEvent(w.deps, other))).toMatchObject({ action: 'ignored' });
    const answers = w.sfn.tasks.get(token)?.answers ?? [];
    expect(answers).toHaveLength(1);
    expect(answers[0].output).toMatchObject({ confirmed: true, attempt: 2 });
    expect(w.sfn.calls).toBe(1);
    // Duplicates of a stored result read the table, not SSM.
    expect(w.ssm.calls.getCommandInvocation).toBe(1);
  });

  it('a failed thaw is answered, not confirmed, with the command and why', async () => {
    w = world();
    const inv = w.ssm.send({
      instanceId: INSTANCE,
      documentName: DOCUMENTS.thaw,
      endStatus: 'Failed',
      responseCode: 1,
      stdout: thawStdout(T0 + 900, ['/data0']),
      stderr: 'fsfreeze: /data0: Device or resource busy\n',
      runMs: 300,
    });
    const token = w.sfn.issue('thaw-3', 60_000);
    await w.run(handleQueueBody(w.deps, thawMessage(inv, token)));
    const ended = w.ssm.eventsOf(inv)[2];
    await w.advance(ended.at - w.clock.now());
    await w.run(handleQueueBody(w.deps, ended.event));
    const out = w.sfn.tasks.get(token)?.answers[0].output as ThawStepResult;
    expect(out.confirmed).toBe(false);
    expect(out.command).toMatchObject({ status: 'Failed', succeeded: false });
    expect(out.command.detail).toContain('exit code 1: fsfreeze: /data0: Device or resource busy');
    expect(out.detail).toContain('Failed');
    expect([...w.table.items.keys()].some((k) => k.startsWith('EXEC#'))).toBe(false);
  });

  it('a dead token (the task timed out) is marked and dropped: no retries, no sweep work', async () => {
    w = world();
    const inv = sendThaw({ runMs: 3000 });
    const token = w.sfn.issue('thaw-4', 1000);
    await w.run(handleQueueBody(w.deps, thawMessage(inv, token)));
    const ended = w.ssm.eventsOf(inv)[2];
    await w.advance(ended.at - w.clock.now());
    expect(await w.run(handleQueueBody(w.deps, ended.event))).toEqual({
      input: 'event',
      outcome: { action: 'recorded', pairing: 'dead-token' },
    });
    expect(stored(inv.commandId)?.answerState).toBe('dead');
    expect(pendingEntries()).toHaveLength(0);
    const before = { ...w.ssm.calls, sfn: w.sfn.calls };
    expect(await w.run(sweepPendingCommands(w.deps))).toMatchObject({ pending: 0, answered: 0 });
    expect({ ...w.ssm.calls, sfn: w.sfn.calls }).toEqual(before);
  });

  it('a token Step Functions does not know (InvalidToken) is dead too', async () => {
    w = world();
    const inv = sendThaw();
    await w.run(handleQueueBody(w.deps, thawMessage(inv, 'not-a-token-step-functions-issued')));
    const ended = w.ssm.eventsOf(inv)[2];
    await w.advance(ended.at - w.clock.now());
    expect(await w.run(handleCommandEvent(w.deps, ended.event))).toEqual({
      action: 'recorded',
      pairing: 'dead-token',
    });
  });

  it('a thaw whose SendCommand result has no CommandId is answered NoCommandId at once', async () => {
    w = world();
    const token = w.sfn.issue('thaw-5', 60_000);
    const body = { taskToken: token, kind: 'thaw', command: {}, instanceId: INSTANCE, execution: 'exec-5' };
    expect(await w.run(handleQueueBody(w.deps, body))).toEqual({ input: 'waiter', outcome: 'answered' });
    expect(w.sfn.tasks.get(token)?.answers[0].output).toMatchObject({
      confirmed: false,
      command: { status: 'NoCommandId' },
    });
  });

  it('a waiter message it cannot accept fails its task at once, naming the value', async () => {
    w = world();
    const token = w.sfn.issue('thaw-6', 60_000);
    const body = { taskToken: token, kind: 'thaw', command: {}, instanceId: 'web-1', execution: 'exec-6' };
    const result = await w.run(handleQueueBody(w.deps, body));
    expect(result).toMatchObject({ input: 'rejected' });
    expect((result as { reason: string }).reason).toMatch(/Invalid instanceId: got "web-1"; allowed: i-/);
    expect(w.sfn.tasks.get(token)?.answers[0]).toMatchObject({
      kind: 'failure',
      error: 'CommandWaiterInvalid',
    });
  });
});

describe('command-results: the fallback sweep', () => {
  it('answers a waiter whose event was lost at its first look, 2 s after the send', async () => {
    w = world();
    const inv = sendThaw({ runMs: 1300 }); // ends 1.5 s after the send
    const token = w.sfn.issue('thaw-7', 60_000);
    await w.run(handleQueueBody(w.deps, thawMessage(inv, token)));
    const swept = await w.run(runSweep(w.deps, T0 + 60_000));
    const answer = w.sfn.tasks.get(token)?.answers[0];
    expect(answer?.output).toMatchObject({ confirmed: true });
    expect(answer?.at).toBeLessThanOrEqual(inv.requestedAtMs + FIRST_CHECK_MS + 50);
    expect(swept).toMatchObject({ answered: 1, getCalls: 1, listCalls: 0 });
    expect(pendingEntries()).toHaveLength(0);
  });

  it('looks again 2, 4, 8 s apart while the invocation is not visible or still running', async () => {
    w = world();
    const inv = sendThaw({ runMs: 5000, visibleAfterMs: 3000 }); // visible at 3 s, ends at 5.2 s
    const token = w.sfn.issue('thaw-8', 60_000);
    await w.run(handleQueueBody(w.deps, thawMessage(inv, token)));
    await w.run(runSweep(w.deps, T0 + 60_000));
    const answer = w.sfn.tasks.get(token)?.answers[0];
    // Looks at 2 s (not visible), 2 + 4 = 6 s (ended): answered within the delay after it ended.
    expect(answer?.at).toBeGreaterThanOrEqual(inv.endsAtMs);
    expect(answer?.at).toBeLessThanOrEqual(inv.requestedAtMs + 6000 + 50);
    expect(w.ssm.calls.getCommandInvocation).toBe(2);
  });

  it('answers a result whose answer failed half-way (the function died after its claim)', async () => {
    w = world();
    const inv = sendThaw();
    const token = w.sfn.issue('thaw-9', 120_000);
    await w.run(handleQueueBody(w.deps, thawMessage(inv, token)));
    const ended = w.ssm.eventsOf(inv)[2];
    await w.advance(ended.at - w.clock.now());
    // Step Functions throttles once: the claim is released and the error goes back to SQS.
    const realSend = w.deps.sfn.send.bind(w.deps.sfn);
    let throttled = false;
    const flaky = {
      send: async (c: unknown) => {
        if (!throttled) {
          throttled = true;
          throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
        }
        return realSend(c as never);
      },
    };
    const deps = { ...w.deps, sfn: flaky as typeof w.deps.sfn };
    await expect(w.run(handleQueueBody(deps, ended.event))).rejects.toThrow('Rate exceeded');
    expect(stored(inv.commandId)).toMatchObject({ answeredAt: undefined, result: { status: 'Success' } });
    // The sweep answers it without asking SSM again.
    await w.run(runSweep(deps, w.clock.now() + 30_000));
    expect(w.sfn.tasks.get(token)?.answers).toHaveLength(1);
    expect(w.ssm.calls.getCommandInvocation).toBe(1);
  });

  it('1,000 thaws whose events were all lost: each answered once, every API within its bucket', async () => {
    w = world();
    const random = lcgRandom(7);
    const tokens: string[] = [];
    const invocations: FakeInvocation[] = [];
    // Sent at 100 per second for 10 s; each runs 0.3-3 s.
    for (let tick = 0; tick < 100; tick += 1) {
      await w.advance(100);
      const sent = Array.from({ length: 10 }, () => {
        const inv = sendThaw({ runMs: 300 + Math.floor(random() * 2700) });
        invocations.push(inv);
        tokens.push(w.sfn.issue(`bulk-${tokens.length}`, 600_000));
        return { inv, token: tokens[tokens.length - 1] };
      });
      await w.run(
        Promise.all(sent.map(({ inv, token }) => handleQueueBody(w.deps, thawMessage(inv, token)))),
      );
    }
    const swept = await w.run(runSweep(w.deps, T0 + 600_000));
    const answers = tokens.map((t) => w.sfn.tasks.get(t)?.answers ?? []);
    expect(answers.every((a) => a.length === 1 && (a[0].output as ThawStepResult).confirmed)).toBe(true);
    expect(w.ssm.buckets.getCommandInvocation.refused).toBe(0);
    expect(w.ssm.buckets.listCommandInvocations.refused).toBe(0);
    expect(w.sfn.bucket.refused).toBe(0);
    // One GetCommandInvocation per result (stdout); the statuses came from ListCommandInvocations.
    expect(w.ssm.calls.getCommandInvocation).toBe(1000);
    expect(swept.listCalls).toBe(w.ssm.calls.listCommandInvocations);
    // The client's paces: GetCommandInvocation at most 10 in any second (+ its 10-token burst).
    expect(w.ssm.buckets.getCommandInvocation.peak(1000)).toBeLessThanOrEqual(20);
    expect(w.ssm.buckets.listCommandInvocations.peak(1000)).toBeLessThanOrEqual(10);
    const lateness = invocations
      .map((inv, i) => (answers[i][0].at - inv.endsAtMs) / 1000)
      .sort((a, b) => a - b);
    // Bound by the GetCommandInvocation pace: 1,000 reads at 10/s take about 100 s.
    expect(lateness[lateness.length - 1]).toBeLessThan(120);
    console.log(
      `1,000 lost events: answered after the command ended p50 ${lateness[500].toFixed(1)} s, max ${lateness[999].toFixed(1)} s; ` +
        `GetCommandInvocation ${w.ssm.calls.getCommandInvocation}, ListCommandInvocations ${w.ssm.calls.listCommandInvocations}, sweep rounds ${swept.rounds}`,
    );
  });

  it('1,000 commands answered through their events: one GetCommandInvocation each, within the bucket', async () => {
    w = world();
    const random = lcgRandom(11);
    // Sent at SendCommand's assumed refill (5/s, docs/scale.md): what admission lets through.
    const plan = Array.from({ length: 1000 }, (_, i) => {
      const inv = sendThaw({ runMs: 300 + Math.floor(random() * 2700) });
      return { inv, token: w.sfn.issue(`bulk-${i}`, 900_000), sendAt: T0 + i * 200 };
    });
    // The fake's timelines start at T0; shift each by its send time.
    const timed = plan.map(({ inv, token, sendAt }) => {
      const shifted = {
        ...inv,
        requestedAtMs: sendAt,
        visibleAtMs: sendAt + 50,
        startsAtMs: sendAt + 200,
        endsAtMs: sendAt + (inv.endsAtMs - T0),
      };
      w.ssm.invocations.set(inv.commandId, shifted);
      return { inv: shifted, token, end: w.ssm.eventsOf(shifted)[2] };
    });
    const at = (ms: number) => w.clock.sleep(Math.max(0, ms - w.clock.now()));
    await w.run(
      Promise.all(
        timed.flatMap(({ inv, token, end }) => [
          at(inv.requestedAtMs + 20).then(() => handleQueueBody(w.deps, thawMessage(inv, token))),
          at(end.at).then(() => handleQueueBody(w.deps, end.event)),
        ]),
      ),
    );
    const late = timed.map(
      ({ token, end }) => (w.sfn.tasks.get(token)?.answers[0].at ?? Number.NaN) - end.at,
    );
    expect(timed.every(({ token }) => w.sfn.tasks.get(token)?.answers.length === 1)).toBe(true);
    // Within the 10/s pace at 5 commands/s: each answered as its event arrives.
    expect(Math.max(...late)).toBeLessThanOrEqual(1000);
    console.log(
      `1,000 events at 5 commands/s: answered at most ${Math.max(...late)} ms after the command ended`,
    );
    expect(w.ssm.calls.getCommandInvocation).toBe(1000);
    expect(w.ssm.buckets.getCommandInvocation.refused).toBe(0);
    expect(w.sfn.bucket.refused).toBe(0);
  });
});

describe('command-results: the freeze result is read as today', () => {
  it("builds the probe's CommandResult from the same invocation, and the FreezeStepResult from parseFreezeOutput", async () => {
    w = world();
    const frozenAt = T0 + 1100;
    // 40 filesystems: the result line is longer than ListCommandInvocations' 2,500-character output.
    const stdout = freezeStdout(frozenAt, 40);
    expect(stdout.length).toBeGreaterThan(2500);
    const inv = w.ssm.send({
      instanceId: INSTANCE,
      documentName: DOCUMENTS.freeze,
      endStatus: 'Success',
      responseCode: 0,
      stdout,
      stderr: '',
      runMs: 900,
    });
    const token = w.sfn.issue('freeze-2', 180_000);
    await w.run(
      registerCommandWaiter(
        w.deps.ddb,
        'Coordination',
        freezeRegistration(inv.commandId, inv.requestedAtMs, token),
      ),
    );
    const ended = w.ssm.eventsOf(inv)[2];
    await w.advance(ended.at - w.clock.now() + 100);
    await w.run(handleQueueBody(w.deps, ended.event));
    const out = w.sfn.tasks.get(token)?.answers[0].output as FreezeStepResult;
    // Today: the functions' own waitForCommand on the same invocation.
    const today = await w.run(
      waitForCommand(w.ssm.client(), w.clock, {
        command: { Command: { CommandId: inv.commandId } },
        instanceId: INSTANCE,
        timeoutSeconds: 60,
      }),
    );
    expect(out.command).toEqual(today);
    const parsed = parseFreezeOutput(today.stdout);
    expect(out).toMatchObject({
      outcome: 'frozen',
      frozenAtMs: parsed?.frozenAtMs,
      watchdogDeadline: parsed?.watchdogDeadline,
    });
    expect(out.detail).toContain('froze 40 filesystem(s)');
  });

  it('a freeze that refused (the document reported an error) is not-frozen, with its message', async () => {
    w = world();
    const line = JSON.stringify({
      schemaVersion: 1,
      action: 'freeze',
      status: 'error',
      executionId: 'exec-1',
      targets: [],
      error: { code: 'LATE', message: 'freeze refused: LATE' },
    });
    const inv = w.ssm.send({
      instanceId: INSTANCE,
      documentName: DOCUMENTS.freeze,
      endStatus: 'Failed',
      responseCode: 3,
      stdout: line,
      stderr: '',
      runMs: 200,
    });
    const token = w.sfn.issue('freeze-3', 180_000);
    await w.run(
      registerCommandWaiter(
        w.deps.ddb,
        'Coordination',
        freezeRegistration(inv.commandId, inv.requestedAtMs, token),
      ),
    );
    const ended = w.ssm.eventsOf(inv)[2];
    await w.advance(ended.at - w.clock.now());
    await w.run(handleQueueBody(w.deps, ended.event));
    const out = w.sfn.tasks.get(token)?.answers[0].output as FreezeStepResult;
    expect(out).toMatchObject({ outcome: 'not-frozen', budgetSeconds: 60, command: { status: 'Failed' } });
    expect(out.frozenAtMs).toBeUndefined();
    expect(out.detail).toContain('Failed');
  });
});

describe('command-results: inputs', () => {
  it("reads the user guide's example event, and nothing else", () => {
    // Systems Manager user guide, "Amazon EventBridge event examples for Systems Manager",
    // Run Command Invocation Status-change Notification.
    const example = {
      version: '0',
      id: '4780e1b8-f56b-4de5-95f2-95db273d1602',
      'detail-type': 'EC2 Command Invocation Status-change Notification',
      source: 'aws.ssm',
      account: '123456789012',
      time: '2016-07-10T21:51:32Z',
      region: 'us-east-1',
      resources: ['arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111'],
      detail: {
        'command-id': 'e8d3c0e4-71f7-4491-898f-c9b35bee5f3b',
        'document-name': 'AWS-RunPowerShellScript',
        'instance-id': 'i-9bb89e2b',
        'requested-date-time': '2016-07-10T21:51:30.049Z',
        status: 'Success',
      },
    };
    expect(parseCommandEvent(example)).toEqual({
      commandId: 'e8d3c0e4-71f7-4491-898f-c9b35bee5f3b',
      instanceId: 'i-9bb89e2b',
      documentName: 'AWS-RunPowerShellScript',
      status: 'Success',
      timeMs: Date.parse('2016-07-10T21:51:32Z'),
    });
    expect(
      parseCommandEvent({ ...example, 'detail-type': 'EC2 Command Status-change Notification' }),
    ).toBeUndefined();
    expect(
      parseCommandEvent({ ...example, detail: { ...example.detail, 'command-id': 'x' } }),
    ).toBeUndefined();
  });

  it('refuses a freeze registration without its freeze context, naming it', async () => {
    w = world();
    const reg = {
      ...freezeRegistration('e8d3c0e4-71f7-4491-898f-c9b35bee5f3b', T0, 'tok'),
      freeze: undefined,
    };
    await expect(registerCommandWaiter(w.deps.ddb, 'Coordination', reg)).rejects.toThrow(
      /Invalid freeze: got undefined; allowed: an object \{notAfter, freezeBudgetSeconds, thawMarginSeconds\}/,
    );
  });
});
