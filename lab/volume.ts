import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { mustRun, run } from './exec';

export type LabFsType = 'ext4' | 'xfs';

export interface LabVolumeProps {
  /** Directory on the reflink pool that holds this volume's image and its snapshots. */
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
 * One "EBS volume": a sparse image on the reflink pool, attached to a loop device with direct I/O
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
  private readonly poolDir: string;
  private readonly sizeMiB: number;

  constructor(props: LabVolumeProps) {
    this.volumeId = props.volumeId ?? randomVolumeId();
    this.fstype = props.fstype;
    this.mountpoint = props.mountpoint;
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
   * The snapshot: an atomic point-in-time copy of the image (FICLONE). Returns the copy's path.
   * Concurrent writes through the loop device either land before the clone or after it, never half.
   */
  async snapshot(copyPath: string): Promise<void> {
    await mustRun('cp', ['--reflink=always', this.image, copyPath]);
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

  constructor(props: Omit<LabVolumeProps, 'poolDir' | 'sizeMiB'>) {
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
