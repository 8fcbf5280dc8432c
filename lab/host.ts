import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { mustRun, run, sleep } from './exec';
import { type LabFsType, LabPool } from './volume';

/** Every lab run lives under this directory (on the root filesystem, never frozen by the lab). */
export const LAB_ROOT =
  process.env.ECB_LAB_ROOT ??
  (process.getuid?.() === 0 ? '/var/tmp/ecb-lab' : `/var/tmp/ecb-lab-${process.getuid?.()}`);

export interface Capabilities {
  /** Real loop-mounted volumes, real fsfreeze, real point-in-time copies. */
  readonly real: boolean;
  /** Why the lab falls back to simulated filesystems, when it does. */
  readonly reason?: string;
  /** The filesystems the real lab can make and check here: ext4 always, xfs with xfsprogs. */
  readonly filesystems: readonly LabFsType[];
  /** One line: which filesystems run as ext4 here and what to install for them, when some do. */
  readonly substitutes?: string;
}

/** What the real lab cannot do without, by the Debian package that has it. */
const BASE_TOOLS: Readonly<Record<string, readonly string[]>> = {
  mount: ['losetup', 'mount', 'umount'],
  'util-linux': ['fsfreeze', 'findmnt'],
  e2fsprogs: ['mkfs.ext4', 'e2fsck', 'dumpe2fs'],
};

/** Filesystems beyond ext4: the tools that make and check one, and their package. */
const OPTIONAL_FILESYSTEMS: readonly { fstype: LabFsType; tools: readonly string[]; pkg: string }[] = [
  { fstype: 'xfs', tools: ['mkfs.xfs', 'xfs_repair', 'xfs_logprint'], pkg: 'xfsprogs' },
];

async function onPath(tool: string): Promise<boolean> {
  const r = await run('sh', ['-c', `command -v ${tool}`]);
  return r.code === 0;
}

async function missingTools(tools: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const tool of tools) if (!(await onPath(tool))) missing.push(tool);
  return missing;
}

/**
 * Decide once how real this machine's lab can be. Real needs root, loop devices and the ext4 and
 * util-linux tools; a filesystem whose tools are missing (xfs without xfsprogs) runs as ext4.
 */
export async function detectCapabilities(): Promise<Capabilities> {
  const simulated = (reason: string): Capabilities => ({ real: false, reason, filesystems: [] });
  if (process.env.ECB_LAB_SIMULATE === '1') return simulated('ECB_LAB_SIMULATE=1');
  if (process.getuid?.() !== 0) return simulated('not running as root');
  if (!existsSync('/dev/loop-control')) return simulated('no /dev/loop-control');
  const missing: string[] = [];
  const packages: string[] = [];
  for (const [pkg, tools] of Object.entries(BASE_TOOLS)) {
    const gone = await missingTools(tools);
    missing.push(...gone);
    if (gone.length > 0) packages.push(pkg);
  }
  if (missing.length > 0)
    return simulated(`missing tools: ${missing.join(', ')} (apt-get install ${packages.join(' ')})`);
  // A container can have the device node but no permission to attach: prove it once.
  const probeDir = await fs.mkdtemp(path.join(await ensureRoot(), 'probe-'));
  try {
    const img = path.join(probeDir, 'probe.img');
    await fs.writeFile(img, Buffer.alloc(1024 * 1024));
    const r = await run('losetup', ['--find', '--show', img]);
    if (r.code !== 0) return simulated(`losetup failed: ${r.stderr.trim()}`);
    await run('losetup', ['-d', r.stdout.trim()]);
  } finally {
    await fs.rm(probeDir, { recursive: true, force: true });
  }
  const filesystems: LabFsType[] = ['ext4'];
  const substituted: string[] = [];
  for (const f of OPTIONAL_FILESYSTEMS) {
    const gone = await missingTools(f.tools);
    if (gone.length === 0) filesystems.push(f.fstype);
    else
      substituted.push(`${f.fstype} volumes are ext4 here (no ${gone.join(', ')}): apt-get install ${f.pkg}`);
  }
  return { real: true, filesystems, substitutes: substituted.length ? substituted.join('; ') : undefined };
}

/** The filesystem a volume that prefers `wanted` gets here: `wanted` when its tools are installed, ext4 otherwise. */
export function labFilesystem(capabilities: Capabilities, wanted: LabFsType): LabFsType {
  return !capabilities.real || capabilities.filesystems.includes(wanted) ? wanted : 'ext4';
}

async function ensureRoot(): Promise<string> {
  await fs.mkdir(LAB_ROOT, { recursive: true, mode: 0o755 });
  return LAB_ROOT;
}

/** Run dirs this process created and has not cleaned yet, for the signal handlers. */
const active = new Set<string>();

/** Clean every run dir this process created: what SIGINT/SIGTERM handlers call. */
export async function cleanupActive(): Promise<string[]> {
  const log: string[] = [];
  for (const dir of [...active]) log.push(...(await cleanupRunDir(dir)));
  return log;
}

/**
 * Create this run's workspace: LAB_ROOT/run-<pid>-<time><random>, world-traversable so the postgres
 * user can reach its data. The random part keeps runs started in the same millisecond apart. The
 * directory appears under its run- name only with its owner.pid in it, so a `--cleanup` running at
 * the same time never takes a fresh run for an abandoned one.
 */
export async function createRunDir(): Promise<string> {
  const root = await ensureRoot();
  const unique = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const dir = path.join(root, `run-${process.pid}-${unique}`);
  const staging = path.join(root, `.new-${process.pid}-${unique}`);
  await fs.mkdir(staging, { mode: 0o755 });
  await fs.writeFile(path.join(staging, 'owner.pid'), `${process.pid}\n`);
  await fs.rename(staging, dir);
  active.add(dir);
  return dir;
}

interface Mount {
  readonly target: string;
  readonly source: string;
}

async function mountsUnder(dir: string): Promise<Mount[]> {
  const r = await run('findmnt', ['-rn', '-o', 'TARGET,SOURCE']);
  const prefix = `${dir}/`;
  return (
    r.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [target, source] = line.split(' ');
        // findmnt -r escapes spaces and other specials as \xNN.
        const decode = (s: string) =>
          s.replace(/\\x([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
        return { target: decode(target), source: decode(source ?? '') };
      })
      .filter((m) => m.target.startsWith(prefix))
      // Deepest first: volume mounts sit inside the pool mount.
      .sort((a, b) => b.target.length - a.target.length)
  );
}

async function loopsBackedUnder(dir: string): Promise<string[]> {
  const r = await run('losetup', ['-n', '-O', 'NAME,BACK-FILE', '-l']);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 2 && f[1].startsWith(`${dir}/`))
    .map((f) => f[0]);
}

/** Whether `p` is `dir` or lies under it. */
function under(p: string, dir: string): boolean {
  return p === dir || p.startsWith(`${dir}/`);
}

/**
 * Processes that belong to this run although no pid file of ours records them: those started with
 * its seams in their environment (the freeze script's watchdogs, which detach with setsid, and
 * hooks' helpers), and those holding its files open (a database server and its backends logging
 * into it, left by a run that was killed).
 */
async function processesOfRun(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    const environ = await fs.readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '');
    const seams = environ
      .split('\0')
      .some((kv) => kv.startsWith('ECB_STATE_DIR=') && under(kv.slice('ECB_STATE_DIR='.length), dir));
    const fds = await fs.readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    let holdsFile = false;
    for (const fd of fds) {
      if (holdsFile) break;
      holdsFile = under(await fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''), dir);
    }
    if (seams || holdsFile) pids.push(pid);
  }
  return pids;
}

async function killRecorded(dir: string): Promise<void> {
  for (const pid of await processesOfRun(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  const pidDir = path.join(dir, 'pids');
  let files: string[] = [];
  try {
    files = await fs.readdir(pidDir);
  } catch {
    return;
  }
  for (const f of files) {
    const pid = Number((await fs.readFile(path.join(pidDir, f), 'utf8')).trim());
    if (!Number.isInteger(pid) || pid <= 1) continue;
    // Workloads run in their own process group so a hook-less pause or a child dies with them.
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}

/**
 * Undo everything a lab run created under `dir`, in the only safe order: thaw first (a writer
 * blocked on a frozen fs cannot even be killed), then kill workloads, unmount deepest first,
 * detach loop devices, remove files. Idempotent: every step tolerates "already done".
 */
export async function cleanupRunDir(dir: string): Promise<string[]> {
  const log: string[] = [];
  if (!dir.startsWith(`${LAB_ROOT}/`)) throw new Error(`refusing to clean ${dir}: not under ${LAB_ROOT}`);
  // Shallowest first: a volume's thaw writes through its loop device into the pool, and would wait
  // forever on a pool left frozen mid-snapshot (LabPool, ext4).
  for (const m of (await mountsUnder(dir)).reverse()) {
    const r = await run('fsfreeze', ['-u', m.target]);
    if (r.code === 0) log.push(`thawed ${m.target}`);
  }
  await killRecorded(dir);
  // Give killed processes a moment to release open files before unmounting.
  await sleep(100);
  // Volume images live inside the pool mount, so the pool can only go once their loop devices are
  // detached: alternate unmount and detach passes until nothing is left.
  for (let attempt = 0; attempt < 6; attempt++) {
    const mounts = await mountsUnder(dir);
    const loops = await loopsBackedUnder(dir);
    if (mounts.length === 0 && loops.length === 0) break;
    for (const m of mounts) {
      const r = await run('umount', [m.target]);
      if (r.code === 0) log.push(`unmounted ${m.target}`);
    }
    for (const loop of await loopsBackedUnder(dir)) {
      const r = await run('losetup', ['-d', loop]);
      if (r.code === 0) log.push(`detached ${loop}`);
    }
    await sleep(150 * (attempt + 1));
  }
  const left = await mountsUnder(dir);
  if (left.length > 0)
    throw new Error(
      `could not unmount ${left.map((m) => m.target).join(', ')}; run \`npm run demo -- --cleanup\` again`,
    );
  await fs.rm(dir, { recursive: true, force: true });
  active.delete(dir);
  log.push(`removed ${dir}`);
  return log;
}

/** `npm run demo -- --cleanup`: clean every run whose owner process is gone (or all, with force). */
export async function cleanupAll(force = false): Promise<string[]> {
  const log: string[] = [];
  let entries: string[] = [];
  try {
    entries = await fs.readdir(LAB_ROOT);
  } catch {
    return log;
  }
  for (const e of entries) {
    if (!e.startsWith('run-')) continue;
    const dir = path.join(LAB_ROOT, e);
    const owner = Number((await fs.readFile(path.join(dir, 'owner.pid'), 'utf8').catch(() => '0')).trim());
    if (!force && owner > 0 && owner !== process.pid && processAlive(owner)) {
      log.push(`left ${dir}: its run (pid ${owner}) is still alive`);
      continue;
    }
    log.push(...(await cleanupRunDir(dir)));
  }
  return log;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A tmpfs for the instances' ECB_STATE_DIRs: the freeze script insists its state (and the watchdog's)
 * lives on tmpfs, as /run does on an instance, so nothing it needs can ever sit on a frozen disk.
 */
export async function createStateTmpfs(runDir: string): Promise<string> {
  const mnt = path.join(runDir, 'run');
  await fs.mkdir(mnt, { recursive: true });
  await mustRun('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0755', 'ecb-lab-run', mnt]);
  return mnt;
}

/**
 * The pool every volume image lives on (see LabPool for how each kind takes a snapshot): a sparse
 * image loop-mounted under the run dir. XFS with reflink=1 where mkfs.xfs is installed, ext4
 * otherwise; `fstype` chooses explicitly.
 */
export async function createPool(runDir: string, sizeGiB = 16, fstype?: LabFsType): Promise<LabPool> {
  const kind = fstype ?? ((await onPath('mkfs.xfs')) ? 'xfs' : 'ext4');
  const img = path.join(runDir, 'pool.img');
  const mnt = path.join(runDir, 'pool');
  await fs.mkdir(mnt, { recursive: true });
  await mustRun('truncate', ['-s', `${sizeGiB}G`, img]);
  if (kind === 'xfs') {
    await mustRun('mkfs.xfs', ['-q', '-m', 'reflink=1', img]);
    await mustRun('mount', ['-o', 'loop', img, mnt]);
  } else {
    await mustRun('mkfs.ext4', ['-q', '-F', img]);
    // noinit_itable: no background zeroing of inode tables writing to the pool while it is frozen.
    await mustRun('mount', ['-o', 'loop,noinit_itable', img, mnt]);
  }
  await fs.chmod(mnt, 0o755);
  const pool = new LabPool(mnt, kind, runDir);
  await fs.mkdir(pool.snapshotDir, { recursive: true });
  return pool;
}
