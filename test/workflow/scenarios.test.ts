import { beforeAll, describe, expect, it } from 'vitest';
import type { BackupClient } from '@aws-sdk/client-backup';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { validateNotification } from '../../lambda/shared/notification';
import { tagRecoveryPoint } from '../../lambda/shared/recovery-point';
import { type Asl, synthStackAsl, synthWorkflow } from '../../sim/asl';
import { BACKUP_USE } from '../../lambda/discovery/admission';
import { STATE, SUCCESS_TRANSITIONS } from '../../lib/workflow';
import { SCENARIOS } from '../../sim/workflow-scenarios';
import { IMAGE_ARN, type RunReport, runScenario, Sim, workflowInput } from '../../sim/workflow-sim';
import { inputProblems } from '../../lambda/shared/workflow-input';

const asls = new Map<string, Asl>();
function aslFor(config: Record<string, unknown> = {}): Asl {
  const key = JSON.stringify(config);
  if (!asls.has(key)) asls.set(key, synthWorkflow(config).asl);
  return asls.get(key) as Asl;
}
async function run(name: string): Promise<RunReport> {
  const { scenario, config } = SCENARIOS[name];
  return runScenario(aslFor(config), scenario);
}

/** Every run: one notification, a verdict, and a thaw after any freeze. */
function expectInvariants(r: RunReport) {
  expect(r.outcomes.length + r.publishes.length).toBe(1);
  if (r.freezeSentAt.length > 0) {
    expect(r.thawSentAt.length).toBeGreaterThan(0);
    expect(Math.min(...r.thawSentAt)).toBeGreaterThan(Math.min(...r.freezeSentAt));
  }
  if (r.thawSentAt.length > 0 && r.jobCompletesAt !== undefined) {
    expect(Math.max(...r.thawSentAt)).toBeLessThan(r.jobCompletesAt);
  }
  expect(['application', 'filesystem', 'crash', 'none']).toContain(
    r.recordOutput?.consistency ?? r.publishes[0]?.Message.event.additional_info.consistency,
  );
}

describe('the synthesized workflow, executed locally', () => {
  beforeAll(() => {
    aslFor();
  });

  it('linux success: application-consistent, thawed right after the snapshots started, labelled', async () => {
    const r = await run('linux success');
    expectInvariants(r);
    expect(r.status).toBe('SUCCEEDED');
    expect(r.output).toMatchObject({ outcome: 'backed-up', consistency: 'application', failed: false });
    expect(r.transitions).toBeLessThanOrEqual(30);
    const frozen = (r.thawedAt as number) - (r.frozenAt as number);
    expect(frozen).toBe(r.output?.freezeMs);
    // Every snapshot started inside the freeze, and the thaw followed within ~2 polls.
    for (const t of r.snapshotStarts) expect(t).toBeGreaterThanOrEqual(r.frozenAt as number);
    expect((r.thawedAt as number) - Math.max(...r.snapshotStarts)).toBeLessThan(2500);
    // StartBackupJob names no recovery point for EC2: record-outcome asks for the label, which the
    // label-writer writes once the job has completed (test/lambda/label-writer).
    expect(r.labelRequests).toEqual([{ kind: 'label', backupJobId: 'job-0001', cause: 'verdict-recorded' }]);
    expect(r.imageTags).toEqual({});
    expect(r.watchdogFired).toBe(false);
  });

  it('a success costs the same transitions whether the snapshots start after 0.5 s or 10 s', async () => {
    for (const delay of [500, 4000, 10_000]) {
      const r = await runScenario(aslFor(), { snapshotDelayMs: delay, freezeMs: 3000 });
      expect(r.output?.consistency).toBe('application');
      // 11 (issue 14: at most 12; 17 before the reshape), what admission plans with.
      expect(r.transitions, `snapshots after ${delay} ms`).toBe(SUCCESS_TRANSITIONS.linux);
      expect(r.transitions).toBe(BACKUP_USE.stateTransitions);
      expect((r.thawedAt as number) - (r.frozenAt as number)).toBeLessThan(delay + 2500);
    }
  });

  it('no hooks configured: filesystem-consistent', async () => {
    const r = await run('linux success, no hooks');
    expectInvariants(r);
    expect(r.output).toMatchObject({ consistency: 'filesystem' });
  });

  it('freeze fails under crash-consistent policy: thaw first, then a crash-consistent backup with a warning', async () => {
    const r = await run('freeze fails, policy crash-consistent');
    expectInvariants(r);
    expect(r.output).toMatchObject({ outcome: 'backed-up', consistency: 'crash' });
    expect(r.output?.warnings.join(' ')).toMatch(/freeze/);
    expect(r.jobStartedAt).toBeGreaterThan(Math.min(...r.thawSentAt));
    expect(r.statesEntered).toContain('Start Backup Job Without Freeze');
  });

  it('freeze fails under skip policy: no backup, a failing execution, thaw still sent', async () => {
    const r = await run('freeze fails, policy skip');
    expectInvariants(r);
    expect(r.status).toBe('FAILED');
    expect(r.outcomes[0].outcome).toBe('skipped-freeze-failed');
    expect(r.jobStartedAt).toBeUndefined();
  });

  it('unreadable freeze output and nothing to freeze are both labelled crash, never consistent', async () => {
    for (const name of ['freeze output unreadable', 'nothing to freeze']) {
      const r = await run(name);
      expectInvariants(r);
      expect(r.recordOutput?.consistency, name).toBe('crash');
    }
  });

  it('StartBackupJob error: thawed, backup-start-failed, execution fails', async () => {
    const r = await run('StartBackupJob error');
    expectInvariants(r);
    expect(r.status).toBe('FAILED');
    expect(r.statesEntered.at(-1)).toBe(STATE.failed);
    expect(r.error).toMatch(/Record Outcome recorded a failed backup/);
    expect(r.outcomes[0].outcome).toBe('backup-start-failed');
    // Retried while frozen only inside the budget; thawed first, then tried once more unfrozen.
    expect(r.calls.filter((c) => c.op === 'backup.StartBackupJob').length).toBeGreaterThan(4);
    expect(r.statesEntered).toContain(STATE.startUnfrozenBackup);
    expect(r.recordOutput?.reason).toMatch(/StartBackupJob failed/);
    expect(r.thawedAt).toBeDefined();
    expect((r.thawedAt as number) - (r.frozenAt as number)).toBeLessThanOrEqual(60_000);
    expect(r.watchdogFired).toBe(false);
  });

  it('snapshots never start: thawed within the freeze budget, labelled crash with a warning', async () => {
    const r = await run('snapshots never start (budget)');
    expectInvariants(r);
    expect(r.output).toMatchObject({ outcome: 'backed-up', consistency: 'crash' });
    expect(r.output?.reason).toMatch(/freeze budget of 60 s/);
    const frozen = (r.thawedAt as number) - (r.frozenAt as number);
    expect(frozen).toBeLessThanOrEqual(60_000);
    expect(frozen).toBeGreaterThan(50_000);
    expect(r.labelRequests).toEqual([{ kind: 'label', backupJobId: 'job-0001', cause: 'verdict-recorded' }]);
  });

  it('job FAILED while frozen: thaw at once, a failed backup rather than a crash-consistent one', async () => {
    const r = await run('job FAILED');
    expectInvariants(r);
    expect(r.outcomes.map((o) => o.outcome)).toEqual(['backup-job-failed']);
    expect(r.outcomes[0]).toMatchObject({ backupJobState: 'FAILED', verdict: { consistency: 'crash' } });
    expect(r.recordOutput?.consistency).toBe('none');
    expect(r.recordOutput?.reason).toMatch(/ended FAILED while the filesystems were frozen/);
    // No recovery point will exist: nothing to label, and the execution fails visibly.
    expect(r.calls.filter((c) => c.op === 'ec2.CreateTags')).toEqual([]);
    expect(r.status).toBe('FAILED');
    expect((r.thawedAt as number) - (r.jobStartedAt as number)).toBeLessThan(4000 + 2500);
  });

  it('thaw fails: sent a second time, then a critical thaw-failed outcome naming the watchdog time', async () => {
    const r = await run('thaw fails');
    expectInvariants(r);
    expect(r.status).toBe('FAILED');
    expect(r.thawSentAt.length).toBe(2);
    expect(r.statesEntered).toEqual(expect.arrayContaining([STATE.retryThaw, STATE.checkRetriedThaw]));
    expect(r.outcomes[0].outcome).toBe('thaw-failed');
    expect(r.outcomes[0].watchdogThawBy).toBe(new Date((r.frozenAt as number) + 90_000).toISOString());
    expect(r.watchdogFired).toBe(true);
  });

  it('a thaw that fails once is retried and the run succeeds', async () => {
    const r = await run('thaw fails once, retried');
    expectInvariants(r);
    expect(r.status).toBe('SUCCEEDED');
    expect(r.thawSentAt.length).toBe(2);
    expect(r.watchdogFired).toBe(false);
  });

  it('active job: skip the window with a warning, no freeze', async () => {
    const r = await run('active job skip');
    expectInvariants(r);
    expect(r.output).toMatchObject({ outcome: 'skipped-active-job', consistency: 'none' });
    expect(r.freezeSentAt).toEqual([]);
  });

  it('stopped instance: no freeze, filesystem-consistent', async () => {
    const r = await run('stopped instance');
    expectInvariants(r);
    expect(r.output).toMatchObject({ consistency: 'filesystem', reason: 'instance stopped' });
    expect(r.freezeSentAt).toEqual([]);
    expect(r.transitions).toBe(SUCCESS_TRANSITIONS.unfrozen);
  });

  it('windows success: VSS requested, no freeze of our own, provisional application label, 6 transitions', async () => {
    const r = await run('windows success');
    expectInvariants(r);
    expect(r.output).toMatchObject({
      consistency: 'application',
      reason: 'VSS requested; confirmed at job completion',
    });
    expect(r.freezeSentAt).toEqual([]);
    expect(r.transitions).toBe(SUCCESS_TRANSITIONS.unfrozen);
  });

  it('windows with a failed AwsVssComponents install: still backed up, with a warning', async () => {
    const r = await run('windows VSS install fails');
    expectInvariants(r);
    expect(r.output?.warnings.join(' ')).toMatch(/AwsVssComponents/);
    expect(r.transitions).toBeLessThanOrEqual(12);
  });

  it('windows VSS fallback at completion: the shared labelling function relabels the recovery point crash', async () => {
    const sim = new Sim({ platform: 'windows', snapshotDelayMs: 2000 });
    await tagRecoveryPoint(
      { ec2: sim.ec2Client as unknown as EC2Client, backup: sim.backupClient as unknown as BackupClient },
      IMAGE_ARN,
      { consistency: 'crash', reason: 'VSS failed; the job completed as a plain backup', freezeMs: 0 },
    );
    expect(sim.imageTags).toMatchObject({ 'ConsistentBackup:Consistency': 'crash' });
  });

  it('record-outcome down: one minimal notification straight to SNS, the execution fails visibly', async () => {
    const r = await run('record-outcome down');
    expectInvariants(r);
    expect(r.status).toBe('FAILED');
    expect(r.error).toMatch(/Record Outcome failed after retries/);
    expect(r.publishes).toHaveLength(1);
    // The notifications module's own validator and envelope checks accept it.
    const p = r.publishes[0];
    expect(validateNotification(p.Message)).toEqual([]);
    expect(p.Subject).toBe(p.Message.subject);
    // The thaw was confirmed: nothing is held, so Major, as the catalogue's outcome-not-recorded.
    expect(r.thawedAt).toBeDefined();
    expect(r.statesEntered).toContain(STATE.notRecordedThawed);
    expect(p.MessageAttributes).toMatchObject({
      severity: { DataType: 'String', StringValue: 'Major' },
      event_type: { DataType: 'String', StringValue: 'outcome-not-recorded' },
      instance_id: { DataType: 'String', StringValue: 'i-0123456789abcdef0' },
    });
    expect(p.Message).toMatchObject({ severity: 'Major', eventType: 'outcome-not-recorded' });
  });

  it('thaw failed and record-outcome down: the last resort is a Critical thaw-failed naming the watchdog deadline', async () => {
    const r = await runScenario(aslFor(), {
      snapshotDelayMs: 2000,
      thawFailures: 99,
      faults: (op) => (op === 'lambda.Record Outcome' ? { kind: 'error' } : undefined),
    });
    expect(r.status).toBe('FAILED');
    expect(r.outcomes).toEqual([]);
    expect(r.publishes).toHaveLength(1);
    const p = r.publishes[0];
    expect(validateNotification(p.Message)).toEqual([]);
    expect(p.Subject).toBe(p.Message.subject);
    expect(p.Subject).toMatch(
      /^\[Critical\] Thaw not confirmed, filesystems may be frozen: i-0123456789abcdef0$/,
    );
    expect(p.MessageAttributes).toMatchObject({
      severity: { DataType: 'String', StringValue: 'Critical' },
      event_type: { DataType: 'String', StringValue: 'thaw-failed' },
    });
    // The deadline the instance's watchdog reported in the freeze result.
    const deadline = new Date((r.frozenAt as number) + 90_000).toISOString();
    expect(p.Message.event.additional_info.watchdog_thaw_by).toBe(deadline);
    expect(p.Message.event.description).toContain(`the on-instance watchdog thaws by itself by ${deadline}`);
    expect(p.Message.event.message_key).toBe(
      'ec2-consistent-backup:111122223333:eu-west-1:i-0123456789abcdef0:thaw',
    );
    expect(r.watchdogFired).toBe(true);
  });

  it('freeze step failed, thaw failed, record-outcome down: Critical, naming the watchdog period when no deadline is known', async () => {
    const r = await runScenario(aslFor(), {
      snapshotDelayMs: 2000,
      thawFailures: 99,
      faults: (op) =>
        // Record Outcome never runs (an error before the handler); the freeze step times out.
        op === 'lambda.Record Outcome'
          ? { kind: 'error' }
          : op === 'lambda.Freeze Filesystems'
            ? { kind: 'timeout' }
            : undefined,
    });
    expect(r.status).toBe('FAILED');
    expect(r.statesEntered).toContain(STATE.freezeMayBeHeldNoDeadline);
    const p = r.publishes[0];
    expect(r.publishes).toHaveLength(1);
    expect(validateNotification(p.Message)).toEqual([]);
    expect(p.Message).toMatchObject({ severity: 'Critical', eventType: 'thaw-failed' });
    expect(p.Message.event.additional_info.watchdog_thaw_by).toBe(
      '90 s after the freeze began (the freeze result names no deadline)',
    );
  });

  it('the definition of the whole stack (real documents and notifications) runs the same success path', async () => {
    const r = await runScenario(synthStackAsl(), SCENARIOS['linux success'].scenario);
    expectInvariants(r);
    expect(r.output).toMatchObject({ outcome: 'backed-up', consistency: 'application' });
    expect(r.transitions).toBe((await run('linux success')).transitions);
  });

  it('input with a missing or malformed startAt, instanceArn or instanceId is rejected by Check Input, with a catchable error', async () => {
    const cases: [string, (i: Record<string, unknown>) => Record<string, unknown>][] = [
      ['startAt missing', ({ startAt: _s, ...rest }) => rest],
      ['startAt malformed', (i) => ({ ...i, startAt: '22/11/2026 02:00' })],
      ['instanceArn missing', ({ instanceArn: _a, ...rest }) => rest],
      ['instanceArn not an instance ARN', (i) => ({ ...i, instanceArn: 'i-0123456789abcdef0' })],
      ['instanceId a number', (i) => ({ ...i, instanceId: 42 })],
      ['platform missing', ({ platform: _p, ...rest }) => rest],
    ];
    for (const [name, mutateInput] of cases) {
      const r = await runScenario(aslFor(), { snapshotDelayMs: 2000, mutateInput });
      expect(r.status, name).toBe('FAILED');
      expect(r.statesEntered, name).toEqual([STATE.checkInput, STATE.inputRejected]);
      expect(r.error, name).toMatch(/startAt: an RFC 3339 timestamp/);
      expect(r.freezeSentAt, name).toEqual([]);
      // Nothing reaches the instance or AWS Backup; only execution-events (the rule on the
      // execution's FAILED status) writes its mark and publishes the one message.
      expect(
        r.calls.filter((c) => !/^(dynamodb|sns)\./.test(c.op)),
        name,
      ).toEqual([]);
      expect(
        r.sns.map((m) => [m.via, (m.message as { severity?: string }).severity]),
        name,
      ).toEqual([['execution-events', 'Major']]);
      // The TypeScript twin of the Choice (used to name the value in a notification) agrees.
      expect(inputProblems(mutateInput(workflowInput(new Sim({})) as never)), name).toHaveLength(1);
    }
    expect(inputProblems(workflowInput(new Sim({})))).toEqual([]);
  });

  it('input missing a field a post-freeze state reads is rejected before anything is frozen', async () => {
    const r = await runScenario(aslFor(), {
      snapshotDelayMs: 2000,
      mutateInput: ({ options: _options, ...rest }) => rest,
    });
    expect(r.status).toBe('FAILED');
    expect(r.statesEntered.at(-1)).toBe('Input Rejected');
    expect(r.freezeSentAt).toEqual([]);
    expect(r.error).toMatch(/options.include/);
  });

  it('passes the device names to the freeze, and runs input written before they existed without them', async () => {
    const r = await runScenario(aslFor(), { snapshotDelayMs: 2000 });
    expect(r.freezeParameters).toHaveLength(1);
    expect(r.freezeParameters[0]?.VolumeDevices).toEqual([
      'vol-0aaaaaaaaaaaaaaa1=/dev/nvme1n1,vol-0aaaaaaaaaaaaaaa2=/dev/nvme2n1',
    ]);
    const legacy = await runScenario(aslFor(), {
      snapshotDelayMs: 2000,
      mutateInput: ({ volumeDevices: _devices, ...rest }) => rest,
    });
    // No extra state: Freeze Filesystems reads the optional field from the input it gets whole.
    expect(legacy.transitions).toBe(r.transitions);
    expect(legacy.freezeParameters).toHaveLength(1);
    expect(legacy.freezeParameters[0]).not.toHaveProperty('VolumeDevices');
    expectInvariants(legacy);
    expect(legacy.recordOutput).toMatchObject({ outcome: 'backed-up', consistency: 'application' });
    expect(legacy.status).toBe('SUCCEEDED');
  });
});
