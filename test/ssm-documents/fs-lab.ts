import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_CONFIG } from '../../lib/config';
import { type DocumentKey, renderDocument, scriptWithParameters } from '../../lib/documents';

/**
 * Real filesystems on loop devices for the on-instance documents, run as root. Only what a lab
 * creates is ever frozen, and `cleanup` thaws it before anything else, so a failed test never
 * leaves the machine with a frozen filesystem or a writer stuck in uninterruptible sleep.
 */

const has = (cmd: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

export const IS_ROOT = process.getuid?.() === 0;
export const HAS_LOOP = fs.existsSync('/dev/loop-control');
export const CAN_RUN = IS_ROOT && HAS_LOOP && has('losetup') && has('mkfs.ext4') && has('fsfreeze');
export const SKIP_REASON = !IS_ROOT
  ? 'needs root: fsfreeze, losetup and mount are root-only'
  : !HAS_LOOP
    ? 'needs /dev/loop-control to attach loop devices'
    : 'needs losetup, mkfs.ext4 and fsfreeze (util-linux, e2fsprogs)';
export const HAS_XFS = has('mkfs.xfs');
export const HAS_BTRFS = has('mkfs.btrfs') && fs.readFileSync('/proc/filesystems', 'utf8').includes('btrfs');
export const HAS_SHELLCHECK = has('shellcheck');

/** Whether root here may lower a process's oom_score_adj: it needs CAP_SYS_RESOURCE, which some containers drop. */
export const CAN_PROTECT_FROM_OOM = (() => {
  try {
    execFileSync('sh', ['-c', 'echo -1000 > /proc/self/oom_score_adj'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** What the freeze warns when its watchdog could not take an oom_score_adj of -1000. */
export const OOM_WARNING = 'the watchdog could not protect itself from the OOM killer';

/** A freeze's warnings without the one this machine's missing capability causes on every freeze. */
export function freezeWarnings(json: { warnings: string[] }): string[] {
  return json.warnings.filter((w) => CAN_PROTECT_FROM_OOM || !w.startsWith(OOM_WARNING));
}

export type FsType = 'ext4' | 'xfs' | 'btrfs';

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  // biome-ignore lint/suspicious/noExplicitAny: the documents' JSON, asserted field by field in tests
  readonly json: any;
  readonly ms: number;
  /** True when the agent's timeout fired and the command's process group was SIGKILLed. */
  readonly killedByTimeout: boolean;
}

/** How a test runs a document: the way the SSM agent does, plus seams for faults. */
export interface StartOptions {
  /** Paste values that fail allowedPattern, to prove the script refuses them itself. */
  readonly unchecked?: boolean;
  readonly env?: Record<string, string>;
  /** A shell command with SCRIPT where the script path goes (e.g. a mount namespace around it). */
  readonly wrap?: string;
  /** The step's timeoutSeconds as the agent applies it: SIGKILL of the command's process group. */
  readonly timeoutMs?: number;
}

const run = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8' });
const tryRun = (cmd: string, args: string[]): void => {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    // Clean-up is best effort: the thing may already be gone.
  }
};

/** Gone or a zombie: this machine's init reaps orphans late, so a killed process can linger as Z. */
export function processGone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `check` is true, polling; false when `timeoutMs` passes first. */
export async function waitFor(check: () => boolean, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await sleep(stepMs);
  }
  return check();
}

/** A write in a child process: blocks while the filesystem is frozen, finishes after the thaw. */
export class Writer {
  readonly child: ChildProcess;
  doneAt: number | undefined;
  constructor(file: string) {
    this.child = spawn('sh', ['-c', 'printf data > "$1" && sync "$1"', 'writer', file], { stdio: 'ignore' });
    this.child.on('exit', () => {
      this.doneAt = Date.now();
    });
  }
  get done(): boolean {
    return this.doneAt !== undefined;
  }
}

export class FsLab {
  readonly dir: string;
  readonly stateDir: string;
  readonly configDir: string;
  readonly deviceMap: string;
  private readonly loops: string[] = [];
  private readonly mounts: string[] = [];
  private readonly writers: Writer[] = [];
  /** Commands started, whose process groups cleanup ends while their leader still runs. */
  private readonly commands: ChildProcess[] = [];
  private volumeCounter = 0;
  private readonly cleanups: (() => void)[] = [];
  private readonly overMounts: (() => void)[] = [];

  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ecb-fs-'));
    const run = path.join(this.dir, 'run');
    fs.mkdirSync(run);
    mountFs(['-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'tmpfs', run]);
    this.mounts.push(run);
    this.stateDir = path.join(run, 'ec2-consistent-backup');
    this.configDir = path.join(this.dir, 'etc');
    this.deviceMap = path.join(this.dir, 'device-map');
    fs.writeFileSync(this.deviceMap, '');
  }

  /** A fresh volume id per volume, mapped to its loop device through ECB_DEVICE_MAP. */
  newVolumeId(): string {
    this.volumeCounter += 1;
    return `vol-0ecb${process.pid.toString(16).padStart(6, '0')}${this.volumeCounter.toString(16).padStart(7, '0')}`;
  }

  /** Creates a sparse image, attaches it, makes a filesystem, mounts it; returns volume id and mount point. */
  addFilesystem(type: FsType, mountAt?: string): { volumeId: string; mountpoint: string; device: string } {
    const volumeId = this.newVolumeId();
    const image = path.join(this.dir, `${volumeId}.img`);
    // xfs needs at least 300 MiB; sparse images cost nothing until written.
    fs.writeFileSync(image, '');
    fs.truncateSync(image, type === 'ext4' ? 64 * 1024 * 1024 : 512 * 1024 * 1024);
    const device = run('losetup', ['--find', '--show', image]).trim();
    this.loops.push(device);
    fs.appendFileSync(this.deviceMap, `${volumeId} ${device}\n`);
    if (type === 'ext4') run('mkfs.ext4', ['-q', '-F', device]);
    else if (type === 'xfs') run('mkfs.xfs', ['-q', '-f', device]);
    else run('mkfs.btrfs', ['-q', '-f', device]);
    const mountpoint = mountAt ?? path.join(this.dir, `mnt-${volumeId}`);
    fs.mkdirSync(mountpoint, { recursive: true });
    mountFs([device, mountpoint]);
    this.mounts.push(mountpoint);
    fs.appendFileSync(path.join(this.dir, 'lab-devs'), `${fs.statSync(mountpoint).dev}\n`);
    return { volumeId, mountpoint, device };
  }

  /**
   * Runs the document in a mount namespace where /usr/sbin/fsfreeze passes only calls on this lab's
   * own filesystems to the real fsfreeze, and refuses and records any other: a guard that fails
   * then shows up in `calls` instead of freezing this machine's root filesystem.
   */
  guardedFsfreeze(): { wrap: string; calls: () => { op: string; target: string; lab: boolean }[] } {
    const id = Math.random().toString(16).slice(2);
    const real = path.join(this.dir, 'real-fsfreeze');
    if (!fs.existsSync(real)) fs.copyFileSync('/usr/sbin/fsfreeze', real);
    fs.chmodSync(real, 0o755);
    const log = path.join(this.dir, `fsfreeze-calls-${id}`);
    const fake = path.join(this.dir, `guarded-fsfreeze-${id}`);
    const devs = path.join(this.dir, 'lab-devs');
    fs.writeFileSync(
      fake,
      `#!/bin/bash
target=\${!#}
dev=$(stat -L -c %d -- "$target" 2>/dev/null)
verdict=refused
[ -n "$dev" ] && grep -qx -- "$dev" ${devs} && verdict=lab
printf '%s\\0%s\\0%s\\0' "$1" "$target" "$verdict" >> ${log}
[ "$verdict" = lab ] || { echo "fsfreeze: $target: refused by the test: not a lab filesystem" >&2; exit 1; }
exec ${real} "$@"
`,
      { mode: 0o755 },
    );
    return {
      wrap: `unshare -m --propagation private sh -c 'mount --bind ${fake} /usr/sbin/fsfreeze && exec SCRIPT'`,
      calls: () => {
        const fields = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\0').slice(0, -1) : [];
        const calls = [];
        for (let i = 0; i + 2 < fields.length; i += 3) {
          calls.push({ op: fields[i], target: fields[i + 1], lab: fields[i + 2] === 'lab' });
        }
        return calls;
      },
    };
  }

  /** Bytes in use on the tmpfs that holds the state directory (the lab's /run). */
  runUsedBytes(): number {
    const st = fs.statfsSync(path.dirname(this.stateDir));
    return (st.blocks - st.bfree) * st.bsize;
  }

  /** Pids of live watchdogs started for this lab's state directory, found from their command lines. */
  watchdogPids(): number[] {
    const pids: number[] = [];
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
        if (argv.some((a) => a.startsWith(`${this.stateDir}/`) && a.endsWith('/watchdog.sh'))) {
          if (!processGone(Number(entry))) pids.push(Number(entry));
        }
      } catch {
        // the process ended while we looked
      }
    }
    return pids;
  }

  /** A btrfs filesystem spanning two volumes (RAID1), like an md mirror or an LVM volume group. */
  addBtrfsPair(): { volumeIds: [string, string]; mountpoint: string } {
    const ids: string[] = [];
    const devices: string[] = [];
    for (let i = 0; i < 2; i++) {
      const volumeId = this.newVolumeId();
      const image = path.join(this.dir, `${volumeId}.img`);
      fs.writeFileSync(image, '');
      fs.truncateSync(image, 512 * 1024 * 1024);
      const device = run('losetup', ['--find', '--show', image]).trim();
      this.loops.push(device);
      fs.appendFileSync(this.deviceMap, `${volumeId} ${device}\n`);
      ids.push(volumeId);
      devices.push(device);
    }
    run('mkfs.btrfs', ['-q', '-f', '-d', 'raid1', '-m', 'raid1', ...devices]);
    tryRun('btrfs', ['device', 'scan', ...devices]);
    const mountpoint = path.join(this.dir, `mnt-${ids[0]}`);
    fs.mkdirSync(mountpoint);
    mountFs([devices[0], mountpoint]);
    this.mounts.push(mountpoint);
    return { volumeIds: [ids[0], ids[1]], mountpoint };
  }

  /** Writes a hook owned by root, mode 0700 unless told otherwise. */
  addHook(phase: 'pre-freeze' | 'post-thaw', name: string, body: string, mode = 0o700): string {
    const dir = path.join(this.configDir, `${phase}.d`);
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    fs.chmodSync(this.configDir, 0o755);
    fs.chmodSync(dir, 0o755);
    const file = path.join(dir, name);
    fs.writeFileSync(file, `#!/bin/bash\n${body}\n`);
    fs.chmodSync(file, mode);
    return file;
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      ECB_STATE_DIR: this.stateDir,
      ECB_CONFIG_DIR: this.configDir,
      ECB_DEVICE_MAP: this.deviceMap,
      ...extra,
    };
  }

  /**
   * The document's script with parameters pasted in as SSM does, written where the agent writes it:
   * `<orchestration>/<command id>/<step>/_script.sh`, that directory being the command's working directory.
   */
  scriptFile(
    key: DocumentKey,
    params: Record<string, string>,
    options: { unchecked?: boolean } = {},
  ): string {
    const content = renderDocument(key, { ...DEFAULT_CONFIG });
    const commandId = `${Date.now()}-${Math.random().toString(16).slice(2)}`;
    const dir = path.join(this.dir, 'orchestration', commandId, content.mainSteps[0].name);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, '_script.sh');
    fs.writeFileSync(file, scriptWithParameters(content, params, options), { mode: 0o700 });
    return file;
  }

  /**
   * Runs a document as the SSM agent does (agent/executers/executers_unix.go): `sh -c _script.sh`
   * as root, in the script's directory, the leader of a process group of its own; when the step's
   * timeout passes, SIGKILL to the whole group (`syscall.Kill(-pid, SIGKILL)`), nothing gentler.
   */
  start(
    key: DocumentKey,
    params: Record<string, string>,
    options: StartOptions = {},
  ): { child: ChildProcess; result: Promise<RunResult> } {
    const file = this.scriptFile(key, params, options);
    const started = Date.now();
    const command = options.wrap ? options.wrap.replace('SCRIPT', file) : file;
    const child = spawn('sh', ['-c', command], {
      env: this.env(options.env),
      detached: true,
      cwd: path.dirname(file),
    });
    this.commands.push(child);
    let killedByTimeout = false;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            killedByTimeout = true;
            try {
              process.kill(-(child.pid as number), 'SIGKILL');
            } catch {
              // the command ended at the same moment
            }
          }, options.timeoutMs);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString('utf8');
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
    });
    const result = new Promise<RunResult>((resolve) => {
      child.on('close', (code) => {
        if (timer) clearTimeout(timer);
        let json: unknown;
        try {
          json = JSON.parse(stdout);
        } catch {
          json = undefined;
        }
        resolve({ code, stdout, stderr, json, ms: Date.now() - started, killedByTimeout });
      });
    });
    return { child, result };
  }

  run(key: DocumentKey, params: Record<string, string>, options: StartOptions = {}): Promise<RunResult> {
    return this.start(key, params, options).result;
  }

  /** Parameters every Freeze needs; the not-after time is a minute ahead. */
  freezeParams(volumeIds: string[], extra: Record<string, string> = {}): Record<string, string> {
    return {
      ExecutionId: 'test-exec-1',
      VolumeIds: volumeIds.join(','),
      NotAfter: new Date(Date.now() + 60_000).toISOString(),
      WatchdogSeconds: '30',
      HookTimeoutSeconds: '5',
      ...extra,
    };
  }

  writer(file: string): Writer {
    const w = new Writer(file);
    this.writers.push(w);
    return w;
  }

  /** Whether a fresh write to the filesystem completes within `ms` (it does not while frozen). */
  async writable(mountpoint: string, ms = 400): Promise<boolean> {
    const w = this.writer(
      path.join(mountpoint, `probe-${Date.now()}-${Math.random().toString(16).slice(2)}`),
    );
    return waitFor(() => w.done, ms, 20);
  }

  /**
   * Mounts a small tmpfs over a lab mount point (a lookup there is a read: it works while frozen).
   * Returns its unmount; cleanup unmounts it first, so the thaw by mount point reaches the lab's own
   * filesystem even when a test fails halfway.
   */
  mountTmpfsOver(mountpoint: string): () => void {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountpoint]);
    let mounted = true;
    const unmount = () => {
      if (!mounted) return;
      mounted = false;
      tryRun('umount', [mountpoint]);
    };
    this.overMounts.push(unmount);
    return unmount;
  }

  /** Runs after the thaw and before the unmount (e.g. stopping a server whose data is on a lab volume). */
  /**
   * A small MariaDB server whose data directory is `datadir` (on a lab volume), listening on a socket
   * in the lab's directory only; killed at cleanup. Resolves to the socket once it exists.
   */
  async startMariaDb(datadir: string): Promise<string> {
    const small = ['--innodb-log-file-size=4M', '--innodb-buffer-pool-size=16M'];
    const socket = path.join(this.dir, 'mysql.sock');
    execFileSync(
      'mariadb-install-db',
      [
        '--no-defaults',
        `--datadir=${datadir}`,
        '--user=root',
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        ...small,
      ],
      { stdio: 'ignore' },
    );
    const server = spawn(
      'mariadbd',
      [
        '--no-defaults',
        `--datadir=${datadir}`,
        `--socket=${socket}`,
        '--skip-networking',
        '--user=root',
        ...small,
        `--pid-file=${path.join(this.dir, 'mysql.pid')}`,
        `--log-error=${path.join(this.dir, 'mysql.err')}`,
      ],
      { stdio: 'ignore', detached: true },
    );
    this.onCleanup(() => {
      server.kill('SIGKILL');
      execFileSync('sh', [
        '-c',
        `for i in $(seq 50); do kill -0 ${server.pid} 2>/dev/null || exit 0; sleep 0.1; done`,
      ]);
    });
    if (!(await waitFor(() => fs.existsSync(socket), 15_000, 100))) {
      throw new Error(
        `MariaDB did not create ${socket} within 15 s (see ${path.join(this.dir, 'mysql.err')})`,
      );
    }
    return socket;
  }

  onCleanup(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** Undo everything, thaw first: a blocked writer or a frozen mount must not outlive the test. */
  async cleanup(): Promise<void> {
    // Only groups whose leader has not ended: pids wrap here (pid_max 32768) and an old group id may
    // by now belong to another test's process.
    for (const child of this.commands) {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    // Found by command line: a test may have deleted the state directory that names them.
    for (const pid of this.watchdogPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    // Lock holders started by hooks live in their own sessions and record their pid there.
    const hookState = path.join(this.stateDir, 'hook-state');
    for (const name of fs.existsSync(hookState) ? fs.readdirSync(hookState) : []) {
      try {
        const pid = Number(fs.readFileSync(path.join(hookState, name, 'holder.pid'), 'utf8').trim());
        // Still the holder (it sleeps out its hold), not a process that got its pid since.
        const holder = pid > 0 && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('sleep');
        if (holder) process.kill(pid, 'SIGKILL');
      } catch {
        // this hook keeps no holder
      }
    }
    for (const unmount of this.overMounts) unmount();
    for (const mp of [...this.mounts].reverse()) tryRun('fsfreeze', ['-u', mp]);
    await waitFor(() => this.writers.every((w) => w.done), 5_000);
    for (const fn of this.cleanups.reverse()) {
      try {
        fn();
      } catch {
        // best effort, like the rest of the clean-up
      }
    }
    for (const mp of [...this.mounts].reverse()) tryRun('umount', ['-l', mp]);
    for (const dev of this.loops) tryRun('losetup', ['-d', dev]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function mountFs(args: string[]): void {
  execFileSync('mount', args, { stdio: 'ignore' });
}
