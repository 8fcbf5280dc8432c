/**
 * Waiting, while frozen, until every attached volume has a snapshot that started at or after the
 * freeze (its point in time is then fixed), the job fails, or the freeze budget runs out: the part
 * of Start Backup Job that a shared poller (task token) will take over at fleet scale.
 */

import { type BackupClient, DescribeBackupJobCommand } from '@aws-sdk/client-backup';
import { DescribeSnapshotsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { FAILED_JOB_STATES } from '../shared/backup-jobs';
import {
  backoffMs,
  type Clock,
  callWithin,
  isTransient,
  POLL_CALL_MS,
  type PollSchedule,
  pollDelayMs,
  toMs,
} from '../shared/calls';
import { parseFreezeOutput } from '../shared/verdict';
import { budgetStartMs, type SnapshotWaitResult } from '../shared/workflow-results';

/** What the wait answers; the step adds who answered. */
export type SnapshotWait = Omit<SnapshotWaitResult, 'answeredBy'>;

export interface WaitForSnapshotsRequest {
  readonly volumeIds: readonly string[];
  /** The freeze command's result (waitForCommand), whose stdout says when the freeze happened. */
  readonly freeze: unknown;
  /** The StartBackupJob response. */
  readonly backupJob: unknown;
  readonly freezeBudgetSeconds: number;
  /** Seconds kept back from the budget for the thaw to reach the instance. */
  readonly thawMarginSeconds: number;
  /** The conservative freeze time of the freeze step (FreezeStepResult.frozenAtAwsMs), when known. */
  readonly frozenAtAwsMs?: number;
}

/**
 * Snapshot polls while frozen. Frozen time is what users fear, and AWS Backup usually starts the
 * snapshots 1-3 s after StartBackupJob, so the first 5 s are polled every 250 ms (a snapshot is
 * noticed ~125 ms after it starts on average, instead of ~500 ms at 1 s), then every second.
 *
 * Request rate. Each poll is one DescribeSnapshots (one page: the volume filter returns a few
 * snapshots per volume); DescribeBackupJob is asked at most once a second (JOB_CHECK_MS), since a
 * failed job only ends the wait early. One freeze therefore makes about 20 DescribeSnapshots in the
 * fast phase and 1/s after it, plus at most 1 DescribeBackupJob/s: about 9 DescribeSnapshots for a
 * typical 2 s wait (3 at the earlier 1 s polls). At 1,000 concurrent freezes that is up to 4,000
 * DescribeSnapshots/s in the fast phase (1,000/s at 1 s polls) and up to 1,000 DescribeBackupJob/s.
 * Both are far above EC2's documented default for non-mutating calls (bucket 100, refill 20/s per
 * API), and no per-instance schedule fits 1,000 concurrent freezes under it (20/s over 1,000
 * freezes is one poll per 50 s each). So at that scale the account's bucket, not this schedule,
 * sets the pace: a RequestLimitExceeded or a throttled DescribeBackupJob backs off with full jitter
 * and drops this wait to the 1 s schedule for good, so a throttled account sheds load rather than
 * amplifying it; freezes then last longer, up to the freeze budget, after which the backup is
 * labelled crash with the reason. Concurrency is what discovery's start pacing (StartExecution at
 * <= 300/s) and group waves make it: about start rate x freeze length, several hundred for an
 * ungrouped fleet. A fleet that large needs one shared snapshot poller rather than one per freeze.
 */
export const SNAPSHOT_POLL: PollSchedule = { fastMs: 250, fastForMs: 5000, slowMs: 1000, jitter: 0.2 };
/** DescribeBackupJob at most this often: it only detects a failed job. */
export const JOB_CHECK_MS = 1000;

export async function waitForSnapshots(
  clients: { ec2: Pick<EC2Client, 'send'>; backup: Pick<BackupClient, 'send'> },
  clock: Clock,
  request: WaitForSnapshotsRequest,
  random: () => number = Math.random,
): Promise<SnapshotWait> {
  const started = clock.now();
  const volumeIds = [...new Set(request.volumeIds)];
  const freezeStdout = (request.freeze as { stdout?: unknown } | undefined)?.stdout;
  const freeze = parseFreezeOutput(freezeStdout);
  const result = (
    status: SnapshotWaitResult['status'],
    snapshots: SnapshotWaitResult['snapshots'],
    jobState?: string,
    jobStatusMessage?: string,
  ): SnapshotWait => ({
    status,
    snapshots,
    missingVolumeIds: volumeIds.filter((v) => !snapshots.some((s) => s.volumeId === v)),
    ...(jobState ? { jobState } : {}),
    ...(jobStatusMessage ? { jobStatusMessage: jobStatusMessage.slice(0, 500) } : {}),
    waitedMs: clock.now() - started,
  });
  if (!freeze || (freeze.status === 'frozen' && freeze.frozenAtMs === undefined)) {
    return result('freeze-output-invalid', []);
  }
  if (freeze.status !== 'frozen') return result('not-frozen', []);
  const frozenAtMs = freeze.frozenAtMs as number;
  const deadline =
    budgetStartMs(Math.min(frozenAtMs, request.frozenAtAwsMs ?? Infinity), started) +
    (request.freezeBudgetSeconds - request.thawMarginSeconds) * 1000;
  const backupJobId = (request.backupJob as { BackupJobId?: unknown } | undefined)?.BackupJobId;
  // Every call is cut to the time left: a hung DescribeSnapshots cannot hold the filesystems frozen.
  const within = <T>(call: (s: AbortSignal) => Promise<T>) =>
    callWithin(clock, Math.max(1, Math.min(POLL_CALL_MS, deadline - clock.now())), call);
  const firstSeen = new Map<string, number>();

  let found: SnapshotWaitResult['snapshots'] = [];
  let jobState: string | undefined;
  let attempt = 0;
  let throttled = false;
  let jobCheckedAt = -Infinity;
  for (;;) {
    // Past the deadline not even one more call: the thaw comes first.
    if (deadline - clock.now() <= 0) return result('budget-exceeded', found, jobState);
    try {
      const listed = await startedSnapshots(clients.ec2, volumeIds, frozenAtMs, within);
      const seenAt = clock.now();
      found = listed.map((snap) => {
        const key = `${snap.volumeId}/${snap.snapshotId}`;
        if (!firstSeen.has(key)) firstSeen.set(key, seenAt);
        return { ...snap, seenAtMs: firstSeen.get(key) as number };
      });
      if (found.length === volumeIds.length) return result('started', found, jobState);
      if (typeof backupJobId === 'string' && clock.now() - jobCheckedAt >= JOB_CHECK_MS) {
        jobCheckedAt = clock.now();
        if (deadline - clock.now() <= 0) return result('budget-exceeded', found, jobState);
        const job = await within((s) =>
          clients.backup.send(new DescribeBackupJobCommand({ BackupJobId: backupJobId }), { abortSignal: s }),
        );
        jobState = job.State;
        if (jobState && FAILED_JOB_STATES.includes(jobState)) {
          return result('job-failed', found, jobState, job.StatusMessage);
        }
      }
      attempt = 0;
    } catch (err) {
      if (!isTransient(err)) throw err;
      attempt += 1;
      throttled = true;
    }
    const remaining = deadline - clock.now();
    if (remaining <= 0) return result('budget-exceeded', found, jobState);
    const delay =
      attempt > 0
        ? SNAPSHOT_POLL.slowMs + backoffMs(attempt, 500, 4000, random)
        : pollDelayMs(SNAPSHOT_POLL, clock.now() - started, random, throttled);
    await clock.sleep(Math.min(delay, remaining));
  }
}

/**
 * One snapshot per volume that started at or after the freeze. A snapshot's point in time is fixed
 * when it starts (state pending), so completion is not awaited; an `error` snapshot does not count.
 */
async function startedSnapshots(
  ec2: Pick<EC2Client, 'send'>,
  volumeIds: readonly string[],
  frozenAtMs: number,
  within: <T>(call: (s: AbortSignal) => Promise<T>) => Promise<T>,
): Promise<{ volumeId: string; snapshotId: string; startTime: string }[]> {
  const byVolume = new Map<string, { volumeId: string; snapshotId: string; startTime: string }>();
  let NextToken: string | undefined;
  do {
    const token = NextToken;
    const page = await within((s) =>
      ec2.send(
        new DescribeSnapshotsCommand({
          OwnerIds: ['self'],
          Filters: [{ Name: 'volume-id', Values: [...volumeIds] }],
          NextToken: token,
        }),
        { abortSignal: s },
      ),
    );
    for (const s of page.Snapshots ?? []) {
      const startMs = toMs(s.StartTime);
      if (!s.VolumeId || !s.SnapshotId || startMs === undefined || s.State === 'error') continue;
      if (startMs < frozenAtMs || !volumeIds.includes(s.VolumeId) || byVolume.has(s.VolumeId)) continue;
      byVolume.set(s.VolumeId, {
        volumeId: s.VolumeId,
        snapshotId: s.SnapshotId,
        startTime: new Date(startMs).toISOString(),
      });
    }
    NextToken = page.NextToken;
  } while (NextToken);
  return [...byVolume.values()];
}
