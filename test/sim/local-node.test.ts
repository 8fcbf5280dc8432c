import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.join(__dirname, '..', '..');
const tsx = path.join(root, 'node_modules', '.bin', 'tsx');
const NOTICE = 'NodeVersionSupportWarning';
const nodeMajor = Number(process.versions.node.split('.')[0]);

/** Runs `code` in a fresh tsx process without the switch inherited from this test's own setup. */
function run(code: string): { status: number | null; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, AWS_EC2_METADATA_DISABLED: 'true' };
  delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
  const r = spawnSync(tsx, ['-e', code], { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stderr: r.stderr };
}

const construct = `const { EC2Client } = require('@aws-sdk/client-ec2'); new EC2Client({ region: 'eu-west-1' });`;

describe('sim/local-node (what every local tool loads first)', () => {
  it.runIf(nodeMajor < 22)('is what keeps the SDK Node-version notice out of the output', () => {
    // Without it the SDK prints the notice at the first client: the switch is what removes it.
    const bare = run(construct);
    expect(bare.status).toBe(0);
    expect(bare.stderr).toContain(NOTICE);

    const local = run(`require('./sim/local-node'); ${construct}`);
    expect(local.status).toBe(0);
    expect(local.stderr).not.toContain(NOTICE);
  });

  it('leaves a value the user set alone, and gives Node 20 Promise.withResolvers', () => {
    const r = spawnSync(
      tsx,
      [
        '-e',
        `require('./sim/local-node'); const { promise, resolve } = Promise.withResolvers(); resolve(1);
         promise.then((v) => console.log(v, process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED));`,
      ],
      {
        cwd: root,
        env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'false' },
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('1 false');
  });
});
