import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readDeadLetter } from '../../../lambda/dead-letters/dead-letters';
import { type Notification, validateNotification } from '../../../lambda/shared/notification';
import { buildDiscoveryFailureNotification } from '../../../lambda/shared/notifications/discovery-failure';
import { handOverPayload, invocationRecord, SETTINGS } from './samples';

const doc = readFileSync(path.join(__dirname, '../../../docs/notifications.md'), 'utf8');
const match = /^### Major: discovery hand-over failed\n\n[\s\S]*?```json\n([\s\S]*?)\n```/m.exec(doc);

describe('docs/notifications.md discovery failure example', () => {
  it('is there, and is a valid notification', () => {
    expect(match, 'the "### Major: discovery hand-over failed" example').not.toBeNull();
    const example = JSON.parse(match?.[1] ?? '{}') as Notification;
    expect(validateNotification(example)).toEqual([]);
  });

  it('is exactly what the builder makes of that hand-over failure, so it cannot drift', () => {
    const failure = readDeadLetter(
      invocationRecord({
        payload: handOverPayload({ invocation: 3 }),
        errorType: 'HandOverError',
        errorMessage:
          'Run run-20261122T0200Z could not hand over 812 instances to invocation 4: TooManyRequestsException: Rate Exceeded.',
      }),
      SETTINGS,
    ).failure;
    const built = buildDiscoveryFailureNotification(failure, new Date('2026-11-22T02:15:03Z'));
    expect(JSON.parse(match?.[1] ?? '{}')).toEqual(built);
  });

  it('is not counted as a second Major by the one-example-per-severity check', () => {
    const perSeverity = [...doc.matchAll(/^### (\w+)\n\n```json\n/gm)].map(([, severity]) => severity);
    expect(perSeverity.filter((s) => s === 'Major')).toHaveLength(1);
  });
});
