/**
 * Issue 13 items 5 and 6: every failure reaches SNS once, whoever publishes it (record-outcome's
 * notifier, the state machine's last resort, the execution-events rule, job-events), judged by
 * what the simulated SNS accepted.
 */
import { describe, expect, it } from 'vitest';
import { synthWorkflow } from '../../sim/asl';
import { generate } from '../../sim/fault-schedules';
import { aslFor } from '../../sim/fault-suite';
import { runScenario } from '../../sim/workflow-sim';

const asl = synthWorkflow({}).asl;
/** The fast engine: it reports the execution's error name, as its status change event carries it. */
const run = (scenario: Parameters<typeof runScenario>[1]) =>
  runScenario(asl, scenario, 1, { engine: 'interpreter' });
const about = (r: Awaited<ReturnType<typeof runScenario>>) =>
  r.sns.map((m) => `${m.via}: ${m.message?.severity} ${m.message?.eventType}`);

describe('one message per failure', () => {
  it('record-outcome notified, then its task timed out every time: the last resort reads the confirmed mark and publishes nothing', async () => {
    const r = await run({
      freezeResult: 'error',
      onFreezeFailure: 'skip',
      // The function runs (and notifies), then the task times out: on every attempt.
      faults: (op) => (op === 'lambda.Record Outcome' ? { kind: 'timeout' } : undefined),
    });
    expect(about(r)).toEqual(['notifier: Major skipped-freeze-failed']);
    expect(r.statesEntered).toContain('Read Outcome Mark');
    expect(r.error).toMatch(/OutcomeAlreadyNotified/);
    expect(r.executionEvents.attempts).toEqual(['already-notified']);
  });

  it('thaw failed, notified Critical, then Record Outcome timed out: the confirmed Critical stands alone', async () => {
    const r = await run({
      thawFailures: 99,
      faults: (op) => (op === 'lambda.Record Outcome' ? { kind: 'timeout' } : undefined),
    });
    expect(about(r)).toEqual(['notifier: Critical thaw-failed']);
  });

  it('record-outcome claimed the outcome but its publish hung: the claim is no proof, the last resort publishes', async () => {
    const r = await run({
      freezeResult: 'error',
      onFreezeFailure: 'skip',
      faults: (op) => (op === 'sns.Publish' ? { kind: 'hang' } : undefined),
    });
    expect(about(r)).toEqual(['last-resort: Major outcome-not-recorded']);
    expect(r.error).toMatch(/OutcomeNotRecorded/);
    expect(r.executionEvents.attempts).toEqual(['notified-by-last-resort']);
  });

  it.each([
    91, 207, 304,
  ])('fault seed %i: the thaw reached the instance after the watchdog ended the freeze, record-outcome never published: the last resort sends a Critical naming the watchdog', async (seed) => {
    const { scenario, config } = generate(seed);
    const r = await runScenario(aslFor(config), scenario, seed, { engine: 'interpreter' });
    expect(r.episodes.map((e) => e.thawedBy)).toEqual(['watchdog']);
    expect(about(r)).toEqual(['last-resort: Critical thaw-failed']);
    expect(r.statesEntered).toContain('Report Watchdog Ended The Freeze');
    expect(r.sns[0]?.message?.event?.additional_info?.watchdog_thaw_by).toBe('watchdog fired');
  });

  it.each([
    454, 696,
  ])('fault seed %i: the freeze step found an active job (nothing sent), the notifier confirmed its Warning, Record Outcome failed: the last resort publishes nothing', async (seed) => {
    const { scenario, config } = generate(seed);
    const r = await runScenario(aslFor(config), scenario, seed, { engine: 'interpreter' });
    expect(r.episodes).toEqual([]);
    expect(r.sns.filter((m) => m.via === 'last-resort')).toEqual([]);
    expect(new Set(about(r))).toEqual(new Set(['notifier: Warning skipped-active-job']));
    expect(r.error).toMatch(/OutcomeAlreadyNotified/);
  });

  it('input rejected by Check Input: the execution-events rule publishes one Major naming the field', async () => {
    const r = await run({
      mutateInput: (input) => {
        const { startAt: _drop, ...rest } = input;
        return rest;
      },
    });
    expect(r.error).toMatch(/InvalidWorkflowInput/);
    expect(about(r)).toEqual(['execution-events: Major execution-failed']);
    expect(r.sns[0].message.event.description).toContain('startAt is missing');
  });

  it('a backup job that fails after the execution succeeded: job-events reports it once', async () => {
    const r = await run({ jobFailsAfterMs: 10 * 60_000, snapshotDelayMs: 500 });
    expect(r.status).toBe('SUCCEEDED');
    expect(r.jobEvents?.attempts).toEqual(['handled']);
    expect(about(r).filter((m) => m.includes('backup-job-failed'))).toEqual([
      'notifier: Major backup-job-failed',
    ]);
  });
});
