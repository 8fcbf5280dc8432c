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
    // Wave 1: 18 min of wave spacing plus the admission span (7 slots round up to 1 min), plus
    // its own slot: position 1 at 1.31 backups/s (DescribeSnapshots: 20/s x 85 % / 13 per backup).
    expect(report.pacing).toMatchObject({ profile: 'large', binding: { name: 'describeSnapshots' } });
    expect(report.pacing.ratePerSecond).toBeCloseTo((20 * 0.85) / 13, 6);
    expect(byName[id(1)]).toMatchObject({
      action: 'freeze+backup',
      group: 'pg',
      wave: 1,
      startAt: '2026-11-22T02:19:00.764Z',
    });
    // Each instance its own slot: position 2 (the Windows one) 1.41 s after the window.
    expect(byName[id(2)].startAt).toBe('2026-11-22T02:00:01.529Z');
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
    expect(lines[1]).toBe(
      'Groups: at most 1 frozen at once per group; waves 1140 s apart (1080 s plus the 60 s admission span).',
    );
    expect(lines[2]).toBe(
      'Admission (large Region profile, 85 % of each quota): 1.31 backups/s, one slot every 765 ms, bound by describeSnapshots; StartExecution paced at 255/s (burst 1105).',
    );
    expect(lines.find((l) => l.startsWith('describeSnapshots'))).toMatch(
      /^describeSnapshots\s+20\s+100\s+13\s+1\.31\s+published$/,
    );
    expect(lines.find((l) => l.startsWith('sendCommand'))).toMatch(/assumed \(not published\)$/);
    expect(lines.find((l) => l.startsWith('Expected run:'))).toBe(
      'Expected run: 7 slots in 5 s from the window, plus about a minute for the last backups; labels (CreateTags, after the freezes) take 0 s.',
    );
    expect(lines.find((l) => l.startsWith('INSTANCE'))).toMatch(
      /^INSTANCE\s+NAME\s+PLATFORM\s+STATE\s+ACTION\s+GROUP\s+WAVE\s+START AT\s+WHY$/,
    );
    expect(lines.find((l) => l.startsWith(id(1)))).toMatch(
      /db-b\s+linux\s+running\s+freeze\+backup\s+pg\s+1\s+2026-11-22T02:19:00/,
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

  it('paces to the standard profile outside the three largest Regions, and to apiRates overrides', async () => {
    fake = new FakeAws(fleet(3));
    const lines: string[] = [];
    const standard = await runPlan(
      { ec2: new EC2Client({ region: 'eu-central-1' }), ssm: new SSMClient({ region: 'eu-central-1' }) },
      { region: 'eu-central-1', window: WINDOW, config: parseConfig({}) },
      (l) => lines.push(l),
    );
    expect(standard.pacing.profile).toBe('standard');
    // DescribeSnapshots binds in both profiles: it is EC2's, the same in every Region.
    expect(standard.pacing.binding.name).toBe('describeSnapshots');
    expect(lines.find((l) => l.startsWith('stateTransitions'))).toMatch(
      /^stateTransitions\s+500\s+800\s+9\s/,
    );
    const raised = await runPlan(
      clients(),
      {
        region: 'eu-central-1',
        window: WINDOW,
        config: parseConfig({
          regionProfile: 'large',
          apiRates:
            'describeSnapshots=400/1000,getCommandInvocation=400,listBackupJobs=400,describeBackupJob=400,sendCommand=100,startBackupJob=100',
        }),
      },
      () => undefined,
    );
    expect(raised.pacing.profile).toBe('large');
    // With every EC2/SSM/Backup quota raised, freeze-filesystems' reserved concurrency binds: each
    // backup holds it for ~1.5 s, and admission counts on half of its 25.
    expect(raised.pacing.binding.name).toBe('lambda:freeze-filesystems');
    expect(raised.pacing.ratePerSecond).toBeCloseTo((0.5 * 25) / 1.5, 6);
    expect(raised.pacing.limits.find((l) => l.name === 'stateTransitions')?.backupsPerSecond).toBeCloseTo(
      (1500 * 0.85) / 9,
      6,
    );
    expect(raised.pacing.limits.find((l) => l.name === 'describeSnapshots')).toMatchObject({
      overridden: true,
      bucket: { burst: 1000, ratePerSecond: 400 },
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
