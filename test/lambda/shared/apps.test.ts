import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { APPS_ALLOWED, appsPattern, PACKAGED_APPS, parseApps } from '../../../lambda/shared/apps';
import { parseInstanceOptions } from '../../../lambda/shared/instance-options';
import { OPTION_TAGS } from '../../../lambda/shared/tags';
import { DOCUMENTS_DIR } from '../../../lib/documents';

describe('the ConsistentBackup:Apps tag', () => {
  it('is one of the option tags', () => {
    expect(OPTION_TAGS.apps).toBe('ConsistentBackup:Apps');
  });

  it.each([
    ['postgresql', 'postgresql'],
    ['PostgreSQL, MySQL', 'postgresql,mysql'],
    ['mariadb redis', 'mysql,redis'],
    ['postgres', 'postgresql'],
    ['', ''],
    ['  ', ''],
  ])('reads %j as %j', (value, apps) => {
    expect(parseApps(value)).toEqual({ ok: true, apps });
    expect(new RegExp(appsPattern()).test(apps)).toBe(true);
  });

  it.each(['oracle', 'mysql,mariadb', 'redis;rm', 'postgresql,postgresql'])('refuses %j', (value) => {
    expect(parseApps(value)).toEqual({ ok: false });
  });

  it('excludes the instance with a reason naming the value and what is allowed', () => {
    const r = parseInstanceOptions(
      [{ Key: 'ConsistentBackup:Apps', Value: 'postgresql,oracle' }],
      'crash-consistent',
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toEqual([
      { tag: 'ConsistentBackup:Apps', value: 'postgresql,oracle', allowed: APPS_ALLOWED },
    ]);
    expect(r.detail).toBe(
      'Tag ConsistentBackup:Apps has the invalid value "postgresql,oracle"; allowed: empty, or one or more of postgresql, mysql, redis (aliases: mariadb for mysql, postgres for postgresql) separated by commas or spaces, each at most once.',
    );
  });

  it('passes the canonical list on; no tag, no apps field', () => {
    const tagged = parseInstanceOptions([{ Key: 'ConsistentBackup:Apps', Value: 'MariaDB' }], 'skip');
    expect(tagged.ok && tagged.options.apps).toBe('mysql');
    const untagged = parseInstanceOptions([], 'skip');
    expect(untagged.ok && untagged.options).not.toHaveProperty('apps');
  });

  it('names the same applications as the packaged hooks and the on-instance validation', () => {
    const files = fs.readdirSync(path.join(DOCUMENTS_DIR, 'apps')).filter((f) => f !== 'common.sh');
    expect(files.sort()).toEqual(PACKAGED_APPS.map((a) => `${a}.sh`).sort());
    const validate = fs.readFileSync(path.join(DOCUMENTS_DIR, 'scripts', 'validate.sh'), 'utf8');
    expect(validate).toContain(`(${PACKAGED_APPS.join('|')})(,(${PACKAGED_APPS.join('|')})){0,2}`);
  });
});
