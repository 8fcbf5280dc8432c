/**
 * What every local tool needs on the Node this repository runs on (>= 20; CI and the build machine
 * run 20), loaded first by each script under scripts/ and by vitest's setup file (test/setup.ts).
 * Never imported by lambda/: the functions run on the nodejs24.x runtime, which needs neither.
 * docs/local-tools.md says why each is here.
 */

// The AWS SDK for JavaScript v3 warns once per process, at the first client it constructs, that its
// releases after the first week of January 2027 will require Node 22
// (@aws-sdk/core/client emitWarningIfUnsupportedVersion). It is about the local Node only, names
// nothing a demo, plan, benchmark or test run can change, and printed itself into the middle of
// every command's output. AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true is the SDK's own
// switch for it (aws/aws-sdk-js-v3 issue 7983); the SDK reads it when a client is constructed, so
// setting it here, before any client exists, is enough. A value set by the user wins.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// aws-local-stepfunctions 3 calls Promise.withResolvers, which Node 20 lacks. Without it every Task
// of the local state machine throws a TypeError that a States.ALL catch swallows, and the demo would
// silently take the error path. test/workflow asserts the happy path really succeeds.
type Resolvers<T> = {
  promise: Promise<T>;
  resolve: (value: T | PromiseLike<T>) => void;
  reject: (reason?: unknown) => void;
};
const P = Promise as unknown as { withResolvers?: <T>() => Resolvers<T> };
if (typeof P.withResolvers !== 'function') {
  P.withResolvers = <T>() => {
    let resolve!: Resolvers<T>['resolve'];
    let reject!: Resolvers<T>['reject'];
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
export {};
