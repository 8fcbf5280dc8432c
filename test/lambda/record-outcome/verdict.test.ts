import { describe, expect, it } from 'vitest';
import {
  decideVerdict,
  parseFreezeOutput,
  parseThawOutput,
  type WorkflowFacts,
} from '../../../lambda/shared/verdict';

const NOW = Date.parse('2026-11-22T02:00:30Z');
const FROZEN_AT = Date.parse('2026-11-22T02:00:01Z');
const settings = {
  freezeBudgetSeconds: 60,
  watchdogSeconds: 90,
  defaultOnFreezeFailure: 'crash-consistent' as const,
};
const stdout = (o: object) => JSON.stringify(o);
const frozen = (extra: object = {}) => ({
  succeeded: true,
  status: 'Success',
  commandId: 'c1',
  stderr: '',
  detail: '',
  stdout: stdout({
    schemaVersion: 1,
    action: 'freeze',
    status: 'frozen',
    frozenAtMs: FROZEN_AT,
    targets: [{ mountpoint: '/data' }],
    hooksConfigured: true,
    hooks: [{ phase: 'pre-freeze', name: '10-db', exitCode: 0 }],
    watchdog: { deadline: '2026-11-22T02:01:31.000Z' },
    ...extra,
  }),
});
const thawed = (freezeMs = 2500) => ({
  succeeded: true,
  status: 'Success',
  commandId: 'c2',
  stderr: '',
  detail: '',
  stdout: stdout({
    schemaVersion: 1,
    action: 'thaw',
    status: 'thawed',
    freezeMs,
    watchdogFired: false,
    failed: [],
  }),
});
const linux = (facts: Partial<WorkflowFacts>): WorkflowFacts => ({
  platform: 'linux',
  instanceState: 'running',
  options: { onFreezeFailure: 'crash-consistent' },
  activeJobs: { active: false, jobIds: [] },
  freeze: frozen(),
  backupJob: { BackupJobId: 'job-1', RecoveryPointArn: 'arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0' },
  snapshots: { status: 'started', snapshots: [], missingVolumeIds: [], waitedMs: 2000 },
  thaw: { result: thawed() },
  ...facts,
});

describe('parseFreezeOutput / parseThawOutput', () => {
  it('reads the last JSON object line, ignoring noise', () => {
    const out = parseFreezeOutput(`warning: something\n${frozen().stdout}\n`);
    expect(out).toMatchObject({
      status: 'frozen',
      frozenAtMs: FROZEN_AT,
      targets: ['/data'],
      hooksConfigured: true,
    });
  });

  it('rejects output that is not the documented contract', () => {
    expect(parseFreezeOutput('Segmentation fault')).toBeUndefined();
    expect(parseFreezeOutput(stdout({ action: 'freeze', status: 'frozen' }))).toBeUndefined();
    expect(parseFreezeOutput(stdout({ action: 'thaw', status: 'thawed' }))).toBeUndefined();
    expect(parseFreezeOutput(undefined)).toBeUndefined();
    expect(parseThawOutput(thawed(10).stdout)).toMatchObject({ status: 'thawed', freezeMs: 10 });
  });

  it('lists failed hooks', () => {
    const out = parseFreezeOutput(
      frozen({ hooks: [{ phase: 'pre-freeze', name: '10-db', exitCode: 3 }] }).stdout,
    );
    expect(out?.failedHooks).toEqual(['pre-freeze 10-db (exit 3)']);
  });
});

describe('decideVerdict', () => {
  it('application when hooks ran and every snapshot started while frozen', () => {
    const d = decideVerdict(linux({}), settings, NOW);
    expect(d).toMatchObject({
      outcome: 'backed-up',
      consistency: 'application',
      freezeMs: 2500,
      failed: false,
    });
    expect(d.verdict).toEqual({ consistency: 'application', reason: d.reason, freezeMs: 2500 });
  });

  it('filesystem without hooks, or when a hook failed (with a warning)', () => {
    expect(
      decideVerdict(linux({ freeze: frozen({ hooksConfigured: false, hooks: [] }) }), settings, NOW)
        .consistency,
    ).toBe('filesystem');
    const d = decideVerdict(
      linux({ freeze: frozen({ hooks: [{ phase: 'pre-freeze', name: '10-db', exitCode: 1 }] }) }),
      settings,
      NOW,
    );
    expect(d.consistency).toBe('filesystem');
    expect(d.warnings.join()).toMatch(/10-db/);
  });

  it('crash when the budget ran out, the job failed, or the wait itself failed', () => {
    const budget = decideVerdict(
      linux({
        snapshots: {
          status: 'budget-exceeded',
          snapshots: [],
          missingVolumeIds: ['vol-1'],
          waitedMs: 57_000,
        },
      }),
      settings,
      NOW,
    );
    expect(budget).toMatchObject({ consistency: 'crash', outcome: 'backed-up' });
    expect(budget.reason).toMatch(/vol-1.*freeze budget of 60 s/);
    expect(budget.warnings).toHaveLength(1);
    const failed = decideVerdict(
      linux({
        snapshots: {
          status: 'job-failed',
          jobState: 'ABORTED',
          snapshots: [],
          missingVolumeIds: [],
          waitedMs: 1,
        },
      }),
      settings,
      NOW,
    );
    expect(failed.reason).toMatch(/ABORTED/);
    // A failed job is a failed backup, not a crash-consistent one: no fallback warning, no label.
    expect(failed).toMatchObject({
      outcome: 'backup-job-failed',
      consistency: 'none',
      backupJobState: 'ABORTED',
      verdict: { consistency: 'crash' },
      error: { error: 'BackupJobFailed' },
      failed: true,
      warnings: [],
    });
    expect(failed.backupJobId).toBeTruthy();
    const withMessage = decideVerdict(
      linux({
        snapshots: {
          status: 'job-failed',
          jobState: 'FAILED',
          jobStatusMessage: 'Insufficient privileges',
          snapshots: [],
          missingVolumeIds: ['vol-1'],
          waitedMs: 1,
        },
      }),
      settings,
      NOW,
    );
    expect(withMessage).toMatchObject({
      backupJobState: 'FAILED',
      backupJobStatusMessage: 'Insufficient privileges',
    });
    expect(withMessage.reason).toContain('AWS Backup: Insufficient privileges');
    const lost = decideVerdict(
      linux({ snapshots: undefined, snapshotsError: { Error: 'States.Timeout', Cause: '' } }),
      settings,
      NOW,
    );
    expect(lost).toMatchObject({ consistency: 'crash' });
  });

  it('freeze failure follows the policy: crash-consistent backup, or skip as a failure', () => {
    const freezeError = { Error: 'Lambda.ServiceException', Cause: 'boom' };
    const crash = decideVerdict(
      linux({ freeze: undefined, freezeError, snapshots: undefined }),
      settings,
      NOW,
    );
    expect(crash).toMatchObject({ outcome: 'backed-up', consistency: 'crash', failed: false });
    const skip = decideVerdict(
      linux({ freeze: undefined, freezeError, backupJob: undefined, options: { onFreezeFailure: 'skip' } }),
      settings,
      NOW,
    );
    expect(skip).toMatchObject({ outcome: 'skipped-freeze-failed', consistency: 'none', failed: true });
    expect(skip.error).toEqual({ error: 'Lambda.ServiceException', cause: 'boom' });
  });

  it('the default policy applies when the input carries none', () => {
    const failing = { ...frozen(), succeeded: false, status: 'Failed' };
    const d = decideVerdict(
      linux({ freeze: failing, backupJob: undefined, options: {} }),
      { ...settings, defaultOnFreezeFailure: 'skip' },
      NOW,
    );
    expect(d.outcome).toBe('skipped-freeze-failed');
  });

  it('a failed thaw outranks everything and names the watchdog time', () => {
    const d = decideVerdict(
      linux({ thaw: undefined, thawError: { Error: 'ThawCommandFailed', Cause: 'x' } }),
      settings,
      NOW,
    );
    expect(d).toMatchObject({ outcome: 'thaw-failed', consistency: 'application', failed: true });
    expect(d.watchdogThawBy).toBe('2026-11-22T02:01:31.000Z');
    expect(d.freezeMs).toBe(NOW - FROZEN_AT);
  });

  it('StartBackupJob failure: no backup, a failure', () => {
    const d = decideVerdict(
      linux({
        backupJob: undefined,
        backupError: { Error: 'Backup.LimitExceededException', Cause: 'quota' },
      }),
      settings,
      NOW,
    );
    expect(d).toMatchObject({ outcome: 'backup-start-failed', consistency: 'none', failed: true });
  });

  it('active job: skipped, not a failure; a failed check is only a warning', () => {
    expect(
      decideVerdict(linux({ activeJobs: { active: true, jobIds: ['j-9'] } }), settings, NOW),
    ).toMatchObject({
      outcome: 'skipped-active-job',
      failed: false,
    });
    const d = decideVerdict(
      linux({ activeJobs: undefined, activeJobsError: { Error: 'Lambda.ServiceException' } }),
      settings,
      NOW,
    );
    expect(d.outcome).toBe('backed-up');
    expect(d.warnings.join()).toMatch(/active backup job/);
  });

  it('stopped and Windows instances', () => {
    const job = { backupJob: { BackupJobId: 'job-2' } };
    expect(
      decideVerdict({ platform: 'linux', instanceState: 'stopped', ...job }, settings, NOW),
    ).toMatchObject({
      consistency: 'filesystem',
      reason: 'instance stopped',
    });
    expect(
      decideVerdict({ platform: 'windows', instanceState: 'stopped', ...job }, settings, NOW).consistency,
    ).toBe('filesystem');
    expect(
      decideVerdict({ platform: 'windows', instanceState: 'running', ...job }, settings, NOW),
    ).toMatchObject({
      consistency: 'application',
      reason: 'VSS requested; confirmed at job completion',
    });
  });

  it('never throws on malformed facts', () => {
    for (const facts of [
      {},
      { freeze: 'x', thaw: 42 },
      { snapshots: { status: 'weird' } },
      { backupJob: [] },
    ] as WorkflowFacts[]) {
      expect(() => decideVerdict(facts, settings, NOW)).not.toThrow();
    }
  });
});
