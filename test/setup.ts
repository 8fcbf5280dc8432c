// The Node 20 adjustments every local tool loads first (the Promise.withResolvers polyfill
// aws-local-stepfunctions needs, the AWS SDK's Node-version notice off), loaded for every test file.
import '../sim/local-node';

// Metric lines (EMF on stdout) from every notifier and handler under test would drown the output;
// test/lambda/shared/metrics.test.ts turns them back on where it checks them.
process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';

// aws-cdk-lib runs its built-in CloudFormation validation (a WebAssembly rule engine, compiled
// afresh in every process) on every synth and only warns: about 10 s of CPU in each test file that
// synthesizes, half of the whole suite's synth time. Off for the tests;
// test/lib/consistent-backup.test.ts runs it once over the whole app and requires an empty report,
// and cfn-lint checks every template. `cdk synth` (bin/app.ts) keeps it.
process.env.CDK_VALIDATION ??= 'false';
