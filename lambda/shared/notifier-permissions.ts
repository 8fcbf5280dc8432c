/**
 * What each use of the notifier (lambda/shared/notifier.ts) does to its DynamoDB state table, in
 * IAM action names, so that lib/notifications.ts grants a function only the actions of the
 * operations its handler performs. Kept free of SDK imports: the CDK app reads it.
 *
 * A TransactWriteItems needs the action of every item in it (PutItem, UpdateItem, DeleteItem,
 * ConditionCheckItem), not an action of its own. test/lambda/notifications/permissions.test.ts runs
 * each operation against the table fake, through its success and failure paths, and fails if it
 * calls anything its list does not hold: change the notifier, and this list changes with it.
 */

export const NOTIFIER_OPERATIONS = {
  /** record-outcome: Notifier.recordOutcome (mark and count on a shard in one transaction, undone on failure; the job, the problem, the mark's confirmation; a repeat reads the mark; reads the run's collection to finish it). */
  'record-outcomes': {
    table: [
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:Query',
    ],
    pendingRunsIndex: [],
  },
  /** discovery: Notifier.recordDiscovery (exclusions as problems, the run's expected count; reads the run's collection to finish it). */
  'record-discovery': { table: ['dynamodb:UpdateItem', 'dynamodb:Query'], pendingRunsIndex: [] },
  /** job-events: getJob, claimFinalState, releaseFinalState, notifyProblem, clearProblems (which queries the instance's open problems). */
  'finalize-jobs': {
    table: ['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:Query', 'dynamodb:DeleteItem'],
    pendingRunsIndex: [],
  },
  /** run-summary: Notifier.sweepOverdueRuns (queries the sparse index of pending runs, sums each run's collection, sends and marks). */
  'sweep-runs': { table: ['dynamodb:UpdateItem', 'dynamodb:Query'], pendingRunsIndex: ['dynamodb:Query'] },
  /** copy-jobs: countCopy (a once-only mark and the run's counter in one transaction), notifyProblem, clearProblem. */
  'track-copies': {
    table: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
    pendingRunsIndex: [],
  },
  /** restore-validation: notifyProblem and clearProblem (reads the open problem, deletes it as read). */
  'verify-restores': {
    table: ['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
    pendingRunsIndex: [],
  },
  /** Notifier.publish alone (dead-letters, the ServiceNow forwarder's failures): SNS only. */
  'publish-only': { table: [], pendingRunsIndex: [] },
} as const satisfies Record<string, { table: readonly string[]; pendingRunsIndex: readonly string[] }>;

export type NotifierOperation = keyof typeof NOTIFIER_OPERATIONS;

/** The DynamoDB actions a set of operations needs, on the table and on the pending-runs index. */
export function tableActions(operations: readonly NotifierOperation[]): {
  table: string[];
  pendingRunsIndex: string[];
} {
  const table = new Set<string>();
  const index = new Set<string>();
  for (const op of operations) {
    for (const a of NOTIFIER_OPERATIONS[op].table) table.add(a);
    for (const a of NOTIFIER_OPERATIONS[op].pendingRunsIndex) index.add(a);
  }
  return { table: [...table].sort(), pendingRunsIndex: [...index].sort() };
}
