// The Node 20 adjustments every local tool loads first (the Promise.withResolvers polyfill
// aws-local-stepfunctions needs, the AWS SDK's Node-version notice off), loaded for every test file.
import '../sim/local-node';

// Metric lines (EMF on stdout) from every notifier and handler under test would drown the output;
// test/lambda/shared/metrics.test.ts turns them back on where it checks them.
process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
