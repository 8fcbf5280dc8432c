import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { type BackupConfig, parseConfig } from '../lib/config';
import { ConsistentBackupStack } from '../lib/stack';

export interface SynthResult {
  readonly app: App;
  readonly stack: ConsistentBackupStack;
  readonly template: Template;
  readonly config: BackupConfig;
}

/**
 * Synthesizes the whole app as `bin/app.ts` does, without bundling Lambda code (tests do not need
 * the bundles and esbuild would dominate their time). Config values are raw, as from context.
 */
export function synthApp(
  raw: Partial<Record<keyof BackupConfig, unknown>> = {},
  options: { readonly environmentAgnostic?: boolean } = {},
): SynthResult {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const config = parseConfig(raw);
  const stack = new ConsistentBackupStack(app, 'Ec2ConsistentBackup', {
    config,
    // `cdk synth` without credentials synthesizes environment-agnostic: account and region are tokens.
    env: options.environmentAgnostic ? undefined : { account: '111122223333', region: 'eu-west-1' },
  });
  return { app, stack, template: Template.fromStack(stack), config };
}

/** Runs cdk-nag's AwsSolutions pack over the app and returns the unacknowledged findings. */
export function nagFindings(app: App): string[] {
  const pack = new AwsSolutionsChecks(app);
  const report = pack.validateScope(app);
  return report.violations.flatMap((v) =>
    v.violatingResources.map(
      (r) => `${v.ruleName} at ${r.constructPath ?? r.resourceLogicalId}: ${v.description}`,
    ),
  );
}
