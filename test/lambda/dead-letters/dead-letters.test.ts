import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { readDeadLetter } from '../../../lambda/dead-letters/dead-letters';
import { DeadLetterConfigError, readDeadLetterSettings } from '../../../lambda/dead-letters/settings';
import { LIMITS, SEVERITY_RULES, validateNotification } from '../../../lambda/shared/notification';
import {
  buildDiscoveryFailureNotification,
  REPLAY_PAYLOAD_INLINE_MAX,
  replayCommand,
  shellQuote,
} from '../../../lambda/shared/notifications/discovery-failure';
import {
  FUNCTION_ARN,
  handOverPayload,
  invocationRecord,
  SCHEDULE_ARN,
  SETTINGS,
  schedulerDeadLetter,
  schedulerRetriesExhausted,
} from './samples';

const NOW = new Date('2026-11-22T02:15:03Z');
const KEY = 'ec2-consistent-backup:111122223333:eu-west-1:fleet:discovery';

/** What a POSIX shell makes of a command line: its words, exactly as the program would receive them. */
function shellWords(command: string): string[] {
  const script = `for w in ${command.replace(/^aws /, '')}; do printf '%s\\0' "$w"; done`;
  const out = spawnSync('sh', ['-c', script], { encoding: 'utf8' });
  expect(out.status).toBe(0);
  return out.stdout.split('\0').slice(0, -1);
}

function payloadOf(command: string): unknown {
  const words = shellWords(command);
  return JSON.parse(words[words.indexOf('--payload') + 1]);
}

describe('reading a Scheduler dead-letter event', () => {
  it('takes window, schedule, error and payload from the body and the attributes', () => {
    const { failure, eventId } = readDeadLetter(schedulerDeadLetter(), SETTINGS);
    expect(eventId).toBe('schedule:ad06f0dc-5a29-4a9e-b6a7-0c1e2d3f4a5b');
    expect(failure).toMatchObject({
      kind: 'not-invoked',
      accountId: '111122223333',
      region: 'eu-west-1',
      functionArn: FUNCTION_ARN,
      window: '2026-11-22T02:00:00Z',
      runId: 'run-20261122T0200Z',
      scheduleArn: SCHEDULE_ARN,
      error: 'AccessDeniedException',
      failedAt: '2026-11-22T02:01:05.000Z',
      delivery: { retryAttempts: 0, payloadTruncated: false },
    });
    expect(failure.delivery?.exhaustedRetryCondition).toBeUndefined();
    expect(failure.cause).toMatch(/not authorized to perform: lambda:InvokeFunction/);
    expect(JSON.parse(failure.payload)).toEqual({
      scheduledTime: '2026-11-22T02:00:00Z',
      scheduleArn: SCHEDULE_ARN,
    });
  });

  it('rebuilds the payload from SCHEDULED_TIME and SCHEDULE_ARN when the body is not the input', () => {
    const record = schedulerDeadLetter({ body: '' });
    const { failure } = readDeadLetter(record, SETTINGS);
    expect(JSON.parse(failure.payload)).toEqual({
      scheduledTime: '2026-11-22T02:00:00Z',
      scheduleArn: SCHEDULE_ARN,
    });
    expect(failure.window).toBe('2026-11-22T02:00:00Z');
  });

  it('reads EXHAUSTED_RETRY_CONDITION, RETRY_ATTEMPTS and IS_PAYLOAD_TRUNCATED', () => {
    expect(readDeadLetter(schedulerRetriesExhausted(), SETTINGS).failure.delivery).toEqual({
      exhaustedRetryCondition: 'MaximumRetryAttempts',
      retryAttempts: 3,
      payloadTruncated: false,
    });
    expect(
      readDeadLetter(schedulerRetriesExhausted('MaximumEventAgeInSeconds', { retryAttempts: '11' }), SETTINGS)
        .failure.delivery,
    ).toEqual({
      exhaustedRetryCondition: 'MaximumEventAgeInSeconds',
      retryAttempts: 11,
      payloadTruncated: false,
    });
    // A count that is not one is not passed on as a number.
    expect(
      readDeadLetter(schedulerRetriesExhausted('MaximumRetryAttempts', { retryAttempts: 'three' }), SETTINGS)
        .failure.delivery?.retryAttempts,
    ).toBeUndefined();
  });

  it('never replays a truncated body: the payload comes from SCHEDULED_TIME and SCHEDULE_ARN', () => {
    const cut = '{"scheduledTime":"2026-11-22T02:00:00Z","scheduleArn":"arn:aws:scheduler:eu-west-1:1111';
    const { failure } = readDeadLetter(
      schedulerRetriesExhausted('MaximumRetryAttempts', { truncated: true, body: cut }),
      SETTINGS,
    );
    expect(failure.delivery?.payloadTruncated).toBe(true);
    expect(JSON.parse(failure.payload)).toEqual({
      scheduledTime: '2026-11-22T02:00:00Z',
      scheduleArn: SCHEDULE_ARN,
    });
    const n = buildDiscoveryFailureNotification(failure, NOW);
    expect(validateNotification(n)).toEqual([]);
    expect(n.event.description).toMatch(/Scheduler truncated the payload in this dead letter/);
    expect(n.event.additional_info.payload_truncated).toBe('true');
  });

  it('has no delivery details for a dead letter without those attributes', () => {
    const record = schedulerDeadLetter({
      attributes: {
        ERROR_CODE: { stringValue: 'AccessDeniedException', dataType: 'String' },
        SCHEDULED_TIME: { stringValue: '2026-11-22T02:00:00Z', dataType: 'String' },
      },
    });
    const { failure } = readDeadLetter(record, SETTINGS);
    expect(failure.delivery).toBeUndefined();
    expect(buildDiscoveryFailureNotification(failure, NOW).event.description).toMatch(
      /for window 2026-11-22T02:00:00Z .* after its retries: AccessDeniedException/,
    );
  });

  it('uses the SQS message id when Scheduler gave no execution id', () => {
    const record = schedulerDeadLetter({
      attributes: { ERROR_CODE: { stringValue: 'AWS.Scheduler.InternalServerError', dataType: 'String' } },
    });
    const { failure, eventId } = readDeadLetter(record, SETTINGS);
    expect(eventId).toBe(`sqs:${record.messageId}`);
    expect(failure.cause).toBe('EventBridge Scheduler gave no error message.');
    // No TARGET_ARN: the configured discovery function is the one to re-run.
    expect(failure.functionArn).toBe(SETTINGS.discoveryFunctionArn);
  });
});

describe('reading a Lambda invocation record', () => {
  it('reads a failed first invocation: request id, condition, error, unqualified function ARN', () => {
    const { failure, eventId } = readDeadLetter(invocationRecord(), SETTINGS);
    expect(eventId).toBe('invocation:e4b46cbf-b738-4a1b-8880-a18cdf61200e');
    expect(failure).toMatchObject({
      kind: 'failed',
      functionArn: FUNCTION_ARN,
      window: '2026-11-22T02:00:00Z',
      runId: 'run-20261122T0200Z',
      requestId: 'e4b46cbf-b738-4a1b-8880-a18cdf61200e',
      condition: 'RetriesExhausted after 1 attempt(s)',
      error: 'StartExecutionFailedError',
      failedAt: '2026-11-22T02:14:58.568Z',
    });
    expect(failure.handOver).toBeUndefined();
    expect(failure.cause).toMatch(/3 instance\(s\) could not be started/);
  });

  it('reads a hand-over: its invocation number and cursor, and the whole payload to replay', () => {
    const payload = handOverPayload({ invocation: 4, afterKey: "web|0002|i-0'quoted" });
    const { failure } = readDeadLetter(
      invocationRecord({
        payload,
        errorType: 'HandOverError',
        errorMessage: 'could not hand over 812 instances',
      }),
      SETTINGS,
    );
    expect(failure.handOver).toEqual({ invocation: 4, afterKey: "web|0002|i-0'quoted" });
    expect(failure.error).toBe('HandOverError');
    expect(JSON.parse(failure.payload)).toEqual(payload);
  });

  it('reads an event Lambda dropped unprocessed (EventAgeExceeded, no response)', () => {
    const { failure } = readDeadLetter(invocationRecord({ condition: 'EventAgeExceeded' }), SETTINGS);
    expect(failure.error).toBe('EventAgeExceeded');
    expect(failure.cause).toMatch(/never ran/);
    expect(failure.condition).toBe('EventAgeExceeded after 0 attempt(s)');
  });

  it('still reports a message it cannot read, with its body', () => {
    const record = { ...invocationRecord(), body: 'not json at all' };
    const { failure, eventId } = readDeadLetter(record, SETTINGS);
    expect(eventId).toBe(`sqs:${record.messageId}`);
    expect(failure.error).toBe('UnreadableDeadLetter');
    expect(failure.cause).toContain('not json at all');
    expect(failure.window).toBeUndefined();
    const n = buildDiscoveryFailureNotification(failure, NOW);
    expect(validateNotification(n)).toEqual([]);
    expect(n.subject).toBe('[Major] Discovery failed for a window: instances not started');
  });
});

describe('the notification', () => {
  it('Scheduler: one Major on the fleet discovery key, saying what failed, what it means, what to do', () => {
    const n = buildDiscoveryFailureNotification(readDeadLetter(schedulerDeadLetter(), SETTINGS).failure, NOW);
    expect(validateNotification(n)).toEqual([]);
    expect(n.eventType).toBe('discovery-not-invoked');
    expect(n.severity).toBe('Major');
    expect(SEVERITY_RULES[n.eventType].problemClass).toBe('discovery');
    expect(n.instanceId).toBeUndefined();
    expect(n.event.message_key).toBe(KEY);
    expect(n.event.node).toBe('111122223333/eu-west-1');
    expect(n.subject).toBe('[Major] Discovery not invoked for 2026-11-22T02:00:00Z: no backups started');
    const [happened, means, todo] = n.event.description.split('\n\n');
    expect(happened).toMatch(
      /^What happened: EventBridge Scheduler could not invoke .* window 2026-11-22T02:00:00Z/,
    );
    expect(happened).toContain('AccessDeniedException');
    expect(happened).toMatch(/without a retry \(an error Scheduler does not retry/);
    expect(means).toMatch(/no opted-in instance was started/);
    expect(todo).toMatch(/lost lambda:InvokeFunction/);
    expect(n.event.additional_info).toMatchObject({
      window: '2026-11-22T02:00:00Z',
      run_id: 'run-20261122T0200Z',
      schedule_arn: SCHEDULE_ARN,
      function_arn: FUNCTION_ARN,
      error: 'AccessDeniedException',
      retry_attempts: '0',
      payload_truncated: 'false',
    });
    expect(n.event.additional_info).not.toHaveProperty('exhausted_retry_condition');
    const command = n.event.additional_info.replay_command;
    // Last, so it copies cleanly: no sentence punctuation glued to the command's end.
    expect(todo.endsWith(`The command:\n${command}`)).toBe(true);
    expect(happened).not.toMatch(/\.\./);
    expect(shellWords(command).slice(0, 9)).toEqual([
      'lambda',
      'invoke',
      '--region',
      'eu-west-1',
      '--function-name',
      FUNCTION_ARN,
      '--invocation-type',
      'Event',
      '--cli-binary-format',
    ]);
    expect(payloadOf(command)).toEqual({ scheduledTime: '2026-11-22T02:00:00Z', scheduleArn: SCHEDULE_ARN });
  });

  it('Scheduler retries exhausted: says after how many retries and which limit ran out', () => {
    const attempts = buildDiscoveryFailureNotification(
      readDeadLetter(schedulerRetriesExhausted(), SETTINGS).failure,
      NOW,
    );
    expect(validateNotification(attempts)).toEqual([]);
    expect(attempts.event.description).toMatch(
      /window 2026-11-22T02:00:00Z \(run run-20261122T0200Z, schedule .*\) after 3 retries \(MaximumRetryAttempts: the retry policy's attempts ran out\): TooManyRequestsException: Rate Exceeded\./,
    );
    expect(attempts.event.additional_info).toMatchObject({
      retry_attempts: '3',
      exhausted_retry_condition: 'MaximumRetryAttempts',
      payload_truncated: 'false',
    });
    const age = buildDiscoveryFailureNotification(
      readDeadLetter(schedulerRetriesExhausted('MaximumEventAgeInSeconds', { retryAttempts: '1' }), SETTINGS)
        .failure,
      NOW,
    );
    expect(age.event.description).toMatch(
      /after 1 retry \(MaximumEventAgeInSeconds: the invocation grew older/,
    );
    expect(age.event.additional_info.exhausted_retry_condition).toBe('MaximumEventAgeInSeconds');
  });

  it('hand-over: names the invocation and cursor, the request id log search, and replays the exact cursor', () => {
    const payload = handOverPayload({ invocation: 3, afterKey: "db|0003|it's" });
    const failure = readDeadLetter(
      invocationRecord({
        payload,
        errorType: 'HandOverError',
        errorMessage: 'could not hand over 812 instances',
      }),
      SETTINGS,
    ).failure;
    const n = buildDiscoveryFailureNotification(failure, NOW);
    expect(validateNotification(n)).toEqual([]);
    expect(n.eventType).toBe('discovery-failed');
    expect(n.event.message_key).toBe(KEY);
    expect(n.subject).toBe(
      '[Major] Discovery hand-over 3 failed for 2026-11-22T02:00:00Z: instances not started',
    );
    expect(n.event.description).toContain(
      `Hand-over invocation 3 of discovery for window 2026-11-22T02:00:00Z`,
    );
    expect(n.event.description).toContain(JSON.stringify("db|0003|it's"));
    expect(n.event.description).toContain('HandOverError: could not hand over 812 instances');
    expect(n.event.description).toContain(
      `--log-group-name '${SETTINGS.discoveryLogGroup}' --filter-pattern '"e4b46cbf-b738-4a1b-8880-a18cdf61200e"'`,
    );
    expect(n.event.additional_info).toMatchObject({
      invocation: '3',
      cursor: "db|0003|it's",
      request_id: failure.requestId,
    });
    // The quote in the cursor survives the shell: the command replays exactly what failed.
    expect(payloadOf(n.event.additional_info.replay_command)).toEqual(payload);
    // Each command is a line of its own, so nothing glued to it changes its words when pasted.
    const commands = n.event.description.split('\n').filter((line) => line.startsWith('aws '));
    expect(commands).toHaveLength(2);
    expect(shellWords(commands[0]).at(-1)).toBe(`"${failure.requestId}"`);
    expect(commands[1]).toBe(n.event.additional_info.replay_command);
  });

  it('first invocation: says the instances it did not start got no backup', () => {
    const n = buildDiscoveryFailureNotification(readDeadLetter(invocationRecord(), SETTINGS).failure, NOW);
    expect(n.subject).toBe('[Major] Discovery failed for 2026-11-22T02:00:00Z: instances not started');
    expect(n.event.description).toMatch(
      /first invocation\) failed \(RetriesExhausted after 1 attempt\(s\)\)/,
    );
    expect(n.event.description).toMatch(/the backup for them did not happen/);
    expect(n.event.additional_info.invocation).toBe('1');
  });

  it('a payload too long to quote is pointed to in the dead-letters log, never cut inside the command', () => {
    const ids = Array.from({ length: 1024 }, (_, i) => `i-${i.toString(16).padStart(17, '0')}`);
    const payload = handOverPayload({ doneBeyond: ids });
    expect(JSON.stringify(payload).length).toBeGreaterThan(REPLAY_PAYLOAD_INLINE_MAX);
    const failure = readDeadLetter(invocationRecord({ payload }), SETTINGS).failure;
    const n = buildDiscoveryFailureNotification(failure, NOW);
    expect(validateNotification(n)).toEqual([]);
    expect(n.event.description.length).toBeLessThanOrEqual(LIMITS.description);
    expect(n.event.description).not.toContain('truncated');
    expect(n.event.description).toContain(`too long to quote here`);
    expect(n.event.description).toContain(
      `--log-group-name '${SETTINGS.ownLogGroup}' --filter-pattern '"9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"'`,
    );
    expect(n.event.description).toContain("--payload '<payload>'");
    expect(n.event.additional_info.replay_command).toBeUndefined();
  });

  it('a huge error message is cut in the description, which keeps the whole command', () => {
    const failure = readDeadLetter(invocationRecord({ errorMessage: 'x'.repeat(20_000) }), SETTINGS).failure;
    const n = buildDiscoveryFailureNotification(failure, NOW);
    expect(validateNotification(n)).toEqual([]);
    expect(n.event.description).toContain(n.event.additional_info.replay_command);
    expect(n.event.additional_info.cause.length).toBeLessThanOrEqual(LIMITS.additionalInfoValue);
  });
});

describe('shell quoting', () => {
  it.each([
    'plain',
    "it's",
    "'",
    "a'b'c",
    '$(rm -rf /) `x` "y" \\ \n newline',
  ])('%j survives sh unchanged', (s) => {
    const out = spawnSync('sh', ['-c', `printf '%s' ${shellQuote(s)}`], { encoding: 'utf8' });
    expect(out.stdout).toBe(s);
  });

  it('replayCommand invokes asynchronously, as Scheduler and the hand-over do', () => {
    expect(replayCommand('eu-west-1', FUNCTION_ARN, '{}')).toBe(
      `aws lambda invoke --region eu-west-1 --function-name ${FUNCTION_ARN} --invocation-type Event --cli-binary-format raw-in-base64-out --payload '{}' /dev/null`,
    );
  });
});

describe('settings', () => {
  const env = {
    DISCOVERY_FUNCTION_ARN: FUNCTION_ARN,
    DISCOVERY_LOG_GROUP: SETTINGS.discoveryLogGroup,
    DEAD_LETTERS_LOG_GROUP: SETTINGS.ownLogGroup,
  };

  it('reads a valid environment', () => {
    expect(readDeadLetterSettings(env)).toEqual(SETTINGS);
  });

  it.each([
    ['DISCOVERY_FUNCTION_ARN', `${FUNCTION_ARN}:$LATEST`, 'an unqualified Lambda function ARN'],
    ['DISCOVERY_FUNCTION_ARN', undefined, 'an unqualified Lambda function ARN'],
    ['DISCOVERY_LOG_GROUP', 'bad group name!', 'a CloudWatch Logs group name'],
    ['DEAD_LETTERS_LOG_GROUP', '', 'a CloudWatch Logs group name'],
  ])('rejects %s=%j naming the variable, the value and what is allowed', (name, value, allowed) => {
    const bad = { ...env, [name]: value };
    expect(() => readDeadLetterSettings(bad)).toThrow(DeadLetterConfigError);
    expect(() => readDeadLetterSettings(bad)).toThrow(
      `Environment variable ${name} is ${JSON.stringify(value)}; allowed: ${allowed}.`,
    );
  });
});
