// aws-local-stepfunctions 3 calls Promise.withResolvers, which Node 20 lacks. Without it every Task
// of the local state machine throws a TypeError that a States.ALL catch swallows, and the demo would
// silently take the error path. Scripts import this first; test/setup.ts loads it for vitest.
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
