/**
 * Restore verification for the restore testing plan of lib/restore-testing.ts. AWS Backup restores
 * the latest consistent recovery point of each opted-in instance as a test instance and sends
 * "Restore Job State Change"; this function (through its queue, lambda/shared/deferred-queue.ts)
 * checks the restored data and reports:
 *
 * 1. wait until the test instance is Online in Systems Manager (it is booting);
 * 2. send the Verify Restore document to it (ssm-documents/verify-restore.yml), once: the command
 *    itself, found again with ListCommandInvocations, is the only state;
 * 3. when the command ended, read its JSON verdict; tag the recovery point (for EC2 the AMI, with
 *    ec2:CreateTags) `ConsistentBackup:Verified=<result> <time>`; notify a failure (or Clear an
 *    earlier one); and report to AWS Backup with PutRestoreValidationResult, last and once ("Once
 *    a validation status is set, it cannot be changed", "Restore testing validation"), so that a
 *    reported job is a finished one. AWS Backup then deletes the test instance.
 *
 * Fakes in the tests return what the API reference describes: DescribeRestoreJob's
 * CreatedResourceArn is the test instance's ARN and CreatedBy.RestoreTestingPlanArn the plan;
 * GetCommandInvocation's StandardOutputContent holds the first 24,000 characters of stdout.
 */

import {
  type BackupClient,
  DescribeRestoreJobCommand,
  type DescribeRestoreJobCommandOutput,
  ListRestoreJobsCommand,
  PutRestoreValidationResultCommand,
  type RestoreJobsListMember,
  type RestoreValidationStatus,
} from '@aws-sdk/client-backup';
import type { EC2Client } from '@aws-sdk/client-ec2';
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  ListCommandInvocationsCommand,
  SendCommandCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { parseImageArn, readImageTags, writeImageTags } from '../shared/image-tags';
import type { Notification } from '../shared/notification';
import {
  buildVerificationFailedNotification,
  buildVerificationInconclusiveNotification,
  buildVerificationRecoveredNotification,
  type VerificationContext,
  type VerificationResult,
} from '../shared/notifications/protection';
import type { Notifier } from '../shared/notifier';
import { NAME_TAG, RECOVERY_POINT_TAGS } from '../shared/tags';
import type { RestoreValidationSettings } from './settings';

export const RESTORE_JOB_DETAIL_TYPE = 'Restore Job State Change';
/** The input of the hourly rule: AWS Backup delivers its events best-effort, so a sweep catches up. */
export const RESTORE_SWEEP = { kind: 'ec2-consistent-backup/restore-sweep' } as const;
/** Restore job statuses after which the job changes no more (RestoreJobStatus, API reference). */
export const FINAL_RESTORE_STATUSES = ['COMPLETED', 'FAILED', 'ABORTED'] as const;
const FINAL_VALIDATION: readonly string[] = ['SUCCESSFUL', 'FAILED', 'TIMED_OUT'];
const RUNNING_COMMAND = ['Pending', 'InProgress', 'Delayed', 'Cancelling'];

/** The "Restore Job State Change" event (devguide EventBridge examples; restore jobs report `status`). */
export interface RestoreJobEvent {
  readonly 'detail-type'?: string;
  readonly account?: string;
  readonly region?: string;
  readonly time?: string;
  readonly detail?: {
    readonly restoreJobId?: string;
    readonly status?: string;
    readonly restoreTestingPlanArn?: string;
    readonly resourceType?: string;
    readonly createdResourceArn?: string;
    readonly sourceResourceArn?: string;
    readonly recoveryPointArn?: string;
  };
}

/** The Verify Restore document's stdout (ssm-documents/scripts/verify-restore.sh). */
export interface CheckReport {
  readonly status: VerificationResult;
  readonly reason: string;
  readonly filesystems?: readonly {
    readonly device: string;
    readonly mountpoint: string;
    readonly fstype: string;
    readonly fsck: string;
    readonly mounted: boolean;
    readonly detail?: string;
  }[];
  readonly hooks?: readonly {
    readonly name: string;
    readonly exitCode: number;
    readonly verified: boolean;
    readonly output: string;
  }[];
  readonly stopped?: readonly string[];
  /** Packaged applications (AppHooks) installed on the instance with no verify hook of their own. */
  readonly unverifiedApps?: readonly string[];
}

export interface Verdict {
  readonly result: VerificationResult;
  readonly summary: string;
  readonly detail: string;
  readonly validationStatus: RestoreValidationStatus;
}

export interface RestoreDeps {
  readonly backup: Pick<BackupClient, 'send'>;
  readonly ssm: Pick<SSMClient, 'send'>;
  readonly ec2: Pick<EC2Client, 'send'>;
  readonly notifier: Pick<Notifier, 'notifyProblem' | 'clearProblem'>;
  readonly settings: RestoreValidationSettings;
  readonly clock?: () => Date;
}

export type RestoreOutcome =
  | { readonly kind: 'done'; readonly action: 'ignored'; readonly reason: string }
  | {
      readonly kind: 'done';
      readonly action: 'reported';
      readonly verdict: Verdict;
      readonly tagged?: string;
      readonly notifications: readonly Notification[];
    }
  | { readonly kind: 'retry'; readonly reason: string };

const MESSAGE_MAX = 1000;
const clip = (text: string, max = MESSAGE_MAX) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);

/** What the check found, in words an operator acts on. */
export function verdictOf(report: CheckReport): Verdict {
  const fs = (report.filesystems ?? []).map(
    (f) =>
      `${f.mountpoint} ${f.fstype || 'no filesystem'}: fsck ${f.fsck}${f.mounted ? ', mounted read-only' : ''}${f.detail ? ` (${f.detail.replace(/\s+/g, ' ').trim()})` : ''}`,
  );
  const hooks = (report.hooks ?? []).map(
    (h) =>
      `hook ${h.name}: ${h.verified ? 'verified' : `exit ${h.exitCode}`}${h.output ? ` (${h.output.replace(/\s+/g, ' ').trim()})` : ''}`,
  );
  const stopped = report.stopped?.length ? [`stopped before the check: ${report.stopped.join(', ')}`] : [];
  const unverified = report.unverifiedApps?.length
    ? [`no verify hook for ${report.unverifiedApps.join(', ')}: checked as files only`]
    : [];
  const detail = clip(
    [...fs, ...hooks, ...stopped, ...unverified].join('; ') || 'no data filesystem and no verify hook',
    3000,
  );
  const summary = clip(report.reason.replace(/;\s*$/, ''), 300);
  const validationStatus: RestoreValidationStatus = report.status === 'verified' ? 'SUCCESSFUL' : 'FAILED';
  return { result: report.status, summary, detail, validationStatus };
}

function parseReport(stdout: string | undefined): CheckReport | undefined {
  const line = (stdout ?? '')
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  if (!line) return undefined;
  try {
    const r = JSON.parse(line) as CheckReport;
    return ['verified', 'failed', 'inconclusive'].includes(r.status) && typeof r.reason === 'string'
      ? r
      : undefined;
  } catch {
    return undefined;
  }
}

const instanceIdOf = (arn: string | undefined) => /:instance\/(i-[0-9a-f]{8,17})$/.exec(arn ?? '')?.[1];

/** `2026-11-29T05:12Z` */
function stamp(d: Date): string {
  return `${d.toISOString().slice(0, 16)}Z`;
}

export async function handleRestoreEvent(event: RestoreJobEvent, deps: RestoreDeps): Promise<RestoreOutcome> {
  const now = (deps.clock ?? (() => new Date()))();
  const jobId = event.detail?.restoreJobId;
  if (event['detail-type'] !== RESTORE_JOB_DETAIL_TYPE || !jobId) {
    return {
      kind: 'done',
      action: 'ignored',
      reason: `not a restore job event: ${JSON.stringify(event['detail-type'])}`,
    };
  }
  const job = await deps.backup.send(new DescribeRestoreJobCommand({ RestoreJobId: jobId }));
  if (job.CreatedBy?.RestoreTestingPlanArn !== deps.settings.planArn) {
    return {
      kind: 'done',
      action: 'ignored',
      reason: `restore job ${jobId} is not a test of ${deps.settings.planArn}`,
    };
  }
  if (job.ValidationStatus && FINAL_VALIDATION.includes(job.ValidationStatus)) {
    return {
      kind: 'done',
      action: 'ignored',
      reason: `restore job ${jobId} is already reported ${job.ValidationStatus}`,
    };
  }
  if (job.Status === 'FAILED' || job.Status === 'ABORTED') {
    return finish(job, event, deps, now, {
      result: 'inconclusive',
      summary: `the restore job ${job.Status}${job.StatusMessage ? `: ${job.StatusMessage}` : ''}`,
      detail:
        `AWS Backup could not restore the recovery point for the test, so its data was not checked. ${job.StatusMessage ?? ''}`.trim(),
      validationStatus: 'FAILED',
    });
  }
  if (job.Status !== 'COMPLETED') return { kind: 'retry', reason: `restore job ${jobId} is ${job.Status}` };

  const restored = instanceIdOf(job.CreatedResourceArn);
  if (job.ResourceType !== 'EC2' || !restored) {
    return {
      kind: 'done',
      action: 'ignored',
      reason: `restore job ${jobId} restored ${job.CreatedResourceArn}, not an EC2 instance`,
    };
  }
  const eventTime = Date.parse(event.time ?? '');
  const completedAt = job.CompletionDate?.getTime() ?? (Number.isNaN(eventTime) ? now.getTime() : eventTime);

  const listed = await deps.ssm.send(
    new ListCommandInvocationsCommand({
      InstanceId: restored,
      Filters: [{ key: 'DocumentName', value: deps.settings.documentName }],
    }),
  );
  const invocation = [...(listed.CommandInvocations ?? [])].sort(
    (a, b) => (b.RequestedDateTime?.getTime() ?? 0) - (a.RequestedDateTime?.getTime() ?? 0),
  )[0];

  if (!invocation?.CommandId) {
    const info = await deps.ssm.send(
      new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [restored] }] }),
    );
    const online = info.InstanceInformationList?.some(
      (i) => i.InstanceId === restored && i.PingStatus === 'Online',
    );
    if (!online) {
      const waited = (now.getTime() - completedAt) / 60_000;
      if (waited < deps.settings.ssmWaitMinutes) {
        return {
          kind: 'retry',
          reason: `test instance ${restored} is not Online in Systems Manager yet (${Math.floor(waited)} min)`,
        };
      }
      return finish(job, event, deps, now, {
        result: 'inconclusive',
        summary: `test instance ${restored} never came Online in Systems Manager within ${deps.settings.ssmWaitMinutes} min`,
        detail: `The restore completed but the instance's SSM agent did not register, so nothing was checked. It needs an instance profile with AmazonSSMManagedInstanceCore (restoreTestInstanceRoles) and a path to Systems Manager from the test subnet.`,
        validationStatus: 'TIMED_OUT',
      });
    }
    const sent = await deps.ssm.send(
      new SendCommandCommand({
        DocumentName: deps.settings.documentName,
        InstanceIds: [restored],
        Parameters: { RestoreJobId: [jobId], ExpectedInstanceId: [restored], Filesystems: ['auto'] },
        // Not started within this, it does not run (the instance may have gone meanwhile).
        TimeoutSeconds: 600,
        Comment: clip(`ec2-consistent-backup restore test ${jobId}`, 100),
      }),
    );
    // No VALIDATING result here: "Once a validation status is set, it cannot be changed" (AWS
    // Backup guide, "Restore testing validation"), so the one PutRestoreValidationResult is the
    // final one, in finish(). The command sent is the only state until then.
    return { kind: 'retry', reason: `check sent to ${restored} as command ${sent.Command?.CommandId}` };
  }

  if (RUNNING_COMMAND.includes(invocation.Status ?? '')) {
    const sentAt = invocation.RequestedDateTime?.getTime() ?? completedAt;
    const waited = (now.getTime() - sentAt) / 60_000;
    if (waited < deps.settings.commandWaitMinutes) {
      return {
        kind: 'retry',
        reason: `check ${invocation.CommandId} on ${restored} is ${invocation.Status}`,
      };
    }
    return finish(job, event, deps, now, {
      result: 'inconclusive',
      summary: `the check on ${restored} did not finish within ${deps.settings.commandWaitMinutes} min (${invocation.Status})`,
      detail: `Command ${invocation.CommandId} was still ${invocation.Status}.`,
      validationStatus: 'TIMED_OUT',
    });
  }

  const out = await deps.ssm.send(
    new GetCommandInvocationCommand({ CommandId: invocation.CommandId, InstanceId: restored }),
  );
  const report = parseReport(out.StandardOutputContent);
  if (!report || out.Status !== 'Success') {
    return finish(job, event, deps, now, {
      result: 'inconclusive',
      summary: `the check on ${restored} ended ${out.Status}${report ? '' : ' without a verdict'}`,
      detail: clip(
        `Command ${invocation.CommandId} ${out.StatusDetails ?? out.Status}, exit ${out.ResponseCode}. stderr: ${(out.StandardErrorContent ?? '').trim().slice(-1500) || '(none)'}`,
        3000,
      ),
      validationStatus: out.Status === 'TimedOut' ? 'TIMED_OUT' : 'FAILED',
    });
  }
  return finish(job, event, deps, now, verdictOf(report));
}

async function finish(
  job: DescribeRestoreJobCommandOutput,
  event: RestoreJobEvent,
  deps: RestoreDeps,
  now: Date,
  verdict: Verdict,
): Promise<RestoreOutcome> {
  const jobId = job.RestoreJobId ?? event.detail?.restoreJobId ?? 'unknown';
  const recoveryPointArn = job.RecoveryPointArn ?? event.detail?.recoveryPointArn ?? 'unknown';
  const image = parseImageArn(recoveryPointArn);
  const tags = (image && (await readImageTags(deps.ec2, image.imageId))) || {};
  const context: VerificationContext = {
    accountId: event.account ?? job.AccountId ?? '',
    region: event.region ?? image?.region ?? '',
    instanceId:
      instanceIdOf(job.SourceResourceArn ?? event.detail?.sourceResourceArn) ??
      tags[RECOVERY_POINT_TAGS.instance] ??
      'unknown',
    instanceName: tags[NAME_TAG],
    restoreJobId: jobId,
    restoredInstanceId: instanceIdOf(job.CreatedResourceArn),
    recoveryPointArn,
    consistency: tags[RECOVERY_POINT_TAGS.consistency],
    result: verdict.result,
    summary: verdict.summary,
    detail: verdict.detail,
  };
  let tagged: string | undefined;
  if (image && Object.keys(tags).length > 0) {
    tagged = `${verdict.result} ${stamp(now)}`;
    await writeImageTags(deps.ec2, image.imageId, { [RECOVERY_POINT_TAGS.verified]: tagged });
  }
  const notifications: Notification[] = [];
  const eventId = `restore:${jobId}`;
  if (verdict.result === 'verified') {
    const clear = await deps.notifier.clearProblem(context.instanceId, 'verification', (problem) =>
      buildVerificationRecoveredNotification(problem, context, now),
    );
    if (clear) notifications.push(clear);
  } else {
    const n =
      verdict.result === 'failed'
        ? buildVerificationFailedNotification(context, now)
        : buildVerificationInconclusiveNotification(context, now);
    if (await deps.notifier.notifyProblem(n, context.instanceName, eventId, now)) notifications.push(n);
  }
  // Last: a job reported to AWS Backup is one whose tag and notification are done.
  if (job.Status === 'COMPLETED') {
    await deps.backup.send(
      new PutRestoreValidationResultCommand({
        RestoreJobId: jobId,
        ValidationStatus: verdict.validationStatus,
        ValidationStatusMessage: clip(`${verdict.result}: ${verdict.summary}`),
      }),
    );
  }
  return { kind: 'done', action: 'reported', verdict, tagged, notifications };
}

/** The last delivery failed with an error: report the restore test as not verified rather than drop it. */
export async function reportLastAttempt(body: unknown, err: unknown, deps: RestoreDeps): Promise<void> {
  const event = body as RestoreJobEvent;
  const jobId = event.detail?.restoreJobId;
  if (!jobId) return;
  const now = (deps.clock ?? (() => new Date()))();
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  const job: DescribeRestoreJobCommandOutput = {
    $metadata: {},
    RestoreJobId: jobId,
    RecoveryPointArn: event.detail?.recoveryPointArn,
    SourceResourceArn: event.detail?.sourceResourceArn,
    CreatedResourceArn: event.detail?.createdResourceArn,
    Status: event.detail?.status as DescribeRestoreJobCommandOutput['Status'],
  };
  await finish(job, event, deps, now, {
    result: 'inconclusive',
    summary: `the restore-validation function failed on every attempt: ${clip(message, 200)}`,
    detail: message,
    validationStatus: 'FAILED',
  });
}

/**
 * The hourly catch-up for restore job events EventBridge did not deliver: every restore job of our
 * plan from the last two days that completed without a final validation result goes through
 * handleRestoreEvent (the state is in AWS: the command, the validation status), and every one that
 * failed in the last two hours (so at most twice) is reported (its notification goes out once).
 */
export async function sweepRestoreJobs(
  deps: RestoreDeps,
): Promise<{ readonly looked: number; readonly outcomes: readonly string[] }> {
  const now = (deps.clock ?? (() => new Date()))();
  const jobs: RestoreJobsListMember[] = [];
  let next: string | undefined;
  do {
    const page: { RestoreJobs?: RestoreJobsListMember[]; NextToken?: string } = await deps.backup.send(
      new ListRestoreJobsCommand({
        ByRestoreTestingPlanArn: deps.settings.planArn,
        ByCreatedAfter: new Date(now.getTime() - 2 * 86_400_000),
        NextToken: next,
      }),
    );
    jobs.push(...(page.RestoreJobs ?? []));
    next = page.NextToken;
  } while (next);
  const outcomes: string[] = [];
  for (const job of jobs) {
    const recentlyFailed =
      (job.Status === 'FAILED' || job.Status === 'ABORTED') &&
      now.getTime() - (job.CompletionDate?.getTime() ?? 0) < 2 * 3_600_000;
    const unreported = job.Status === 'COMPLETED' && !FINAL_VALIDATION.includes(job.ValidationStatus ?? '');
    if (!job.RestoreJobId || !(recentlyFailed || unreported)) continue;
    const outcome = await handleRestoreEvent(
      {
        'detail-type': RESTORE_JOB_DETAIL_TYPE,
        account: job.AccountId,
        time: job.CompletionDate?.toISOString(),
        detail: {
          restoreJobId: job.RestoreJobId,
          status: job.Status,
          restoreTestingPlanArn: deps.settings.planArn,
          recoveryPointArn: job.RecoveryPointArn,
          sourceResourceArn: job.SourceResourceArn,
          createdResourceArn: job.CreatedResourceArn,
        },
      },
      deps,
    );
    outcomes.push(
      `${job.RestoreJobId}: ${outcome.kind === 'retry' ? `waiting (${outcome.reason})` : outcome.action}`,
    );
  }
  return { looked: jobs.length, outcomes };
}
