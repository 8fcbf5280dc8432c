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
const thawed = (freezeMs = 2500, extra: object = {}) => ({
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
    hooks: [],
    postThawHooksOk: true,
    ...extra,
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

  it('a post-thaw hook reporting its lock ended early: filesystem, naming the hook', () => {
    const lockLost = thawed(2500, {
      hooks: [
        {
          phase: 'post-thaw',
          name: '10-mysql-read-lock',
          exitCode: 1,
          timedOut: false,
          output: 'the mysql session holding the read lock ended before the thaw\n',
        },
      ],
      postThawHooksOk: false,
    });
    const d = decideVerdict(linux({ thaw: { result: lockLost } }), settings, NOW);
    expect(d).toMatchObject({ outcome: 'backed-up', consistency: 'filesystem', failed: false });
    expect(d.reason).toContain('10-mysql-read-lock (exit 1: the mysql session holding the read lock');
    expect(d.reason).toMatch(/quiesce did not last until the thaw/);
    expect(d.warnings.join()).toMatch(/10-mysql-read-lock/);
    // Hooks refused at thaw time leave no hook entry; the thaw's warning is what tells why.
    const refused = thawed(2500, {
      postThawHooksOk: false,
      warnings: ['post-thaw hooks not run: /etc/ec2-consistent-backup/post-thaw.d is writable by others'],
    });
    const r = decideVerdict(linux({ thaw: { result: refused } }), settings, NOW);
    expect(r.consistency).toBe('filesystem');
    expect(r.reason).toContain('writable by others');
    expect(parseThawOutput(thawed().stdout)).toMatchObject({
      postThawHooksOk: true,
      failedPostThawHooks: [],
    });
    // A failed thaw still carries the hook verdict it saw.
    const failedThaw = { ...lockLost, succeeded: false, status: 'Failed' };
    expect(decideVerdict(linux({ thaw: { result: failedThaw } }), settings, NOW)).toMatchObject({
      outcome: 'thaw-failed',
      consistency: 'filesystem',
    });
  });

  it('an unmapped volume or an unsupported data filesystem was not frozen: crash, with a warning', () => {
    const unmapped = decideVerdict(
      linux({
        freeze: frozen({
          unmapped: [{ volumeId: 'vol-0def', reason: 'no block device carries this volume id' }],
          skipped: [
            { mountpoint: '/', fstype: 'xfs', volumeIds: ['vol-0123'], reason: 'protected: holds /' },
          ],
        }),
      }),
      settings,
      NOW,
    );
    expect(unmapped).toMatchObject({ outcome: 'backed-up', consistency: 'crash', failed: false });
    expect(unmapped.reason).toContain('vol-0def (no block device carries this volume id)');
    expect(unmapped.reason).toContain('/data');
    expect(unmapped.reason).not.toContain('vol-0123');
    expect(unmapped.warnings).toHaveLength(1);
    expect(unmapped.warnings[0]).toMatch(/vol-0def.*not frozen/);
    const unsupported = decideVerdict(
      linux({
        freeze: frozen({
          skipped: [
            {
              mountpoint: '/zdata',
              fstype: 'zfs',
              volumeIds: ['vol-0aaa'],
              reason: 'unsupported filesystem type zfs',
            },
          ],
        }),
      }),
      settings,
      NOW,
    );
    expect(unsupported.consistency).toBe('crash');
    expect(unsupported.warnings.join()).toContain('/zdata on vol-0aaa (unsupported filesystem type zfs)');
  });

  it('protected filesystems change nothing; Exclude-tag ones keep the label and are named in the reason', () => {
    const protectedOnly = decideVerdict(
      linux({
        freeze: frozen({
          skipped: [
            { mountpoint: '/var', fstype: 'ext4', volumeIds: ['vol-0123'], reason: 'protected: holds /var' },
          ],
        }),
      }),
      settings,
      NOW,
    );
    expect(protectedOnly).toMatchObject({ consistency: 'application', warnings: [] });
    expect(protectedOnly.reason).not.toContain('/var');
    const excluded = decideVerdict(
      linux({
        freeze: frozen({
          skipped: [
            {
              mountpoint: '/scratch',
              fstype: 'xfs',
              volumeIds: ['vol-0bbb'],
              reason: 'excluded by the Exclude tag (/scratch)',
            },
          ],
        }),
      }),
      settings,
      NOW,
    );
    expect(excluded).toMatchObject({ consistency: 'application', warnings: [] });
    expect(excluded.reason).toContain('not frozen, by the Exclude tag: /scratch on vol-0bbb');
  });

  it('nothing to freeze names unmapped volumes', () => {
    const d = decideVerdict(
      linux({
        freeze: {
          ...frozen(),
          stdout: stdout({
            action: 'freeze',
            status: 'nothing-to-freeze',
            targets: [],
            unmapped: [{ volumeId: 'vol-0def', reason: 'no block device carries this volume id' }],
          }),
        },
      }),
      settings,
      NOW,
    );
    expect(d.consistency).toBe('crash');
    expect(d.reason).toContain('not mapped to a device: vol-0def');
    expect(d.warnings.join()).toContain('vol-0def');
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

  // Issue 13 item 8: a snapshot the probe first saw after the watchdog thawed was not taken while frozen.
  describe('snapshots seen after the watchdog fired', () => {
    // The freeze reported its watchdog deadline as 02:01:31 (FROZEN_AT + 90 s).
    const WATCHDOG_AT = Date.parse('2026-11-22T02:01:31.000Z');
    const started = (seenAtMs: number, startMs = FROZEN_AT + 1500) => ({
      status: 'started',
      snapshots: [
        {
          volumeId: 'vol-1',
          snapshotId: 'snap-1',
          startTime: new Date(FROZEN_AT + 1200).toISOString(),
          seenAtMs: FROZEN_AT + 1400,
        },
        { volumeId: 'vol-2', snapshotId: 'snap-2', startTime: new Date(startMs).toISOString(), seenAtMs },
      ],
      missingVolumeIds: [],
      waitedMs: seenAtMs - FROZEN_AT,
    });

    it('a snapshot first seen after the watchdog fired does not count: crash, with a warning naming it; the watchdog thaw is Critical', () => {
      const d = decideVerdict(
        linux({
          snapshots: started(WATCHDOG_AT + 2000),
          thaw: { result: thawed(90_000, { watchdogFired: true }) },
        }),
        settings,
        NOW,
      );
      // The freeze was held until the watchdog ended it, past the budget: Critical (thaw-failed),
      // naming the watchdog, whatever the label (issue 13 item 2).
      expect(d).toMatchObject({ outcome: 'thaw-failed', consistency: 'crash', failed: true });
      expect(d.error?.error).toBe('ThawedByWatchdog');
      expect(d.watchdogThawBy).toBeDefined();
      expect(d.reason).toContain(
        'snap-2 of vol-2 (seen at 2026-11-22T02:01:33.000Z, watchdog at 2026-11-22T02:01:31.000Z)',
      );
      expect(d.warnings.join('\n')).toMatch(/Backed up crash-consistent: snapshot snap-2 of vol-2/);
      expect(d.verdict?.consistency).toBe('crash');
    });

    it('the earliest watchdog time counts: the thaw saying it fired earlier than the deadline', () => {
      const thawedAtMs = WATCHDOG_AT - 10_000;
      const d = decideVerdict(
        linux({
          snapshots: started(thawedAtMs + 1),
          thaw: { result: thawed(80_000, { watchdogFired: true, thawedAtMs }) },
        }),
        settings,
        NOW,
      );
      expect(d.consistency).toBe('crash');
    });

    it('a snapshot that started after the watchdog counts as late even if seen sooner (clock skew)', () => {
      const d = decideVerdict(
        linux({ snapshots: started(FROZEN_AT + 1400, WATCHDOG_AT + 1) }),
        settings,
        NOW,
      );
      expect(d.consistency).toBe('crash');
    });

    it('snapshots seen before the watchdog keep the label', () => {
      const d = decideVerdict(linux({ snapshots: started(WATCHDOG_AT - 1) }), settings, NOW);
      expect(d.consistency).toBe('application');
    });
  });

  it('a job started after the thaw because StartBackupJob gave none within the budget is crash, saying so', () => {
    const d = decideVerdict(
      linux({
        snapshots: undefined,
        backupError: { Error: 'BackupStartOverBudget', Cause: 'no backup job within the freeze budget' },
        backupJob: { BackupJobId: 'job-after-thaw' },
      }),
      settings,
      NOW,
    );
    expect(d).toMatchObject({ outcome: 'backed-up', consistency: 'crash', backupJobId: 'job-after-thaw' });
    expect(d.reason).toMatch(
      /StartBackupJob gave no job within the freeze budget of 60 s \(BackupStartOverBudget/,
    );
    expect(d.warnings.join()).toMatch(/thawed first/);
  });
});
