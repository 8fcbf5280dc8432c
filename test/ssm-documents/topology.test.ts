import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CAN_RUN, FsLab, SKIP_REASON } from './fs-lab';

/**
 * Device stacks this machine's kernel cannot build (it has no device-mapper and no md driver, and
 * loop devices get no partitions), described as sysfs and mountinfo would show them on a Nitro
 * instance: NVMe serials, a partition under md RAID under LVM, and an LVM volume group holding
 * / and /var. The preflight document maps them through ECB_SYSFS and ECB_MOUNTINFO; it never
 * freezes, so nothing here touches a real filesystem.
 */

if (!CAN_RUN) console.warn(`topology tests skipped: ${SKIP_REASON}`);

interface FakeDevice {
  readonly name: string;
  readonly dev: string;
  readonly serial?: string;
  readonly partitionOf?: string;
  readonly holders?: readonly string[];
}

function writeSysfs(root: string, devices: readonly FakeDevice[]): void {
  for (const d of devices) {
    const dirs = [path.join(root, 'class', 'block', d.name)];
    // sysfs shows a partition both under its disk and in class/block.
    if (d.partitionOf) dirs.push(path.join(root, 'class', 'block', d.partitionOf, d.name));
    for (const dir of dirs) {
      fs.mkdirSync(path.join(dir, 'holders'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'dev'), `${d.dev}\n`);
      if (d.partitionOf) fs.writeFileSync(path.join(dir, 'partition'), '1\n');
      for (const h of d.holders ?? []) fs.mkdirSync(path.join(dir, 'holders', h), { recursive: true });
    }
    if (d.serial) {
      fs.mkdirSync(path.join(root, 'class', 'block', d.name, 'device'), { recursive: true });
      fs.writeFileSync(path.join(root, 'class', 'block', d.name, 'device', 'serial'), `${d.serial}  \n`);
    }
  }
}

const VOL_DATA_A = 'vol-0aaaaaaaaaaaaaaa1';
const VOL_DATA_B = 'vol-0aaaaaaaaaaaaaaa2';
const VOL_ROOT = 'vol-0bbbbbbbbbbbbbbb1';
const VOL_LOGS = 'vol-0ccccccccccccccc1';
const VOL_SWAP = 'vol-0ddddddddddddddd1';
const VOL_GONE = 'vol-0eeeeeeeeeeeeeee1';

describe.skipIf(!CAN_RUN)('device stacks seen through sysfs and mountinfo', () => {
  let lab: FsLab;
  let env: Record<string, string>;
  beforeEach(() => {
    lab = new FsLab();
    const sysfs = path.join(lab.dir, 'sys');
    writeSysfs(sysfs, [
      // Two volumes, partitioned, mirrored by md, carrying an LVM volume group with the data LV.
      { name: 'nvme1n1', dev: '259:0', serial: 'vol0aaaaaaaaaaaaaaa1' },
      { name: 'nvme1n1p1', dev: '259:1', partitionOf: 'nvme1n1', holders: ['md0'] },
      { name: 'nvme2n1', dev: '259:2', serial: 'vol0aaaaaaaaaaaaaaa2' },
      { name: 'nvme2n1p1', dev: '259:3', partitionOf: 'nvme2n1', holders: ['md0'] },
      { name: 'md0', dev: '9:0', holders: ['dm-0'] },
      { name: 'dm-0', dev: '253:0' },
      // The root volume: one LVM physical volume with root and var logical volumes.
      { name: 'nvme0n1', dev: '259:4', serial: 'vol0bbbbbbbbbbbbbbb1', holders: ['dm-1', 'dm-2'] },
      { name: 'dm-1', dev: '253:1' },
      { name: 'dm-2', dev: '253:2' },
      // A plain volume mounted under /srv, and one holding only swap (nothing mounted).
      { name: 'nvme3n1', dev: '259:5', serial: 'vol0ccccccccccccccc1' },
      { name: 'nvme4n1', dev: '259:6', serial: 'vol0ddddddddddddddd1' },
    ]);
    const mountinfo = path.join(lab.dir, 'mountinfo');
    fs.writeFileSync(
      mountinfo,
      [
        '21 1 253:1 / / rw,relatime shared:1 - xfs /dev/mapper/vg0-root rw,attr2',
        '22 21 253:2 / /var rw,relatime shared:2 - xfs /dev/mapper/vg0-var rw,attr2',
        '23 21 0:25 / /run rw,nosuid shared:3 - tmpfs tmpfs rw,mode=755',
        '24 21 253:0 / /data rw,relatime shared:4 - xfs /dev/mapper/datavg-data rw,attr2',
        // The same filesystem bind-mounted elsewhere is still one filesystem, frozen once.
        '25 21 253:0 /exports /srv/exports rw,relatime shared:4 - xfs /dev/mapper/datavg-data rw,attr2',
        '26 21 259:5 / /srv/my\\040logs rw,relatime shared:5 - ext4 /dev/nvme3n1 rw',
        '',
      ].join('\n'),
    );
    env = { ECB_SYSFS: sysfs, ECB_MOUNTINFO: mountinfo, ECB_DEVICE_MAP: '' };
  });
  afterEach(async () => {
    await lab.cleanup();
  });

  it('follows NVMe serials through partitions, md and LVM to the mounted filesystems', async () => {
    const preflight = await lab.run(
      'preflight',
      { VolumeIds: [VOL_ROOT, VOL_DATA_A, VOL_DATA_B, VOL_LOGS, VOL_SWAP, VOL_GONE].join(',') },
      { env },
    );
    expect(preflight.code, preflight.stderr).toBe(0);
    expect(preflight.json.targets).toEqual([
      {
        mountpoint: '/data',
        fstype: 'xfs',
        source: '/dev/mapper/datavg-data',
        volumeIds: [VOL_DATA_A, VOL_DATA_B],
      },
      { mountpoint: '/srv/my logs', fstype: 'ext4', source: '/dev/nvme3n1', volumeIds: [VOL_LOGS] },
    ]);
    expect(preflight.json.skipped).toEqual([
      { mountpoint: '/', fstype: 'xfs', volumeIds: [VOL_ROOT], reason: 'protected: holds /' },
      { mountpoint: '/var', fstype: 'xfs', volumeIds: [VOL_ROOT], reason: 'protected: holds /var' },
    ]);
    expect(preflight.json.unmapped).toEqual([
      expect.objectContaining({ volumeId: VOL_GONE, reason: expect.stringContaining('no block device') }),
    ]);
    expect(preflight.json.volumes).toEqual([
      { volumeId: VOL_ROOT, device: '/dev/nvme0n1', filesystems: ['/', '/var'] },
      { volumeId: VOL_DATA_A, device: '/dev/nvme1n1', filesystems: ['/data'] },
      { volumeId: VOL_DATA_B, device: '/dev/nvme2n1', filesystems: ['/data'] },
      { volumeId: VOL_LOGS, device: '/dev/nvme3n1', filesystems: ['/srv/my logs'] },
      { volumeId: VOL_SWAP, device: '/dev/nvme4n1', filesystems: [] },
    ]);
  });

  it('reports an instance whose only volume holds the operating system as ready but crash-consistent', async () => {
    const preflight = await lab.run('preflight', { VolumeIds: VOL_ROOT }, { env });
    expect(preflight.code, preflight.stderr).toBe(0);
    expect(preflight.json.targets).toEqual([]);
    expect(preflight.json.warnings).toEqual([
      'no data filesystem to freeze on these volumes: backups of this instance are crash-consistent',
    ]);
  });

  it('refuses a volume group that holds /var even when Include names its mount point', async () => {
    const preflight = await lab.run('preflight', { VolumeIds: VOL_ROOT, Include: '/var' }, { env });
    expect(preflight.code).toBe(1);
    expect(preflight.json.problems).toEqual([
      expect.objectContaining({ code: 'INCLUDE_REFUSED', message: expect.stringContaining('holds /var') }),
    ]);
  });
});
