import { describe, expect, it } from 'vitest';
import {
  glideTime,
  LIMITS,
  messageAttributes,
  type Notification,
  redact,
  SEVERITY_CODES,
  SEVERITY_RULES,
  subjectLine,
  truncate,
  validateNotification,
} from '../../../lambda/shared/notification';
import { buildClearNotification } from '../../../lambda/shared/notifications/clear';
import { buildExclusionNotification } from '../../../lambda/shared/notifications/exclusion';
import {
  buildJobNotification,
  buildVssFallbackNotification,
  type JobContext,
} from '../../../lambda/shared/notifications/backup-job';
import { buildOutcomeNotification } from '../../../lambda/shared/notifications/outcome';
import { buildRunSummaryNotification } from '../../../lambda/shared/notifications/run-summary';
import { excluded, outcome, summary } from '../notifications/fixtures';

const NOW = new Date('2026-11-22T02:03:04.567Z');

const job: JobContext = {
  accountId: '111122223333',
  region: 'eu-west-1',
  instanceId: 'i-0123456789abcdef0',
  instanceName: 'db-01',
  platform: 'windows',
  executionArn: 'arn:aws:states:eu-west-1:111122223333:execution:wf:i-0123456789abcdef0-20261122T0200Z',
  runId: 'run-1',
  window: '2026-11-22T02:00:00Z',
  backupJobId: 'B6EC38D2-CB3C-EF0A-F5A4-3CF324EF4945',
  recoveryPointArn: 'arn:aws:ec2:eu-west-1::image/ami-0abc1234def567890',
  verdict: { consistency: 'application', reason: 'VSS requested; confirmed at job completion', freezeMs: 0 },
};

function valid(n: Notification | undefined): Notification {
  expect(n).toBeDefined();
  expect(validateNotification(n!)).toEqual([]);
  return n!;
}

describe('outcome notifications follow the severity rules', () => {
  const id = 'i-0123456789abcdef0';
  it.each([
    [
      'thaw-failed',
      'Critical',
      'thaw',
      outcome({
        outcome: 'thaw-failed',
        instanceId: id,
        instanceName: 'db-01',
        watchdogThawBy: '2026-11-22T02:01:31.000Z',
        backupJobId: 'job-1',
        verdict: {
          consistency: 'application',
          reason: 'hooks ran; frozen until every snapshot started',
          freezeMs: 1800,
        },
        error: { error: 'ThawCommandFailed', cause: 'Failed: exit 1' },
      }),
    ],
    [
      'backup-start-failed',
      'Major',
      'backup',
      outcome({
        outcome: 'backup-start-failed',
        instanceId: id,
        error: { error: 'Backup.LimitExceededException', cause: 'too many jobs' },
      }),
    ],
    [
      'skipped-freeze-failed',
      'Major',
      'backup',
      outcome({
        outcome: 'skipped-freeze-failed',
        instanceId: id,
        error: { error: 'FreezeFailed', cause: 'pre-freeze hook 10-db exited 3' },
      }),
    ],
    ['skipped-active-job', 'Warning', 'window', outcome({ outcome: 'skipped-active-job', instanceId: id })],
    [
      'crash-consistent-fallback',
      'Warning',
      'consistency',
      outcome({
        outcome: 'backed-up',
        instanceId: id,
        backupJobId: 'job-2',
        verdict: {
          consistency: 'crash',
          reason: 'snapshots had not started within the freeze budget',
          freezeMs: 60000,
        },
        warnings: ['Backed up crash-consistent: budget'],
      }),
    ],
    [
      'backup-warnings',
      'Warning',
      'consistency',
      outcome({
        outcome: 'backed-up',
        instanceId: id,
        backupJobId: 'job-3',
        verdict: {
          consistency: 'filesystem',
          reason: '/data were frozen; a pre-freeze hook failed',
          freezeMs: 900,
        },
        warnings: ['Pre-freeze hooks failed: pre-freeze 10-db (exit 3); labelled filesystem-consistent.'],
      }),
    ],
  ] as const)('%s is %s in problem class %s', (eventType, severity, problemClass, o) => {
    const n = valid(buildOutcomeNotification(o, NOW));
    expect(n.eventType).toBe(eventType);
    expect(n.severity).toBe(severity);
    expect(n.event.severity).toBe(SEVERITY_CODES[severity]);
    expect(n.event.resource).toBe(problemClass);
    expect(n.event.message_key).toBe(`ec2-consistent-backup:111122223333:eu-west-1:${id}:${problemClass}`);
    expect(n.event.description).toMatch(/^What happened: .+\n\nWhat it means: .+\n\nWhat to do: .+/s);
    expect(n.event.additional_info).toMatchObject({
      account: '111122223333',
      region: 'eu-west-1',
      instance_id: id,
      execution_arn: o.executionArn,
      event_type: eventType,
    });
    expect(n.event.additional_info.console_link).toBe(
      `https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/${o.executionArn}`,
    );
  });

  it('a thaw failure says when the watchdog thaws, what the backup is, and how to thaw by hand', () => {
    const n = valid(
      buildOutcomeNotification(
        outcome({
          outcome: 'thaw-failed',
          instanceId: 'i-0aaaaaaaaaaaaaaa1',
          instanceName: 'ledger',
          watchdogThawBy: '2026-11-22T02:01:31.000Z',
          backupJobId: 'job-9',
          verdict: { consistency: 'application', reason: 'hooks ran', freezeMs: 2100 },
          error: { error: 'Ssm.InvocationDoesNotExistException', cause: 'no invocation' },
        }),
        NOW,
      ),
    );
    expect(n.event.node).toBe('i-0aaaaaaaaaaaaaaa1 (ledger)');
    expect(n.event.description).toContain('thaws by itself by 2026-11-22T02:01:31.000Z');
    expect(n.event.description).toContain('application-consistent (hooks ran; frozen 2100 ms)');
    expect(n.event.description).toContain('fsfreeze -u');
    expect(n.event.additional_info).toMatchObject({
      watchdog_thaw_by: '2026-11-22T02:01:31.000Z',
      consistency: 'application',
      freeze_ms: '2100',
      error: 'Ssm.InvocationDoesNotExistException',
      cause: 'no invocation',
      backup_job_id: 'job-9',
    });
    expect(n.subject).toBe('[Critical] Thaw failed, filesystems may be frozen: i-0aaaaaaaaaaaaaaa1 (ledger)');
  });

  it('an application- or filesystem-consistent backup without warnings sends nothing per instance', () => {
    for (const consistency of ['application', 'filesystem'] as const) {
      const n = buildOutcomeNotification(
        outcome({
          outcome: 'backed-up',
          instanceId: 'i-0aaaaaaaaaaaaaaa1',
          backupJobId: 'job-1',
          verdict: { consistency, reason: 'frozen', freezeMs: 10 },
        }),
        NOW,
      );
      expect(n).toBeUndefined();
    }
  });

  it('a fall-back says its reason once, and keeps the warnings that add something', () => {
    const reason = 'the freeze command ended Failed (pre-freeze hook 20-broken failed with exit code 3)';
    const n = buildOutcomeNotification(
      outcome({
        outcome: 'backed-up',
        instanceId: 'i-0aaaaaaaaaaaaaaa1',
        backupJobId: 'job-1',
        verdict: { consistency: 'crash', reason, freezeMs: 0 },
        warnings: [`Backed up crash-consistent: ${reason}.`, 'volume vol-0123456789abcdef0 was not mapped.'],
      }),
      NOW,
    );
    const description = n?.event.description ?? '';
    expect(description.split(reason)).toHaveLength(2);
    expect(description).toContain('Warnings: volume vol-0123456789abcdef0 was not mapped.');
    expect(description).not.toContain('..');
  });
});

describe('discovery, job, Clear and summary notifications', () => {
  it('an excluded instance is Minor, readiness, with advice for its reason', () => {
    const n = valid(
      buildExclusionNotification(
        summary(),
        excluded(
          'i-0bbbbbbbbbbbbbbb2',
          'ssm-offline',
          'SSM agent last seen 2026-11-21T10:00:00Z (ConnectionLost).',
        ),
        NOW,
      ),
    );
    expect(n.severity).toBe('Minor');
    expect(n.event.message_key).toBe(
      'ec2-consistent-backup:111122223333:eu-west-1:i-0bbbbbbbbbbbbbbb2:readiness',
    );
    expect(n.event.description).toContain('SSM agent last seen');
    expect(n.event.description).toContain('VPC endpoints');
    expect(n.event.additional_info.exclusion_reason).toBe('ssm-offline');
  });

  it.each([
    ['FAILED', 'Major', 'backup-job-failed'],
    ['EXPIRED', 'Major', 'backup-job-failed'],
    ['ABORTED', 'Major', 'backup-job-failed'],
    ['PARTIAL', 'Warning', 'backup-job-partial'],
  ] as const)('a job that ended %s is %s (%s)', (state, severity, eventType) => {
    const n = valid(
      buildJobNotification(job, state, 'Backup job failed because the vault does not exist.', NOW),
    );
    expect(n.severity).toBe(severity);
    expect(n.eventType).toBe(eventType);
    expect(n.event.resource).toBe('backup');
    expect(n.event.additional_info).toMatchObject({
      backup_job_id: job.backupJobId,
      backup_job_state: state,
      cause: 'Backup job failed because the vault does not exist.',
    });
    expect(n.event.additional_info.console_link).toContain(`#/jobs/backup/details/${job.backupJobId}`);
  });

  it('a VSS fall-back is a Warning labelled crash', () => {
    const n = valid(
      buildVssFallbackNotification(
        job,
        'Windows VSS Backup Job Error encountered, trying for regular backup',
        NOW,
      ),
    );
    expect(n.severity).toBe('Warning');
    expect(n.event.additional_info.consistency).toBe('crash');
    expect(n.event.message_key).toMatch(/:consistency$/);
  });

  it('a Clear carries the same message_key as the problem and closes it', () => {
    const problem = {
      accountId: job.accountId,
      region: job.region,
      instanceId: job.instanceId,
      problemClass: 'thaw' as const,
      eventType: 'thaw-failed' as const,
    };
    const n = valid(buildClearNotification(problem, job, NOW));
    expect(n.severity).toBe('Clear');
    expect(n.event.severity).toBe('0');
    expect(n.event.resolution_state).toBe('Closing');
    expect(n.event.message_key).toBe(`ec2-consistent-backup:111122223333:eu-west-1:${job.instanceId}:thaw`);
    expect(n.event.additional_info.cleared_event_type).toBe('thaw-failed');
  });

  it('the run summary is OK when everything is consistent and Warning otherwise', () => {
    const base = {
      runId: 'run-1',
      window: '2026-11-22T02:00:00Z',
      accountId: '111122223333',
      region: 'eu-west-1',
      discovered: 12,
      excluded: { 'ssm-offline': 2 },
      started: 10,
      finished: 10,
      application: 8,
      filesystem: 2,
      fellBack: 0,
      skipped: 0,
      failed: 0,
    };
    const ok = valid(buildRunSummaryNotification(base, 'finished', NOW));
    expect(ok.severity).toBe('OK');
    expect(ok.instanceId).toBeUndefined();
    expect(ok.event.message_key).toBe('ec2-consistent-backup:111122223333:eu-west-1:fleet:run-summary');
    expect(ok.event.description).toContain(
      'discovered 12, excluded 2 (ssm-offline 2), started 10, application-consistent 8, filesystem-consistent 2, fell back 0, skipped 0, failed 0',
    );
    const warn = valid(buildRunSummaryNotification({ ...base, application: 7, failed: 1 }, 'finished', NOW));
    expect(warn.severity).toBe('Warning');
    const late = valid(
      buildRunSummaryNotification({ ...base, finished: 9, application: 7 }, 'deadline', NOW),
    );
    expect(late.severity).toBe('Warning');
    expect(late.event.description).toContain('deadline passed with 1 execution(s) unfinished');
    expect(late.event.additional_info.unfinished).toBe('1');
    expect(messageAttributes(late)).toEqual({
      severity: { DataType: 'String', StringValue: 'Warning' },
      event_type: { DataType: 'String', StringValue: 'run-summary' },
    });
  });
});

describe('limits, secrets and validation', () => {
  it('keeps every field within its limit, with a truncation mark, however long the inputs', () => {
    const long = 'x'.repeat(20_000);
    const n = valid(
      buildOutcomeNotification(
        outcome({
          outcome: 'backup-start-failed',
          instanceId: 'i-0ccccccccccccccc3',
          instanceName: `a very long name ${'n'.repeat(300)}\nwith a newline`,
          error: { error: 'Backup.ServiceUnavailable', cause: long },
          warnings: Array.from({ length: 50 }, (_, i) => `warning ${i} ${'w'.repeat(300)}`),
        }),
        NOW,
      ),
    );
    expect(n.event.node.length).toBeLessThanOrEqual(LIMITS.node);
    expect(n.event.description.length).toBeLessThanOrEqual(LIMITS.description);
    expect(n.event.description).toMatch(/…\[truncated \d+ chars\]$/);
    expect(n.event.additional_info.cause.length).toBeLessThanOrEqual(LIMITS.additionalInfoValue);
    expect(n.event.additional_info.cause).toContain('[truncated');
    expect(JSON.stringify(n.event.additional_info).length).toBeLessThanOrEqual(LIMITS.additionalInfoTotal);
    expect(n.subject.length).toBeLessThanOrEqual(99);
    expect(n.subject).not.toMatch(/[\r\n]/);
  });

  it('truncate and subjectLine never exceed their limits', () => {
    for (const length of [0, 1, 99, 100, 101, 1000, 99_999]) {
      const text = 'y'.repeat(length);
      expect(truncate(text, 100).length).toBeLessThanOrEqual(100);
      expect(truncate(text, 4000).length).toBeLessThanOrEqual(4000);
      expect(subjectLine(`line one\r\nline two ${text}`).length).toBeLessThanOrEqual(99);
    }
    expect(truncate('short', 100)).toBe('short');
    expect(subjectLine('a\nb')).toBe('a b');
  });

  it('redacts credentials that arrive in error text', () => {
    const cause =
      'POST https://svc-user:S3cret!@acme.service-now.com/api failed; key AKIAABCDEFGHIJKLMNOP; password=hunter2; Authorization: Bearer abc.def.ghi';
    const n = valid(
      buildOutcomeNotification(
        outcome({
          outcome: 'backup-start-failed',
          instanceId: 'i-0ddddddddddddddd4',
          error: { error: 'Err', cause },
        }),
        NOW,
      ),
    );
    const text = JSON.stringify(n);
    for (const secret of ['S3cret!', 'svc-user:', 'AKIAABCDEFGHIJKLMNOP', 'hunter2', 'abc.def.ghi']) {
      expect(text).not.toContain(secret);
    }
    expect(n.event.additional_info.cause).toContain('https://[redacted]@acme.service-now.com/api');
    expect(redact('nothing secret here: arn:aws:states:eu-west-1:1:execution:a:b')).toBe(
      'nothing secret here: arn:aws:states:eu-west-1:1:execution:a:b',
    );
  });

  it('reports every violation, naming the field, the value and what is allowed', () => {
    const good = valid(
      buildOutcomeNotification(
        outcome({ outcome: 'skipped-active-job', instanceId: 'i-0eeeeeeeeeeeeeee5' }),
        NOW,
      ),
    );
    const broken = {
      ...good,
      severity: 'Critical',
      subject: 'two\nlines',
      event: {
        ...good.event,
        node: 'n'.repeat(101),
        message_key: 'my-key',
        time_of_event: '22/11/2026',
        additional_info: { ...good.event.additional_info, freeze_ms: 12, password: 'x' },
      },
    } as unknown as Notification;
    const problems = validateNotification(broken);
    expect(problems).toEqual(
      expect.arrayContaining([
        'severity is "Critical"; allowed: Warning',
        'event.severity is "4"; allowed: 1',
        'event.node is "101 characters"; allowed: at most 100',
        expect.stringMatching(/^event\.message_key is "my-key"; allowed: ec2-consistent-backup:<account>/),
        expect.stringMatching(/^event\.time_of_event is "22\/11\/2026"/),
        'subject is "two\\nlines"; allowed: a single line',
        'event.additional_info.freeze_ms is 12; allowed: a string',
        expect.stringMatching(/^event\.additional_info\.password is "password"; allowed: schema_version, /),
      ]),
    );
  });

  it('has a rule for every event type and no event type without a severity', () => {
    for (const [type, rule] of Object.entries(SEVERITY_RULES)) {
      expect(rule.severities.length, type).toBeGreaterThan(0);
    }
    expect(SEVERITY_RULES['thaw-failed'].severities).toEqual(['Critical']);
    expect(SEVERITY_RULES['instance-not-ready'].severities).toEqual(['Minor']);
  });

  it('writes time_of_event as GlideDateTime in UTC', () => {
    expect(glideTime(NOW)).toBe('2026-11-22 02:03:04');
  });
});

describe('robustness', () => {
  it('still builds a valid message when record-outcome could not learn the account or region', () => {
    const n = buildOutcomeNotification(
      outcome({
        outcome: 'backup-start-failed',
        instanceId: 'i-0fffffffffffffff6',
        accountId: 'unknown',
        region: 'unknown',
        error: { error: 'E', cause: 'c' },
      }),
      NOW,
    );
    expect(validateNotification(n!)).toEqual([]);
    expect(n!.event.message_key).toBe('ec2-consistent-backup:unknown:unknown:i-0fffffffffffffff6:backup');
  });

  it('keeps additional_info under its total cap even when every value is long', () => {
    const long = 'z'.repeat(5000);
    const n = buildOutcomeNotification(
      outcome({
        outcome: 'thaw-failed',
        instanceId: 'i-0fffffffffffffff7',
        instanceName: long,
        backupJobId: long,
        recoveryPointArn: long,
        watchdogThawBy: long,
        verdict: { consistency: 'application', reason: long, freezeMs: 1 },
        warnings: [long, long],
        error: { error: long, cause: long },
      }),
      NOW,
    );
    expect(validateNotification(n!)).toEqual([]);
    expect(JSON.stringify(n!.event.additional_info).length).toBeLessThanOrEqual(LIMITS.additionalInfoTotal);
  });
});
