import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseArgs } from '../../cli/args';
import { EXIT } from '../../cli/errors';
import { main } from '../../cli/main';
import {
  exampleState,
  simulatedAccount,
  DISCOVERY,
  type SimState,
  STATE_MACHINE,
} from '../../sim/cli-account';
import { recordingIo } from '../../sim/cli-io';

const ROOT = path.join(__dirname, '../..');

async function cli(
  argv: string[],
  state: SimState = exampleState(),
  ioOptions: Parameters<typeof recordingIo>[0] = {},
) {
  const aws = simulatedAccount(state);
  const io = recordingIo(ioOptions);
  const code = await main(argv, io, () => aws, {});
  return { code, io, aws, state, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
}

describe('the command line', () => {
  it('runs from the package bin with node alone: --help, --version, a usage error', () => {
    const bin = path.join(ROOT, 'cli', 'ec2-consistent-backup.cjs');
    const help = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8', cwd: '/' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: npx ec2-consistent-backup <command> \[options\]/);
    expect(help.stderr).toBe('');
    const version = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8' });
    expect(version.stdout.trim()).toBe(require('../../package.json').version);
    const bad = spawnSync(process.execPath, [bin, 'status', '--frobnicate'], { encoding: 'utf8' });
    expect(bad.status).toBe(EXIT.usage);
    expect(bad.stderr).toMatch(
      /status: unknown option "--frobnicate"; allowed: --run, --window, --stack, --region, --json/,
    );
  }, 60_000);

  it('is the package bin, and the bin is not the CDK app', () => {
    const pkg = require('../../package.json') as {
      bin: Record<string, string>;
      dependencies: Record<string, string>;
    };
    expect(pkg.bin).toEqual({ 'ec2-consistent-backup': 'cli/ec2-consistent-backup.cjs' });
    // The launcher needs tsx at run time: a dependency, not a devDependency.
    expect(pkg.dependencies.tsx).toBeDefined();
  });

  it('gives each command its help', async () => {
    for (const command of ['plan', 'run', 'status', 'recovery-points', 'preflight', 'watch']) {
      const { code, out } = await cli([command, '--help']);
      expect(code).toBe(0);
      expect(out).toMatch(new RegExp(`^Usage: npx ec2-consistent-backup ${command}`));
    }
  });

  it('checks arguments before calling AWS', async () => {
    const r = await cli(['run', '--instance', 'web-1']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/--instance: got "web-1"; allowed: an instance id/);
    expect(r.aws.fakes.sts?.calls).toHaveLength(0);
    expect(() => parseArgs(['run', '--all', '--group', 'x'])).toThrow(/exactly one of/);
    expect(() => parseArgs(['watch', '--interval', '0'])).toThrow(/from 1 to 3600/);
    expect(() => parseArgs(['status', '--run', 'yesterday'])).toThrow(/run-20261122T0200Z/);
    // Values that only a command used to check: refused before the credentials are looked at.
    for (const [argv, message] of [
      [['plan', '--window', 'yesterday'], /--window: got "yesterday"; allowed: an ISO-8601 time with a zone/],
      [['status', '--window', '2026-11-22T02:00'], /--window: got "2026-11-22T02:00"; allowed/],
      [
        ['recovery-points', '--consistency', 'great'],
        /--consistency: got "great"; allowed: application, filesystem, crash, pending, unlabelled\./,
      ],
    ] as const) {
      const refused = await cli([...argv]);
      expect(refused.code, argv.join(' ')).toBe(EXIT.usage);
      expect(refused.err).toMatch(message);
      expect(refused.aws.fakes.sts?.calls ?? []).toHaveLength(0);
    }
  });
});

describe('finding the deployment', () => {
  it('says when the stack is not deployed, and exits 4', async () => {
    const state = exampleState();
    state.stackStatus = undefined;
    const r = await cli(['status'], state);
    expect(r.code).toBe(EXIT.notDeployed);
    expect(r.err).toBe(
      'ec2-consistent-backup: Stack Ec2ConsistentBackup is not deployed in eu-west-1 (account 111122223333). Deploy it (npx cdk deploy), or name yours with --stack or EC2_CONSISTENT_BACKUP_STACK, or pick its Region with --region.',
    );
  });

  it('says when the stack failed to deploy', async () => {
    const state = exampleState();
    state.stackStatus = 'ROLLBACK_COMPLETE';
    const r = await cli(['status'], state);
    expect(r.code).toBe(EXIT.notDeployed);
    expect(r.err).toMatch(/is ROLLBACK_COMPLETE, not deployed/);
  });

  it('says when there are no credentials, and exits 3', async () => {
    const aws = simulatedAccount();
    const sts = {
      send: async () => {
        throw Object.assign(new Error('Could not load credentials from any providers'), {
          name: 'CredentialsProviderError',
        });
      },
    };
    const io = recordingIo();
    const code = await main(['status'], io, () => ({ ...aws, sts: sts as never }), {});
    expect(code).toBe(EXIT.credentials);
    expect(io.stderr.join('\n')).toMatch(
      /No usable AWS credentials \(CredentialsProviderError: Could not load credentials from any providers\)\. Set AWS_PROFILE, run aws sso login/,
    );
  });
});

describe('status', () => {
  it('shows the latest run per instance: execution, outcome, label, freeze, job, notification, reason', async () => {
    const r = await cli(['status']);
    expect(r.code).toBe(EXIT.attention);
    expect(r.io.stdout[0]).toBe(
      'Run run-20261201T0200Z (window 2026-12-01T02:00:00Z), stack Ec2ConsistentBackup in eu-west-1',
    );
    expect(r.io.stdout[1]).toBe(
      'Discovery: 5 discovered, 4 started, 1 excluded (ssm-offline 1). Summary: sent 2026-12-01T02:20:32.007Z (finished).',
    );
    expect(r.io.stdout[2]).toMatch(
      /^INSTANCE\s+EXECUTION\s+OUTCOME\s+LABEL\s+FREEZE\s+JOB\s+NOTIFICATION\s+REASON$/,
    );
    const row = (id: string) => r.io.stdout.find((l) => l.startsWith(id))?.split(/\s{2,}/);
    expect(row('i-0a1b2c3d4e5f60718')?.slice(0, 7)).toEqual([
      'i-0a1b2c3d4e5f60718',
      'SUCCEEDED',
      'backed-up',
      'application',
      '2480 ms',
      'COMPLETED',
      '-',
    ]);
    expect(row('i-0a1b2c3d4e5f60719')?.slice(0, 7)).toEqual([
      'i-0a1b2c3d4e5f60719',
      'SUCCEEDED',
      'backed-up',
      'crash',
      '57004 ms',
      'COMPLETED',
      'Warning crash-consistent-fallback',
    ]);
    // A failed execution's verdict comes from its history.
    expect(row('i-0c3d4e5f607182930')?.slice(0, 7)).toEqual([
      'i-0c3d4e5f607182930',
      'FAILED',
      'backup-start-failed',
      'none',
      '-',
      '-',
      'Major backup-start-failed',
    ]);
    expect(r.io.stdout.at(-1)).toBe(
      '4 execution(s): SUCCEEDED 3, FAILED 1; labels: application 1, crash 1, filesystem 1, none 1. Needs attention: 1 execution(s) failed, timed out or were aborted; 1 backup(s) only crash-consistent.',
    );
  });

  it('prints one JSON document with --json', async () => {
    const r = await cli(['status', '--json', '--run', 'run-20261201T0200Z']);
    const report = JSON.parse(r.out);
    expect(report.runId).toBe('run-20261201T0200Z');
    expect(report.executions).toHaveLength(4);
    expect(report.attention).toHaveLength(2);
    expect(r.io.stdout).toHaveLength(1);
  });

  it('exits 0 for a run with nothing to look at', async () => {
    const state = exampleState();
    state.executions = state.executions.filter((e) => e.result?.consistency === 'application');
    expect((await cli(['status'], state)).code).toBe(EXIT.ok);
  });
});

describe('run', () => {
  it('invokes discovery for one instance now, asynchronously, under an on-demand run id', async () => {
    const r = await cli(['run', '--instance', 'i-0b2c3d4e5f6071829']);
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toBe('run-od20261202T081522Z');
    expect(r.state.invokes).toEqual([
      {
        FunctionName: DISCOVERY,
        InvocationType: 'Event',
        Payload: {
          scheduledTime: '2026-12-02T08:15:22Z',
          onDemand: { id: 'od20261202T081522Z', instanceIds: ['i-0b2c3d4e5f6071829'] },
        },
      },
    ]);
    expect(r.err).toMatch(/Follow it: npx ec2-consistent-backup watch --run run-od20261202T081522Z/);
  });

  it('refuses an instance that is not opted in, naming it and the tag', async () => {
    const r = await cli(['run', '--instance', 'i-0e5f60718293a4b52']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/Not opted in \(no tag ConsistentBackup=enabled\): i-0e5f60718293a4b52/);
    expect(r.state.invokes).toEqual([]);
  });

  it('runs a group, and --all only when confirmed', async () => {
    const group = await cli(['run', '--group', 'ledger']);
    expect((group.state.invokes[0] as { Payload: { onDemand: unknown } }).Payload.onDemand).toEqual({
      id: 'od20261202T081522Z',
      group: 'ledger',
    });
    const unconfirmed = await cli(['run', '--all']);
    expect(unconfirmed.code).toBe(EXIT.usage);
    expect(unconfirmed.err).toMatch(/add --yes/);
    const declined = await cli(['run', '--all'], exampleState(), { interactive: true, answers: ['n'] });
    expect(declined.io.asked).toEqual([
      'Back up all 5 opted-in instances of Ec2ConsistentBackup in eu-west-1 now? [y/N] ',
    ]);
    expect(declined.state.invokes).toEqual([]);
    const confirmed = await cli(['run', '--all'], exampleState(), { interactive: true, answers: ['y'] });
    expect(confirmed.state.invokes).toHaveLength(1);
    expect((await cli(['run', '--all', '--yes'])).state.invokes).toHaveLength(1);
  });
});

describe('watch', () => {
  it('follows a run until its summary is sent, showing progress, then its status', async () => {
    const state = exampleState();
    const running = state.executions.map((e) => ({ ...e }));
    for (const e of state.executions) e.status = 'RUNNING';
    const run = state.items.get('RUN#run-20261201T0200Z|RUN') as Record<string, { S?: string }>;
    const sent = run.summarySentAt;
    delete run.summarySentAt;
    let lists = 0;
    state.onList = () => {
      lists++;
      if (lists === 3) state.executions[0] = running[0] as never;
      if (lists === 5) {
        state.executions.splice(0, state.executions.length, ...running);
        run.summarySentAt = sent as { S: string };
      }
    };
    const r = await cli(['watch', '--interval', '10'], state);
    expect(r.io.stderr).toEqual([
      'run-20261201T0200Z: 0/4 ended (0 succeeded, 0 did not), 4 running',
      'run-20261201T0200Z: 1/4 ended (1 succeeded, 0 did not), 3 running',
      'run-20261201T0200Z: 4/4 ended (3 succeeded, 1 did not), 0 running',
    ]);
    expect(r.out).toMatch(/^Run run-20261201T0200Z/);
    expect(r.code).toBe(EXIT.attention);
  });

  it('draws a progress line on a terminal, and stops at --timeout', async () => {
    const state = exampleState();
    for (const e of state.executions) e.status = 'RUNNING';
    delete (state.items.get('RUN#run-20261201T0200Z|RUN') as Record<string, unknown>).summarySentAt;
    const r = await cli(['watch', '--interval', '30', '--timeout', '60'], state, { interactive: true });
    expect(r.io.progressLines.filter((l) => l.startsWith('run-'))).toEqual([
      'run-20261201T0200Z: 0/4 ended (0 succeeded, 0 did not), 4 running [0 s]',
      'run-20261201T0200Z: 0/4 ended (0 succeeded, 0 did not), 4 running [30 s]',
      'run-20261201T0200Z: 0/4 ended (0 succeeded, 0 did not), 4 running [60 s]',
    ]);
    expect(r.err).toMatch(/still running after 60 s/);
    expect(r.code).toBe(EXIT.attention);
  });
});

describe('--json', () => {
  it.each([
    [['plan', '--window', '2026-12-02T02:00:00Z']],
    [['run', '--instance', 'i-0b2c3d4e5f6071829']],
    [['run', '--all', '--yes']],
    [['status']],
    [['watch', '--interval', '15']],
    [['recovery-points']],
    [['preflight', '--instance', 'i-0a1b2c3d4e5f60718']],
  ])('makes %j print one JSON document on stdout, progress and errors on stderr only', async (argv) => {
    const r = await cli([...argv, '--json']);
    expect([EXIT.ok, EXIT.attention]).toContain(r.code);
    expect(() => JSON.parse(r.out), r.out.slice(0, 200)).not.toThrow();
    expect(typeof JSON.parse(r.out)).toBe('object');
  });
});

describe('recovery-points, preflight, plan', () => {
  it('lists recovery points by label, newest first, and filters', async () => {
    const r = await cli(['recovery-points']);
    expect(r.code).toBe(0);
    expect(r.io.stdout.at(-2)).toBe('By consistency: application 2, crash 1, pending 1.');
    const crash = await cli(['recovery-points', '--consistency', 'crash']);
    expect(crash.io.stdout.filter((l) => l.startsWith('ami-'))).toHaveLength(1);
    const one = await cli(['recovery-points', '--instance', 'i-0a1b2c3d4e5f60718', '--json']);
    expect(JSON.parse(one.out).recoveryPoints).toHaveLength(2);
  });

  it('sends the preflight document with the instance volumes and devices, and shows readiness', async () => {
    const r = await cli(['preflight', '--instance', 'i-0a1b2c3d4e5f60718']);
    expect(r.code).toBe(0);
    const sent = r.aws.fakes.ssm?.calls.find((c) => c.command === 'SendCommandCommand')?.input;
    expect(sent).toMatchObject({
      DocumentName: 'Ec2ConsistentBackup-Preflight',
      InstanceIds: ['i-0a1b2c3d4e5f60718'],
      Parameters: {
        VolumeIds: ['vol-0a1b2c3d4e5f60001,vol-0a1b2c3d4e5f60002'],
        VolumeDevices: ['vol-0a1b2c3d4e5f60001=/dev/xvda,vol-0a1b2c3d4e5f60002=/dev/sdf'],
        Include: [''],
        Exclude: [''],
      },
    });
    expect(r.io.stdout[0]).toBe(
      'i-0a1b2c3d4e5f60718: ready for a consistent backup (preflight command 7b6f5a41-2c3d-4e5f-8a9b-0c1d2e3f4a5b)',
    );
    expect(r.out).toMatch(/freeze\s+\/data\s+xfs\s+vol-0a1b2c3d4e5f60002/);
  });

  it("passes the instance's Apps tag to the preflight document and shows each application's readiness", async () => {
    const r = await cli(['preflight', '--instance', 'i-0a1b2c3d4e5f60718']);
    const sent = r.aws.fakes.ssm?.calls.find((c) => c.command === 'SendCommandCommand')?.input;
    expect((sent?.Parameters as Record<string, string[]>).Apps).toEqual(['postgresql']);
    expect(r.out).toContain('Applications (tag ConsistentBackup:Apps=postgresql):');
    expect(r.out).toMatch(
      /postgresql\s+yes\s+postgresql: reachable on \/var\/run\/postgresql:5432 as postgres/,
    );
    // An instance without the tag: no Apps parameter (the document's default, none), no applications line.
    const web = await cli(['preflight', '--instance', 'i-0b2c3d4e5f6071829']);
    const plain = web.aws.fakes.ssm?.calls.find((c) => c.command === 'SendCommandCommand')?.input;
    expect(plain?.Parameters).not.toHaveProperty('Apps');
    expect(web.out).not.toContain('Applications');
  });

  it('reports an application whose hook check fails, and a tag discovery would refuse', async () => {
    const state = exampleState();
    const output = JSON.parse(state.preflightOutput);
    output.status = 'not-ready';
    output.problems = [
      { code: 'APP_NOT_READY', message: 'postgresql: not reachable on /var/run/postgresql:5432 as postgres' },
    ];
    output.apps = [
      {
        app: 'postgresql',
        ready: false,
        exitCode: 1,
        message: 'postgresql: not reachable on /var/run/postgresql:5432 as postgres',
      },
    ];
    state.preflightOutput = JSON.stringify(output);
    const r = await cli(['preflight', '--instance', 'i-0a1b2c3d4e5f60718'], state);
    expect(r.code).toBe(EXIT.attention);
    expect(r.out).toMatch(/postgresql\s+NO\s+postgresql: not reachable/);
    expect(r.out).toContain('Problem (APP_NOT_READY): postgresql: not reachable');

    const tagged = exampleState();
    tagged.instances = tagged.instances.map((i) =>
      i.id === 'i-0a1b2c3d4e5f60718' ? { ...i, apps: 'oracle' } : i,
    );
    const bad = await cli(['preflight', '--instance', 'i-0a1b2c3d4e5f60718'], tagged);
    expect(bad.code).toBe(EXIT.attention);
    expect(bad.out).toContain(
      'Problem (TAG_INVALID): Tag ConsistentBackup:Apps has the invalid value "oracle"; allowed: empty, or one or more of postgresql, mysql, redis',
    );
    expect(bad.out).toMatch(/NOT READY/);
  });

  it('exits 1 and names the problem when an instance is not ready', async () => {
    const state = exampleState();
    state.preflightOutput = JSON.stringify({
      status: 'not-ready',
      problems: [{ code: 'no-fsfreeze', message: 'fsfreeze not found (util-linux): install it' }],
      warnings: [],
      targets: [],
      protected: [],
      skipped: [],
      unmapped: [],
      hooks: { preFreeze: [], postThaw: [] },
    });
    const r = await cli(['preflight', '--instance', 'i-0b2c3d4e5f6071829'], state);
    expect(r.code).toBe(EXIT.attention);
    expect(r.out).toMatch(/NOT READY/);
    expect(r.out).toMatch(/Problem \(no-fsfreeze\): fsfreeze not found/);
  });

  it('plans with the deployed settings: who would start, who is excluded and why', async () => {
    const r = await cli(['plan', '--window', '2026-12-02T02:00:00Z']);
    expect(r.code).toBe(0);
    expect(r.io.stdout[0]).toBe(
      'Plan for window 2026-12-02T02:00:00Z in eu-west-1, instances tagged ConsistentBackup=enabled (dry run: nothing is started)',
    );
    expect(r.out).toMatch(/i-0d4e5f60718293a41\s+batch-7\s+.*excluded/);
    expect(r.io.stdout.at(-1)).toBe(
      '5 discovered: 4 would start (0 without a freeze), 1 excluded (ssm-offline 1).',
    );
    // It starts nothing.
    expect(r.aws.fakes.sfn?.calls).toEqual([]);
    expect(r.state.invokes).toEqual([]);
    expect(STATE_MACHINE).toContain(':stateMachine:');
  });
});
