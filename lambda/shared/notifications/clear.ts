/**
 * The Clear message that closes an open per-instance problem once a later backup job proves the
 * instance has a consistent backup again (same message_key, so the alert closes).
 */

import type { Notification, NotificationEventType, ProblemClass } from '../notification';
import { assemble, describeInstance, instanceNode } from './assemble';
import { type JobContext, jobInfo } from './backup-job';

/** An open problem, as the notifier stores it. */
export interface OpenProblem {
  readonly accountId: string;
  readonly region: string;
  readonly instanceId: string;
  readonly instanceName?: string;
  readonly problemClass: ProblemClass;
  readonly eventType: NotificationEventType;
}

/** Closes one open problem: same message_key, severity Clear. */
export function buildClearNotification(problem: OpenProblem, job: JobContext, now: Date): Notification {
  const who = describeInstance(problem.instanceId, problem.instanceName ?? job.instanceName);
  return assemble({
    eventType: 'problem-cleared',
    severity: 'Clear',
    accountId: problem.accountId,
    region: problem.region,
    node: instanceNode(problem.instanceId, problem.instanceName ?? job.instanceName),
    instanceId: problem.instanceId,
    problemClass: problem.problemClass,
    subject: `Recovered: ${who} has ${job.verdict.consistency === 'application' ? 'an' : 'a'} ${job.verdict.consistency}-consistent backup again`,
    happened: `Backup job ${job.backupJobId} for ${who} (window ${job.window}) completed ${job.verdict.consistency}-consistent.`,
    means: `The earlier "${problem.eventType}" problem no longer affects this instance's backups.`,
    todo: 'Nothing. The alert closes with this event.',
    info: {
      ...jobInfo(job, 'COMPLETED', undefined, job.verdict.consistency),
      cleared_event_type: problem.eventType,
      cleared_by: job.backupJobId,
    },
    now,
  });
}
