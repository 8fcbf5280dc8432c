import { describe, expect, it } from 'vitest';
import {
  COMPLIANCE_CONFIRMATION,
  CONFIG_KEYS,
  ConfigError,
  DEFAULT_CONFIG,
  parseConfig,
  readConfig,
} from '../../lib/config';
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
    expect(config.retentionDays).toBe(120);
    expect(config.notificationEmails).toEqual(['ops@example.com', 'oncall@example.com']);
    expect(config.notificationHttpsEndpoints).toHaveLength(1);
    expect(config.vaultName).toBe('prod-vault');
    expect(config.onFreezeFailure).toBe('skip');
    expect(config.scheduleTimeZone).toBe('Europe/Paris');
  });

  it('accepts coldStorageAfterDays only as 0 or unset, which change nothing', () => {
    expect(parseConfig({ coldStorageAfterDays: 0 })).toEqual(DEFAULT_CONFIG);
    expect(parseConfig({ coldStorageAfterDays: '0' })).toEqual(DEFAULT_CONFIG);
    expect(parseConfig({ coldStorageAfterDays: '' })).toEqual(DEFAULT_CONFIG);
  });

  it('reads the refused keys from context too, so -c coldStorageAfterDays=30 fails synth', () => {
    const context: Record<string, unknown> = { ...cdkJson.context, coldStorageAfterDays: '30' };
    expect(() => readConfig({ tryGetContext: (k) => context[k] })).toThrow(
      /"coldStorageAfterDays": got "30"; allowed: 0 or unset: this app backs up EC2 instances/,
    );
  });

  it('accepts the schedule expressions Scheduler documents', () => {
    for (const scheduleExpression of [
      'cron(0 2 * * ? *)',
      'cron(15 10 ? * MON-FRI *)',
      'cron(0 18 ? * 6L 2030-2040)',
      'cron(0/15 * 1W * ? *)',
      'cron(0 3 L JAN,JUL ? *)',
      'cron(0 8 ? * 3#2 *)',
      'rate(1 minute)',
      'rate(5 minutes)',
      'rate(1 day)',
      'at(2030-02-28T02:00:00)',
    ]) {
      expect(parseConfig({ scheduleExpression }).scheduleExpression).toBe(scheduleExpression);
    }
  });

  it('parses the alarm actions: topic, none, or topic ARNs', () => {
    const arn = 'arn:aws:sns:eu-west-1:111122223333:oncall';
    expect(parseConfig({ alarmActions: 'none' }).alarmActions).toEqual([]);
    expect(parseConfig({ alarmActions: `topic, ${arn}` }).alarmActions).toEqual(['topic', arn]);
    expect(parseConfig({ alarmActions: [arn] }).alarmActions).toEqual([arn]);
  });

  it('takes a ServiceNow secret name only with the forwarder on', () => {
    const config = parseConfig({ serviceNowForwarder: 'true', serviceNowSecretName: 'ops/servicenow' });
    expect(config.serviceNowForwarder).toBe(true);
    expect(config.serviceNowSecretName).toBe('ops/servicenow');
  });

  const rejected: [string, Record<string, unknown>, RegExp][] = [
    ['scheduleExpression', { scheduleExpression: 'every day' }, /cron\(minutes hours/],
    ['scheduleExpression', { scheduleExpression: 'cron(0 2 * *)' }, /six fields .* got 4/],
    [
      'scheduleExpression',
      { scheduleExpression: 'cron(0 2 * * * *)' },
      /exactly one of day-of-month \("\*"\) and day-of-week \("\*"\) must be "\?"/,
    ],
    ['scheduleExpression', { scheduleExpression: 'cron(0 2 ? * ? *)' }, /exactly one of day-of-month/],
    [
      'scheduleExpression',
      { scheduleExpression: 'cron(60 2 * * ? *)' },
      /minutes value 60 .* out of range \(0-59/,
    ],
    ['scheduleExpression', { scheduleExpression: 'cron(0 24 * * ? *)' }, /hours value 24/],
    ['scheduleExpression', { scheduleExpression: 'cron(0 2 32 * ? *)' }, /day-of-month value 32/],
    ['scheduleExpression', { scheduleExpression: 'cron(0 2 ? 13 MON *)' }, /month value 13/],
    ['scheduleExpression', { scheduleExpression: 'cron(0 2 ? * 8 *)' }, /day-of-week value 8/],
    ['scheduleExpression', { scheduleExpression: 'cron(0 2 * * ? 2200)' }, /year value 2200 .*\(1970-2199/],
    ['scheduleExpression', { scheduleExpression: 'cron(0 2 ? * MON/2 *)' }, /day-of-week does not take "\/"/],
    [
      'scheduleExpression',
      { scheduleExpression: 'cron(0 2 ? * 3#1,6#3 *)' },
      /with # the field holds one expression/,
    ],
    ['scheduleExpression', { scheduleExpression: 'cron(0 2 ? * 3#6 *)' }, /weekday#n with n 1-5/],
    ['scheduleExpression', { scheduleExpression: 'cron(0 2 1,L * ? *)' }, /\?, L and nW stand alone/],
    ['scheduleExpression', { scheduleExpression: 'cron(0 ? * * ? *)' }, /hours cannot be "\?"/],
    ['scheduleExpression', { scheduleExpression: 'cron(0 5-2 * * ? *)' }, /range "5-2" runs backwards/],
    [
      'scheduleExpression',
      { scheduleExpression: 'cron(0/0 2 * * ? *)' },
      /increment "\/0" is not a positive whole number/,
    ],
    ['scheduleExpression', { scheduleExpression: 'cron(0 2 * FOO ? *)' }, /month has "FOO"/],
    [
      'scheduleExpression',
      { scheduleExpression: 'rate(1 minutes)' },
      /takes the singular unit: rate\(1 minute\)/,
    ],
    [
      'scheduleExpression',
      { scheduleExpression: 'rate(5 minute)' },
      /takes the plural unit: rate\(5 minutes\)/,
    ],
    ['scheduleExpression', { scheduleExpression: 'rate(0 minutes)' }, /"0" is not a positive whole number/],
    ['scheduleExpression', { scheduleExpression: 'rate(1.5 hours)' }, /positive whole number, one space/],
    ['scheduleExpression', { scheduleExpression: 'rate(2 weeks)' }, /minute\(s\), hour\(s\) or day\(s\)/],
    ['scheduleExpression', { scheduleExpression: 'at(2030-02-30T02:00:00)' }, /not a real date and time/],
    // Scheduler would take these and never run them.
    [
      'scheduleExpression',
      { scheduleExpression: 'cron(0 2 31 2 ? *)' },
      /no day from .* to 2199 matches .* never run/,
    ],
    ['scheduleExpression', { scheduleExpression: 'cron(0 2 30 FEB ? *)' }, /never run/],
    ['scheduleExpression', { scheduleExpression: 'cron(0 2 * * ? 1999-2020)' }, /never run/],
    ['scheduleExpression', { scheduleExpression: 'at(2030-02-01 02:00)' }, /yyyy-mm-ddThh:mm:ss/],
    ['scheduleExpression', { scheduleExpression: ' cron(0 2 * * ? *)' }, /nothing around it/],
    ['scheduleTimeZone', { scheduleTimeZone: 'Mars/Olympus' }, /IANA time zone/],
    ['scheduleTimeZone', { scheduleTimeZone: 'UTC; rm -rf /' }, /IANA time zone/],
    ['optInTagKey', { optInTagKey: 'aws:backup' }, /not starting with aws:/],
    ['optInTagKey', { optInTagKey: 'x'.repeat(129) }, /1-128/],
    ['optInTagValue', { optInTagValue: 'a;b' }, /tag value/],
    ['vaultName', { vaultName: 'my vault!' }, /existing vault name/],
    ['retentionDays', { retentionDays: 0 }, /from 1 to 36500/],
    ['retentionDays', { retentionDays: '3.5' }, /whole number/],
    [
      'coldStorageAfterDays',
      { coldStorageAfterDays: 30 },
      /AWS Backup does not move EC2 recovery points to cold storage/,
    ],
    ['coldStorageAfterDays', { coldStorageAfterDays: -1 }, /0 or unset/],
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
    ['alarmActions', { alarmActions: 'email' }, /topic \(the notification topic\), none/],
    ['alarmActions', { alarmActions: 'arn:aws:sqs:eu-west-1:111122223333:q' }, /SNS topic ARNs/],
    ['alarmActions', { alarmActions: 'topic,topic' }, /each once/],
    ['alarmCrashSharePercent', { alarmCrashSharePercent: 0 }, /from 1 to 100/],
    ['alarmMissedWindows', { alarmMissedWindows: 11 }, /from 1 to 10/],
    ['alarmFailedExecutions', { alarmFailedExecutions: 0 }, /from 1 to 100000/],
    ['alarmDeadLetterMessages', { alarmDeadLetterMessages: 'many' }, /whole number/],
    ['serviceNowForwarder', { serviceNowForwarder: 'on' }, /true or false/],
    [
      'serviceNowSecretName',
      { serviceNowForwarder: true, serviceNowSecretName: 'a b' },
      /Secrets Manager secret name/,
    ],
    [
      'serviceNowSecretName',
      { serviceNowSecretName: 'ops/servicenow' },
      /empty unless serviceNowForwarder is true/,
    ],
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

describe('config: copies, vault lock and restore testing', () => {
  const vault = 'arn:aws:backup:eu-central-1:111122223333:backup-vault:dr-vault';

  it('parses copy destinations and copy Regions with their own retention', () => {
    const config = parseConfig({
      copyDestinations: `${vault}=90, arn:aws-us-gov:backup:us-gov-west-1:444455556666:backup-vault:central=365`,
      copyRegions: 'us-east-1=40',
    });
    expect(config.copyDestinations).toEqual([
      {
        vaultArn: vault,
        partition: 'aws',
        region: 'eu-central-1',
        accountId: '111122223333',
        vaultName: 'dr-vault',
        retentionDays: 90,
      },
      {
        vaultArn: 'arn:aws-us-gov:backup:us-gov-west-1:444455556666:backup-vault:central',
        partition: 'aws-us-gov',
        region: 'us-gov-west-1',
        accountId: '444455556666',
        vaultName: 'central',
        retentionDays: 365,
      },
    ]);
    expect(config.copyRegions).toEqual([{ region: 'us-east-1', retentionDays: 40 }]);
  });

  it('accepts a governance lock whose range holds the retention of every vault the app creates', () => {
    const config = parseConfig({
      vaultLockMode: 'governance',
      vaultLockMinRetentionDays: '7',
      vaultLockMaxRetentionDays: '400',
      copyRegions: 'us-east-1=90',
    });
    expect(config.vaultLockMode).toBe('governance');
    expect(config.vaultLockMinRetentionDays).toBe(7);
    expect(config.vaultLockMaxRetentionDays).toBe(400);
    expect(config.vaultLockComplianceConfirm).toBeUndefined();
  });

  it('accepts a compliance lock only with the exact confirmation', () => {
    const config = parseConfig({
      vaultLockMode: 'compliance',
      vaultLockMinRetentionDays: 30,
      vaultLockChangeableForDays: 7,
      vaultLockComplianceConfirm: COMPLIANCE_CONFIRMATION,
    });
    expect(config.vaultLockMode).toBe('compliance');
    expect(config.vaultLockChangeableForDays).toBe(7);
  });

  it('turns restore testing on with a subnet and security groups', () => {
    const config = parseConfig({
      restoreTestSubnetId: 'subnet-0123456789abcdef0',
      restoreTestSecurityGroupIds: 'sg-0123456789abcdef0,sg-11111111',
      restoreTestInstanceType: 't3.small',
      restoreTestInstanceRoles: 'AppServerRole,DbServerRole',
      restoreTestSchedule: 'cron(30 3 ? * MON *)',
      restoreTestValidationHours: '6',
    });
    expect(config.restoreTestSubnetId).toBe('subnet-0123456789abcdef0');
    expect(config.restoreTestSecurityGroupIds).toEqual(['sg-0123456789abcdef0', 'sg-11111111']);
    expect(config.restoreTestInstanceRoles).toEqual(['AppServerRole', 'DbServerRole']);
    expect(config.restoreTestValidationHours).toBe(6);
  });

  const lock = { vaultLockMode: 'governance', vaultLockMinRetentionDays: 30 };
  const rejected: [string, Record<string, unknown>, RegExp][] = [
    ['copyDestinations', { copyDestinations: `${vault}` }, /<backup vault ARN>=<retention days>/],
    ['copyDestinations', { copyDestinations: `${vault}=0` }, /retention 1-36500/],
    ['copyDestinations', { copyDestinations: 'arn:aws:backup:eu-central-1:1111:backup-vault:x=5' }, /ARN/],
    ['copyDestinations', { copyDestinations: 'arn:aws:s3:::bucket=5' }, /backup vault ARN/],
    ['copyDestinations', { copyDestinations: `${vault}=9,${vault}=10` }, /each destination vault once/],
    ['copyRegions', { copyRegions: 'Europe=30' }, /<region>=<retention days>/],
    ['copyRegions', { copyRegions: 'us-east-1=30,us-east-1=40' }, /each Region once/],
    ['vaultLockMode', { vaultLockMode: 'strict' }, /none, governance, compliance/],
    ['vaultLockMinRetentionDays', { vaultLockMinRetentionDays: 7 }, /empty unless vaultLockMode/],
    ['vaultLockMinRetentionDays', { vaultLockMode: 'governance' }, /when vaultLockMode is governance/],
    ['vaultLockMode', { ...lock, vaultName: 'prod-vault' }, /none while vaultName is set/],
    ['retentionDays', { ...lock, retentionDays: 10 }, /at least vaultLockMinRetentionDays \(30\)/],
    [
      'retentionDays',
      { ...lock, vaultLockMaxRetentionDays: 31, retentionDays: 35 },
      /from 30 to 31 \(the vault lock's range\)/,
    ],
    ['vaultLockMaxRetentionDays', { ...lock, vaultLockMaxRetentionDays: 20 }, /from 30 to 36500/],
    ['copyRegions', { ...lock, copyRegions: 'us-east-1=14' }, /destination vault carries the same lock/],
    ['vaultLockComplianceConfirm', { ...lock, vaultLockMode: 'compliance' }, /never be changed or removed/],
    [
      'vaultLockComplianceConfirm',
      { ...lock, vaultLockMode: 'compliance', vaultLockComplianceConfirm: 'yes' },
      /exactly I-understand-this-is-irreversible/,
    ],
    ['vaultLockComplianceConfirm', { ...lock, vaultLockComplianceConfirm: 'x' }, /empty unless .*compliance/],
    ['vaultLockChangeableForDays', { vaultLockChangeableForDays: 2 }, /from 3 to 36500/],
    ['restoreTestSubnetId', { restoreTestSubnetId: 'subnet-xyz' }, /subnet id/],
    ['restoreTestSecurityGroupIds', { restoreTestSubnetId: 'subnet-01234567' }, /1 to 5 security group ids/],
    [
      'restoreTestSecurityGroupIds',
      { restoreTestSecurityGroupIds: 'sg-01234567' },
      /unless restoreTestSubnetId/,
    ],
    ['restoreTestSchedule', { restoreTestSchedule: 'rate(7 days)' }, /AWS Backup cron expression/],
    ['restoreTestInstanceType', { restoreTestInstanceType: 'large' }, /instance type such as t3.small/],
    ['restoreTestInstanceRoles', { restoreTestInstanceRoles: 'a role' }, /IAM role names/],
    ['restoreTestValidationHours', { restoreTestValidationHours: 169 }, /from 2 to 168/],
    ['restoreTestValidationHours', { restoreTestValidationHours: 1 }, /from 2 to 168/],
  ];

  it.each(rejected)('rejects a bad %s with the key, the value and what is allowed', (key, raw, allowed) => {
    let error: unknown;
    try {
      parseConfig(raw);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).key).toBe(key);
    expect((error as ConfigError).message).toMatch(/got .+; allowed: /);
    expect((error as ConfigError).message).toMatch(allowed);
  });
});
