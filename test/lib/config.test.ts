import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS, ConfigError, DEFAULT_CONFIG, parseConfig, readConfig } from '../../lib/config';
import cdkJson from '../../cdk.json';

describe('config', () => {
  it('gives the documented defaults when nothing is set', () => {
    expect(parseConfig({})).toEqual(DEFAULT_CONFIG);
  });

  it('cdk.json carries a default for every key and they validate', () => {
    for (const key of CONFIG_KEYS) expect(cdkJson.context).toHaveProperty(key);
    const config = readConfig({ tryGetContext: (k) => (cdkJson.context as Record<string, unknown>)[k] });
    expect(config).toEqual(DEFAULT_CONFIG);
  });

  it('parses -c key=value strings into typed values', () => {
    const config = parseConfig({
      freezeBudgetSeconds: '30',
      watchdogSeconds: '45',
      installVssComponents: 'true',
      coldStorageAfterDays: '30',
      retentionDays: '120',
      notificationEmails: 'ops@example.com, oncall@example.com',
      notificationHttpsEndpoints:
        'https://user:pw@example.service-now.com/api/sn_em_connector/em/inbound_event?source=sns',
      vaultName: 'prod-vault',
      onFreezeFailure: 'skip',
      scheduleTimeZone: 'Europe/Paris',
    });
    expect(config.freezeBudgetSeconds).toBe(30);
    expect(config.watchdogSeconds).toBe(45);
    expect(config.installVssComponents).toBe(true);
    expect(config.coldStorageAfterDays).toBe(30);
    expect(config.notificationEmails).toEqual(['ops@example.com', 'oncall@example.com']);
    expect(config.notificationHttpsEndpoints).toHaveLength(1);
    expect(config.vaultName).toBe('prod-vault');
    expect(config.onFreezeFailure).toBe('skip');
    expect(config.scheduleTimeZone).toBe('Europe/Paris');
  });

  it('treats coldStorageAfterDays 0 as off', () => {
    expect(parseConfig({ coldStorageAfterDays: 0 }).coldStorageAfterDays).toBeUndefined();
  });

  const rejected: [string, Record<string, unknown>, RegExp][] = [
    ['scheduleExpression', { scheduleExpression: 'every day' }, /cron\(\.\.\.\)/],
    ['scheduleTimeZone', { scheduleTimeZone: 'Mars/Olympus' }, /IANA time zone/],
    ['scheduleTimeZone', { scheduleTimeZone: 'UTC; rm -rf /' }, /IANA time zone/],
    ['optInTagKey', { optInTagKey: 'aws:backup' }, /not starting with aws:/],
    ['optInTagKey', { optInTagKey: 'x'.repeat(129) }, /1-128/],
    ['optInTagValue', { optInTagValue: 'a;b' }, /tag value/],
    ['vaultName', { vaultName: 'my vault!' }, /existing vault name/],
    ['retentionDays', { retentionDays: 0 }, /from 1 to 36500/],
    ['retentionDays', { retentionDays: '3.5' }, /whole number/],
    ['retentionDays', { retentionDays: 60, coldStorageAfterDays: 30 }, /coldStorageAfterDays \+ 90 \(120\)/],
    ['coldStorageAfterDays', { coldStorageAfterDays: -1 }, /from 0 to 36500/],
    ['freezeBudgetSeconds', { freezeBudgetSeconds: 4 }, /from 5 to 110/],
    ['freezeBudgetSeconds', { freezeBudgetSeconds: 111 }, /from 5 to 110/],
    ['freezeBudgetSeconds', { freezeBudgetSeconds: 'sixty' }, /whole number/],
    ['watchdogSeconds', { watchdogSeconds: 60 }, /greater than freezeBudgetSeconds \(60\)/],
    ['watchdogSeconds', { watchdogSeconds: 301 }, /from 6 to 300/],
    ['hookTimeoutSeconds', { hookTimeoutSeconds: 0 }, /from 1 to 600/],
    ['onFreezeFailure', { onFreezeFailure: 'ignore' }, /crash-consistent or skip/],
    ['maxFrozenPerGroup', { maxFrozenPerGroup: 0 }, /from 1 to 1000/],
    ['installVssComponents', { installVssComponents: 'yes' }, /true or false/],
    ['notificationEmails', { notificationEmails: 'ops@example.com,not-an-email' }, /email addresses/],
    [
      'notificationHttpsEndpoints',
      { notificationHttpsEndpoints: 'http://insecure.example.com' },
      /https:\/\//,
    ],
    ['notificationCriticalEmails', { notificationCriticalEmails: 'pager' }, /email addresses/],
    ['summaryDeadlineMinutes', { summaryDeadlineMinutes: 4 }, /from 5 to 2880/],
  ];

  it.each(
    rejected,
  )('rejects a bad %s, naming the key, the value and what is allowed', (key, raw, allowed) => {
    let error: unknown;
    try {
      parseConfig(raw);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const err = error as ConfigError;
    expect(err.key).toBe(key);
    expect(err.message).toContain(`"${key}"`);
    expect(err.message).toMatch(/got .+; allowed: /);
    expect(err.message).toMatch(allowed);
  });

  it('never echoes credentials from an endpoint URL in the error', () => {
    const attempt = () =>
      parseConfig({ notificationHttpsEndpoints: 'http://admin:s3cret@example.service-now.com/api' });
    expect(attempt).toThrow(/http:\/\/\[redacted\]@example\.service-now\.com/);
    expect(attempt).not.toThrow(/s3cret/);
  });

  it('names the offending list item, not the whole list', () => {
    expect(() => parseConfig({ notificationEmails: 'ops@example.com,bad' })).toThrow(/got "bad"/);
  });
});
