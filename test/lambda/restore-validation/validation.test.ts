import {
  BackupClient,
  DescribeRestoreJobCommand,
  type DescribeRestoreJobCommandInput,
  ListRestoreJobsCommand,
  PutRestoreValidationResultCommand,
  type PutRestoreValidationResultCommandInput,
} from '@aws-sdk/client-backup';
import {
  CreateTagsCommand,
  type CreateTagsCommandInput,
  DescribeImagesCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import {
  type CommandInvocationStatus,
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  ListCommandInvocationsCommand,
  SendCommandCommand,
  type SendCommandCommandInput,
  SSMClient,
} from '@aws-sdk/client-ssm';
import type { SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type CheckReport,
  handleRestoreEvent,
  type RestoreDeps,
  type RestoreJobEvent,
  reportLastAttempt,
  sweepRestoreJobs,
  verdictOf,
} from '../../../lambda/restore-validation/validation';
import { readRestoreSettings } from '../../../lambda/restore-validation/settings';
import { processQueue } from '../../../lambda/shared/deferred-queue';
import { ACCOUNT, expectValidPublish, harness, REGION } from '../notifications/fixtures';

const PLAN = `arn:aws:backup:${REGION}:${ACCOUNT}:restore-testing-plan:Ec2ConsistentBackup_restore_test-1a2b3c4d`;
const JOB = 'AB123456-78C9-0123-456D-789012E34567';
const SOURCE = 'i-0123456789abcdef0';
const RESTORED = 'i-0fedcba9876543210';
const AMI = 'ami-0aaaaaaaaaaaaaaa1';
const DOC = 'Ec2ConsistentBackup-VerifyRestore';
const COMPLETED_AT = new Date('2026-11-29T05:20:00Z');

/**
 * A "Restore Job State Change" event for an EC2 restore test of our plan, field for field as AWS
 * Backup guide, "Monitoring AWS Backup events using Amazon EventBridge" (Restore Job events) shows
 * them: COMPLETED carries backupVaultArn, recoveryPointArn, sourceResourceArn, createdResourceArn
 * and completionDate; FAILED carries only restoreJobId, backupSizeInBytes, creationDate,
 * iamRoleArn, percentDone, resourceType, status and statusMessage; "if your restore job is part of
 * a restore testing plan, the parameter restoreTestingPlanArn is included". An EC2 recovery point's
 * ARN is its AMI's ("AWS Backup resource ARNs"; the FAILED example's `resources`).
 */
function restoreEvent(status = 'COMPLETED'): RestoreJobEvent {
  const common = {
    restoreJobId: JOB,
    backupSizeInBytes: '8589934592',
    creationDate: new Date(COMPLETED_AT.getTime() - 240_000).toISOString(),
    iamRoleArn: `arn:aws:iam::${ACCOUNT}:role/Ec2ConsistentBackup-RestoreTestRole`,
    resourceType: 'EC2',
    status,
    restoreTestingPlanArn: PLAN,
  };
  const event = {
    'detail-type': 'Restore Job State Change',
    source: 'aws.backup',
    account: ACCOUNT,
    region: REGION,
    time: COMPLETED_AT.toISOString(),
    resources: [`arn:aws:ec2:${REGION}::image/${AMI}`],
    detail:
      status === 'COMPLETED'
        ? {
            ...common,
            percentDone: 0,
            backupVaultArn: `arn:aws:backup:${REGION}:${ACCOUNT}:backup-vault:ecb-vault`,
            recoveryPointArn: `arn:aws:ec2:${REGION}::image/${AMI}`,
            sourceResourceArn: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${SOURCE}`,
            createdResourceArn: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${RESTORED}`,
            completionDate: COMPLETED_AT.toISOString(),
          }
        : {
            ...common,
            percentDone: 0,
            statusMessage: 'No subnets found for the default VPC vpc-0123. Please specify a subnet.',
          },
  };
  return event;
}

/** A report exactly as ssm-documents/scripts/verify-restore.sh prints it. */
function report(status: CheckReport['status'], overrides: Partial<CheckReport> = {}): string {
  return `${JSON.stringify({
    status,
    restoreJobId: JOB,
    instanceId: RESTORED,
    mode: 'auto',
    reason:
      status === 'verified'
        ? '2 data filesystem(s) clean and mounted read-only, 1 verify hook(s) passed'
        : '/data (ext4 on /dev/nvme1n1): fsck found errors; ',
    filesystems: [
      {
        device: '/dev/nvme1n1',
        mountpoint: '/data',
        fstype: 'ext4',
        fsck: status === 'verified' ? 'clean' : 'errors',
        mounted: status === 'verified',
        detail:
          status === 'verified' ? '' : "exit 4: Entry 'table.dat' in /db (12) has deleted/unused inode 13.",
      },
    ],
    hooks:
      status === 'verified'
        ? [
            {
              name: '50-postgresql',
              exitCode: 0,
              verified: true,
              ms: 4200,
              output:
                'PostgreSQL 15 on /var/lib/postgresql/15/main: started in 3100 ms (redo done at 0/1F3A2B0), 2 database(s) answered',
            },
          ]
        : [],
    stopped: ['postgres (1234) on /data'],
    ...overrides,
  })}\n`;
}

/**
 * AWS Backup, Systems Manager and EC2 as a restore test meets them. Every field below is a member
 * of the response shape in botocore's service models (backup 2018-11-15: DescribeRestoreJobOutput,
 * RestoreJobsListMember, RestoreJobCreator; ssm 2014-11-06: InstanceInformation, SendCommand's
 * Command, CommandInvocation, GetCommandInvocationResult; ec2: Image), with values as the API
 * reference describes them:
 * - DescribeRestoreJob for EC2: CreatedResourceArn is the test instance's ARN (the format "depends
 *   on the resource type"; an instance ARN for EC2), only once COMPLETED; RecoveryPointArn is the
 *   AMI's; CreatedBy.RestoreTestingPlanArn names the plan (RestoreJobCreator).
 * - PutRestoreValidationResult returns an empty 204, and "Once a validation status is set, it
 *   cannot be changed" (AWS Backup guide, "Restore testing validation"): a second result for a job
 *   fails the test here (the error AWS answers with is not documented, so none is invented).
 * - GetCommandInvocation's StandardOutputContent: "The first 24,000 characters written by the
 *   plugin to stdout".
 * The test instance comes Online when `online` is set; the command runs for `runLooks` looks.
 */
class World {
  online = true;
  validation?: string;
  restoreStatus = 'COMPLETED';
  planArn = PLAN;
  commands: {
    input: SendCommandCommandInput;
    id: string;
    at: Date;
    status: CommandInvocationStatus;
    looks: number;
  }[] = [];
  runLooks = 1;
  outcome: { status: CommandInvocationStatus; stdout: string; stderr?: string; code: number } = {
    status: 'Success',
    stdout: report('verified'),
    code: 0,
  };
  readonly puts: PutRestoreValidationResultCommandInput[] = [];
  readonly tags: CreateTagsCommandInput[] = [];
  imageTags: Record<string, string> = {
    'ConsistentBackup:Consistency': 'application',
    'ConsistentBackup:Instance': SOURCE,
    Name: 'db-01',
  };

  restoreJob(id: string) {
    return {
      AccountId: ACCOUNT,
      RestoreJobId: id,
      RecoveryPointArn: `arn:aws:ec2:${REGION}::image/${AMI}`,
      SourceResourceArn: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${SOURCE}`,
      BackupVaultArn: `arn:aws:backup:${REGION}:${ACCOUNT}:backup-vault:ecb-vault`,
      CreationDate: new Date(COMPLETED_AT.getTime() - 240_000),
      Status: this.restoreStatus,
      // Every job that ended has a CompletionDate; only a completed one created a resource.
      CompletionDate: COMPLETED_AT,
      ...(this.restoreStatus === 'COMPLETED'
        ? {
            CreatedResourceArn: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${RESTORED}`,
            PercentDone: '100.00%',
          }
        : { StatusMessage: 'No subnets found for the default VPC vpc-0123. Please specify a subnet.' }),
      BackupSizeInBytes: 8589934592,
      IamRoleArn: `arn:aws:iam::${ACCOUNT}:role/Ec2ConsistentBackup-RestoreTestRole`,
      ResourceType: 'EC2',
      RecoveryPointCreationDate: new Date('2026-11-29T02:01:00Z'),
      CreatedBy: { RestoreTestingPlanArn: this.planArn },
      ...(this.validation ? { ValidationStatus: this.validation } : {}),
      IsParent: false,
    };
  }

  install(clock: () => Date) {
    const backup = mockClient(BackupClient);
    const ssm = mockClient(SSMClient);
    const ec2 = mockClient(EC2Client);
    backup
      .on(DescribeRestoreJobCommand)
      .callsFake((input: DescribeRestoreJobCommandInput) => this.restoreJob(input.RestoreJobId ?? JOB));
    // The plan's one restore job (ListRestoreJobs members carry the DescribeRestoreJob fields).
    backup.on(ListRestoreJobsCommand).callsFake(() => ({ RestoreJobs: [this.restoreJob(JOB)] }));
    backup
      .on(PutRestoreValidationResultCommand)
      .callsFake((input: PutRestoreValidationResultCommandInput) => {
        if (this.validation) {
          throw new Error(
            `test: PutRestoreValidationResult ${input.ValidationStatus} on a job already reported ${this.validation}; AWS Backup does not change a set validation status`,
          );
        }
        this.puts.push(input);
        this.validation = input.ValidationStatus;
        return {};
      });
    ssm.on(DescribeInstanceInformationCommand).callsFake(() => ({
      InstanceInformationList: this.online
        ? [{ InstanceId: RESTORED, PingStatus: 'Online', PlatformType: 'Linux', ResourceType: 'EC2Instance' }]
        : [],
    }));
    ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => {
      const id = `0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f${this.commands.length}`;
      this.commands.push({ input, id, at: clock(), status: 'Pending', looks: 0 });
      return {
        Command: {
          CommandId: id,
          DocumentName: input.DocumentName,
          InstanceIds: input.InstanceIds,
          Status: 'Pending',
        },
      };
    });
    ssm.on(ListCommandInvocationsCommand).callsFake(() => ({
      CommandInvocations: this.commands.map((c) => {
        c.looks += 1;
        const status = c.looks > this.runLooks ? this.outcome.status : 'InProgress';
        return {
          CommandId: c.id,
          InstanceId: RESTORED,
          DocumentName: DOC,
          RequestedDateTime: c.at,
          Status: status,
          StatusDetails: status,
          Comment: c.input.Comment,
        };
      }),
    }));
    ssm.on(GetCommandInvocationCommand).callsFake(() => ({
      CommandId: this.commands[0]?.id,
      InstanceId: RESTORED,
      DocumentName: DOC,
      PluginName: 'verifyRestore',
      ResponseCode: this.outcome.code,
      Status: this.outcome.status,
      StatusDetails: this.outcome.status,
      StandardOutputContent: this.outcome.stdout,
      StandardErrorContent: this.outcome.stderr ?? '',
    }));
    ec2.on(DescribeImagesCommand).callsFake(() => ({
      Images: [
        { ImageId: AMI, Tags: Object.entries(this.imageTags).map(([Key, Value]) => ({ Key, Value })) },
      ],
    }));
    ec2.on(CreateTagsCommand).callsFake((input: CreateTagsCommandInput) => {
      this.tags.push(input);
      return {};
    });
    return [backup, ssm, ec2];
  }
}

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
});

function setup(start = new Date('2026-11-29T05:21:00Z')) {
  const h = harness(start);
  const world = new World();
  for (const m of world.install(h.now)) cleanup.push(() => m.restore());
  cleanup.push(() => {
    h.snsMock.restore();
    h.dynamodbMock.restore();
  });
  const deps: RestoreDeps = {
    backup: new BackupClient({ region: REGION }),
    ssm: new SSMClient({ region: REGION }),
    ec2: new EC2Client({ region: REGION }),
    notifier: h.notifier,
    settings: readRestoreSettings({
      RESTORE_TESTING_PLAN_ARN: PLAN,
      VERIFY_DOCUMENT_NAME: DOC,
      SSM_WAIT_MINUTES: '20',
      COMMAND_WAIT_MINUTES: '70',
      MAX_RECEIVES: '150',
    }),
    clock: h.now,
  };
  return { h, world, deps };
}

/** Delivers the event again a minute later until it is done, as the queue does. */
async function untilDone(s: ReturnType<typeof setup>, event = restoreEvent(), max = 100) {
  const trail: string[] = [];
  for (let i = 0; i < max; i++) {
    const outcome = await handleRestoreEvent(event, s.deps);
    if (outcome.kind === 'done') return { outcome, trail };
    trail.push(outcome.reason);
    s.h.advance(1);
  }
  throw new Error(`not done after ${max} deliveries: ${trail.slice(-3).join(' | ')}`);
}

describe('restore-validation', () => {
  it('waits for the test instance, sends the check once, and reports a verified restore', async () => {
    const s = setup();
    s.world.online = false;
    const first = await handleRestoreEvent(restoreEvent(), s.deps);
    expect(first).toMatchObject({
      kind: 'retry',
      reason: expect.stringMatching(/not Online in Systems Manager yet/),
    });
    s.world.online = true;
    s.world.runLooks = 3;

    const { outcome, trail } = await untilDone(s);

    expect(s.world.commands).toHaveLength(1);
    expect(s.world.commands[0].input).toEqual({
      DocumentName: DOC,
      InstanceIds: [RESTORED],
      Parameters: { RestoreJobId: [JOB], ExpectedInstanceId: [RESTORED], Filesystems: ['auto'] },
      TimeoutSeconds: 600,
      Comment: `ec2-consistent-backup restore test ${JOB}`,
    });
    expect(trail.filter((t) => /is InProgress/.test(t))).toHaveLength(3);
    expect(outcome).toMatchObject({
      action: 'reported',
      verdict: { result: 'verified', validationStatus: 'SUCCESSFUL' },
    });
    // One result, the final one: a set validation status cannot be changed.
    expect(s.world.puts.map((p) => p.ValidationStatus)).toEqual(['SUCCESSFUL']);
    expect(s.world.puts[0].ValidationStatusMessage).toBe(
      'verified: 2 data filesystem(s) clean and mounted read-only, 1 verify hook(s) passed',
    );
    // The recovery point (the AMI) carries the result: only the Verified tag is written.
    expect(s.world.tags).toEqual([
      { Resources: [AMI], Tags: [{ Key: 'ConsistentBackup:Verified', Value: 'verified 2026-11-29T05:25Z' }] },
    ]);
    expect(s.h.published).toHaveLength(0);
    // A repeated event finds the job reported and does nothing again.
    expect(await handleRestoreEvent(restoreEvent(), s.deps)).toMatchObject({ action: 'ignored' });
    expect(s.world.commands).toHaveLength(1);
  });

  it('reports a failed check once: Major notification, tag, FAILED to AWS Backup', async () => {
    const s = setup();
    s.world.outcome = { status: 'Success', stdout: report('failed'), code: 0 };
    const { outcome } = await untilDone(s);
    expect(outcome).toMatchObject({ verdict: { result: 'failed', validationStatus: 'FAILED' } });
    expect(s.world.tags[0].Tags).toEqual([
      { Key: 'ConsistentBackup:Verified', Value: expect.stringMatching(/^failed 2026-11-29T05:2\dZ$/) },
    ]);
    expect(s.world.puts.at(-1)).toMatchObject({
      ValidationStatus: 'FAILED',
      ValidationStatusMessage: expect.stringMatching(/^failed: \/data \(ext4/),
    });
    expect(s.h.published).toHaveLength(1);
    const n = expectValidPublish(s.h.published[0]);
    expect(n).toMatchObject({
      eventType: 'restore-verification-failed',
      severity: 'Major',
      instanceId: SOURCE,
    });
    expect(n.subject).toMatch(
      /^\[Major\] Restore verification failed for i-0123456789abcdef0 \(db-01\): \/data/,
    );
    expect(n.event.message_key).toBe(`ec2-consistent-backup:${ACCOUNT}:${REGION}:${SOURCE}:verification`);
    expect(n.event.additional_info).toMatchObject({
      restore_job_id: JOB,
      restored_instance_id: RESTORED,
      verification_result: 'failed',
      consistency: 'application',
      console_link: expect.stringContaining(`#/jobs/restore/details/${JOB}`),
    });
    expect(n.event.additional_info.verification_detail).toContain('has deleted/unused inode 13');
    // Delivered again (EventBridge is at least once): already reported, nothing sent twice.
    await handleRestoreEvent(restoreEvent(), s.deps);
    expect(s.h.published).toHaveLength(1);
  });

  it('closes an open verification problem when a later restore test verifies', async () => {
    const s = setup();
    s.world.outcome = { status: 'Success', stdout: report('failed'), code: 0 };
    await untilDone(s);
    const next = setup(new Date('2026-12-06T05:21:00Z'));
    // Same table: move the first problem over, as the notifier would find it a week later.
    for (const [key, item] of s.h.table.items) next.h.table.items.set(key, item);
    await untilDone(next);
    const [clear] = next.h.published.map(expectValidPublish);
    expect(clear).toMatchObject({
      eventType: 'problem-cleared',
      severity: 'Clear',
      event: { resource: 'verification' },
    });
  });

  it('gives up on a test instance that never comes Online: Warning, TIMED_OUT, nothing sent', async () => {
    const s = setup();
    s.world.online = false;
    const { outcome, trail } = await untilDone(s);
    expect(trail.length).toBeGreaterThanOrEqual(18);
    expect(trail.length).toBeLessThanOrEqual(20);
    expect(outcome).toMatchObject({ verdict: { result: 'inconclusive', validationStatus: 'TIMED_OUT' } });
    expect(s.world.commands).toHaveLength(0);
    const n = expectValidPublish(s.h.published[0]);
    expect(n).toMatchObject({ eventType: 'restore-verification-inconclusive', severity: 'Warning' });
    expect(n.event.description).toMatch(/never came Online in Systems Manager within 20 min/);
  });

  it('calls a check that broke without a verdict inconclusive, quoting its stderr', async () => {
    const s = setup();
    s.world.outcome = {
      status: 'Failed',
      stdout: '',
      stderr: 'bash: line 1: mktemp: command not found',
      code: 127,
    };
    const { outcome } = await untilDone(s);
    expect(outcome).toMatchObject({ verdict: { result: 'inconclusive', validationStatus: 'FAILED' } });
    expect(s.world.puts.at(-1)?.ValidationStatusMessage).toMatch(/ended Failed without a verdict/);
    expect(expectValidPublish(s.h.published[0]).event.additional_info.verification_detail).toContain(
      'mktemp: command not found',
    );
  });

  it('reports a restore job that failed, without a validation result AWS Backup would refuse', async () => {
    const s = setup();
    s.world.restoreStatus = 'FAILED';
    const outcome = await handleRestoreEvent(restoreEvent('FAILED'), s.deps);
    expect(outcome).toMatchObject({ action: 'reported', verdict: { result: 'inconclusive' } });
    expect(s.world.puts).toHaveLength(0);
    expect(expectValidPublish(s.h.published[0]).event.description).toContain(
      'No subnets found for the default VPC',
    );
  });

  it('ignores restore jobs of other plans and other event types', async () => {
    const s = setup();
    s.world.planArn = `arn:aws:backup:${REGION}:${ACCOUNT}:restore-testing-plan:someone_elses-9`;
    expect(await handleRestoreEvent(restoreEvent(), s.deps)).toMatchObject({ action: 'ignored' });
    expect(await handleRestoreEvent({ 'detail-type': 'Copy Job State Change' }, s.deps)).toMatchObject({
      action: 'ignored',
    });
    expect(s.world.commands).toHaveLength(0);
  });

  it('reports a message that failed on every delivery instead of dropping it', async () => {
    const s = setup();
    const result = await processQueue(
      {
        Records: [
          {
            messageId: 'm1',
            receiptHandle: 'r',
            body: JSON.stringify(restoreEvent()),
            attributes: { ApproximateReceiveCount: '150' },
          },
        ],
      } as unknown as SQSEvent,
      async () => {
        throw Object.assign(new Error('User is not authorized to perform: ssm:SendCommand'), {
          name: 'AccessDeniedException',
        });
      },
      { maxReceives: 150, onLastAttemptError: (body, err) => reportLastAttempt(body, err, s.deps) },
    );
    expect(result.batchItemFailures).toEqual([]);
    const n = expectValidPublish(s.h.published[0]);
    expect(n.event.description).toContain(
      'AccessDeniedException: User is not authorized to perform: ssm:SendCommand',
    );
    expect(s.world.puts.at(-1)).toMatchObject({ ValidationStatus: 'FAILED' });
  });
});

describe('restore-validation: the hourly sweep for events EventBridge did not deliver', () => {
  it('drives a completed restore test whose event never came to its report', async () => {
    const s = setup();
    const seen: string[] = [];
    for (let i = 0; i < 5 && s.world.validation !== 'SUCCESSFUL'; i++) {
      seen.push(...(await sweepRestoreJobs(s.deps)).outcomes);
      s.h.advance(60);
    }
    expect(seen).toEqual([
      expect.stringMatching(new RegExp(`^${JOB}: waiting \\(check sent to ${RESTORED}`)),
      expect.stringMatching(/: waiting \(check .* is InProgress\)$/),
      `${JOB}: reported`,
    ]);
    expect(s.world.commands).toHaveLength(1);
    expect((await sweepRestoreJobs(s.deps)).outcomes).toEqual([]);
  });

  it('reports a restore job that failed recently, and only recently', async () => {
    const s = setup(new Date('2026-11-29T06:00:00Z'));
    s.world.restoreStatus = 'FAILED';
    expect((await sweepRestoreJobs(s.deps)).outcomes).toEqual([`${JOB}: reported`]);
    s.h.advance(60);
    await sweepRestoreJobs(s.deps);
    s.h.advance(60);
    expect((await sweepRestoreJobs(s.deps)).outcomes).toEqual([]);
    expect(s.h.published.map((p) => expectValidPublish(p).eventType)).toEqual([
      'restore-verification-inconclusive',
    ]);
  });
});

describe('verdictOf', () => {
  it('lists each filesystem and hook, and what was stopped', () => {
    const v = verdictOf(JSON.parse(report('verified')));
    expect(v.detail).toBe(
      '/data ext4: fsck clean, mounted read-only; hook 50-postgresql: verified (PostgreSQL 15 on /var/lib/postgresql/15/main: started in 3100 ms (redo done at 0/1F3A2B0), 2 database(s) answered); stopped before the check: postgres (1234) on /data',
    );
  });
});
