import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import {
  REGION_CONCURRENCY,
  REGION_SHARE,
  RESERVED_CONCURRENCY,
  RESERVED_TOTAL,
  reservedConcurrency,
} from '../../lib/concurrency';
import { BackupFunction } from '../../lib/lambda-function';
import { synthApp } from '../../sim/app-synth';

describe('reserved concurrency', () => {
  it('bounds the whole app to its stated share of the Region, with 100 left unreserved', () => {
    expect(RESERVED_TOTAL).toBeLessThanOrEqual(REGION_SHARE * REGION_CONCURRENCY);
    expect(REGION_CONCURRENCY - RESERVED_TOTAL).toBeGreaterThanOrEqual(100);
  });

  it('has a row for every function folder, and nothing else', () => {
    const dirs = fs
      .readdirSync(path.join(__dirname, '..', '..', 'lambda'), { withFileTypes: true })
      .filter(
        (d) =>
          d.isDirectory() && fs.existsSync(path.join(__dirname, '..', '..', 'lambda', d.name, 'handler.ts')),
      )
      .map((d) => d.name)
      .sort();
    expect(Object.keys(RESERVED_CONCURRENCY).sort()).toEqual(dirs);
    expect(() => reservedConcurrency('no-such-function')).toThrow(
      /lib\/concurrency.ts has no reserved concurrency for lambda\/no-such-function/,
    );
  });

  it('is what every synthesized function reserves', () => {
    const { stack } = synthApp({
      serviceNowForwarder: true,
      restoreTestSubnetId: 'subnet-0123456789abcdef0',
      restoreTestSecurityGroupIds: 'sg-0123456789abcdef0',
      copyRegions: 'eu-central-1=30',
    });
    const functions = stack.node.findAll().filter((c): c is BackupFunction => c instanceof BackupFunction);
    expect(functions.length).toBeGreaterThanOrEqual(8);
    for (const fn of functions) {
      const cfn = fn.node.defaultChild as lambda.CfnFunction;
      expect({ fn: fn.handlerDir, reserved: cfn.reservedConcurrentExecutions }).toEqual({
        fn: fn.handlerDir,
        reserved: reservedConcurrency(fn.handlerDir),
      });
    }
  });
});
