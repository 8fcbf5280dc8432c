import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { METRIC_CATALOGUE, type MetricDefinition } from '../../lambda/shared/metrics';
import { synthApp } from '../../sim/app-synth';

const doc = readFileSync(path.join(__dirname, '../../docs/operating.md'), 'utf8');

function metricRows(): Map<string, { unit: string; dimensions: string }> {
  const section = /<!-- metrics:start[^\n]*-->\n([\s\S]*?)<!-- metrics:end -->/.exec(doc)?.[1] ?? '';
  const rows = new Map<string, { unit: string; dimensions: string }>();
  for (const line of section.split('\n').slice(2)) {
    const cells = line.split(' | ').map((c) => c.replace(/^\| |\s*\|$/g, '').trim());
    if (cells.length < 4) continue;
    rows.set((cells[0] as string).replace(/`/g, ''), {
      unit: cells[1] as string,
      dimensions: cells[2] as string,
    });
  }
  return rows;
}

describe('docs/operating.md', () => {
  it('documents every metric of the catalogue, with its unit and dimensions, and nothing else', () => {
    const rows = metricRows();
    const catalogue: MetricDefinition[] = Object.values(METRIC_CATALOGUE);
    expect([...rows.keys()].sort()).toEqual(catalogue.map((m) => m.name).sort());
    for (const m of catalogue) {
      const row = rows.get(m.name);
      expect(row?.unit, m.name).toBe(m.unit);
      const names = Object.keys(m.dimensions);
      if (names.length === 0) expect(row?.dimensions, m.name).toBe('none');
      for (const [name, values] of Object.entries(m.dimensions)) {
        expect(row?.dimensions, m.name).toContain(`\`${name}\``);
        for (const v of values ?? []) expect(row?.dimensions, `${m.name} ${name}`).toContain(`\`${v}\``);
      }
    }
  });

  it('lists every alarm the stack creates', () => {
    const { template } = synthApp({ serviceNowForwarder: 'true' });
    const ids = Object.keys(template.findResources('AWS::CloudWatch::Alarm'));
    for (const name of [
      'CriticalNotification',
      'ExecutionsNotSucceeded',
      'NoRunSummary',
      'CrashConsistentShare',
    ]) {
      expect(
        ids.some((id) => id.includes(name)),
        name,
      ).toBe(true);
      expect(doc).toContain(`\`${name}\``);
    }
    // Schedule, discovery, execution-events failures, command results, labels and ServiceNow.
    expect(ids.filter((id) => id.includes('MonitoringDeadLetters'))).toHaveLength(6);
    expect(doc).toContain('`DeadLetters<queue>`');
    expect(ids).toHaveLength(10);
  });

  it('names every dead-letter queue an alarm watches, with every optional part on', () => {
    const { template } = synthApp({
      serviceNowForwarder: 'true',
      copyDestinations: 'arn:aws:backup:us-east-1:444455556666:backup-vault:central=365',
      restoreTestSubnetId: 'subnet-0123456789abcdef0',
      restoreTestSecurityGroupIds: 'sg-0123456789abcdef0',
    });
    // Each dead-letter alarm's description opens with the queue's title: "<title> (<queue name>): ...".
    const titles = Object.entries(template.findResources('AWS::CloudWatch::Alarm'))
      .filter(([id]) => id.includes('MonitoringDeadLetters'))
      .map(([, a]) => {
        const d = (a as { Properties: { AlarmDescription: unknown } }).Properties.AlarmDescription;
        const first =
          typeof d === 'string' ? d : (d as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1][0];
        return String(first)
          .replace(/ \($/, '')
          .replace(/ \(.*$/, '');
      });
    expect(titles).toHaveLength(8);
    for (const title of titles) expect(doc, title).toContain(`**${title}**`);
  });
});
