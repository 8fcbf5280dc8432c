import { existsSync } from 'node:fs';
import { run } from '../../lab/exec';
import { detectCapabilities } from '../../lab/host';

/**
 * Whether this machine runs the real lab (root, loop devices, the ext4 tools; xfs too with xfsprogs,
 * see `capabilities.filesystems`); tests that need it skip otherwise.
 */
export const capabilities = await detectCapabilities();
if (!capabilities.real) console.warn(`test/lab: real-filesystem tests skipped: ${capabilities.reason}`);

/** Mounts and loop devices that still reference a lab run dir; empty when cleanup was complete. */
export async function leftovers(runDir: string): Promise<string[]> {
  const mounts = (await run('findmnt', ['-rn', '-o', 'TARGET'])).stdout
    .split('\n')
    .filter((t) => t.startsWith(`${runDir}/`) || t === runDir);
  const loops = (await run('losetup', ['-n', '-O', 'NAME,BACK-FILE', '-l'])).stdout
    .split('\n')
    .filter((l) => l.includes(runDir));
  return [
    ...mounts.map((m) => `mount ${m}`),
    ...loops.map((l) => `loop ${l.trim()}`),
    ...(existsSync(runDir) ? [`dir ${runDir}`] : []),
  ];
}
