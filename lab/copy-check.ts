import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { mustRun, run } from './exec';
import type { LabFsType } from './volume';

/** What checking one point-in-time copy found. */
export interface CopyCheck<T> {
  readonly fstype: LabFsType;
  /**
   * The journal (ext4: the needs_recovery flag) or log (xfs: items beyond the covering superblock
   * updates, whose replay changes what a reader sees) held changes not yet in place.
   */
  readonly needsReplay: boolean;
  /** A no-modify fsck of the copy as taken (before any replay) reported no problem. */
  readonly fsckClean: boolean;
  /**
   * `clean` in the experiment's table: the metadata in place is consistent as taken, with nothing to
   * replay from the journal (ext4) or log (xfs), and a no-modify fsck finds no problem.
   */
  readonly clean: boolean;
  /** The first lines of fsck output when it was not clean. */
  readonly fsckDetail: string;
  /** The restored filesystem mounted (after the kernel replayed its journal, as a restored volume would). */
  readonly mounted: boolean;
  /** Why the restored copy did not mount, when it did not. */
  readonly mountError: string;
  /** What the caller's inspection of the restored filesystem returned. */
  readonly inspected?: T;
}

/**
 * Whether an xfs log holds changes that are not yet in place. A frozen xfs is left with a *covered*
 * log: tail..head holds only the dummy superblock transactions that covering writes, so logprint
 * says DIRTY although nothing needs replaying. Anything else (inode, AGI, data buffers...) in a
 * transaction means metadata that exists only in the log.
 */
export function xfsLogNeedsReplay(logprint: string): boolean {
  const state = /state: <(\w+)>/.exec(logprint);
  if (!state) throw new Error(`xfs_logprint output has no log state: ${logprint.slice(0, 200)}`);
  if (state[1] === 'CLEAN') return false;
  const lines = logprint.split('\n');
  const headers = lines.filter((l) => /^[A-Z]+:/.test(l) && !l.startsWith('TRANS:'));
  const superOnly = lines.filter((l) => /^\s+SUPER Block Buffer:/.test(l)).length;
  return headers.some((h) => !h.startsWith('BUF:')) || headers.length > superOnly;
}

const errorCode = (err: NodeJS.ErrnoException) => err.code ?? 'error';

/**
 * Every file's path, size and content hash: what an application sees on a filesystem. A copy seen
 * without its log replayed can list an entry whose inode is not there yet: the error a reader gets
 * is part of what it sees (`e <path> <code>`), not a reason to stop looking.
 */
export async function manifest(root: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch(errorCode);
    if (typeof entries === 'string') {
      lines.push(`e ${path.relative(root, dir)}/ ${entries}`);
      return;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, e.name);
      const rel = path.relative(root, full);
      if (e.isDirectory()) {
        lines.push(`d ${rel}`);
        await walk(full);
      } else if (e.isFile()) {
        const data = await fs.readFile(full).catch(errorCode);
        lines.push(
          typeof data === 'string'
            ? `e ${rel} ${data}`
            : `f ${rel} ${data.length} ${createHash('sha1').update(data).digest('hex')}`,
        );
      } else lines.push(`o ${rel}`);
    }
  };
  await walk(root);
  return lines.join('\n');
}

async function withMount<T>(
  image: string,
  fstype: LabFsType,
  options: string,
  mountpoint: string,
  fn: (root: string) => Promise<T>,
): Promise<T | undefined> {
  await fs.mkdir(mountpoint, { recursive: true });
  const m = await run('mount', ['-t', fstype, '-o', options, image, mountpoint]);
  if (m.code !== 0) return undefined;
  try {
    return await fn(mountpoint);
  } finally {
    await run('umount', [mountpoint]);
  }
}

async function needsReplay(image: string, fstype: LabFsType, scratch: string): Promise<boolean> {
  if (fstype === 'ext4') {
    const r = await mustRun('dumpe2fs', ['-h', image]);
    const features = r.stdout.split('\n').find((l) => l.startsWith('Filesystem features:')) ?? '';
    return /\bneeds_recovery\b/.test(features);
  }
  const r = await run('xfs_logprint', ['-t', image]);
  if (!xfsLogNeedsReplay(r.stdout)) return false;
  // The log still holds items, but a freeze writes every change back in place before it covers the
  // log, so replaying them may change nothing. Decide by what a reader sees: the files without
  // replay (ro,norecovery) against the files after replay (on a writable clone).
  const clone = `${image}.replayed`;
  await mustRun('cp', ['--reflink=always', image, clone]);
  try {
    const raw = await withMount(image, fstype, 'loop,ro,norecovery,nouuid', `${scratch}-raw`, manifest);
    const replayed = await withMount(clone, fstype, 'loop,nouuid', `${scratch}-replayed`, manifest);
    return raw === undefined || replayed === undefined || raw !== replayed;
  } finally {
    await fs.rm(clone, { force: true });
    await fs.rm(`${scratch}-raw`, { recursive: true, force: true });
    await fs.rm(`${scratch}-replayed`, { recursive: true, force: true });
  }
}

// xfs_repair -n always complains about these on a copy of a mounted xfs: the log is never marked
// clean by a freeze, and the superblock's free-space and inode counters are lazy (recomputed at
// mount from the allocation groups). Neither is an inconsistency of the metadata in place.
const XFS_BENIGN = [
  /^No modify flag set/,
  /^ALERT: The filesystem has valuable metadata changes in a log/,
  /^ignored because the -n option was used/,
  /^which may be resolved by first mounting/,
  /^sb_(fdblocks|icount|ifree) \d+, counted \d+$/,
];

/** The findings of a no-modify fsck that mean the metadata in place is inconsistent. */
export function fsckProblems(output: string, fstype: LabFsType, code: number): string[] {
  const lines = output
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() && !/^(Phase|\s+-|Pass \d|e2fsck \d|\s)/.test(l));
  if (fstype === 'ext4') return code === 0 ? [] : lines.slice(0, 6);
  return lines.filter((l) => !XFS_BENIGN.some((re) => re.test(l))).slice(0, 6);
}

async function fsckNoModify(image: string, fstype: LabFsType): Promise<{ clean: boolean; detail: string }> {
  const r =
    fstype === 'ext4' ? await run('e2fsck', ['-fn', image]) : await run('xfs_repair', ['-n', '-f', image]);
  if (fstype === 'xfs' && r.code !== 0 && r.code !== 1) {
    throw new Error(`xfs_repair -n could not check ${image} (exit ${r.code}): ${r.stderr.trim()}`);
  }
  const problems = fsckProblems(`${r.stdout}\n${r.stderr}`, fstype, r.code);
  return { clean: problems.length === 0, detail: problems.join('\n') };
}

/**
 * Check a copy the way a restore meets it. First, on the copy exactly as taken: does the journal need
 * replay, and does a no-modify fsck find anything? Then on a writable clone (so the copy itself stays
 * untouched; a reflink where the copy's filesystem has them): mount it, letting the kernel replay the
 * journal as the first boot of a restored volume would, and hand the mounted tree to `inspect` for
 * the application-level check.
 */
export async function checkCopy<T>(
  copy: string,
  fstype: LabFsType,
  mountpoint: string,
  inspect: (root: string) => Promise<T>,
): Promise<CopyCheck<T>> {
  const replay = await needsReplay(copy, fstype, mountpoint);
  const fsck = await fsckNoModify(copy, fstype);
  const restore = `${copy}.restore`;
  await mustRun('cp', ['--reflink=auto', '--sparse=always', copy, restore]);
  await fs.mkdir(mountpoint, { recursive: true });
  let mounted = false;
  let mountError = '';
  let inspected: T | undefined;
  try {
    // nouuid: the original xfs is still mounted with the same UUID, and xfs refuses duplicates.
    const options = fstype === 'xfs' ? 'loop,nouuid' : 'loop';
    const m = await run('mount', ['-t', fstype, '-o', options, restore, mountpoint]);
    if (m.code !== 0) mountError = m.stderr.trim();
    mounted = m.code === 0;
    if (mounted) inspected = await inspect(mountpoint);
  } finally {
    if (mounted) await run('umount', [mountpoint]);
    await fs.rm(restore, { force: true });
    await fs.rmdir(mountpoint).catch(() => undefined);
  }
  return {
    fstype,
    needsReplay: replay,
    fsckClean: fsck.clean,
    clean: !replay && fsck.clean,
    fsckDetail: fsck.clean ? '' : fsck.detail,
    mounted,
    mountError,
    inspected,
  };
}

/** The simulated lab's copy is a directory: there is no journal to replay and nothing to fsck. */
export async function checkSimulatedCopy<T>(
  copy: string,
  inspect: (root: string) => Promise<T>,
): Promise<CopyCheck<T>> {
  return {
    fstype: 'ext4',
    needsReplay: false,
    fsckClean: true,
    clean: true,
    fsckDetail: 'simulated filesystem: not checked',
    mounted: true,
    mountError: '',
    inspected: await inspect(path.resolve(copy)),
  };
}
