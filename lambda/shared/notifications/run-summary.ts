/**
 * The one message per run and account/region: OK when every started instance got a consistent
 * backup, Warning otherwise or when the summary deadline passed first.
 */

import { type Notification, type Severity, SUMMARY_CLASS } from '../notification';
import type { ExclusionReason } from '../outcome';
import { assemble } from './assemble';

/** The counts of one run. */
export interface RunCounts {
  readonly runId: string;
  readonly window: string;
  readonly accountId: string;
  readonly region: string;
  /** Undefined when discovery never reported (it failed): the summary says so. */
  readonly discovered?: number;
  readonly excluded: Readonly<Partial<Record<ExclusionReason, number>>>;
  readonly started?: number;
  readonly finished: number;
  readonly application: number;
  readonly filesystem: number;
  readonly fellBack: number;
  readonly skipped: number;
  readonly failed: number;
  /** Copies to other Regions or accounts counted so far (lambda/copy-jobs); absent when none were counted. */
  readonly copies?: { readonly started: number; readonly completed: number; readonly failed: number };
}

/** One message per run: OK when every started instance got a consistent backup, Warning otherwise. */
export function buildRunSummaryNotification(
  counts: RunCounts,
  reason: 'finished' | 'deadline',
  now: Date,
): Notification {
  const excludedTotal = Object.values(counts.excluded).reduce((a, b) => a + (b ?? 0), 0);
  const excludedText =
    excludedTotal === 0
      ? '0'
      : `${excludedTotal} (${Object.entries(counts.excluded)
          .filter(([, n]) => (n ?? 0) > 0)
          .map(([r, n]) => `${r} ${n}`)
          .join(', ')})`;
  const unfinished = counts.started === undefined ? undefined : Math.max(0, counts.started - counts.finished);
  // A summary sent by the deadline is never OK: something did not report in time.
  const backupsClean =
    reason === 'finished' &&
    counts.failed === 0 &&
    counts.fellBack === 0 &&
    counts.skipped === 0 &&
    (unfinished ?? 1) === 0 &&
    counts.discovered !== undefined;
  const copiesFailed = counts.copies?.failed ?? 0;
  const clean = backupsClean && copiesFailed === 0;
  const copiesOnly = backupsClean && copiesFailed > 0;
  const severity: Severity = clean ? 'OK' : 'Warning';
  const started = counts.started ?? 'unknown (discovery did not report)';
  const line = `discovered ${counts.discovered ?? 'unknown'}, excluded ${excludedText}, started ${started}, application-consistent ${counts.application}, filesystem-consistent ${counts.filesystem}, fell back ${counts.fellBack}, skipped ${counts.skipped}, failed ${counts.failed}`;
  // Copies finish after the backup jobs, usually after this summary: these are the counts so far,
  // and every failed copy has its own notification.
  const copies = counts.copies
    ? ` Copies so far: started ${counts.copies.started}, completed ${counts.copies.completed}, failed ${counts.copies.failed}.`
    : '';
  const deadline =
    reason === 'deadline'
      ? ` The summary deadline passed with ${unfinished ?? 'an unknown number of'} execution(s) unfinished.`
      : '';
  return assemble({
    eventType: 'run-summary',
    severity,
    accountId: counts.accountId,
    region: counts.region,
    node: `${counts.accountId}/${counts.region}`,
    problemClass: SUMMARY_CLASS,
    subject: `Run ${counts.window}: ${counts.application + counts.filesystem}/${started} consistent, ${counts.failed} failed, ${counts.fellBack} fell back`,
    happened: `Backup run for window ${counts.window}: ${line}.${copies}${deadline}`,
    means: clean
      ? 'Every started instance has a consistent recovery point for this window.'
      : copiesOnly
        ? `Every started instance has a consistent recovery point for this window, but ${copiesFailed} copy job(s) to another Region or account failed; each has its own notification.`
        : 'Some instances have no consistent recovery point for this window; each has its own notification with the reason.',
    todo: clean
      ? 'Nothing.'
      : 'Work through the per-instance alerts (Critical first). Unfinished executions are visible in the Step Functions console.',
    info: {
      run_id: counts.runId,
      window: counts.window,
      summary_reason: reason,
      discovered: counts.discovered === undefined ? 'unknown' : counts.discovered,
      excluded: JSON.stringify(counts.excluded),
      started: counts.started === undefined ? 'unknown' : counts.started,
      finished: counts.finished,
      unfinished: unfinished === undefined ? 'unknown' : unfinished,
      application_consistent: counts.application,
      filesystem_consistent: counts.filesystem,
      fell_back: counts.fellBack,
      skipped: counts.skipped,
      failed: counts.failed,
      copies_started: counts.copies?.started,
      copies_completed: counts.copies?.completed,
      copies_failed: counts.copies?.failed,
    },
    now,
  });
}
