import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Notification, SEVERITIES, validateNotification } from '../../../lambda/shared/notification';

const doc = readFileSync(path.join(__dirname, '../../../docs/notifications.md'), 'utf8');
const examples = [...doc.matchAll(/^### (\w+)\n\n```json\n([\s\S]*?)\n```/gm)].map(
  ([, severity, json]) => [severity, JSON.parse(json) as Notification] as const,
);

describe('docs/notifications.md examples', () => {
  it('has one example per severity', () => {
    expect(examples.map(([severity]) => severity).sort()).toEqual([...SEVERITIES].sort());
  });

  it.each(examples)('the %s example is a valid notification of that severity', (severity, n) => {
    expect(validateNotification(n)).toEqual([]);
    expect(n.severity).toBe(severity);
  });
});
