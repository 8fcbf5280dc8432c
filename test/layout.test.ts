import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.join(__dirname, '..');

/** Every folder of product code and tools: none of them may depend on the tests. */
const FOLDERS = ['bin', 'cli', 'hooks', 'lab', 'lambda', 'lib', 'scripts', 'sim', 'ssm-documents'];
const SOURCE = /\.(ts|mts|cts|js|mjs|cjs)$/;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return name === 'node_modules' ? [] : files(p);
    return SOURCE.test(name) ? [p] : [];
  });
}

/** The relative module specifiers a file imports, requires or imports dynamically. */
function specifiers(source: string): string[] {
  const patterns = [
    /\bfrom\s+['"]([^'"]+)['"]/g,
    /\bimport\s+['"]([^'"]+)['"]/g,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire(?:\.resolve)?\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  return patterns.flatMap((re) => [...source.matchAll(re)].map((m) => m[1])).filter((s) => s.startsWith('.'));
}

describe('layout', () => {
  it('nothing outside test/ imports from test/', () => {
    const testDir = path.join(root, 'test') + path.sep;
    const offending = FOLDERS.flatMap((folder) => files(path.join(root, folder))).flatMap((file) =>
      specifiers(readFileSync(file, 'utf8'))
        .filter((spec) => `${path.resolve(path.dirname(file), spec)}${path.sep}`.startsWith(testDir))
        .map((spec) => `${path.relative(root, file)} imports ${spec}`),
    );
    expect(offending).toEqual([]);
  });

  it('sees the imports it checks (the scan is not empty)', () => {
    const demo = readFileSync(path.join(root, 'scripts/demo.ts'), 'utf8');
    expect(specifiers(demo).length).toBeGreaterThan(0);
    expect(specifiers("import { x } from '../test/helpers/asl';")).toEqual(['../test/helpers/asl']);
  });
});
