// The Node 20 adjustments every local tool loads first (the Promise.withResolvers polyfill
// aws-local-stepfunctions needs, the AWS SDK's Node-version notice off), loaded for every test file.
import '../sim/local-node';
