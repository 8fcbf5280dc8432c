import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type LabFsType, type LabPool, LabVolume, SimulatedVolume } from './volume';

const LEDGER_WRITER = path.join(__dirname, 'workloads', 'ledger-writer.mjs');
const LEDGER_HOOKS = path.join(__dirname, 'hooks', 'ledger');

export interface LabInstanceProps {
  readonly runDir: string;
  /** The pool the volume images live on; undefined in the simulated lab. */
  readonly pool?: LabPool;
  /** tmpfs holding the instances' state dirs (the freeze script refuses state on disk). @default <instance dir>/run */
  readonly stateRoot?: string;
  readonly name: string;
  readonly volumes: readonly LabFsType[];
  /** @default random i-<17 hex> */
  readonly instanceId?: string;
}

export type AnyVolume = LabVolume | SimulatedVolume;

/**
 * One "EC2 instance": its data volumes, and its own copies of the on-instance seams the SSM scripts
 * honour (ECB_STATE_DIR, ECB_CONFIG_DIR, ECB_DEVICE_MAP), so several instances share one host
 * without seeing each other's freezes or hooks.
 */
export class LabInstance {
  readonly instanceId: string;
  readonly name: string;
  readonly dir: string;
  readonly stateDir: string;
  readonly configDir: string;
  readonly deviceMap: string;
  readonly volumes: AnyVolume[];
  private readonly workloads: ChildProcess[] = [];

  constructor(readonly props: LabInstanceProps) {
    this.instanceId = props.instanceId ?? `i-${randomBytes(9).toString('hex').slice(0, 17)}`;
    this.name = props.name;
    this.dir = path.join(props.runDir, 'instances', this.instanceId);
    this.stateDir = props.stateRoot
      ? path.join(props.stateRoot, this.instanceId)
      : path.join(this.dir, 'run');
    this.configDir = path.join(this.dir, 'etc');
    this.deviceMap = path.join(this.dir, 'device-map');
    this.volumes = props.volumes.map((fstype, i) => {
      const mountpoint = path.join(this.dir, 'mnt', `data${i}`);
      return props.pool
        ? new LabVolume({
            pool: props.pool,
            poolDir: path.join(props.pool.mountpoint, this.instanceId),
            mountpoint,
            fstype,
          })
        : new SimulatedVolume({ mountpoint, fstype });
    });
  }

  /** Where the simulated agent writes its script files: the instance dir, never a frozen volume. */
  get workDir(): string {
    return this.dir;
  }

  /** The environment every SSM command on this instance runs with. */
  get env(): Record<string, string> {
    return { ECB_STATE_DIR: this.stateDir, ECB_CONFIG_DIR: this.configDir, ECB_DEVICE_MAP: this.deviceMap };
  }

  async create(): Promise<void> {
    for (const d of [this.dir, this.stateDir, this.configDir])
      await fs.mkdir(d, { recursive: true, mode: 0o755 });
    // The scripts refuse hook directories that are not root-owned 0755.
    for (const d of ['pre-freeze.d', 'post-thaw.d'])
      await fs.mkdir(path.join(this.configDir, d), { mode: 0o755 });
    for (const v of this.volumes) await v.create();
    // The one seam for what loop devices lack: the NVMe serial that names the EBS volume.
    await fs.writeFile(this.deviceMap, this.volumes.map((v) => `${v.volumeId} ${v.device}\n`).join(''));
  }

  /** Start the ledger on the first data volume; its files go to the instance's unfrozen state dir. */
  async startLedger(pidDir: string, withHooks: boolean): Promise<{ file: string }> {
    const file = path.join(this.volumes[0].mountpoint, 'ledger.log');
    const ack = path.join(this.stateDir, 'ledger.ack');
    const pidfile = path.join(this.stateDir, 'ledger.pid');
    const child = spawn(
      process.execPath,
      [LEDGER_WRITER, '--file', file, '--ack', ack, '--max-pause-ms', '60000'],
      {
        stdio: 'ignore',
        detached: true,
      },
    );
    if (!child.pid) throw new Error('the ledger workload did not start');
    this.workloads.push(child);
    await fs.mkdir(pidDir, { recursive: true });
    await fs.writeFile(path.join(pidDir, `${this.instanceId}-ledger.pid`), `${child.pid}\n`);
    await fs.writeFile(pidfile, `${child.pid}\n`);
    if (withHooks) await this.installLedgerHooks(pidfile, ack);
    return { file };
  }

  async installLedgerHooks(pidfile: string, ack: string): Promise<void> {
    await fs.writeFile(
      path.join(this.configDir, 'ledger.conf'),
      `LEDGER_PIDFILE=${pidfile}\nLEDGER_ACKFILE=${ack}\nLEDGER_ACK_TIMEOUT_MS=10000\n`,
      { mode: 0o644 },
    );
    await installHook(
      path.join(LEDGER_HOOKS, 'pre-freeze.d', '10-ledger'),
      path.join(this.configDir, 'pre-freeze.d'),
    );
    await installHook(
      path.join(LEDGER_HOOKS, 'post-thaw.d', '90-ledger'),
      path.join(this.configDir, 'post-thaw.d'),
    );
  }

  async removeHooks(): Promise<void> {
    for (const d of ['pre-freeze.d', 'post-thaw.d']) {
      const dir = path.join(this.configDir, d);
      for (const f of await fs.readdir(dir)) await fs.rm(path.join(dir, f), { force: true });
    }
  }

  stopWorkloads(): void {
    for (const w of this.workloads) {
      try {
        if (w.pid) process.kill(-w.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
  }
}

/** Install a hook the way the README tells users to: root-owned, mode 0755. */
export async function installHook(source: string, dir: string): Promise<void> {
  const target = path.join(dir, path.basename(source));
  await fs.copyFile(source, target);
  // Only root can give a file to root; the simulated lab (no root) runs hooks itself and checks nothing.
  if (process.getuid?.() === 0) await fs.chown(target, 0, 0);
  await fs.chmod(target, 0o755);
}
