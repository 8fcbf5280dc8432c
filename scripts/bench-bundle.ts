/**
 * What bundling the AWS SDK into the functions costs (`npm run bench:bundle`).
 *
 * For every function of the synthesized app, builds its bundle twice with the options of
 * lib/lambda-function.ts: as deployed (nothing external, the SDK pinned in package-lock.json
 * inside), and with `@aws-sdk/*` external (NodejsFunction's default, which runs the SDK the
 * nodejs24.x runtime ships). Prints the sizes (bundle, source map, the zipped package Lambda
 * downloads) and the module load time at cold start: a fresh Node process imports the bundle with
 * NODE_OPTIONS as deployed (`--enable-source-maps`) and the function's own environment from the
 * synthesized template; the external variant resolves the SDK from node_modules, as the runtime
 * resolves its own. Median and range of `--runs N` (default 9) per variant, alternating them so
 * that load on the machine hits both alike. Nothing here calls AWS: the clients are created at
 * module load, as in Lambda, but no request is made.
 *
 * Usage: npm run bench:bundle [-- --runs 15] [-- --json] [-- --update-docs]
 * (`--update-docs` rewrites the table in docs/operating.md between its bundle markers.)
 */
import '../sim/local-node';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { build } from 'esbuild';
import cdkJson from '../cdk.json';
import { parseConfig } from '../lib/config';
import { BackupFunction, BUNDLE_OPTIONS } from '../lib/lambda-function';
import { ConsistentBackupStack } from '../lib/stack';

const ROOT = path.join(__dirname, '..');
// Inside the repository, so that the external variant resolves @aws-sdk/* from its node_modules.
const OUT = path.join(ROOT, 'node_modules', '.cache', 'ec2-consistent-backup', 'bench-bundle');
const ACCOUNT = '111122223333';
const REGION = 'eu-west-1';

type Variant = 'bundled' | 'sdk-external';
interface Target {
  readonly name: string;
  readonly entry: string;
  readonly environment: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------
// The functions and their environment, from the app itself.

type Template = { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> };

/** A deployed value for a reference, in the shape each handler's environment check expects. */
function placeholder(template: Template, logicalId: string, attribute?: string): string {
  const type = template.Resources[logicalId]?.Type;
  const name = logicalId.slice(0, 60);
  switch (type) {
    case 'AWS::SNS::Topic':
      return `arn:aws:sns:${REGION}:${ACCOUNT}:${name}`;
    case 'AWS::DynamoDB::Table':
      return attribute === 'Arn' ? `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${name}` : name;
    case 'AWS::StepFunctions::StateMachine':
      return `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:${name}`;
    case 'AWS::Lambda::Function':
      return attribute === 'Arn' ? `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${name}` : name;
    case 'AWS::Logs::LogGroup':
      return attribute === 'Arn' ? `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:${name}:*` : name;
    case 'AWS::SQS::Queue':
      return attribute === 'Arn'
        ? `arn:aws:sqs:${REGION}:${ACCOUNT}:${name}`
        : `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/${name}`;
    case 'AWS::SecretsManager::Secret':
      return `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${name}-AbCdEf`;
    case 'AWS::IAM::Role':
      return attribute === 'Arn' ? `arn:aws:iam::${ACCOUNT}:role/${name}` : name;
    case 'AWS::Backup::RestoreTestingPlan':
      return attribute === 'RestoreTestingPlanArn'
        ? `arn:aws:backup:${REGION}:${ACCOUNT}:restore-testing-plan:${name}`
        : name;
    case 'AWS::Backup::BackupVault':
      return attribute === 'BackupVaultArn'
        ? `arn:aws:backup:${REGION}:${ACCOUNT}:backup-vault:${name}`
        : name;
    default:
      return `${name}${attribute ? `-${attribute}` : ''}`;
  }
}

function resolveIntrinsics(template: Template, value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  const v = value as Record<string, unknown>;
  if ('Ref' in v) {
    const ref = v.Ref as string;
    const pseudo: Record<string, string> = {
      'AWS::Region': REGION,
      'AWS::AccountId': ACCOUNT,
      'AWS::Partition': 'aws',
      'AWS::URLSuffix': 'amazonaws.com',
    };
    return pseudo[ref] ?? placeholder(template, ref);
  }
  if ('Fn::GetAtt' in v) {
    const [id, attribute] = v['Fn::GetAtt'] as [string, string];
    return placeholder(template, id, attribute);
  }
  if ('Fn::Join' in v) {
    const [separator, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map((p) => resolveIntrinsics(template, p)).join(separator);
  }
  throw new Error(`bench-bundle: cannot resolve ${JSON.stringify(value)} in a function environment`);
}

function targets(): Target[] {
  // Every function the app can have: the optional ServiceNow forwarder, copies and restore testing included.
  const context = {
    ...cdkJson.context,
    serviceNowForwarder: true,
    copyDestinations: 'arn:aws:backup:us-east-1:444455556666:backup-vault:central=365',
    restoreTestSubnetId: 'subnet-0123456789abcdef0',
    restoreTestSecurityGroupIds: 'sg-0123456789abcdef0',
  };
  const app = new App({ context: { ...context, 'aws:cdk:bundling-stacks': [] } });
  const stack = new ConsistentBackupStack(app, 'Ec2ConsistentBackup', {
    config: parseConfig(context),
    env: { account: ACCOUNT, region: REGION },
  });
  const template = app.synth().getStackByName(stack.stackName).template as Template;
  const functions = stack.node.findAll().filter((c): c is BackupFunction => c instanceof BackupFunction);
  return functions.map((fn) => {
    const cfn = fn.node.defaultChild as lambda.CfnFunction;
    const resolved = Stack.of(fn).resolve(cfn.environment) as { variables?: Record<string, unknown> };
    const environment: Record<string, string> = {};
    for (const [key, value] of Object.entries(resolved?.variables ?? {})) {
      environment[key] = resolveIntrinsics(template, value);
    }
    return {
      name: fn.handlerDir,
      entry: path.join(ROOT, 'lambda', fn.handlerDir, 'handler.ts'),
      environment,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Building and measuring.

interface Built {
  readonly dir: string;
  readonly bundleBytes: number;
  readonly mapBytes: number;
  readonly zipBytes: number;
}

async function bundle(target: Target, variant: Variant): Promise<Built> {
  const dir = path.join(OUT, variant, target.name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  await build({
    entryPoints: [target.entry],
    outfile: path.join(dir, 'index.mjs'),
    bundle: true,
    platform: 'node',
    minify: BUNDLE_OPTIONS.minify,
    sourcemap: BUNDLE_OPTIONS.sourceMap,
    sourcesContent: BUNDLE_OPTIONS.sourcesContent,
    target: BUNDLE_OPTIONS.target,
    format: BUNDLE_OPTIONS.format,
    mainFields: [...BUNDLE_OPTIONS.mainFields],
    banner: { js: BUNDLE_OPTIONS.banner },
    external: variant === 'bundled' ? [...BUNDLE_OPTIONS.externalModules] : ['@aws-sdk/*'],
    logLevel: 'error',
  });
  const zip = path.join(dir, 'package.zip');
  // The package Lambda stores and downloads: what `cdk deploy` zips from the bundle's folder.
  const zipped = spawnSync('zip', ['-q', '-X', '-9', zip, 'index.mjs', 'index.mjs.map'], { cwd: dir });
  if (zipped.status !== 0) throw new Error(`bench-bundle: zip failed: ${zipped.stderr}`);
  return {
    dir,
    bundleBytes: fs.statSync(path.join(dir, 'index.mjs')).size,
    mapBytes: fs.statSync(path.join(dir, 'index.mjs.map')).size,
    zipBytes: fs.statSync(zip).size,
  };
}

const LOAD = `
const started = performance.now();
await import(process.argv[1]);
process.stdout.write(String(performance.now() - started));
`;

/** Milliseconds to import the bundle in a fresh process, as the Lambda runtime does at init. */
function loadMs(built: Built, target: Target): number {
  const result = spawnSync(
    process.execPath,
    [
      '--enable-source-maps',
      '--no-warnings',
      '--input-type=module',
      '-e',
      LOAD,
      path.join(built.dir, 'index.mjs'),
    ],
    {
      cwd: built.dir,
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        ...target.environment,
        AWS_REGION: REGION,
        AWS_DEFAULT_REGION: REGION,
        AWS_LAMBDA_FUNCTION_NAME: target.name,
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'not-a-real-secret',
      },
    },
  );
  const ms = Number(result.stdout);
  if (result.status !== 0 || !Number.isFinite(ms)) {
    throw new Error(`bench-bundle: loading ${target.name} failed: ${result.stderr.trim().slice(0, 2000)}`);
  }
  return ms;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;
const ms = (n: number) => `${n.toFixed(0)} ms`;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const runsAt = args.indexOf('--runs');
  const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 9;
  if (!Number.isInteger(runs) || runs < 1 || runs > 100) {
    throw new Error(`--runs is ${args[runsAt + 1]}; allowed: a whole number from 1 to 100`);
  }
  const rows = [];
  for (const target of targets()) {
    const built = {
      bundled: await bundle(target, 'bundled'),
      external: await bundle(target, 'sdk-external'),
    };
    const times: Record<'bundled' | 'external', number[]> = { bundled: [], external: [] };
    for (let i = 0; i < runs; i++) {
      times.bundled.push(loadMs(built.bundled, target));
      times.external.push(loadMs(built.external, target));
    }
    rows.push({ name: target.name, built, times });
  }
  if (args.includes('--json')) {
    console.log(JSON.stringify({ runs, node: process.version, rows }, null, 2));
    return;
  }
  const cell = (t: number[]) => `${ms(median(t))} (${ms(Math.min(...t))}-${ms(Math.max(...t))})`;
  const table = rows.map(
    ({ name, built, times }) =>
      `| ${name} | ${kib(built.bundled.bundleBytes)} | ${kib(built.bundled.mapBytes)} | ${kib(built.bundled.zipBytes)} | ${cell(times.bundled)} | ${kib(built.external.bundleBytes)} | ${kib(built.external.zipBytes)} | ${cell(times.external)} |`,
  );
  console.log(
    `Module load at cold start, median (min-max) of ${runs} fresh processes, Node ${process.version}:\n`,
  );
  console.log(
    '| function | bundle, SDK inside | its source map | zipped | module load | bundle, SDK external | zipped | module load |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const line of table) console.log(line);
  if (args.includes('--update-docs')) updateDocs(table, runs);
}

/** Replaces the measured rows in docs/operating.md, keeping its header row. */
function updateDocs(table: string[], runs: number): void {
  const file = path.join(ROOT, 'docs', 'operating.md');
  const doc = fs.readFileSync(file, 'utf8');
  const section = /(<!-- bundle:start -->\n\| function[^\n]*\n\| ---[^\n]*\n)[\s\S]*?(<!-- bundle:end -->)/;
  if (!section.test(doc))
    throw new Error('bench-bundle: docs/operating.md has no bundle table between its markers');
  const date = new Date().toISOString().slice(0, 10);
  const note = `\nMeasured ${date}, ${runs} runs per variant, Node ${process.version}.\n`;
  fs.writeFileSync(file, doc.replace(section, `$1${table.join('\n')}\n${note}$2`));
  console.log(`\nUpdated ${path.relative(process.cwd(), file)}.`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
