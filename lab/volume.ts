import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { mustRun, run } from './exec';

export type LabFsType = 'ext4' | 'xfs';

/**
 * The lab's own filesystem that holds every volume image, and how a snapshot fixes its point in time
 * on it as an EBS snapshot does: every write the volume's block device completed before the instant
 * is in the copy, none after, none half.
 *
 * - xfs (with xfsprogs): one FICLONE (`cp --reflink=always`), which XFS performs under the image's
 *   exclusive I/O lock after flushing its page cache. Copies stay on the pool.
 * - ext4 (without xfsprogs; ext4 has no reflink): the pool is frozen, the image copied, the pool
 *   thawed. While it is frozen, the loop devices' writes into their images wait, as I/O to an EBS
 *   volume does for the instant of its snapshot, and reads go on. A frozen filesystem takes no
 *   writes, so the copies go beside the pool, one snapshot at a time.
 *
 * The pool is a loop-mounted image the lab made under its run dir: never an instance's data
 * filesystem, never one the lab did not create. Cleanup thaws it like every mount under the run dir.
 */
export class LabPool {
  /** Where snapshot copies go. */
  readonly snapshotDir: string;
  private turn: Promise<void> = Promise.resolve();

  constructor(
    readonly mountpoint: string,
    readonly fstype: LabFsType,
    runDir: string,
  ) {
    this.snapshotDir = fstype === 'xfs' ? path.join(mountpoint, 'snapshots') : path.join(runDir, 'snapshots');
  }

  /** The point-in-time copy of `image` (a file on this pool) at `copyPath`. */
  async snapshot(image: string, copyPath: string): Promise<void> {
    if (this.fstype === 'xfs') {
      await mustRun('cp', ['--reflink=always', image, copyPath]);
      return;
    }
    const rel = path.relative(this.mountpoint, path.resolve(copyPath));
    if (rel !== '..' && !rel.startsWith(`..${path.sep}`)) {
      // The copy would be written to the frozen pool and block until a thaw that waits for it.
      throw new Error(
        `snapshot copy ${copyPath} is on the ext4 pool, which is frozen while copying: use ${this.snapshotDir}`,
      );
    }
    // One freeze at a time: a second fsfreeze -f would fail with EBUSY, and its thaw end the first.
    const mine = this.turn.then(() => this.frozenCopy(image, copyPath));
    this.turn = mine.catch(() => undefined);
    return mine;
  }

  private async frozenCopy(image: string, copyPath: string): Promise<void> {
    // Freeze, copy and thaw in one shell of its own session: whatever happens to this process
    // (Ctrl-C, SIGKILL, a crash), the shell finishes the copy and thaws the pool by itself.
    const r = await run('setsid', [
      '-w',
      'sh',
      '-c',
      FROZEN_COPY,
      'lab-pool-snapshot',
      this.mountpoint,
      image,
      copyPath,
    ]);
    if (r.code !== 0)
      throw new Error(
        `snapshot copy of ${image} on the frozen pool failed (exit ${r.code}): ${r.stderr.trim()}`,
      );
  }
}

/**
 * $1 pool mountpoint, $2 image, $3 copy. Once the freeze succeeded the thaw runs on every way out:
 * the copy's end, its 120 s limit, or a signal.
 */
const FROZEN_COPY = [
  'fsfreeze -f "$1" || exit 90',
  'trap \'fsfreeze -u "$1"\' EXIT',
  "trap 'exit 91' HUP INT TERM",
  'timeout 120 cp --sparse=always "$2" "$3"',
].join('\n');

export interface LabVolumeProps {
  /** The pool the image lives on; it also takes the volume's snapshots. */
  readonly pool: LabPool;
  /** Directory on the pool that holds this volume's image. */
  readonly poolDir: string;
  /** Where the filesystem is mounted. */
  readonly mountpoint: string;
  readonly fstype: LabFsType;
  /** xfs refuses less than 300 MiB. @default 512 */
  readonly sizeMiB?: number;
  /** Volume id the simulated EC2 reports. @default random vol-<17 hex> */
  readonly volumeId?: string;
}

export function randomVolumeId(): string {
  return `vol-${randomBytes(9).toString('hex').slice(0, 17)}`;
}

/**
 * One "EBS volume": a sparse image on the lab's pool, attached to a loop device with direct I/O
 * and mounted. Direct I/O keeps the host page cache out of the path, so what reaches the image is
 * what the guest filesystem has written to its block device, as with EBS; the guest fs's own dirty
 * pages are not in a snapshot, which is precisely what sync + fsfreeze exist to fix.
 */
export class LabVolume {
  readonly volumeId: string;
  readonly fstype: LabFsType;
  readonly mountpoint: string;
  readonly image: string;
  device = '';
  private readonly pool: LabPool;
  private readonly poolDir: string;
  private readonly sizeMiB: number;

  constructor(props: LabVolumeProps) {
    this.volumeId = props.volumeId ?? randomVolumeId();
    this.fstype = props.fstype;
    this.mountpoint = props.mountpoint;
    this.pool = props.pool;
    this.poolDir = props.poolDir;
    this.sizeMiB = props.sizeMiB ?? 512;
    this.image = path.join(this.poolDir, `${this.volumeId}.img`);
  }

  async create(): Promise<void> {
    await fs.mkdir(this.poolDir, { recursive: true });
    await fs.mkdir(this.mountpoint, { recursive: true });
    await mustRun('truncate', ['-s', `${this.sizeMiB}M`, this.image]);
    this.device = (
      await mustRun('losetup', ['--find', '--show', '--direct-io=on', this.image])
    ).stdout.trim();
    // mkfs on the device, not the file: with direct I/O the loop device inherits the pool's 4 KiB
    // sectors, and an xfs made on the file with 512-byte sectors would refuse to mount.
    if (this.fstype === 'ext4') await mustRun('mkfs.ext4', ['-q', '-F', this.device]);
    else await mustRun('mkfs.xfs', ['-q', '-f', this.device]);
    await mustRun('mount', ['-t', this.fstype, this.device, this.mountpoint]);
    await fs.chmod(this.mountpoint, 0o755);
  }

  /**
   * The snapshot: an atomic point-in-time copy of the image (see LabPool). Concurrent writes through
   * the loop device either land before the copy's instant or after it, never half.
   */
  async snapshot(copyPath: string): Promise<void> {
    await this.pool.snapshot(this.image, copyPath);
  }

  /** Where a snapshot copy named `label` of this volume goes. */
  copyPath(label: string): string {
    return path.join(this.pool.snapshotDir, `${this.volumeId}.${label}.img`);
  }

  async destroy(): Promise<void> {
    await run('fsfreeze', ['-u', this.mountpoint]);
    await run('umount', [this.mountpoint]);
    if (this.device) await run('losetup', ['-d', this.device]);
    await fs.rm(this.image, { force: true });
  }
}

/** Without root or loop devices: a directory stands in for the filesystem, a recursive copy for the snapshot. */
export class SimulatedVolume {
  readonly volumeId: string;
  readonly fstype: LabFsType;
  readonly mountpoint: string;
  readonly device: string;

  constructor(props: Omit<LabVolumeProps, 'pool' | 'poolDir' | 'sizeMiB'>) {
    this.volumeId = props.volumeId ?? randomVolumeId();
    this.fstype = props.fstype;
    this.mountpoint = props.mountpoint;
    this.device = `/dev/simulated/${this.volumeId}`;
  }

  async create(): Promise<void> {
    await fs.mkdir(this.mountpoint, { recursive: true });
  }

  async snapshot(copyPath: string): Promise<void> {
    await fs.cp(this.mountpoint, copyPath, { recursive: true });
  }

  async destroy(): Promise<void> {
    await fs.rm(this.mountpoint, { recursive: true, force: true });
  }
}
