/**
 * Synthesizes the app with no AWS account (`cdk synth`) and says where the template went and what
 * it contains. Extra arguments are passed to cdk, e.g. `npm run synth -- -c freezeBudgetSeconds=30`.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.join(__dirname, '..');
const out = path.join(root, 'cdk.out');
const started = Date.now();
const result = spawnSync(
  'npx',
  ['cdk', 'synth', '--quiet', '--no-notices', '--output', out, ...process.argv.slice(2)],
  {
    cwd: root,
    stdio: ['inherit', 'inherit', 'pipe'],
    encoding: 'utf8',
    env: { ...process.env, CDK_DISABLE_CLI_TELEMETRY: 'true' },
  },
);
// The CLI always counts the feature flags cdk.json leaves at their defaults ("N feature flags are
// not configured"), even with --quiet: the app keeps those defaults on purpose (a flag changes
// the template), so that one line is dropped; everything else on stderr passes through.
const stderr = (result.stderr ?? '')
  .split('\n')
  .filter((line) => !/feature flags are not configured/.test(line))
  .join('\n');
if (stderr.trim()) process.stderr.write(stderr.endsWith('\n') ? stderr : `${stderr}\n`);
if (result.status !== 0) process.exit(result.status ?? 1);
const seconds = ((Date.now() - started) / 1000).toFixed(1);

const templatePath = path.join(out, 'Ec2ConsistentBackup.template.json');
const template = JSON.parse(fs.readFileSync(templatePath, 'utf8')) as {
  Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }>;
};
const resources = Object.entries(template.Resources);
const byType = new Map<string, number>();
for (const [, r] of resources) byType.set(r.Type, (byType.get(r.Type) ?? 0) + 1);

const named = (type: string) =>
  resources.filter(([, r]) => r.Type === type).map(([id, r]) => (r.Properties?.Name as string) ?? id);

console.log(`\nSynthesized in ${seconds} s, no AWS account needed.`);
console.log(`Template: ${path.relative(process.cwd(), templatePath)} (${resources.length} resources)`);
console.log('\nResources by type:');
for (const [type, n] of [...byType.entries()].sort()) console.log(`  ${String(n).padStart(3)}  ${type}`);
console.log('\nSSM documents:', named('AWS::SSM::Document').join(', ') || '(none)');
console.log(
  'Lambda functions:',
  resources
    .filter(([, r]) => r.Type === 'AWS::Lambda::Function')
    .map(([id]) => id)
    .join(', '),
);
console.log(
  'Alarms:',
  resources
    .filter(([, r]) => r.Type === 'AWS::CloudWatch::Alarm')
    .map(([id]) => id)
    .join(', ') || '(none)',
);
console.log(
  'Dashboard:',
  resources
    .filter(([, r]) => r.Type === 'AWS::CloudWatch::Dashboard')
    .map(([id]) => id)
    .join(', ') || '(none)',
  '(docs/operating.md)',
);
console.log('Deploy with: npx cdk deploy (see README "Deploy").');
