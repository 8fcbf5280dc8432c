import { describe, expect, it } from 'vitest';
import { readCommandResultsSettings } from '../../../lambda/command-results/settings';

const ENV = {
  COORDINATION_TABLE_NAME: 'Backup-Coordination',
  FREEZE_DOCUMENT_NAME: 'Backup-Freeze',
  THAW_DOCUMENT_NAME: 'Backup-Thaw',
  GET_INVOCATION_PER_SECOND: '3.333',
  LIST_INVOCATIONS_PER_SECOND: '1.333',
  SEND_TASK_PER_SECOND: '16.667',
  SWEEP_SECONDS: '45',
};

describe('command-results settings', () => {
  it('reads what lib/command-results.ts sets', () => {
    expect(readCommandResultsSettings(ENV)).toEqual({
      tableName: 'Backup-Coordination',
      freezeDocument: 'Backup-Freeze',
      thawDocument: 'Backup-Thaw',
      getInvocationPerSecond: 3.333,
      listInvocationsPerSecond: 1.333,
      sendTaskPerSecond: 16.667,
      sweepSeconds: 45,
    });
  });

  it('names the variable, its value and what is allowed', () => {
    expect(() => readCommandResultsSettings({ ...ENV, GET_INVOCATION_PER_SECOND: '0' })).toThrow(
      'Environment variable GET_INVOCATION_PER_SECOND is "0"; allowed: a number of calls per second, above 0 and at most 1000.',
    );
    expect(() => readCommandResultsSettings({ ...ENV, THAW_DOCUMENT_NAME: undefined })).toThrow(
      /THAW_DOCUMENT_NAME is undefined; allowed: an SSM document name/,
    );
  });
});
