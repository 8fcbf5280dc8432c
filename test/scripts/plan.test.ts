import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config';
import { parseArgs, PlanUsageError, runPlan } from '../../scripts/plan';
import { FakeAws, type FakeInstance, fleet } from '../../sim/discovery-aws';

let fake: FakeAws | undefined;
afterEach(() => {
  fake?.restore();
  fake = undefined;
});

const clients = () => ({
  ec2: new EC2Client({ region: 'eu-west-1' }),
  ssm: new SSMClient({ region: 'eu-west-1' }),
});
const WINDOW = new Date('2026-11-22T02:00:00Z');

describe('npm run plan', () => {
  it('prints per instance what would happen and why, with group waves, and starts nothing', async () => {
    fake = new FakeAws(
      fleet(7, (i): Partial<FakeInstance> => {
        switch (i) {
          case 0:
            return { tags: { Name: 'db-a', 'ConsistentBackup:Group': 'pg' } };
          case 1:
            return { tags: { Name: 'db-b', 'ConsistentBackup:Group': 'pg' } };
          case 2:
            return { platform: 'windows' };
          case 3:
            return { state: 'stopped' };
          case 4:
            return { ssm: { ping: 'ConnectionLost' } };
          case 5:
            return { tags: { 'ConsistentBackup:Exclude': 'relative/path' } };
          default:
            return { volumes: [] };
        }
      }),
    );
    const lines: string[] = [];
    const report = await runPlan(
      clients(),
      { region: 'eu-west-1', window: WINDOW, config: parseConfig({}) },
      (l) => lines.push(l),
    );
    expect(fake.counts.start).toBe(0);
    expect(report.counts).toEqual({
      discovered: 7,
      toStart: 4,
      withoutFreeze: 1,
      excluded: { 'ssm-offline': 1, 'invalid-tag': 1, 'no-ebs-volumes': 1 },
    });
    const byName = Object.fromEntries(report.rows.map((r) => [r.instanceId, r]));
    const id = (i: number) => `i-${i.toString(16).padStart(17, '0')}`;
    expect(byName[id(0)]).toMatchObject({
      action: 'freeze+backup',
      group: 'pg',
      wave: 0,
      startAt: '2026-11-22T02:00:00.000Z',
    });
    expect(byName[id(1)]).toMatchObject({
      action: 'freeze+backup',
      group: 'pg',
      wave: 1,
      startAt: '2026-11-22T02:18:00.000Z',
    });
    expect(byName[id(2)]).toMatchObject({ action: 'vss+backup', platform: 'windows' });
    expect(byName[id(3)]).toMatchObject({ action: 'backup without freeze', state: 'stopped' });
    expect(byName[id(4)].reason).toMatch(/^ssm-offline: .*ConnectionLost/);
    expect(byName[id(5)].reason).toMatch(
      /invalid-tag: Tag ConsistentBackup:Exclude has the invalid value "relative\/path"/,
    );
    expect(byName[id(6)]).toMatchObject({ action: 'excluded', execution: null });
    expect(byName[id(0)].execution).toBe(`${id(0)}-20261122T0200Z`);

    expect(lines[0]).toBe(
      'Plan for window 2026-11-22T02:00:00Z in eu-west-1, instances tagged ConsistentBackup=enabled (dry run: nothing is started)',
    );
    expect(lines[2]).toMatch(/^INSTANCE\s+NAME\s+PLATFORM\s+STATE\s+ACTION\s+GROUP\s+WAVE\s+START AT\s+WHY$/);
    expect(lines.find((l) => l.startsWith(id(1)))).toMatch(
      /db-b\s+linux\s+running\s+freeze\+backup\s+pg\s+1\s+2026-11-22T02:18:00/,
    );
    expect(lines.at(-1)).toBe(
      '7 discovered: 4 would start (1 without a freeze), 3 excluded (ssm-offline 1, invalid-tag 1, no-ebs-volumes 1).',
    );
  });

  it('uses the deployment config, overridable with -c, and prints JSON on request', async () => {
    fake = new FakeAws([
      { id: 'i-00000000000000001', tags: { Backup: 'yes', 'ConsistentBackup:Group': 'g' } },
      { id: 'i-00000000000000002', tags: { Backup: 'yes', 'ConsistentBackup:Group': 'g' } },
      { id: 'i-00000000000000003', tags: { ConsistentBackup: 'enabled' } },
    ]);
    const args = parseArgs(
      [
        '--region',
        'eu-west-1',
        '--window',
        '2026-11-22T02:00:30Z',
        '-c',
        'optInTagKey=Backup',
        '-c',
        'optInTagValue=yes',
        '--json',
      ],
      { context: { maxFrozenPerGroup: 2 } },
      {},
    );
    const lines: string[] = [];
    const report = await runPlan(clients(), args, (l) => lines.push(l));
    expect(report.rows.map((r) => [r.instanceId, r.wave])).toEqual([
      ['i-00000000000000001', 0],
      ['i-00000000000000002', 0],
    ]);
    expect(JSON.parse(lines.join('\n'))).toMatchObject({
      optIn: 'Backup=yes',
      window: '2026-11-22T02:00:00Z',
    });
  });

  it('refuses bad arguments, naming the value and what is allowed', () => {
    expect(() => parseArgs(['--region', 'Ireland'], {}, {})).toThrow(
      /--region: got "Ireland"; allowed: an AWS region name/,
    );
    expect(() => parseArgs([], {}, {})).toThrow(PlanUsageError);
    expect(() => parseArgs(['--region', 'eu-west-1', '--window', 'tonight'], {}, {})).toThrow(
      /--window: got "tonight"/,
    );
    expect(() => parseArgs(['--region', 'eu-west-1', '--start'], {}, {})).toThrow(
      /Unknown argument "--start"/,
    );
    expect(() => parseArgs(['--region', 'eu-west-1', '-c', 'maxFrozenPerGroup=0'], {}, {})).toThrow(
      /maxFrozenPerGroup.*a whole number from 1 to 1000/,
    );
  });
});
