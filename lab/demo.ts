import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { Logger } from '@aws-lambda-powertools/logger';
import { runDiscovery } from '../lambda/discovery/discover';
import { readSettings } from '../lambda/discovery/settings';
import { writeLabel } from '../lambda/label-writer/label-writer';
import type { RequestLabel } from '../lambda/shared/labels';
import { createNotifier } from '../lambda/shared/notifier';
import type { OutcomeSink, WorkflowOutcome } from '../lambda/shared/outcome';
import { OPTION_TAGS } from '../lambda/shared/tags';
import { type BackupConfig, parseConfig } from '../lib/config';
import { FakeDynamoDb } from '../sim/dynamodb';
import { checkCopy, checkSimulatedCopy } from './copy-check';
import { loadDocuments } from './documents';
import { sleep } from './exec';
import {
  type Capabilities,
  cleanupRunDir,
  createPool,
  createRunDir,
  createStateTmpfs,
  labFilesystem,
} from './host';
import { LabInstance } from './instance';
import { checkLedger } from './ledger';
import { checkPgCopy, PG_BINDIR, PgServer, postgresAvailable } from './postgres';
import { type LabCopy, POSTGRESQL_VERIFY_HOOK, verifiedCell, verifyRestoredCopies } from './restore-verify';
import { LAB_ACCOUNT, LAB_REGION, SimBackup, SimEc2, SimSns } from './sim/aws';
import { simulatedExecutor } from './sim/simulated-agent';
import { realExecutor, SimSsm } from './sim/ssm';
import { table } from './stats';
import type { LabFsType } from './volume';
import { environmentOf, SimSfn, synthLabApp } from './workflow';

export interface DemoOptions {
  readonly instances: number;
  /** StartBackupJob to snapshot start, as AWS Backup takes (typically seconds). */
  readonly startLatencyMs: number;
  readonly capabilities: Capabilities;
  readonly out: (line: string) => void;
  /** Raw config values, as `-c key=value` would give them. @default {} */
  readonly config?: Partial<Record<keyof BackupConfig, unknown>>;
  /** The kinds of instance to cycle through. @default demoKinds(capabilities) */
  readonly kinds?: readonly DemoKind[];
}

/** One instance's line in the final table. */
export interface DemoRow {
  readonly name: string;
  readonly instanceId: string;
  readonly consistency: string;
  readonly reason: string;
  readonly freezeMs: number;
  readonly outcome: string;
  /** What checking the snapshot copies found (real lab), or "simulated". */
  readonly copyCheck: string;
  readonly copiesClean: boolean;
  readonly ledgerHolds: boolean | undefined;
  /** The restore verification of the copies (lab/restore-verify.ts); not run on directories. */
  readonly verified: string;
  /** The label this kind of instance should get. */
  readonly expected: string;
  /** What the AppHooks document installed on it before its freeze (instances with an Apps tag). */
  readonly appHooks?: string;
}

export interface DemoResult {
  readonly rows: readonly DemoRow[];
  readonly notifications: readonly { Subject?: string; Message: string }[];
  readonly simulated: boolean;
  readonly runDir: string;
}

/** The kinds of instance the demo makes. */
export type DemoKind = 'ledger-hooks' | 'no-hooks' | 'broken-hook' | 'postgresql-tag';

interface Profile {
  readonly volumes: LabFsType[];
  readonly hooks: 'ledger' | 'none' | 'broken';
  /** The instance's ConsistentBackup:Apps tag: its packaged hooks come from the AppHooks document. */
  readonly apps?: string;
  readonly expect: string;
}

// The kinds of instance a fleet has: an application with its own hooks, one without, one whose hook
// is broken (which must not degrade silently), and a PostgreSQL server chosen by its Apps tag, with
// no hook file put on it by anyone.
const PROFILES: Readonly<Record<DemoKind, Profile>> = {
  'ledger-hooks': { volumes: ['ext4', 'xfs'], hooks: 'ledger', expect: 'application' },
  'no-hooks': { volumes: ['xfs'], hooks: 'none', expect: 'filesystem' },
  'broken-hook': { volumes: ['ext4'], hooks: 'broken', expect: 'crash' },
  'postgresql-tag': { volumes: ['xfs'], hooks: 'none', apps: 'postgresql', expect: 'application' },
};

/**
 * The kinds a demo cycles through here: the PostgreSQL one only on real filesystems with PostgreSQL
 * 15 installed (the packaged hook talks to a real server; the simulated lab has none).
 */
export function demoKinds(capabilities: Capabilities): DemoKind[] {
  const kinds: DemoKind[] = ['ledger-hooks', 'no-hooks', 'broken-hook'];
  if (capabilities.real && postgresAvailable()) kinds.push('postgresql-tag');
  return kinds;
}

export function expectedConsistency(
  index: number,
  kinds: readonly DemoKind[] = demoKinds({ real: false, filesystems: [] }),
): string {
  return PROFILES[kinds[index % kinds.length]].expect;
}

const BROKEN_HOOK =
  '#!/bin/bash\n# The lab\'s broken application hook: the freeze must fail loudly, not silently.\necho "cannot reach the application" >&2\nexit 3\n';

function recordingSink(inner: OutcomeSink, outcomes: WorkflowOutcome[]): OutcomeSink {
  return {
    recordOutcome: async (o) => {
      outcomes.push(o);
      await inner.recordOutcome(o);
    },
    recordDiscovery: (summary, excluded) => inner.recordDiscovery(summary, excluded),
  };
}

/**
 * The whole system on one machine: real discovery logic and the real synthesized state machine against
 * the lab's EC2, SSM, Backup, SNS and DynamoDB, with the real freeze/thaw documents running on
 * loop-mounted filesystems under write load. Cleans up everything it created, also on error.
 */
export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const simulated = !opts.capabilities.real;
  const config = parseConfig(opts.config ?? {});
  const app = synthLabApp(config);
  const documents = loadDocuments(config);
  const runDir = await createRunDir();
  const instances = new Map<string, LabInstance>();
  const tags = new Map<string, Record<string, string>>();
  const started = Date.now();
  const servers: PgApp[] = [];
  const postgresOf = new Map<string, PgApp>();
  const t = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`;
  try {
    const pool = simulated
      ? undefined
      : await createPool(runDir, 16, opts.capabilities.filesystems.includes('xfs') ? 'xfs' : 'ext4');
    const stateRoot = simulated ? undefined : await createStateTmpfs(runDir);
    const snapshotDir = pool?.snapshotDir ?? path.join(runDir, 'snapshots');
    await fs.mkdir(snapshotDir, { recursive: true });

    const kinds = opts.kinds ?? demoKinds(opts.capabilities);
    const profileOf = (k: number) => PROFILES[kinds[k % kinds.length]];
    for (let k = 0; k < opts.instances; k++) {
      const profile = profileOf(k);
      const inst = new LabInstance({
        runDir,
        pool,
        stateRoot,
        name: `app-${k + 1}`,
        // A volume whose filesystem's tools are missing here runs as ext4, still frozen for real.
        volumes: profile.volumes.map((f) => labFilesystem(opts.capabilities, f)),
      });
      instances.set(inst.instanceId, inst);
      await inst.create();
      if (profile.apps === 'postgresql') {
        const pg = await startPostgresApp(inst, runDir, servers.length);
        servers.push(pg);
        postgresOf.set(inst.instanceId, pg);
      } else await inst.startLedger(path.join(runDir, 'pids'), profile.hooks !== 'none');
      if (profile.hooks === 'broken') {
        await fs.writeFile(path.join(inst.configDir, 'pre-freeze.d', '20-broken'), BROKEN_HOOK, {
          mode: 0o755,
        });
      }
      tags.set(inst.instanceId, {
        [config.optInTagKey]: config.optInTagValue,
        Name: inst.name,
        [OPTION_TAGS.onFreezeFailure]: 'crash-consistent',
        ...(profile.apps ? { [OPTION_TAGS.apps]: profile.apps } : {}),
      });
      opts.out(
        `${t()} created ${inst.name} (${inst.instanceId}): ${inst.volumes.map((v) => `${v.fstype} ${v.volumeId} at ${v.mountpoint}`).join(', ')}; ${
          profile.apps
            ? `PostgreSQL under pgbench; tag ${OPTION_TAGS.apps}=${profile.apps}; no hook file on it`
            : `ledger writing; hooks: ${profile.hooks}`
        }`,
      );
    }
    // An instance that is not opted in must be left alone.
    const bystander = new LabInstance({
      runDir,
      pool,
      stateRoot,
      name: 'not-opted-in',
      volumes: ['ext4'],
    });
    instances.set(bystander.instanceId, bystander);
    await bystander.create();
    tags.set(bystander.instanceId, { Name: bystander.name });

    const ec2 = new SimEc2(instances, tags);
    const ssm = new SimSsm(
      instances,
      simulated
        ? simulatedExecutor(instances, { freeze: app.freezeDocument, thaw: app.thawDocument })
        : realExecutor(instances),
    );
    ssm.registerDocument([app.freezeDocument], documents.freeze);
    ssm.registerDocument([app.thawDocument], documents.thaw);
    // The AppHooks document under the name the synthesized Freeze step sends it by.
    const appHooksDocument = String(
      app.asl.States['Freeze Filesystems']?.Parameters?.appHooksDocumentName ?? '',
    );
    if (appHooksDocument) ssm.registerDocument([appHooksDocument], documents.appHooks);
    const backup = new SimBackup(instances, ec2, {
      startLatencyMs: opts.startLatencyMs,
      completionMs: 1500,
      snapshotDir,
    });
    backup.on('snapshot', (s: { instanceId: string; volumeId: string; snapshotId: string }) =>
      opts.out(
        `${t()} ${instances.get(s.instanceId)?.name}: snapshot ${s.snapshotId} of ${s.volumeId} started (point in time fixed)`,
      ),
    );
    const sns = new SimSns();

    const notifierEnv = environmentOf(app, /verdict/i);
    const table_ = new FakeDynamoDb(notifierEnv.NOTIFICATION_TABLE_NAME, {
      PendingRuns: { partitionKey: 'pending', sortKey: 'deadline' },
    });
    const { client: dynamodb } = table_.install();
    const notifier = createNotifier(notifierEnv, {
      sns: sns as unknown as SNSClient,
      dynamodb: dynamodb as DynamoDBClient,
    });
    const outcomes: WorkflowOutcome[] = [];
    const sink = recordingSink(notifier, outcomes);
    // The real label-writer against the lab's Backup and EC2: asked when the verdict is recorded and
    // when the job completes, it labels the AMI once both have happened, in whichever order.
    const labelWrites: Promise<unknown>[] = [];
    const requestLabel: RequestLabel = async (request) => {
      const result = await writeLabel(request, { backup, ec2, jobs: notifier, pace: async () => undefined });
      if (result.action === 'labelled') {
        opts.out(
          `${t()} label ${result.verdict.consistency} written on ${result.imageId} (${request.cause})`,
        );
      }
    };
    backup.on('job', (job: { BackupJobId: string; State: string }) => {
      if (job.State !== 'COMPLETED') return;
      labelWrites.push(
        requestLabel({ kind: 'label', backupJobId: job.BackupJobId, cause: 'job-ended' }).catch((err) =>
          opts.out(`${t()} label of ${job.BackupJobId} failed: ${String(err)}`),
        ),
      );
    });

    const sfn = new SimSfn({
      app,
      ssm,
      ec2,
      backup,
      sns,
      sink,
      requestLabel,
      settings: {
        freezeBudgetSeconds: config.freezeBudgetSeconds,
        watchdogSeconds: config.watchdogSeconds,
        defaultOnFreezeFailure: config.onFreezeFailure,
      },
      onProgress: (e) =>
        opts.out(
          `${t()} ${instances.get(e.instanceId)?.name}: ${e.stage}${e.stage === 'Check Thaw Result' && e.freezeMs !== undefined ? ` (thawed: frozen ${e.freezeMs} ms)` : ''}`,
        ),
    });

    await sleep(1500);
    const discoveryEnv = environmentOf(app, /opted-in EC2 instances/i);
    const settings = readSettings({
      ...discoveryEnv,
      AWS_REGION: LAB_REGION,
      STATE_MACHINE_ARN: app.stateMachineArn,
    });
    const quiet = {
      info: () => undefined,
      warn: (m: string) => opts.out(`${t()} discovery warning: ${m}`),
      error: (m: string) => opts.out(`${t()} discovery error: ${m}`),
    };
    opts.out(`${t()} discovery: scheduled run starting`);
    const result = await runDiscovery(
      { scheduledTime: new Date().toISOString() },
      {
        functionArn: `arn:aws:lambda:${LAB_REGION}:${LAB_ACCOUNT}:function:Discovery`,
        remainingMs: () => 900_000,
      },
      {
        ec2: ec2 as never,
        ssm: ssm as never,
        sfn: sfn as never,
        lambda: {
          send: async () => Promise.reject(new Error('the lab does not hand discovery over')),
        } as never,
        sink,
        logger: quiet as unknown as Pick<Logger, 'info' | 'warn' | 'error'>,
        settings,
      },
    );
    opts.out(
      `${t()} discovery: ${result.summary.discovered} opted in, ${result.slice.started} executions started, ${result.excluded.length} excluded, ${result.failed.length} failed to start`,
    );
    await sfn.settled();
    await backup.settled();
    await Promise.all(labelWrites);

    // What the AppHooks document installed, from its own report on each instance.
    const appHooksOf = (instanceId: string): string | undefined => {
      const inv = ssm.invocations.find(
        (i) => i.instanceId === instanceId && i.documentName === appHooksDocument,
      );
      if (!inv) return undefined;
      try {
        const r = JSON.parse(inv.stdout) as {
          status: string;
          installed: string[];
          unchanged: string[];
          version: string;
        };
        return `AppHooks ${r.status} ${[...r.installed, ...r.unchanged].join(', ')} (hooks ${r.version})`;
      } catch {
        return `AppHooks ${inv.status}: ${inv.stderr.slice(-200)}`;
      }
    };
    for (const inst of instances.values()) {
      const installed = appHooksOf(inst.instanceId);
      if (installed) opts.out(`${t()} ${inst.name}: ${installed}; no hook file was put on it by hand`);
    }
    const rows: DemoRow[] = [];
    for (const inst of instances.values()) {
      if (inst === bystander) continue;
      const o = outcomes.find((x) => x.instanceId === inst.instanceId);
      const snaps = ec2.snapshots.filter((s) => s.instanceId === inst.instanceId);
      let copiesClean = true;
      let ledgerHolds: boolean | undefined;
      const checks: string[] = [];
      const restored: LabCopy[] = [];
      for (const s of snaps) {
        const vol = inst.volumes.find((v) => v.volumeId === s.VolumeId);
        if (!vol) continue;
        restored.push({ copy: s.copy, fstype: vol.fstype, mountpoint: vol.mountpoint });
        const pg = postgresOf.get(inst.instanceId);
        const isLedger = vol === inst.volumes[0] && !pg;
        const inspect = async (root: string) =>
          isLedger
            ? checkLedger(
                await fs
                  .readFile(path.join(root, 'ledger.log'))
                  .catch(() => Buffer.from('missing ledger file\n')),
              )
            : undefined;
        if (pg && !simulated) {
          const c = await checkCopy(s.copy, vol.fstype, path.join(runDir, 'check'), (root) =>
            checkPgCopy(
              path.join(root, 'pgdata'),
              path.join(runDir, 'checksock'),
              pg.port + 1,
              path.join(runDir, `check-${inst.name}.log`),
            ),
          );
          copiesClean &&= c.clean;
          const p = c.inspected;
          checks.push(
            `${vol.fstype}:${c.clean ? 'clean' : 'journal replay'}/postgresql ${p?.started ? `started, redo ${(p.redoBytes / 1e6).toFixed(1)} MB, pgbench ${p.invariantHolds ? 'ok' : 'torn'}` : 'did not start'}`,
          );
          continue;
        }
        const c = simulated
          ? await checkSimulatedCopy(s.copy, inspect)
          : await checkCopy(s.copy, vol.fstype, path.join(runDir, 'check'), inspect);
        copiesClean &&= c.clean;
        if (isLedger) ledgerHolds = c.inspected?.holds ?? false;
        checks.push(
          `${vol.fstype}:${simulated ? 'copied' : c.clean ? 'clean' : c.needsReplay ? 'journal replay' : 'fsck errors'}${isLedger ? `/ledger ${c.inspected?.holds ? 'ok' : 'torn'}` : ''}`,
        );
      }
      let verified = 'not run (directories, no filesystem)';
      if (!simulated && restored.length > 0) {
        const v = await verifyRestoredCopies(restored, {
          workDir: runDir,
          restoreJobId: `LAB-${inst.instanceId.slice(2, 10).toUpperCase()}`,
          instanceId: inst.instanceId,
          // A PostgreSQL instance's restore test runs the packaged PostgreSQL verify hook.
          ...(postgresOf.has(inst.instanceId) ? { hooks: [POSTGRESQL_VERIFY_HOOK] } : {}),
        });
        verified = verifiedCell(v);
        opts.out(`${t()} ${inst.name}: restore test ${v.result}: ${v.summary}`);
      }
      rows.push({
        name: inst.name,
        instanceId: inst.instanceId,
        consistency: o?.verdict?.consistency ?? 'none',
        reason: o?.verdict?.reason ?? o?.error?.cause ?? '',
        freezeMs: o?.verdict?.freezeMs ?? 0,
        outcome: o?.outcome ?? 'no outcome recorded',
        copyCheck: checks.join(' ') || 'no snapshot',
        copiesClean,
        ledgerHolds,
        verified,
        expected: profileOf(rows.length).expect,
        ...(appHooksOf(inst.instanceId) ? { appHooks: appHooksOf(inst.instanceId) } : {}),
      });
    }
    if (ec2.snapshots.some((s) => s.instanceId === bystander.instanceId))
      throw new Error('the instance that is not opted in was backed up');
    return { rows, notifications: sns.published, simulated, runDir };
  } finally {
    for (const i of instances.values()) i.stopWorkloads();
    for (const pg of servers) await pg.stop().catch(() => undefined);
    await cleanupRunDir(runDir);
  }
}

/** A PostgreSQL 15 server on an instance's first volume, under pgbench. */
interface PgApp {
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * PostgreSQL on the instance's data volume, as a server an operator tags: its settings file says
 * where the server listens (apps/postgresql.conf, what an operator writes once; settings are not
 * hooks). The hook itself reaches the instance only through the AppHooks document.
 */
async function startPostgresApp(inst: LabInstance, runDir: string, index: number): Promise<PgApp> {
  const socketDir = path.join(inst.dir, 'pgsock');
  const port = DEMO_PG_PORT + index * 2;
  const server = new PgServer({
    dataDir: path.join(inst.volumes[0].mountpoint, 'pgdata'),
    socketDir,
    port,
    logFile: path.join(inst.dir, 'postgresql.log'),
  });
  await server.init();
  await server.start();
  await server.pgbenchInit(2);
  const load = server.pgbenchLoad(3600, 2, 100);
  await fs.mkdir(path.join(runDir, 'pids'), { recursive: true });
  await fs.writeFile(path.join(runDir, 'pids', `${inst.instanceId}-pgbench.pid`), `${load.pid}\n`);
  const apps = path.join(inst.configDir, 'apps');
  await fs.mkdir(apps, { recursive: true, mode: 0o755 });
  await fs.writeFile(
    path.join(apps, 'postgresql.conf'),
    `PG_HOST=${socketDir}\nPG_PORT=${port}\nPG_BINDIR=${PG_BINDIR}\n`,
    { mode: 0o600 },
  );
  return {
    port,
    async stop() {
      try {
        if (load.pid) process.kill(-load.pid, 'SIGTERM');
      } catch {
        // pgbench already ended.
      }
      await server.stop('fast');
    },
  };
}

const DEMO_PG_PORT = 55_600;

/** The closing table. A simulated run says so before and after it (scripts/demo.ts), not in each row. */
export function demoTable(rows: readonly DemoRow[], simulated: boolean): string {
  return table(
    [
      'instance',
      'consistency',
      'freeze ms',
      'outcome',
      simulated ? 'snapshot copies (directories)' : 'snapshot copies checked',
      'restore verified',
    ],
    rows.map((r) => [
      `${r.name} ${r.instanceId}`,
      r.consistency,
      String(r.freezeMs),
      r.outcome,
      r.copyCheck,
      r.verified,
    ]),
  );
}

/** SNS messages as an operator would read them: subject, severity, and the ticket description. */
export function formatNotifications(published: readonly { Subject?: string; Message: string }[]): string {
  return published
    .map((p, i) => {
      let body = p.Message;
      try {
        const m = JSON.parse(p.Message) as {
          severity?: string;
          eventType?: string;
          event?: { description?: string };
        };
        body = `[${m.severity ?? '?'}] ${m.eventType ?? ''}\n    ${m.event?.description ?? p.Message.slice(0, 300)}`;
      } catch {
        // Not JSON: print as is.
      }
      return `${i + 1}. ${p.Subject ?? '(no subject)'}\n    ${body}`;
    })
    .join('\n');
}
