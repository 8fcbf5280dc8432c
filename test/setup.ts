// aws-local-stepfunctions 3 calls Promise.withResolvers, which Node 20 lacks; the one polyfill the
// scripts use is loaded for every test file too. test/workflow asserts the happy path really succeeds.
import '../lab/polyfill';
