import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type CheckReport, type Verdict, verdictOf } from '../lambda/restore-validation/validation';
import { DEFAULT_CONFIG } from '../lib/config';
import { renderDocument, scriptWithParameters } from '../lib/documents';
import { mustRun, run } from './exec';
import type { LabFsType } from './volume';

/** One snapshot copy of an instance's volume, where it was mounted on the instance. */
export interface LabCopy {
  /** The image of the snapshot (lab/sim/aws.ts). */
  readonly copy: string;
  readonly fstype: LabFsType;
  readonly mountpoint: string;
}

/** The lab's applications ship their verify hooks here (the contract of hooks/README.md). */
export const LAB_VERIFY_HOOKS = path.join(__dirname, 'hooks', 'ledger', 'verify.d');

/** The packaged PostgreSQL verify hook: what a restored PostgreSQL instance runs (hooks/README.md). */
export const POSTGRESQL_VERIFY_HOOK = path.join(
  __dirname,
  '..',
  'hooks',
  'postgresql',
  'verify.d',
  '50-postgresql',
);

/**
 * What AWS Backup's restore test and the restore-validation function do, on the lab's copies:
 * each copy is cloned (as a restored volume is a new volume) and mounted once read-write
 * and unmounted, as a restored instance's boot does (which replays the journal); then the real
 * Verify Restore document runs against the clones: read-only fsck, read-only mount, the
 * application's verify hooks. Its JSON goes through the same verdictOf the function uses.
 */
export async function verifyRestoredCopies(
  copies: readonly LabCopy[],
  opts: {
    readonly workDir: string;
    readonly restoreJobId: string;
    readonly instanceId: string;
    /** The verify hooks installed for the check. @default every hook in LAB_VERIFY_HOOKS */
    readonly hooks?: readonly string[];
  },
): Promise<Verdict & { readonly report: CheckReport }> {
  const dir = path.join(opts.workDir, `restore-test-${opts.instanceId}`);
  const hooksDir = path.join(dir, 'verify.d');
  await fs.mkdir(hooksDir, { recursive: true, mode: 0o755 });
  await fs.chmod(dir, 0o755);
  const hooks = opts.hooks ?? (await fs.readdir(LAB_VERIFY_HOOKS)).map((h) => path.join(LAB_VERIFY_HOOKS, h));
  for (const hook of hooks) {
    const target = path.join(hooksDir, path.basename(hook));
    await fs.copyFile(hook, target);
    await fs.chown(target, 0, 0);
    await fs.chmod(target, 0o700);
  }
  const loops: string[] = [];
  const images: string[] = [];
  try {
    const pairs: string[] = [];
    for (const [i, c] of copies.entries()) {
      // Next to the copy, on the pool's filesystem: a reflink where it has them, a sparse copy where not.
      const image = `${c.copy}.restore-test.img`;
      await mustRun('cp', ['--reflink=auto', '--sparse=always', c.copy, image]);
      images.push(image);
      const loop = (await mustRun('losetup', ['--find', '--show', image])).stdout.trim();
      loops.push(loop);
      // The first mount of a restored volume, at boot: the kernel replays the journal or log.
      const boot = path.join(dir, `boot-${i}`);
      await fs.mkdir(boot, { recursive: true });
      await mustRun('mount', ['-t', c.fstype, '-o', c.fstype === 'xfs' ? 'nouuid' : 'defaults', loop, boot]);
      await mustRun('umount', [boot]);
      pairs.push(`${loop}=${c.mountpoint}`);
    }
    const script = path.join(dir, 'verify-restore.sh');
    await fs.writeFile(
      script,
      scriptWithParameters(renderDocument('verifyRestore', DEFAULT_CONFIG), {
        RestoreJobId: opts.restoreJobId,
        ExpectedInstanceId: opts.instanceId,
        Filesystems: pairs.join(','),
        MountRoot: path.join(dir, 'restored'),
        HooksDir: hooksDir,
        HookTimeoutSeconds: '120',
      }),
      { mode: 0o700 },
    );
    const r = await run('sh', ['-c', script], { timeoutMs: 300_000 });
    let report: CheckReport;
    try {
      report = JSON.parse(r.stdout) as CheckReport;
    } catch {
      report = {
        status: 'inconclusive',
        reason: `the Verify Restore script printed no verdict (exit ${r.code}): ${r.stderr.trim().slice(-300)}`,
      };
    }
    return { ...verdictOf(report), report };
  } finally {
    for (const loop of loops) await run('losetup', ['-d', loop]);
    for (const image of images) await fs.rm(image, { force: true });
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** The demo table's cell: the result, then each filesystem's fsck and each hook. */
export function verifiedCell(v: Verdict & { readonly report: CheckReport }): string {
  const parts = [
    ...(v.report.filesystems ?? []).map((f) => `${f.fstype} ${f.fsck}`),
    ...(v.report.hooks ?? []).map((h) => `${h.name} ${h.verified ? 'ok' : `exit ${h.exitCode}`}`),
  ];
  return parts.length > 0 ? `${v.result} (${parts.join(', ')})` : `${v.result}: ${v.summary}`;
}
