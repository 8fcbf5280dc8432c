/**
 * The workflow's side of the contracts with the on-instance documents (ssm-documents/README.md):
 * every parameter value the workflow sends matches the document's allowedPattern, and every
 * parameter the document requires is sent.
 */

import { GetCommandInvocationCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { freeze } from '../../lambda/freeze-filesystems/freeze';
import { parseConfig } from '../../lib/config';
import { renderDocument } from '../../lib/documents';
import { STATE } from '../../lib/workflow';
import { synthWorkflow } from '../../sim/asl';
import { workflowInput, Sim } from '../../sim/workflow-sim';

const config = parseConfig({});

function check(doc: 'freeze' | 'thaw', sent: Record<string, string[] | undefined>) {
  const { parameters } = renderDocument(doc, config);
  for (const [name, values] of Object.entries(sent)) {
    expect(parameters[name], `${doc} has no parameter ${name}`).toBeDefined();
    for (const v of values ?? [])
      expect(v, `${doc}.${name}`).toMatch(new RegExp(parameters[name].allowedPattern));
  }
  for (const [name, p] of Object.entries(parameters)) {
    if (p.default === undefined) expect(Object.keys(sent), `${doc} requires ${name}`).toContain(name);
  }
}

describe('workflow ↔ documents contract', () => {
  it('the freeze parameters match the Freeze document', async () => {
    const ssm = mockClient(SSMClient);
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c1' } });
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success' });
    const input = workflowInput(
      new Sim({ volumeIds: Array.from({ length: 40 }, (_, i) => `vol-0${String(i).padStart(16, 'a')}`) }),
    );
    const clock = { now: () => 0, sleep: async () => undefined };
    await freeze(new SSMClient({}), clock, {
      documentName: 'Doc',
      instanceId: input.instanceId,
      executionId: 'i-0123456789abcdef0-20261122T0200Z',
      volumeIds: input.volumeIds,
      // The longest value: a pair for every one of the 40 volumes, 16-character device names.
      volumeDevices: input.volumeIds.map((v, i) => `${v}=/dev/${`nvme${i}n1p1`.padEnd(16, 'x')}`).join(','),
      notAfter: input.notAfter,
      watchdogSeconds: config.watchdogSeconds,
      hookTimeoutSeconds: config.hookTimeoutSeconds,
      include: '/data,/var/lib/pgsql',
      exclude: '',
      timeoutSeconds: 60,
    });
    const sent = ssm.commandCalls(SendCommandCommand)[0].args[0].input.Parameters as Record<string, string[]>;
    expect(sent.VolumeDevices?.[0]?.split(',')).toHaveLength(40);
    check('freeze', sent);
    ssm.restore();
  });

  it('the thaw parameters match the Thaw document', () => {
    const { asl } = synthWorkflow();
    const send = asl.States[STATE.sendThaw].Parameters;
    expect(send.Parameters['ExecutionId.$']).toBe('States.Array($$.Execution.Name)');
    // The second attempt sends exactly the same command.
    expect(asl.States[STATE.retryThaw].Parameters).toEqual(send);
    check('thaw', {
      ExecutionId: ['i-0123456789abcdef0-20261122T0200Z'],
      HookTimeoutSeconds: send.Parameters.HookTimeoutSeconds,
    });
  });
});
