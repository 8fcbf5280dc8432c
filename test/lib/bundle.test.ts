import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { BackupFunction, BUNDLE_OPTIONS } from '../../lib/lambda-function';
import lock from '../../package-lock.json';

const ROOT = path.join(__dirname, '../..');

describe('the bundle production runs', () => {
  it('is built by the construct with the SDK inside: no import of @aws-sdk/* is left to the runtime', () => {
    // Real local bundling (esbuild, no Docker) of the smallest function, as cdk synth does it.
    const app = new App({
      outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'ecb-bundle-')),
    });
    const stack = new Stack(app, 'BundleTest', { env: { account: '111122223333', region: 'eu-west-1' } });
    new BackupFunction(stack, 'DeadLetters', { handlerDir: 'dead-letters', description: 'bundle test' });
    const assembly = app.synth();
    const assets = fs.readdirSync(assembly.directory).filter((d) => d.startsWith('asset.'));
    expect(assets).toHaveLength(1);
    const code = fs.readFileSync(path.join(assembly.directory, assets[0] as string, 'index.mjs'), 'utf8');
    expect(code).not.toMatch(/from\s*["']@aws-sdk\//);
    expect(code).not.toMatch(/import\(\s*["']@aws-sdk\//);
    // The SNS client is in the bundle, and it is the pinned one: its user agent carries the
    // package's version.
    const pinned = (lock.packages as Record<string, { version?: string }>)['node_modules/@aws-sdk/client-sns']
      ?.version as string;
    expect(code).toContain('AmazonSimpleNotificationService');
    expect(code).toContain(`"${pinned}"`);
    fs.rmSync(assembly.directory, { recursive: true, force: true });
  }, 60_000);

  it('holds one copy of each SDK package, at the version package-lock.json pins', async () => {
    const result = await build({
      entryPoints: [path.join(ROOT, 'lambda', 'label-writer', 'handler.ts')],
      bundle: true,
      write: false,
      metafile: true,
      outfile: 'index.mjs',
      platform: 'node',
      format: BUNDLE_OPTIONS.format,
      target: BUNDLE_OPTIONS.target,
      mainFields: [...BUNDLE_OPTIONS.mainFields],
      external: [...BUNDLE_OPTIONS.externalModules],
      logLevel: 'silent',
    });
    const copies = new Map<string, Set<string>>();
    for (const input of Object.keys(result.metafile.inputs)) {
      const match = /^(.*node_modules\/(@(?:aws-sdk|smithy)\/[^/]+))\//.exec(input);
      if (!match) continue;
      const [, dir, name] = match as unknown as [string, string, string];
      copies.set(name, (copies.get(name) ?? new Set()).add(dir));
    }
    expect(copies.size).toBeGreaterThan(10);
    const packages = lock.packages as Record<string, { version?: string }>;
    for (const [name, dirs] of copies) {
      expect([...dirs], name).toHaveLength(1);
      expect(packages[[...dirs][0] as string]?.version, `${name} is pinned in package-lock.json`).toMatch(
        /^\d+\.\d+\.\d+$/,
      );
    }
    // The clients the handler imports, at the versions package.json pins.
    const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    for (const client of ['@aws-sdk/client-ec2', '@aws-sdk/client-backup', '@aws-sdk/client-sqs']) {
      expect(packages[`node_modules/${client}`]?.version).toBe(manifest.dependencies[client]);
      expect(copies.has(client), `${client} is bundled`).toBe(true);
    }
  }, 60_000);

  it('is one SDK across every function: each shared @aws-sdk and @smithy package at one version in all bundles', async () => {
    // Every function's entry point in one build: a second copy of the SDK core or of a @smithy
    // package anywhere (a client pinned to an older release that resolves its own) shows here.
    const handlers = fs
      .readdirSync(path.join(ROOT, 'lambda'))
      .filter((dir) => fs.existsSync(path.join(ROOT, 'lambda', dir, 'handler.ts')))
      .map((dir) => path.join(ROOT, 'lambda', dir, 'handler.ts'));
    expect(handlers.length).toBeGreaterThanOrEqual(15);
    const result = await build({
      entryPoints: handlers,
      bundle: true,
      write: false,
      metafile: true,
      outdir: 'out',
      platform: 'node',
      format: BUNDLE_OPTIONS.format,
      target: BUNDLE_OPTIONS.target,
      mainFields: [...BUNDLE_OPTIONS.mainFields],
      external: [...BUNDLE_OPTIONS.externalModules],
      logLevel: 'silent',
    });
    const packages = lock.packages as Record<string, { version?: string }>;
    const versions = new Map<string, Set<string>>();
    for (const input of Object.keys(result.metafile.inputs)) {
      const match = /^(.*node_modules\/(@(?:aws-sdk|smithy|aws-crypto)\/[^/]+))\//.exec(input);
      if (!match) continue;
      const [, dir, name] = match as unknown as [string, string, string];
      versions.set(name, (versions.get(name) ?? new Set()).add(packages[dir]?.version ?? dir));
    }
    const clients = [...versions.keys()].filter((name) => name.startsWith('@aws-sdk/client-'));
    expect(clients.length).toBeGreaterThanOrEqual(8);
    const twice = [...versions].filter(([, v]) => v.size > 1).map(([name, v]) => `${name} ${[...v]}`);
    expect(twice).toEqual([]);
    // The clients' releases differ (each is its newest: client-backup 3.1092.0, the others
    // 3.1164.0-3.1169.0), and all of them run on this one core.
    expect([...(versions.get('@aws-sdk/core') ?? [])]).toEqual([
      packages['node_modules/@aws-sdk/core']?.version,
    ]);
  }, 120_000);
});
