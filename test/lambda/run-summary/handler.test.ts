import { afterEach, describe, expect, it, vi } from 'vitest';
import { expectValidPublish, harness, REGION, summary, TABLE, TOPIC } from '../notifications/fixtures';

afterEach(() => {
  vi.resetModules();
  vi.unstubAllEnvs();
  vi.useRealTimers();
});

describe('run-summary handler', () => {
  it('sends the summaries of overdue runs and nothing else', async () => {
    const h = harness(new Date('2026-11-22T02:05:00Z'));
    try {
      await h.notifier.recordDiscovery(summary({ runId: 'overdue', discovered: 2, started: 2 }), []);
      h.at('2026-11-22T05:00:00Z');
      await h.notifier.recordDiscovery(summary({ runId: 'recent', discovered: 2, started: 2 }), []);
      vi.stubEnv('NOTIFICATION_TOPIC_ARN', TOPIC);
      vi.stubEnv('NOTIFICATION_TABLE_NAME', TABLE);
      vi.stubEnv('SUMMARY_DEADLINE_MINUTES', '240');
      vi.stubEnv('AWS_REGION', REGION);
      vi.useFakeTimers({ now: new Date('2026-11-22T06:10:00Z'), toFake: ['Date'] });
      const { handler } = await import('../../../lambda/run-summary/handler');
      expect(await handler()).toEqual({ summariesSent: ['overdue'] });
      expect(await handler()).toEqual({ summariesSent: [] });
      const s = expectValidPublish(h.published[0]);
      expect(s.event.additional_info).toMatchObject({
        run_id: 'overdue',
        summary_reason: 'deadline',
        unfinished: '2',
      });
      expect(h.published).toHaveLength(1);
    } finally {
      h.snsMock.restore();
      h.dynamodbMock.restore();
    }
  });
});
