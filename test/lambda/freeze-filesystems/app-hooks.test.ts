import { GetCommandInvocationCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { freeze } from '../../../lambda/freeze-filesystems/freeze';
import { parseFreezeStepRequest } from '../../../lambda/freeze-filesystems/step';
import { type Clock, StepInputError } from '../../../lambda/shared/calls';

/** Freeze Filesystems installs an Apps-tagged instance's packaged hooks (AppHooks document) before its freeze. */

const ssm = mockClient(SSMClient);
afterEach(() => ssm.reset());

const clock = (): Clock => {
  let t = Date.parse('2026-11-22T02:00:00Z');
  return {
    now: () => t,
    sleep: async (ms: number) => {
      t += ms;
    },
  };
};
const request = {
  documentName: 'Ecb-Freeze',
  instanceId: 'i-0123456789abcdef0',
  executionId: 'i-0123456789abcdef0-20261122T0200Z',
  volumeIds: ['vol-0aaaaaaaaaaaaaaa1'],
  volumeDevices: '',
  notAfter: '2026-11-22T02:15:00Z',
  watchdogSeconds: 90,
  hookTimeoutSeconds: 30,
  include: '',
  exclude: '',
  timeoutSeconds: 60,
};

describe('freeze of an instance with an Apps tag', () => {
  it('runs AppHooks with the Apps value first, then the freeze', async () => {
    ssm
      .on(SendCommandCommand)
      .resolvesOnce({ Command: { CommandId: 'install' } })
      .resolves({ Command: { CommandId: 'freeze' } });
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: '{}' });
    const r = await freeze(
      new SSMClient({}),
      clock(),
      { ...request, apps: 'postgresql,redis', appHooksDocumentName: 'Ecb-AppHooks' },
      () => 0.5,
    );
    expect(r.commandId).toBe('freeze');
    const sent = ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
    expect(sent.map((i) => i.DocumentName)).toEqual(['Ecb-AppHooks', 'Ecb-Freeze']);
    expect(sent[0].Parameters).toEqual({ Apps: ['postgresql,redis'] });
    expect(sent[0].InstanceIds).toEqual(['i-0123456789abcdef0']);
  });

  it('sends no freeze when the hooks could not be installed, and says why', async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'install' } });
    ssm.on(GetCommandInvocationCommand).resolves({
      Status: 'Failed',
      StandardOutputContent: JSON.stringify({
        action: 'app-hooks',
        status: 'error',
        error: { code: 'HOOK_INSECURE', message: 'refusing to install hooks: /etc is writable by group' },
      }),
    });
    const r = await freeze(
      new SSMClient({}),
      clock(),
      { ...request, apps: 'mysql', appHooksDocumentName: 'Ecb-AppHooks' },
      () => 0.5,
    );
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(1);
    expect(r.succeeded).toBe(false);
    expect(r.detail).toBe(
      'the packaged application hooks (mysql) could not be installed, nothing was frozen: refusing to install hooks: /etc is writable by group',
    );
  });

  it('runs AppHooks for an empty tag (to remove hooks installed before), and not at all without the tag', async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c' } });
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: '{}' });
    await freeze(
      new SSMClient({}),
      clock(),
      { ...request, apps: '', appHooksDocumentName: 'Ecb-AppHooks' },
      () => 0.5,
    );
    expect(ssm.commandCalls(SendCommandCommand)[0].args[0].input.Parameters).toEqual({ Apps: [''] });
    ssm.resetHistory();
    await freeze(new SSMClient({}), clock(), request, () => 0.5);
    expect(ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input.DocumentName)).toEqual([
      'Ecb-Freeze',
    ]);
  });
});

describe('parseFreezeStepRequest: apps', () => {
  const event = {
    ...request,
    instanceArn: 'arn:aws:ec2:eu-west-1:111122223333:instance/i-0123456789abcdef0',
    freezeBudgetSeconds: 60,
    thawMarginSeconds: 3,
    volumeDevices: [],
    appHooksDocumentName: 'Ecb-AppHooks',
  };
  it('takes apps from the options, or from the execution input the workflow passes whole', () => {
    const r = parseFreezeStepRequest({
      ...event,
      options: { include: '', exclude: '', apps: 'mysql,redis' },
    });
    expect(r).toMatchObject({ apps: 'mysql,redis', appHooksDocumentName: 'Ecb-AppHooks' });
    expect(parseFreezeStepRequest({ ...event, options: { include: '' } })).not.toHaveProperty('apps');
    expect(
      parseFreezeStepRequest({ ...event, input: { options: { include: '', exclude: '', apps: 'redis' } } }),
    ).toMatchObject({ apps: 'redis' });
  });
  it('refuses a value discovery could not have produced, naming it and what is allowed', () => {
    expect(() => parseFreezeStepRequest({ ...event, options: { apps: 'oracle' } })).toThrow(StepInputError);
    expect(() => parseFreezeStepRequest({ ...event, options: { apps: 'oracle' } })).toThrow(
      /^Invalid options\.apps: got "oracle"; allowed: empty, or one or more of postgresql, mysql, redis/,
    );
  });
});
