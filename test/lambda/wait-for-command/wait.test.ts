import { GetCommandInvocationCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { parseWaitRequest, thawStepResult, waitStep } from '../../../lambda/wait-for-command/wait';
import { fakeClock } from '../freeze-path';

const ssm = mockClient(SSMClient);
afterEach(() => ssm.reset());

const thawed = (o: Record<string, unknown> = {}) =>
  JSON.stringify({ schemaVersion: 1, action: 'thaw', status: 'thawed', failed: [], freezeMs: 2100, ...o });
const command = (stdout: string, succeeded = true) => ({
  succeeded,
  status: succeeded ? 'Success' : 'Failed',
  commandId: 'c2',
  stdout,
  stderr: '',
  detail: '',
});

describe('the thaw is confirmed by what the instance reports', () => {
  it('confirmed: the command succeeded and the thaw document reported thawed with nothing failed', () => {
    expect(thawStepResult(command(thawed()), 1)).toMatchObject({
      confirmed: true,
      attempt: 1,
      detail: 'thawed',
    });
    expect(thawStepResult(command(thawed({ watchdogFired: true })), 2).detail).toMatch(/watchdog/);
  });

  it('not confirmed: a failed command, output that is not the thaw JSON, or a filesystem left frozen', () => {
    expect(thawStepResult(command(thawed(), false), 1).confirmed).toBe(false);
    expect(thawStepResult(command('ok'), 1)).toMatchObject({
      confirmed: false,
      detail: /not the thaw document/,
    });
    expect(thawStepResult(command(thawed({ status: 'error', failed: ['/data'] })), 1).confirmed).toBe(false);
    expect(thawStepResult(command(thawed({ failed: ['/data'] })), 1)).toMatchObject({
      confirmed: false,
      detail: 'the thaw document could not thaw /data',
    });
  });

  it('waits for the thaw command the state machine sent, and answers a ThawStepResult', async () => {
    ssm
      .on(GetCommandInvocationCommand)
      .resolvesOnce({ Status: 'InProgress' })
      .resolves({ Status: 'Success', StandardOutputContent: thawed() });
    const r = await waitStep(
      new SSMClient({}),
      fakeClock(),
      parseWaitRequest({
        kind: 'thaw',
        command: { Command: { CommandId: 'c2' } },
        instanceId: 'i-0123456789abcdef0',
        timeoutSeconds: 180,
        attempt: 2,
      }),
    );
    expect(r).toMatchObject({ confirmed: true, attempt: 2, command: { commandId: 'c2' } });
  });

  it('the VSS install wait answers the command result itself', async () => {
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: '' });
    const r = await waitStep(
      new SSMClient({}),
      fakeClock(),
      parseWaitRequest({
        kind: 'vss-install',
        command: { Command: { CommandId: 'c3' } },
        instanceId: 'i-0123456789abcdef0',
        timeoutSeconds: 180,
      }),
    );
    expect(r).toMatchObject({ succeeded: true, commandId: 'c3' });
  });

  it('validates its input, naming the value and what is allowed', () => {
    expect(() => parseWaitRequest({ kind: 'freeze' })).toThrow(
      'Invalid kind: got "freeze"; allowed: thaw, vss-install.',
    );
    expect(() => parseWaitRequest({ kind: 'thaw', instanceId: 'i-1' })).toThrow(
      'Invalid instanceId: got "i-1"',
    );
    expect(() =>
      parseWaitRequest({ kind: 'thaw', instanceId: 'i-0123456789abcdef0', timeoutSeconds: 1, attempt: 3 }),
    ).toThrow('Invalid attempt: got 3; allowed: 1 or 2.');
  });
});
