import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  emitExclusion,
  emitOutcome,
  emitPublished,
  emitSnapshotStartLatency,
  emitSnapshotWait,
  METRIC_CATALOGUE,
  type MetricDefinition,
  METRICS_NAMESPACE,
  SERVICE_NAME,
  useMetrics,
} from '../../../lambda/shared/metrics';
import { countThrottles } from '../../../lambda/shared/throttle-metrics';
import { excluded, harness, outcome, summary } from '../notifications/fixtures';

type Emf = {
  _aws: {
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: string }[];
    }[];
  };
  [key: string]: unknown;
};

let lines: Emf[];
let write: ReturnType<typeof vi.spyOn>;
beforeEach(() => {
  lines = [];
  // EMF goes to stdout, where Lambda hands it to CloudWatch Logs.
  write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    const text = String(chunk);
    for (const line of text.split('\n')) {
      if (line.startsWith('{') && line.includes('"_aws"')) lines.push(JSON.parse(line) as Emf);
    }
    return true;
  });
  // test/setup.ts disables metrics for every other test; these are the tests that read them.
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
  useMetrics(new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE_NAME }));
});
afterEach(() => {
  write.mockRestore();
  useMetrics(undefined);
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
});

/** name → [dimensions without service, value] per EMF line. */
const emitted = () =>
  lines.map((l) => {
    const def = l._aws.CloudWatchMetrics[0];
    const name = def?.Metrics[0]?.Name as string;
    const dims = Object.fromEntries(
      (def?.Dimensions[0] ?? []).filter((d) => d !== 'service').map((d) => [d, l[d]]),
    );
    return {
      name,
      unit: def?.Metrics[0]?.Unit,
      dims,
      value: l[name],
      namespace: def?.Namespace,
      service: l.service,
    };
  });

describe('metric emitters', () => {
  it('writes one EMF object per metric, in the namespace, with the service and its own dimensions only', () => {
    emitOutcome(
      outcome({
        outcome: 'backed-up',
        instanceId: 'i-0a1b2c3d4e5f60718',
        verdict: { consistency: 'application', reason: 'hooks ran', freezeMs: 2480 },
      }),
    );
    expect(emitted()).toEqual([
      {
        name: 'InstancesByLabel',
        unit: 'Count',
        dims: { Label: 'application' },
        value: 1,
        namespace: 'Ec2ConsistentBackup',
        service: 'ec2-consistent-backup',
      },
      {
        name: 'FreezeDuration',
        unit: 'Milliseconds',
        dims: {},
        value: 2480,
        namespace: 'Ec2ConsistentBackup',
        service: 'ec2-consistent-backup',
      },
    ]);
    // No instance id, run id or execution anywhere in a metric line.
    expect(JSON.stringify(lines)).not.toMatch(/i-0a1b2c3d4e5f60718|run-2026|execution/);
  });

  it('counts a failure by its class, labelled none, with no freeze time when nothing froze', () => {
    emitOutcome(outcome({ outcome: 'backup-start-failed', instanceId: 'i-0a1b2c3d4e5f60718' }));
    emitOutcome(
      outcome({
        outcome: 'thaw-failed',
        instanceId: 'i-0a1b2c3d4e5f60718',
        verdict: { consistency: 'application', reason: 'x', freezeMs: 90_000 },
      }),
    );
    expect(emitted().map((m) => [m.name, m.dims, m.value])).toEqual([
      ['InstancesByLabel', { Label: 'none' }, 1],
      ['Failures', { FailureClass: 'backup-start-failed' }, 1],
      ['InstancesByLabel', { Label: 'application' }, 1],
      ['FreezeDuration', {}, 90_000],
      ['Failures', { FailureClass: 'thaw-failed' }, 1],
    ]);
  });

  it('counts exclusions by reason, notifications by severity, run summaries, and the snapshot start latency', () => {
    emitExclusion('ssm-offline');
    emitPublished({ severity: 'Minor', eventType: 'instance-not-ready' });
    emitPublished({ severity: 'OK', eventType: 'run-summary' });
    emitSnapshotStartLatency(1834.6);
    expect(emitted().map((m) => [m.name, m.dims, m.value])).toEqual([
      ['Exclusions', { Reason: 'ssm-offline' }, 1],
      ['Notifications', { Severity: 'Minor' }, 1],
      ['Notifications', { Severity: 'OK' }, 1],
      ['RunSummaries', {}, 1],
      ['SnapshotStartLatency', {}, 1835],
    ]);
  });

  it("measures the snapshot start latency from a Snapshot Wait answer: the job's creation to the last snapshot start", () => {
    const answer = {
      status: 'started' as const,
      snapshots: [
        { volumeId: 'vol-0a1b2c3d4e5f60001', snapshotId: 'snap-01', startTime: '2026-12-01T02:00:07.250Z' },
        { volumeId: 'vol-0a1b2c3d4e5f60002', snapshotId: 'snap-02', startTime: '2026-12-01T02:00:08.900Z' },
      ],
      missingVolumeIds: [],
      backupJob: {
        backupJobId: 'D1E2F3A4-B5C6-7D8E-9F0A-1B2C3D4E5F61',
        creationDate: '2026-12-01T02:00:06.100Z',
      },
      waitedMs: 2900,
      answeredBy: 'start-backup' as const,
    };
    emitSnapshotWait(answer);
    // Nothing to measure: the budget ran out, or the job's creation time is unknown.
    emitSnapshotWait({ ...answer, status: 'budget-exceeded' });
    emitSnapshotWait({ ...answer, backupJob: { backupJobId: 'D1E2F3A4-B5C6-7D8E-9F0A-1B2C3D4E5F61' } });
    expect(emitted().map((m) => [m.name, m.dims, m.value])).toEqual([['SnapshotStartLatency', {}, 2800]]);
  });

  it('keeps dimensions to their closed sets: an unknown value is `other`', () => {
    emitExclusion('a-reason-from-the-future' as never);
    expect(emitted()[0]?.dims).toEqual({ Reason: 'other' });
  });

  it('emits only what the catalogue defines, with its unit and dimensions', () => {
    emitOutcome(outcome({ outcome: 'skipped-active-job', instanceId: 'i-0a1b2c3d4e5f60718' }));
    emitExclusion('invalid-tag');
    emitPublished({ severity: 'Critical', eventType: 'thaw-failed' });
    const byName = new Map<string, MetricDefinition>(Object.values(METRIC_CATALOGUE).map((d) => [d.name, d]));
    for (const m of emitted()) {
      const def = byName.get(m.name);
      expect(def, m.name).toBeDefined();
      expect(m.unit).toBe(def?.unit);
      expect(Object.keys(m.dims).sort()).toEqual(Object.keys(def?.dimensions ?? {}).sort());
    }
  });
});

describe('countThrottles', () => {
  let server: http.Server;
  let answers: { status: number; body: string }[];
  beforeEach(async () => {
    answers = [];
    server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const a = answers.shift() ?? { status: 500, body: '' };
        res.writeHead(a.status, { 'Content-Type': 'text/xml' });
        res.end(a.body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const ec2Error = (code: string) =>
    `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${code}</Code><Message>${code}</Message></Error></Errors><RequestID>r-1</RequestID></Response>`;
  const described =
    '<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-2</requestId><reservationSet/></DescribeInstancesResponse>';

  function client(): EC2Client {
    return countThrottles(
      new EC2Client({
        region: 'eu-west-1',
        endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'not-a-secret' },
        maxAttempts: 3,
      }),
    );
  }

  it('counts every throttled attempt, retried or not, by service and operation', async () => {
    answers.push(
      { status: 503, body: ec2Error('RequestLimitExceeded') },
      { status: 503, body: ec2Error('RequestLimitExceeded') },
      { status: 200, body: described },
    );
    await client().send(new DescribeInstancesCommand({}));
    expect(emitted().map((m) => [m.name, m.dims, m.value])).toEqual([
      ['ThrottledCalls', { Service: 'EC2', Operation: 'DescribeInstances' }, 1],
      ['ThrottledCalls', { Service: 'EC2', Operation: 'DescribeInstances' }, 1],
    ]);
  });

  it('is counted for every SDK client of every handler, but the poller hand-over', () => {
    const root = path.join(__dirname, '../../../lambda');
    const unwrapped: string[] = [];
    for (const dir of fs.readdirSync(root)) {
      const file = path.join(root, dir, 'handler.ts');
      if (!fs.existsSync(file)) continue;
      const source = fs.readFileSync(file, 'utf8');
      for (const m of source.matchAll(/new (\w+Client)\(/g)) {
        if (!/countThrottles\(\s*$/.test(source.slice(0, m.index))) unwrapped.push(`${dir}: ${m[1]}`);
      }
    }
    // It only invokes the poller itself again (docs/operating.md says so).
    expect(unwrapped).toEqual(['snapshot-poller: LambdaClient']);
  });

  it('does not count other errors', async () => {
    answers.push({ status: 400, body: ec2Error('InvalidParameterValue') });
    await expect(client().send(new DescribeInstancesCommand({}))).rejects.toThrow('InvalidParameterValue');
    expect(emitted()).toEqual([]);
  });
});

describe('where the notifier emits them', () => {
  it('counts an outcome once however often it is recorded, exclusions once per run, every publish by severity', async () => {
    const h = harness();
    try {
      const o = outcome({
        outcome: 'backed-up',
        instanceId: 'i-0a1b2c3d4e5f60718',
        verdict: { consistency: 'crash', reason: 'budget exceeded', freezeMs: 57_000 },
        warnings: ['freeze budget exceeded'],
      });
      await h.notifier.recordOutcome(o);
      await h.notifier.recordOutcome(o);
      const report = summary({ discovered: 2, started: 1, excluded: { 'ssm-offline': 1 } });
      const out = [excluded('i-0f1e2d3c4b5a69788', 'ssm-offline', 'SSM agent offline')];
      await h.notifier.recordDiscovery(report, out);
      await h.notifier.recordDiscovery(report, out);
      const counts = new Map<string, number>();
      for (const m of emitted()) {
        const key = `${m.name} ${JSON.stringify(m.dims)}`;
        counts.set(key, (counts.get(key) ?? 0) + (m.value as number));
      }
      const bySeverity: Record<string, number> = {};
      for (const n of h.messages()) {
        const key = `Notifications {"Severity":"${n.severity}"}`;
        bySeverity[key] = (bySeverity[key] ?? 0) + 1;
      }
      // Fallback Warning, the Minor exclusion, and the run summary (Warning: one crash label).
      expect(bySeverity).toEqual({
        'Notifications {"Severity":"Warning"}': 2,
        'Notifications {"Severity":"Minor"}': 1,
      });
      expect(Object.fromEntries(counts)).toEqual({
        'InstancesByLabel {"Label":"crash"}': 1,
        'FreezeDuration {}': 57_000,
        'Exclusions {"Reason":"ssm-offline"}': 1,
        ...bySeverity,
        'RunSummaries {}': 1,
      });
      expect(h.messages().map((n) => n.eventType)).toEqual([
        'crash-consistent-fallback',
        'instance-not-ready',
        'run-summary',
      ]);
    } finally {
      h.snsMock.restore();
      h.dynamodbMock.restore();
    }
  });
});
