/** The named scenarios, shared by the tests and `npm run bench:workflow`. */

import type { Scenario } from './workflow-sim';

const always = (op: string, kind: 'throttle' | 'error') => (o: string) => (o === op ? { kind } : undefined);

export const SCENARIOS: Readonly<
  Record<string, { readonly scenario: Scenario; readonly config?: Record<string, unknown> }>
> = {
  'linux success': { scenario: { snapshotDelayMs: 2000 } },
  'linux success, snapshots after 9.5 s, slow hooks (3 s)': {
    scenario: { snapshotDelayMs: 9500, freezeMs: 3000 },
  },
  'linux success, no hooks': { scenario: { snapshotDelayMs: 2000, hooksConfigured: false } },
  'freeze fails, policy crash-consistent': { scenario: { freezeResult: 'error', snapshotDelayMs: 2000 } },
  'freeze fails, policy skip': {
    scenario: { freezeResult: 'error', onFreezeFailure: 'skip', snapshotDelayMs: 2000 },
  },
  'freeze output unreadable': { scenario: { freezeResult: 'garbage', snapshotDelayMs: 2000 } },
  'nothing to freeze': { scenario: { freezeResult: 'nothing-to-freeze', snapshotDelayMs: 2000 } },
  'StartBackupJob error': {
    scenario: { snapshotDelayMs: 2000, faults: always('backup.StartBackupJob', 'error') },
  },
  'snapshots never start (budget)': { scenario: { snapshotDelayMs: null } },
  'job FAILED': { scenario: { snapshotDelayMs: 30_000, jobFailsAfterMs: 4000 } },
  'thaw fails': { scenario: { snapshotDelayMs: 2000, thawFailures: 99 } },
  'thaw fails once, retried': { scenario: { snapshotDelayMs: 2000, thawFailures: 1 } },
  'active job skip': { scenario: { activeJob: true } },
  'stopped instance': { scenario: { instanceState: 'stopped', snapshotDelayMs: 2000 } },
  'windows success': { scenario: { platform: 'windows', snapshotDelayMs: 2000 } },
  'windows VSS install fails': {
    scenario: { platform: 'windows', snapshotDelayMs: 2000, faults: always('sfn.InstallVss', 'error') },
    config: { installVssComponents: true },
  },
  'record-outcome down': {
    scenario: { snapshotDelayMs: 2000, faults: always('lambda.Record Outcome', 'error') },
  },
};
