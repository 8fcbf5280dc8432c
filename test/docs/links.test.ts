import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.join(__dirname, '../..');

/** The READMEs and every page under docs/: the pages whose links a move could break. */
const pages = [
  'README.md',
  'hooks/README.md',
  'ssm-documents/README.md',
  ...readdirSync(path.join(root, 'docs')).map((f) => `docs/${f}`),
].filter((p) => p.endsWith('.md'));

/** Markdown outside fenced code blocks and inline code spans, where links and headings live. */
function prose(text: string): string {
  return text
    .replace(/^```[\s\S]*?^```/gm, '')
    .split('\n')
    .map((line) => line.replace(/`[^`]*`/g, (code) => code.replace(/[[\]()#]/g, ' ')))
    .join('\n');
}

/** GitHub's anchor for a heading: its text lowercased, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

function anchors(file: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  const text = readFileSync(file, 'utf8').replace(/^```[\s\S]*?^```/gm, '');
  for (const m of text.matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const base = slug(m[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

function links(page: string): string[] {
  const text = readFileSync(path.join(root, page), 'utf8');
  const code = text.replace(/^```[\s\S]*?^```/gm, '');
  const inline = [...code.matchAll(/`[^`\n]*`/g)].map((m) => m[0]);
  const plain = prose(text);
  const found = [...plain.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]);
  // A link written inside inline code (an example, not a link) was blanked out above.
  return found.filter((target) => !inline.some((c) => c.includes(`](${target})`)));
}

describe('links in the README and docs/', () => {
  it.each(pages)('%s: every relative link reaches a file, and every anchor a heading', (page) => {
    const broken: string[] = [];
    for (const target of links(page)) {
      if (/^[a-z]+:/i.test(target)) continue;
      const [file, anchor] = target.split('#');
      const resolved = file ? path.normalize(path.join(path.dirname(page), file)) : page;
      const abs = path.join(root, resolved);
      if (!existsSync(abs)) {
        broken.push(`${target}: no file ${resolved}`);
        continue;
      }
      if (anchor && statSync(abs).isFile() && abs.endsWith('.md') && !anchors(abs).has(anchor)) {
        broken.push(`${target}: no heading with anchor #${anchor} in ${resolved}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('the slug rule matches GitHub on the headings linked here', () => {
    expect(slug('Measured: `npm run bench:workflow`')).toBe('measured-npm-run-benchworkflow');
    expect(slug('Discovery failures (dead-letter queues)')).toBe('discovery-failures-dead-letter-queues');
    expect(slug('The bundle: the SDK the tests ran')).toBe('the-bundle-the-sdk-the-tests-ran');
  });
});
