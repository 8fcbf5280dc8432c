import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { USAGE } from '../../cli/args';
import { README_EXAMPLES, readmeTranscript, SIMULATED, transcript } from '../../scripts/cli-docs';

const doc = readFileSync(path.join(__dirname, '../../docs/cli.md'), 'utf8');

function block(id: string): string | undefined {
  return new RegExp(
    `<!-- cli:${id}:start -->\\n\`\`\`console\\n([\\s\\S]*?)\\n\`\`\`\\n<!-- cli:${id}:end -->`,
  ).exec(doc)?.[1];
}

describe('docs/cli.md', () => {
  it.each(
    SIMULATED.map((e) => [e.id, e]),
  )('shows what `%s` prints now (npm run docs:cli rewrites it)', async (id, example) => {
    expect(block(id), `the cli:${id} block`).toBe(await transcript(example));
  });

  it('shows the help the bin prints, and the process examples', () => {
    expect(block('help')).toBe(`$ npx ec2-consistent-backup --help\n${USAGE}\n(exit 0)`);
    expect(block('no-credentials')).toMatch(/No usable AWS credentials[\s\S]*\(exit 3\)$/);
    expect(block('moto')).toMatch(/is not deployed in eu-west-1[\s\S]*\(exit 4\)$/);
  });

  it('is linked from the README', () => {
    const readme = readFileSync(path.join(__dirname, '../../README.md'), 'utf8');
    expect(readme).toContain('(docs/cli.md)');
  });

  it("is shortened in the README, which shows every command's output as it prints now", async () => {
    const readme = readFileSync(path.join(__dirname, '../../README.md'), 'utf8');
    const shown = /<!-- cli:readme:start -->\n```console\n([\s\S]*?)\n```\n<!-- cli:readme:end -->/.exec(
      readme,
    )?.[1];
    expect(shown, 'the README cli:readme block').toBe(await readmeTranscript());
    const commands = [...(shown ?? '').matchAll(/^\$ npx ec2-consistent-backup (\S+)/gm)].map((m) => m[1]);
    expect(commands.sort()).toEqual(['plan', 'preflight', 'recovery-points', 'run', 'status', 'watch']);
    expect(README_EXAMPLES.every((e) => SIMULATED.some((s) => s.id === e.id))).toBe(true);
  });
});
