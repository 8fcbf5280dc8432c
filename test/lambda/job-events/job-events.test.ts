import { BackupClient, DescribeBackupJobCommand } from '@aws-sdk/client-backup';
import { CreateTagsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type BackupJobStateChangeEvent,
  cleanStatusMessage,
  handleJobEvent,
  vssFallbackReason,
} from '../../../lambda/job-events/job-events';
import { writeLabel } from '../../../lambda/label-writer/label-writer';
import type { LabelRequest } from '../../../lambda/shared/labels';
import { tagValue } from '../../../lambda/shared/recovery-point';
import {
  ACCOUNT,
  expectValidPublish,
  harness,
  outcome,
  REGION,
  TABLE,
  TOPIC,
} from '../notifications/fixtures';

const WIN = 'i-0f0f0f0f0f0f0f0f1';
const LINUX = 'i-0a0a0a0a0a0a0a0a2';
const AMI = 'arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0';
const VSS_MESSAGE = 'Windows VSS Backup Job Error encountered, trying for regular backup';

/** Shaped like the AWS Backup developer guide's example events. */
function jobEvent(backupJobId: string, state: string, statusMessage?: string): BackupJobStateChangeEvent {
  return {
    'detail-type': 'Backup Job State Change',
    source: 'aws.backup',
    account: ACCOUNT,
    region: REGION,
    time: '2026-11-22T02:40:00Z',
    resources: state === 'COMPLETED' ? [AMI] : [],
    detail: {
      backupJobId,
      state,
      backupVaultName: 'ecb-vault',
      resourceArn: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${WIN}`,
      resourceType: 'EC2',
      ...(statusMessage !== undefined ? { statusMessage } : {}),
    },
  };
}

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
  vi.resetModules();
  vi.unstubAllEnvs();
});

function setup() {
  const h = harness();
  const ec2 = mockClient(EC2Client);
  ec2.on(CreateTagsCommand).resolves({});
  const backup = mockClient(BackupClient);
  cleanup.push(() => {
    h.snsMock.restore();
    h.dynamodbMock.restore();
    ec2.restore();
    backup.restore();
  });
  // DescribeBackupJob's BackupType per job (API reference: "WindowsVSS" for a VSS backup, empty for a regular one).
  const backupTypes: Record<string, string | undefined> = {};
  const backupTypeOf = async (id: string) => backupTypes[id];
  const requests: LabelRequest[] = [];
  const failures: Error[] = [];
  const requestLabel = async (r: LabelRequest) => {
    const failure = failures.shift();
    if (failure) throw failure;
    requests.push(r);
  };
  /** What the label-writer does with the requests, against DescribeBackupJob as AWS answers a completed EC2 job. */
  const writeRequested = async (statusMessage?: string) => {
    backup.on(DescribeBackupJobCommand).callsFake((input: { BackupJobId: string }) => ({
      BackupJobId: input.BackupJobId,
      State: 'COMPLETED',
      RecoveryPointArn: AMI,
      ResourceType: 'EC2',
      ...(backupTypes[input.BackupJobId] !== undefined ? { BackupType: backupTypes[input.BackupJobId] } : {}),
      ...(statusMessage !== undefined ? { StatusMessage: statusMessage } : {}),
    }));
    const deps = {
      backup: new BackupClient({ region: REGION }),
      ec2: new EC2Client({ region: REGION }),
      jobs: h.notifier,
      pace: async () => undefined,
    };
    for (const r of requests) await writeLabel(r, deps);
  };
  return {
    h,
    ec2,
    backup,
    backupTypes,
    requests,
    failures,
    writeRequested,
    deps: { notifier: h.notifier, requestLabel, backupTypeOf, clock: h.now },
  };
}

async function windowsBackup(h: ReturnType<typeof harness>, backupJobId: string) {
  await h.notifier.recordOutcome(
    outcome({
      outcome: 'backed-up',
      instanceId: WIN,
      instanceName: 'sql-01',
      platform: 'windows',
      backupJobId,
      recoveryPointArn: AMI,
      verdict: {
        consistency: 'application',
        reason: 'VSS requested; confirmed at job completion',
        freezeMs: 0,
      },
    }),
  );
}

describe('job-events', () => {
  it('relabels a Windows job that fell back from VSS as crash and sends one Warning', async () => {
    const { h, ec2, deps, requests, writeRequested } = setup();
    await windowsBackup(h, 'win-1');
    const result = await handleJobEvent(jobEvent('win-1', 'COMPLETED', `"${VSS_MESSAGE}"`), deps);
    expect(result).toMatchObject({
      action: 'handled',
      labelRequested: true,
      finalVerdict: { consistency: 'crash' },
    });
    expect(requests).toEqual([{ kind: 'label', backupJobId: 'win-1', cause: 'job-ended' }]);
    // The label-writer decides the same label from DescribeBackupJob's status message.
    await writeRequested(`"${VSS_MESSAGE}"`);
    const tags = ec2.commandCalls(CreateTagsCommand).map((c) => c.args[0].input);
    expect(tags).toEqual([
      {
        Resources: ['ami-0123456789abcdef0'],
        Tags: [
          { Key: 'ConsistentBackup:Consistency', Value: 'crash' },
          {
            Key: 'ConsistentBackup:Reason',
            Value: tagValue(
              `Windows VSS fell back to a regular backup: BackupType is empty (a regular backup), not WindowsVSS; AWS Backup: ${VSS_MESSAGE}`,
            ),
          },
          { Key: 'ConsistentBackup:FreezeMs', Value: '0' },
        ],
      },
    ]);
    expect(h.published).toHaveLength(1);
    const n = expectValidPublish(h.published[0]);
    expect(n.eventType).toBe('vss-fallback');
    expect(n.severity).toBe('Warning');
    expect(n.event.message_key).toBe(`ec2-consistent-backup:${ACCOUNT}:${REGION}:${WIN}:consistency`);
    expect(n.event.additional_info).toMatchObject({
      consistency: 'crash',
      cause: `BackupType is empty (a regular backup), not WindowsVSS; AWS Backup: ${VSS_MESSAGE}`,
      recovery_point_arn: AMI,
    });
  });

  it('confirms a clean VSS job as application-consistent, labels it and sends nothing', async () => {
    const { h, ec2, deps, backupTypes, writeRequested } = setup();
    await windowsBackup(h, 'win-2');
    backupTypes['win-2'] = 'WindowsVSS';
    const result = await handleJobEvent(jobEvent('win-2', 'COMPLETED'), deps);
    expect(result.action === 'handled' && result.finalVerdict.consistency).toBe('application');
    await writeRequested();
    expect(ec2.commandCalls(CreateTagsCommand)[0].args[0].input.Tags?.[0]).toEqual({
      Key: 'ConsistentBackup:Consistency',
      Value: 'application',
    });
    expect(h.published).toHaveLength(0);
  });

  // Issue 13 item 8: BackupType decides, not a regular expression on the status message.
  it('a Windows job completed without WindowsVSS is a fall-back even with no status message', async () => {
    const { h, deps } = setup();
    await windowsBackup(h, 'win-6');
    const result = await handleJobEvent(jobEvent('win-6', 'COMPLETED'), deps);
    expect(result.action === 'handled' && result.finalVerdict).toMatchObject({
      consistency: 'crash',
      reason:
        'Windows VSS fell back to a regular backup: BackupType is empty (a regular backup), not WindowsVSS',
    });
    expect(h.published.map((p) => expectValidPublish(p))).toMatchObject([
      { eventType: 'vss-fallback', severity: 'Warning' },
    ]);
  });

  it('a job with BackupType WindowsVSS keeps its label whatever its status message says', async () => {
    const { h, deps, backupTypes } = setup();
    await windowsBackup(h, 'win-7');
    backupTypes['win-7'] = 'WindowsVSS';
    const result = await handleJobEvent(
      jobEvent('win-7', 'COMPLETED', 'Windows VSS Backup writer SqlServerWriter retried'),
      deps,
    );
    expect(result.action === 'handled' && result.finalVerdict.consistency).toBe('application');
    expect(h.published.map((p) => expectValidPublish(p).eventType)).not.toContain('vss-fallback');
  });

  it('decides from BackupType alone, for Windows only', () => {
    expect(vssFallbackReason('windows', 'WindowsVSS', VSS_MESSAGE)).toBeUndefined();
    expect(vssFallbackReason('linux', undefined, VSS_MESSAGE)).toBeUndefined();
    expect(vssFallbackReason('windows', 'Regular', undefined)).toBe('BackupType is Regular, not WindowsVSS');
  });

  it.each([
    [
      'FAILED',
      'Major',
      '"Backup job failed because backup vault arn:aws:backup:eu-west-1:111122223333:backup-vault:x does not exist."',
    ],
    ['EXPIRED', 'Major', '"Backup job failed because there was a running job for the same resource."'],
    ['ABORTED', 'Major', '"Backup job was stopped by user."'],
    ['PARTIAL', 'Warning', 'Some volumes were not backed up.'],
  ])('reports a job that ended %s as %s, once per delivery', async (state, severity, statusMessage) => {
    const { h, deps } = setup();
    await h.notifier.recordOutcome(
      outcome({
        outcome: 'backed-up',
        instanceId: LINUX,
        backupJobId: `l-${state}`,
        verdict: { consistency: 'application', reason: 'hooks ran', freezeMs: 1200 },
      }),
    );
    await handleJobEvent(jobEvent(`l-${state}`, state, statusMessage), deps);
    await handleJobEvent(jobEvent(`l-${state}`, state, statusMessage), deps);
    expect(h.published).toHaveLength(1);
    const n = expectValidPublish(h.published[0]);
    expect(n.severity).toBe(severity);
    expect(n.event.additional_info.backup_job_state).toBe(state);
    expect(n.event.additional_info.cause).toBe(cleanStatusMessage(statusMessage));
    expect(n.event.message_key).toBe(`ec2-consistent-backup:${ACCOUNT}:${REGION}:${LINUX}:backup`);
  });

  it('a job that completed with another status message is a Warning, never a Clear', async () => {
    const { h, deps } = setup();
    await h.notifier.recordOutcome(
      outcome({ outcome: 'skipped-active-job', instanceId: LINUX, runId: 'run-0' }),
    );
    h.advance(60);
    await h.notifier.recordOutcome(
      outcome({
        outcome: 'backed-up',
        instanceId: LINUX,
        backupJobId: 'l-issues',
        verdict: { consistency: 'application', reason: 'hooks ran', freezeMs: 900 },
      }),
    );
    h.advance(20);
    await handleJobEvent(
      jobEvent('l-issues', 'COMPLETED', 'Some snapshots were copied with warnings.'),
      deps,
    );
    const sent = h.published.map(expectValidPublish);
    expect(sent.map((n) => `${n.severity} ${n.eventType}`)).toEqual([
      'Warning skipped-active-job',
      'Warning backup-job-completed-with-issues',
    ]);
    expect(sent[1].event.additional_info.cause).toBe('Some snapshots were copied with warnings.');
  });

  it('ignores jobs it did not start, states that are not final, and other events', async () => {
    const { h, requests, deps } = setup();
    await windowsBackup(h, 'win-3');
    expect(await handleJobEvent(jobEvent('someone-elses-job', 'FAILED', 'x'), deps)).toEqual({
      action: 'ignored',
      reason: 'backup job someone-elses-job was not started by ec2-consistent-backup',
    });
    expect(await handleJobEvent(jobEvent('win-3', 'RUNNING'), deps)).toMatchObject({ action: 'ignored' });
    expect(
      await handleJobEvent(
        { ...jobEvent('win-3', 'COMPLETED'), 'detail-type': 'Copy Job State Change' },
        deps,
      ),
    ).toMatchObject({
      action: 'ignored',
    });
    expect(h.published).toHaveLength(0);
    expect(requests).toEqual([]);
    // RUNNING did not claim the job: its final state is still handled.
    expect(await handleJobEvent(jobEvent('win-3', 'COMPLETED', VSS_MESSAGE), deps)).toMatchObject({
      action: 'handled',
    });
  });

  it('when the label request fails, gives the event back so the retry requests it and warns once', async () => {
    const { h, requests, failures, deps } = setup();
    await windowsBackup(h, 'win-4');
    failures.push(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    await expect(handleJobEvent(jobEvent('win-4', 'COMPLETED', VSS_MESSAGE), deps)).rejects.toThrow(
      'Rate exceeded',
    );
    expect(h.published).toHaveLength(0);
    expect(h.table.item('JOB#win-4', 'JOB')?.finalState).toBeUndefined();
    await handleJobEvent(jobEvent('win-4', 'COMPLETED', VSS_MESSAGE), deps);
    expect(requests).toEqual([{ kind: 'label', backupJobId: 'win-4', cause: 'job-ended' }]);
    expect(h.published.map((p) => expectValidPublish(p).eventType)).toEqual(['vss-fallback']);
  });
});

describe('job-events handler', () => {
  it('checks its environment at cold start, naming the variable', async () => {
    vi.stubEnv('NOTIFICATION_TOPIC_ARN', '');
    await expect(import('../../../lambda/job-events/handler')).rejects.toThrow(
      'Environment variable NOTIFICATION_TOPIC_ARN is ""; allowed: an SNS topic ARN.',
    );
  });

  it('finalizes a job through module-scope clients', async () => {
    const { h, backup } = setup();
    // DescribeBackupJob of a regular (not VSS) backup: BackupType empty (API reference).
    backup.on(DescribeBackupJobCommand).resolves({ BackupJobId: 'win-5', State: 'COMPLETED' });
    const sqs = mockClient(SQSClient);
    sqs.on(SendMessageCommand).resolves({ MessageId: 'm-1' });
    cleanup.push(() => sqs.restore());
    vi.stubEnv('LABEL_QUEUE_URL', 'https://sqs.eu-west-1.amazonaws.com/111122223333/labels');
    vi.stubEnv('NOTIFICATION_TOPIC_ARN', TOPIC);
    vi.stubEnv('NOTIFICATION_TABLE_NAME', TABLE);
    vi.stubEnv('AWS_REGION', REGION);
    await windowsBackup(h, 'win-5');
    const { handler } = await import('../../../lambda/job-events/handler');
    const result = await handler(jobEvent('win-5', 'COMPLETED', VSS_MESSAGE));
    expect(result.action).toBe('handled');
    expect(sqs.commandCalls(SendMessageCommand)[0].args[0].input.MessageBody).toBe(
      JSON.stringify({ kind: 'label', backupJobId: 'win-5', cause: 'job-ended' }),
    );
    expect(h.published.map((p) => expectValidPublish(p).eventType)).toEqual(['vss-fallback']);
  });
});

describe('cleanStatusMessage', () => {
  it('strips the quotes AWS Backup puts around some messages', () => {
    expect(cleanStatusMessage('"Backup job was stopped by user."')).toBe('Backup job was stopped by user.');
    expect(cleanStatusMessage('')).toBeUndefined();
    expect(cleanStatusMessage(undefined)).toBeUndefined();
  });
});
