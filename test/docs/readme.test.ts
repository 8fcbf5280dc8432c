import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS, REFUSED_KEYS } from '../../lib/config';

const root = path.join(__dirname, '../..');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
};

/** The lines of one `## ` section of the README, its heading excluded. */
function section(title: string): string {
  const m = new RegExp(`^## ${title}\\n([\\s\\S]*?)(?=^## |(?![\\s\\S]))`, 'm').exec(readme);
  if (!m) throw new Error(`README has no "## ${title}" section`);
  return m[1];
}

describe('README.md, the front door', () => {
  it('opens with the two commands: the main job and the tests', () => {
    const first = readme.split('\n').slice(0, 6).join('\n');
    expect(first).toContain('npm ci && npm run demo');
    expect(first).toContain('npm ci && npm test');
    expect(pkg.scripts.demo).toBe('tsx scripts/demo.ts');
    expect(pkg.scripts.test).toMatch(/vitest run$/);
  });

  it('stays short: depth lives in docs/', () => {
    expect(readme.split('\n').length).toBeLessThanOrEqual(250);
  });

  it('says each section once', () => {
    const headings = [...readme.replace(/^```[\s\S]*?^```/gm, '').matchAll(/^#{2,3} (.+)$/gm)].map(
      (m) => m[1],
    );
    expect(headings.filter((h, i) => headings.indexOf(h) !== i)).toEqual([]);
  });

  it('names every config key of lib/config.ts in its configuration table', () => {
    const rows = section('Configuration')
      .split('\n')
      .filter((line) => line.startsWith('| `'));
    const named = new Set(
      rows.flatMap((row) => [...row.split(' | ')[0].matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1])),
    );
    const missing = [...CONFIG_KEYS, ...REFUSED_KEYS].filter((key) => !named.has(key));
    expect(missing).toEqual([]);
    const unknown = [...named].filter((key) => !(CONFIG_KEYS as string[]).concat(REFUSED_KEYS).includes(key));
    expect(unknown).toEqual([]);
  });
});
