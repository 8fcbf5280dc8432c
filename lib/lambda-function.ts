import * as path from 'node:path';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, LogLevel, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { reservedConcurrency } from './concurrency';

export interface BackupFunctionProps {
  /** Folder under lambda/ holding handler.ts, e.g. 'discovery'. */
  readonly handlerDir: string;
  /** Environment variables; the handler checks the ones it needs at start. @default {} */
  readonly environment?: Record<string, string>;
  /** @default Duration.minutes(1) */
  readonly timeout?: Duration;
  /** @default 256 */
  readonly memorySize?: number;
  /** One line saying what the function does. */
  readonly description: string;
  /** Log retention. @default logs.RetentionDays.THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
}

const REPO_ROOT = path.join(__dirname, '..');

/**
 * How every function is bundled, in esbuild's terms; scripts/bench-bundle.ts builds with exactly
 * these options to measure what is deployed.
 *
 * Nothing is external, the AWS SDK included: the clients and the one @aws-sdk/core and @smithy set
 * that package-lock.json pins, and that the tests ran against, are the ones production runs. With
 * `@aws-sdk/*` external (NodejsFunction's default for Node 18 and later) a function would run
 * whatever SDK the nodejs24.x runtime ships that day. Cost, measured by `npm run bench:bundle`
 * (docs/operating.md, "The bundle"): larger packages and a longer module load at cold start.
 */
export const BUNDLE_OPTIONS = {
  minify: true,
  sourceMap: true,
  // File and line in stack traces need no copy of every source file in the map: without them the
  // map, the package and its parse at cold start shrink (npm run bench:bundle).
  sourcesContent: false,
  target: 'node24',
  format: 'esm',
  mainFields: ['module', 'main'],
  // ESM bundles of CommonJS dependencies need a require().
  banner: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);",
  externalModules: [] as string[],
} as const;

/**
 * Every Lambda function of the app: Node.js 24 on arm64, bundled locally by esbuild (no Docker),
 * X-Ray tracing, source maps, an explicit log group, and a role of its own that can write only to
 * that log group. Grants beyond logging are added by the construct that owns the function.
 */
export class BackupFunction extends NodejsFunction {
  readonly logGroupRef: logs.LogGroup;
  /** The folder under lambda/ this function is bundled from. */
  readonly handlerDir: string;

  constructor(scope: Construct, id: string, props: BackupFunctionProps) {
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // A role of our own instead of AWSLambdaBasicExecutionRole, which allows writing to any log group.
    const role = new iam.Role(scope, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of the ${props.handlerDir} function`,
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        // logGroupArn already ends in `:*`, which covers the group's log streams.
        resources: [logGroup.logGroupArn],
      }),
    );
    super(scope, id, {
      entry: path.join(REPO_ROOT, 'lambda', props.handlerDir, 'handler.ts'),
      handler: 'handler',
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 256,
      timeout: props.timeout ?? Duration.minutes(1),
      // Bounded per function (lib/concurrency.ts): the app never takes more than its stated share of the Region.
      reservedConcurrentExecutions: reservedConcurrency(props.handlerDir),
      description: props.description,
      tracing: lambda.Tracing.ACTIVE,
      logGroup,
      role,
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        POWERTOOLS_SERVICE_NAME: 'ec2-consistent-backup',
        ...props.environment,
      },
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
      bundling: {
        minify: BUNDLE_OPTIONS.minify,
        sourceMap: BUNDLE_OPTIONS.sourceMap,
        sourcesContent: BUNDLE_OPTIONS.sourcesContent,
        target: BUNDLE_OPTIONS.target,
        format: OutputFormat.ESM,
        mainFields: [...BUNDLE_OPTIONS.mainFields],
        banner: BUNDLE_OPTIONS.banner,
        externalModules: [...BUNDLE_OPTIONS.externalModules],
        forceDockerBundling: false,
        // esbuild's summary marks every bundle over 1 MB with a warning sign; the size is the
        // pinned SDK inside, chosen on purpose and measured (docs/operating.md). Errors still print.
        logLevel: LogLevel.ERROR,
      },
    });
    this.logGroupRef = logGroup;
    this.handlerDir = props.handlerDir;
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions. Statements of the owning construct that also need "*" carry their own acknowledgement.',
    });
  }
}
