/**
 * The Minor message for an opted-in instance discovery left out of a window, with what to do for
 * each exclusion reason.
 */

import type { Notification } from '../notification';
import {
  type DiscoverySummary,
  type ExcludedInstance,
  type ExclusionReason,
  MAX_FREEZE_VOLUMES,
} from '../outcome';
import { assemble, describeInstance, instanceNode } from './assemble';

const EXCLUSION_ADVICE: Readonly<Record<ExclusionReason, string>> = {
  'ssm-offline':
    'Start the SSM agent or restore its network path (VPC endpoints or internet access to ssm, ssmmessages, ec2messages).',
  'ssm-not-managed':
    'Attach an instance profile with AmazonSSMManagedInstanceCore (or equivalent) and make sure the SSM agent is installed.',
  'no-ebs-volumes': 'Only EBS-backed instances can be backed up; remove the opt-in tag if this is expected.',
  'invalid-tag': 'Correct the named tag value, or remove the tag to use the defaults.',
  'unsupported-state':
    'Instances are backed up only when running or stopped; this clears once the instance settles.',
  'unsupported-platform': 'Only Linux and Windows instances are supported; remove the opt-in tag.',
  'too-many-volumes': `Detach volumes this backup does not need, or back the instance up with a plain AWS Backup plan (crash-consistent); the freeze document takes at most ${MAX_FREEZE_VOLUMES} volumes.`,
  'stagger-limit':
    "Raise maxFrozenPerGroup or split the group (ConsistentBackup:Group tag) so that every wave starts within the workflow's stagger limit.",
};

/** The Minor notification for one instance discovery left out. */
export function buildExclusionNotification(
  summary: DiscoverySummary,
  excluded: ExcludedInstance,
  now: Date,
): Notification {
  const who = describeInstance(excluded.instanceId, excluded.instanceName);
  return assemble({
    eventType: 'instance-not-ready',
    severity: 'Minor',
    accountId: summary.accountId,
    region: summary.region,
    node: instanceNode(excluded.instanceId, excluded.instanceName),
    instanceId: excluded.instanceId,
    problemClass: 'readiness',
    subject: `${who} not ready for consistent backup: ${excluded.reason}`,
    happened: `${who} is opted in but was left out of window ${summary.window}: ${excluded.detail}`,
    means: 'This instance got no backup from ec2-consistent-backup this window.',
    todo: EXCLUSION_ADVICE[excluded.reason],
    info: {
      instance_id: excluded.instanceId,
      instance_name: excluded.instanceName,
      run_id: summary.runId,
      window: summary.window,
      exclusion_reason: excluded.reason,
      error: excluded.detail,
    },
    now,
  });
}
