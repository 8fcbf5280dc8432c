/**
 * npm run bench:fleet [-- --sizes 1000,10000,50000] [--profiles large,standard]
 *                     [--snapshots normal,slow] [--pacing admission,none]
 *                     [--planned default,matched] [--share 85]
 *                     [--rate <api>=<rate/s>[/<burst>] ...] [--seed 1] [--json]
 *
 * Simulates whole backup runs of one account and Region on a virtual clock (sim/fleet/): the real
 * synthesized state machine (interpreted by sim/fleet/asl-run.ts), the real freeze-filesystems,
 * start-backup, wait-for-command and record-outcome logic, discovery's real planning and pacing, against fakes that enforce a token
 * bucket for every API the run calls (published quotas; flags with conservative defaults for the
 * unpublished SSM and AWS Backup rates), Lambda concurrency (Region 1,000, reserved per function)
 * and state transitions as a delaying bucket. Snapshots start a lognormal time after
 * StartBackupJob: median 2 s (normal) or 30 s (slow). Prints one table row per run.
 * Method and measured tables: docs/scale.md.
 */

import '../sim/local-node';
import {
  APIS,
  type Api,
  type Bucket,
  DEFAULT_SNAPSHOT_START_SECONDS,
  parseApiRates,
  type RegionProfile,
} from '../lambda/discovery/admission';
import { parseConfig } from '../lib/config';
import { synthWorkflow } from '../sim/asl';
import { type FleetRunReport, runFleet } from '../sim/fleet/run';

export class BenchUsageError extends Error {
  override readonly name = 'BenchUsageError';
}

export interface BenchArgs {
  readonly sizes: number[];
  readonly profiles: RegionProfile[];
  readonly snapshots: ('normal' | 'slow')[];
  readonly pacing: ('admission' | 'none')[];
  /**
   * The snapshot start admission plans for (config snapshotStartSeconds): `default` (3 s), or
   * `matched` to the profile (1.4 x its median, rounded up: 3 s normal, 42 s slow).
   */
  readonly planned: ('default' | 'matched')[];
  readonly share: number;
  readonly rates: Partial<Record<Api, Bucket>>;
  readonly seed: number;
  readonly json: boolean;
}

export const SNAPSHOT_MEDIANS = { normal: 2, slow: 30 } as const;

/** What admission plans for: the config default, or 1.4 x the profile's median (rounded up). */
export function plannedSeconds(planned: 'default' | 'matched', median: number): number {
  return planned === 'default' ? DEFAULT_SNAPSHOT_START_SECONDS : Math.ceil(median * 1.4);
}

export function parseBenchArgs(argv: readonly string[]): BenchArgs {
  const a: { -readonly [K in keyof BenchArgs]: BenchArgs[K] } = {
    sizes: [1000, 10000, 50000],
    profiles: ['large', 'standard'],
    snapshots: ['normal', 'slow'],
    pacing: ['admission'],
    planned: ['default', 'matched'],
    share: 85,
    rates: {},
    seed: 1,
    json: false,
  };
  const rates: string[] = [];
  const list = <T extends string>(flag: string, v: string, allowed: readonly T[]): T[] => {
    const items = v.split(',');
    for (const i of items)
      if (!allowed.includes(i as T))
        throw new BenchUsageError(
          `Invalid ${flag}: got ${JSON.stringify(i)}; allowed: ${allowed.join(', ')}`,
        );
    return items as T[];
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new BenchUsageError(`${flag} needs a value`);
      return v;
    };
    if (flag === '--sizes') {
      const v = value();
      a.sizes = v.split(',').map(Number);
      if (!a.sizes.every((n) => Number.isInteger(n) && n >= 1 && n <= 200_000))
        throw new BenchUsageError(
          `Invalid --sizes: got ${JSON.stringify(v)}; allowed: whole numbers from 1 to 200000, comma-separated`,
        );
    } else if (flag === '--profiles') a.profiles = list('--profiles', value(), ['large', 'standard']);
    else if (flag === '--snapshots') a.snapshots = list('--snapshots', value(), ['normal', 'slow']);
    else if (flag === '--pacing') a.pacing = list('--pacing', value(), ['admission', 'none']);
    else if (flag === '--planned') a.planned = list('--planned', value(), ['default', 'matched']);
    else if (flag === '--share') {
      const v = value();
      a.share = Number(v);
      if (!Number.isInteger(a.share) || a.share < 1 || a.share > 100)
        throw new BenchUsageError(
          `Invalid --share: got ${JSON.stringify(v)}; allowed: a whole percent from 1 to 100`,
        );
    } else if (flag === '--rate') rates.push(value());
    else if (flag === '--seed') {
      const v = value();
      a.seed = Number(v);
      if (!Number.isInteger(a.seed) || a.seed < 1)
        throw new BenchUsageError(
          `Invalid --seed: got ${JSON.stringify(v)}; allowed: a whole number of at least 1`,
        );
    } else if (flag === '--json') a.json = true;
    else
      throw new BenchUsageError(
        `Unknown argument ${JSON.stringify(flag)}; allowed: --sizes, --profiles, --snapshots, --pacing, --planned, --share, --rate, --seed, --json`,
      );
  }
  const parsed = parseApiRates(rates.join(','));
  if (typeof parsed === 'string') throw new BenchUsageError(`Invalid --rate: ${parsed}`);
  a.rates = parsed;
  return a;
}

const ms = (n: number) => (Number.isNaN(n) ? '-' : `${(n / 1000).toFixed(1)}`);
const minutes = (s: number) => (s >= 3600 ? `${(s / 3600).toFixed(2)} h` : `${(s / 60).toFixed(1)} min`);

export const HEADER = [
  'instances',
  'profile',
  'snapshots',
  'pacing (planned start s)',
  'labels',
  'not consistent',
  'lost to throttling',
  'freeze p50/p95/p99/max s',
  'throttled calls',
  'Lambda refused',
  'peak Lambda',
  'peak transitions/s',
  'rate /s (binding)',
  'wall',
  'minimum',
  'wall/min',
  'peak RSS MB',
];

export function row(r: FleetRunReport): string[] {
  const o = r.options;
  const throttled = Object.entries(r.throttled)
    .filter(([, n]) => n > 0)
    .map(([api, n]) => `${api} ${n}`)
    .join(', ');
  return [
    o.size.toLocaleString('en-US'),
    o.profile,
    o.snapshotMedianSeconds === SNAPSHOT_MEDIANS.slow ? 'slow' : 'normal',
    o.pacing === 'admission' ? `admission (${o.plannedSnapshotStartSeconds})` : 'none (today)',
    Object.entries(r.labels)
      .map(([l, n]) => `${l} ${n}`)
      .join(', '),
    String(r.lost),
    String(r.lostToThrottling),
    `${ms(r.freezeMs.p50)} / ${ms(r.freezeMs.p95)} / ${ms(r.freezeMs.p99)} / ${ms(r.freezeMs.max)}`,
    throttled || '0',
    String(r.lambdaRefused),
    String(r.peakLambda),
    String(r.peakTransitionsPerSecond),
    o.pacing === 'admission' ? `${r.pacing.ratePerSecond.toFixed(2)} (${r.pacing.binding.name})` : '-',
    minutes(r.wallSeconds),
    minutes(r.minimumSeconds),
    (r.wallSeconds / r.minimumSeconds).toFixed(2),
    r.peakRssMb.toFixed(0),
  ];
}

async function main(): Promise<void> {
  const args = parseBenchArgs(process.argv.slice(2));
  const raw = {};
  const config = parseConfig(raw);
  const asl = synthWorkflow(raw).asl;
  const quotaNotes = APIS.filter((api) => args.rates[api]).map(
    (api) => `${api} ${args.rates[api]?.ratePerSecond}/s burst ${args.rates[api]?.burst}`,
  );
  if (!args.json) {
    console.log(
      `fleet benchmark: seed ${args.seed}, quota share ${args.share} %, 2 volumes per instance${quotaNotes.length ? `, quotas overridden: ${quotaNotes.join('; ')}` : ''}`,
    );
    console.log(`| ${HEADER.join(' | ')} |`);
    console.log(`| ${HEADER.map(() => '---').join(' | ')} |`);
  }
  for (const size of args.sizes)
    for (const profile of args.profiles)
      for (const snapshots of args.snapshots)
        for (const [pacing, planned] of [
          ...new Set(
            args.pacing.flatMap((p) =>
              p === 'none'
                ? ['none:3']
                : args.planned.map((q) => `admission:${plannedSeconds(q, SNAPSHOT_MEDIANS[snapshots])}`),
            ),
          ),
        ].map((k) => k.split(':') as ['admission' | 'none', string])) {
          const started = Date.now();
          const r = await runFleet(asl, config, {
            size,
            profile,
            snapshotMedianSeconds: SNAPSHOT_MEDIANS[snapshots],
            pacing,
            plannedSnapshotStartSeconds: Number(planned),
            quotaShare: args.share / 100,
            quotaOverrides: args.rates,
            seed: args.seed,
            volumesPerInstance: 2,
          });
          if (args.json) console.log(JSON.stringify({ ...r, benchSeconds: (Date.now() - started) / 1000 }));
          else console.log(`| ${row(r).join(' | ')} |`);
        }
}

if (require.main === module) {
  main().catch((err) => {
    if (err instanceof BenchUsageError) {
      console.error(err.message);
      process.exit(2);
    }
    console.error(err);
    process.exit(1);
  });
}
