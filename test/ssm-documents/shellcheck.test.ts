import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../lib/config';
import { PACKAGED_APPS } from '../../lambda/shared/apps';
import { appHookText, DOCUMENTS_DIR, renderDocument } from '../../lib/documents';
import { HAS_SHELLCHECK } from './fs-lab';

if (!HAS_SHELLCHECK)
  console.warn('shellcheck tests skipped: shellcheck missing (apt-get install shellcheck)');

// SC2317 (unreachable command) fires on every shared function a given document does not call;
// the watchdog's functions are reached only through the file the freeze writes with declare -f.
const SHARED_LIBRARY_EXCLUDES = ['SC2317'];
// Each file alone references variables and functions defined in the others.
const SINGLE_FILE_EXCLUDES = ['SC2317', 'SC2034', 'SC2154'];

function shellcheck(files: string[], excludes: string[]): { status: number | null; output: string } {
  const r = spawnSync(
    'shellcheck',
    ['--shell=bash', '--severity=style', `--exclude=${excludes.join(',')}`, ...files],
    {
      encoding: 'utf8',
    },
  );
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe.skipIf(!HAS_SHELLCHECK)('shellcheck', () => {
  it.each([
    'freeze',
    'thaw',
    'preflight',
    'appHooks',
  ] as const)('the rendered %s document script is clean', (key) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ecb-sc-'));
    try {
      const file = path.join(dir, `${key}.sh`);
      fs.writeFileSync(
        file,
        `${renderDocument(key, DEFAULT_CONFIG).mainSteps[0].inputs.runCommand.join('\n')}\n`,
      );
      const result = shellcheck([file], SHARED_LIBRARY_EXCLUDES);
      expect(result.output).toBe('');
      expect(result.status).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(PACKAGED_APPS)('the packaged %s hook, as installed, is clean', (app) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ecb-sc-'));
    try {
      const file = path.join(dir, `50-ecb-${app}`);
      fs.writeFileSync(file, appHookText(app));
      const result = shellcheck([file], []);
      expect(result.output).toBe('');
      expect(result.status).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('every script file and example hook is clean', () => {
    const scripts = fs
      .readdirSync(path.join(DOCUMENTS_DIR, 'scripts'))
      .map((f) => path.join(DOCUMENTS_DIR, 'scripts', f));
    const examples = path.join(DOCUMENTS_DIR, 'examples');
    const hooks = fs
      .readdirSync(examples, { recursive: true, withFileTypes: true })
      .filter((d) => d.isFile())
      .map((d) => path.join(d.parentPath, d.name));
    expect(scripts.length).toBeGreaterThanOrEqual(5);
    expect(hooks.length).toBeGreaterThanOrEqual(2);
    const result = shellcheck([...scripts, ...hooks], SINGLE_FILE_EXCLUDES);
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });
});
