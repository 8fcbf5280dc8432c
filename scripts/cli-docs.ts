/**
 * Writes the example output of every command into docs/cli.md (`npm run docs:cli`).
 *
 * - Simulated examples: the tool's real code (cli/main.ts) against the simulated account of
 *   sim/cli-account.ts (a deployed stack, a run of four instances, a vault, a preflight); the
 *   clock is fixed, so the output is reproducible and test/docs/cli.test.ts checks that the doc
 *   still shows what the commands print.
 * - Process examples: the bin itself in a child process: --help, and no credentials.
 * - README.md's cli:readme block: a few lines of each command's simulated example (README_EXAMPLES).
 * - With `--moto`, and moto_server installed: the bin against moto_server on 127.0.0.1 for a stack
 *   that is not deployed (real SDK calls to STS and CloudFormation, answered by moto).
 */

import '../sim/local-node';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { main } from '../cli/main';
import { exampleState, type SimState, simulatedAccount } from '../sim/cli-account';
import { recordingIo } from '../sim/cli-io';

const ROOT = path.join(__dirname, '..');
const DOC = path.join(ROOT, 'docs', 'cli.md');
const README = path.join(ROOT, 'README.md');
const BIN = path.join(ROOT, 'cli', 'ec2-consistent-backup.cjs');

export interface SimulatedExample {
  readonly id: string;
  readonly argv: readonly string[];
  readonly state?: (s: SimState) => void;
  readonly interactive?: boolean;
  readonly answers?: string[];
}

/** A run still going, which the example's polling moves on to its end. */
function runningRun(s: SimState): void {
  const done = s.executions.map((e) => ({ ...e }));
  for (const e of s.executions) e.status = 'RUNNING';
  const run = s.items.get('RUN#run-20261201T0200Z|RUN') as Record<string, { S?: string }>;
  const sent = run.summarySentAt;
  delete run.summarySentAt;
  let lists = 0;
  s.onList = () => {
    lists++;
    if (lists === 3) s.executions[2] = done[2] as never;
    if (lists === 5)
      s.executions.splice(
        0,
        s.executions.length,
        ...done.slice(0, 2),
        s.executions[2] as never,
        s.executions[3] as never,
      );
    if (lists === 7) {
      s.executions.splice(0, s.executions.length, ...done);
      run.summarySentAt = sent as { S: string };
    }
  };
}

export const SIMULATED: readonly SimulatedExample[] = [
  { id: 'plan', argv: ['plan', '--window', '2026-12-02T02:00:00Z'] },
  { id: 'run-instance', argv: ['run', '--instance', 'i-0b2c3d4e5f6071829'] },
  {
    id: 'run-group-wait',
    argv: ['run', '--group', 'ledger', '--wait', '--interval', '20'],
    state: runningRun,
  },
  { id: 'run-all', argv: ['run', '--all'], interactive: true, answers: ['y'] },
  { id: 'run-not-opted-in', argv: ['run', '--instance', 'i-0e5f60718293a4b52'] },
  { id: 'status', argv: ['status'] },
  { id: 'status-json', argv: ['status', '--json', '--run', 'run-20261201T0200Z'] },
  { id: 'watch', argv: ['watch', '--interval', '15'], state: runningRun },
  { id: 'recovery-points', argv: ['recovery-points'] },
  { id: 'recovery-points-crash', argv: ['recovery-points', '--consistency', 'crash'] },
  { id: 'preflight', argv: ['preflight', '--instance', 'i-0a1b2c3d4e5f60718'] },
  {
    id: 'preflight-not-ready',
    argv: ['preflight', '--instance', 'i-0b2c3d4e5f6071829'],
    state: (s) => {
      s.preflightOutput = JSON.stringify({
        status: 'not-ready',
        problems: [
          {
            code: 'hook-permissions',
            message:
              '/etc/ec2-consistent-backup/pre-freeze.d/20-cache is writable by group or others: chmod go-w it',
          },
        ],
        warnings: ['/srv/tmp is a tmpfs: not backed up'],
        targets: [
          {
            mountpoint: '/srv',
            fstype: 'ext4',
            source: '/dev/nvme1n1',
            volumeIds: ['vol-0b2c3d4e5f6070001'],
          },
        ],
        protected: [{ mountpoint: '/', holds: 'root, /usr, /var, the SSM agent' }],
        skipped: [],
        unmapped: [],
        hooks: { preFreeze: ['20-cache'], postThaw: [] },
      });
    },
  },
  {
    id: 'not-deployed',
    argv: ['status', '--stack', 'Ec2ConsistentBackup'],
    state: (s) => {
      s.stackStatus = undefined;
    },
  },
];

/**
 * What README.md shows of each command: the example's first `head` and last `tail` output lines
 * (as `transcript` prints them), the lines between replaced by one `...` line. docs/cli.md has
 * every line and the exit codes.
 */
export const README_EXAMPLES: readonly {
  readonly id: string;
  readonly head: number;
  readonly tail: number;
}[] = [
  { id: 'status', head: 2, tail: 1 },
  { id: 'run-instance', head: 3, tail: 0 },
  { id: 'watch', head: 2, tail: 0 },
  { id: 'recovery-points', head: 1, tail: 2 },
  { id: 'preflight', head: 1, tail: 1 },
  { id: 'plan', head: 1, tail: 1 },
];

/** The README's console block: each command of README_EXAMPLES with the lines it keeps. */
export async function readmeTranscript(): Promise<string> {
  const out: string[] = [];
  for (const { id, head, tail } of README_EXAMPLES) {
    const example = SIMULATED.find((e) => e.id === id);
    if (!example) throw new Error(`README example ${id} is not one of SIMULATED`);
    const [command, ...rest] = (await transcript(example)).split('\n');
    const lines = rest.slice(0, -1); // without "(exit n)"
    const skipped = lines.length - head - tail;
    out.push(
      command as string,
      ...(skipped > 0 ? [...lines.slice(0, head), '...', ...lines.slice(lines.length - tail)] : lines),
    );
  }
  return out.join('\n');
}

/** The terminal transcript of one simulated example and its exit code. */
export async function transcript(example: SimulatedExample): Promise<string> {
  const state = exampleState();
  example.state?.(state);
  const io = recordingIo({ interactive: false, answers: example.answers });
  const interactiveIo = example.interactive ? { ...io, interactive: true } : io;
  const code = await main(example.argv, interactiveIo, () => simulatedAccount(state), {});
  const asked = example.interactive ? io.asked.map((q) => `${q}${example.answers?.[0] ?? ''}`) : [];
  return [
    `$ npx ec2-consistent-backup ${example.argv.join(' ')}`,
    ...asked,
    ...io.terminal,
    `(exit ${code})`,
  ].join('\n');
}

function processTranscript(argv: string[], env: NodeJS.ProcessEnv, shown: string): string {
  const r = spawnSync(process.execPath, [BIN, ...argv], { encoding: 'utf8', env, cwd: ROOT });
  const lines = `${r.stdout}${r.stderr}`.trimEnd();
  return [`$ ${shown}`, lines, `(exit ${r.status})`].join('\n');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function motoTranscript(): Promise<string | undefined> {
  if (spawnSync('moto_server', ['--help'], { encoding: 'utf8' }).status !== 0) return undefined;
  const port = await freePort();
  const moto: ChildProcess = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: 'ignore',
  });
  try {
    for (let i = 0; i < 50; i++) {
      const up = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.end();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (up) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const env = {
      PATH: process.env.PATH,
      AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_EC2_METADATA_DISABLED: 'true',
    };
    return processTranscript(
      ['status', '--region', 'eu-west-1'],
      env,
      `AWS_ENDPOINT_URL=http://127.0.0.1:${port} npx ec2-consistent-backup status --region eu-west-1   # moto_server`,
    )
      .replace(String(port), '<port>')
      .replace(String(port), '<port>');
  } finally {
    // Only the server this script started.
    moto.kill();
  }
}

function replaceBlock(doc: string, id: string, text: string, file = 'docs/cli.md'): string {
  const block = new RegExp(`(<!-- cli:${id}:start -->\\n)[\\s\\S]*?(<!-- cli:${id}:end -->)`);
  if (!block.test(doc)) throw new Error(`${file} has no cli:${id} markers`);
  return doc.replace(block, `$1\`\`\`console\n${text}\n\`\`\`\n$2`);
}

async function mainScript(): Promise<void> {
  let doc = fs.readFileSync(DOC, 'utf8');
  for (const example of SIMULATED) doc = replaceBlock(doc, example.id, await transcript(example));
  doc = replaceBlock(
    doc,
    'help',
    processTranscript(['--help'], { PATH: process.env.PATH }, 'npx ec2-consistent-backup --help'),
  );
  doc = replaceBlock(
    doc,
    'no-credentials',
    processTranscript(
      ['status', '--region', 'eu-west-1'],
      {
        PATH: process.env.PATH,
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_CONFIG_FILE: '/nonexistent',
        AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
      },
      'npx ec2-consistent-backup status --region eu-west-1   # no credentials anywhere',
    ),
  );
  if (process.argv.includes('--moto')) {
    const moto = await motoTranscript();
    if (moto) doc = replaceBlock(doc, 'moto', moto);
    else console.error('moto_server is not installed: the moto example was left as it is.');
  }
  fs.writeFileSync(DOC, doc);
  console.log(`Wrote ${path.relative(process.cwd(), DOC)}.`);
  const readme = fs.readFileSync(README, 'utf8');
  fs.writeFileSync(README, replaceBlock(readme, 'readme', await readmeTranscript(), 'README.md'));
  console.log(`Wrote ${path.relative(process.cwd(), README)} (its cli:readme block).`);
}

if (require.main === module) {
  mainScript().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
