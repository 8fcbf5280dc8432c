import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { MAX_PATHS } from '../../lambda/shared/instance-options';
import { MAX_FREEZE_VOLUMES } from '../../lambda/shared/outcome';
import { DEFAULT_CONFIG, parseConfig } from '../../lib/config';
import {
  DOCUMENT_FILES,
  DOCUMENTS_DIR,
  type DocumentKey,
  COMMAND_STEP_MAX_SECONDS,
  commandStepSeconds,
  DocumentRenderError,
  Documents,
  MAX_DOCUMENT_BYTES,
  PARAMETER_DELIMITER,
  PARAMETER_HEADROOM_BYTES,
  ParameterValueError,
  renderDocument,
  SCRIPT_BUNDLES,
  scriptWithParameters,
} from '../../lib/documents';

const KEYS = Object.keys(DOCUMENT_FILES) as DocumentKey[];

/** Contract with the workflow (ssm-documents/README.md): parameter names each document takes. */
const CONTRACT: Record<DocumentKey, string[]> = {
  freeze: [
    'ExecutionId',
    'VolumeIds',
    'VolumeDevices',
    'NotAfter',
    'WatchdogSeconds',
    'HookTimeoutSeconds',
    'Include',
    'Exclude',
  ],
  thaw: ['ExecutionId', 'HookTimeoutSeconds'],
  preflight: ['VolumeIds', 'VolumeDevices', 'Include', 'Exclude', 'Apps'],
  appHooks: ['Apps'],
  windowsReadiness: ['InstanceId'],
  verifyRestore: [
    'RestoreJobId',
    'ExpectedInstanceId',
    'Filesystems',
    'MountRoot',
    'HooksDir',
    'HookTimeoutSeconds',
  ],
};

describe('renderDocument', () => {
  it.each(KEYS)('%s is a schema 2.2 command document with patterned parameters and one step', (key) => {
    const doc = renderDocument(key, DEFAULT_CONFIG);
    expect(doc.schemaVersion).toBe('2.2');
    expect(doc.description).toMatch(/^### ec2-consistent-backup: /);
    expect(Object.keys(doc.parameters)).toEqual(CONTRACT[key]);
    for (const p of Object.values(doc.parameters)) {
      expect(p.type).toBe('String');
      expect(p.description.length).toBeGreaterThan(10);
      expect(() => new RegExp(p.allowedPattern)).not.toThrow();
      expect(p.allowedPattern.startsWith('^')).toBe(true);
    }
    expect(doc.mainSteps).toHaveLength(1);
    const step = doc.mainSteps[0];
    expect(step.action).toBe(key === 'windowsReadiness' ? 'aws:runPowerShellScript' : 'aws:runShellScript');
    expect(step.inputs.timeoutSeconds).toBeGreaterThan(0);
    expect(Buffer.byteLength(JSON.stringify(doc))).toBeLessThan(
      MAX_DOCUMENT_BYTES - PARAMETER_HEADROOM_BYTES,
    );
  });

  it.each([
    'freeze',
    'thaw',
    'preflight',
  ] as const)('%s: the shell is bash and {{ }} appears only in the parameter prologue', (key) => {
    const doc = renderDocument(key, DEFAULT_CONFIG);
    const lines = doc.mainSteps[0].inputs.runCommand;
    expect(lines[0]).toBe('#!/bin/bash');
    const refs = lines.filter((l) => l.includes('{{'));
    expect(refs).toEqual(Object.keys(doc.parameters).map((name) => `{{ ${name} }}`));
    // Each reference sits alone between a quoted here-document opener and its delimiter.
    for (const ref of refs) {
      const i = lines.indexOf(ref);
      expect(lines[i - 1]).toMatch(/^IFS= read -r -d '' ECB_P_[A-Za-z]+ <<'[^']+' \|\| true$/);
      expect(lines[i - 1]).toContain(`<<'${PARAMETER_DELIMITER}'`);
      expect(lines[i + 1]).toBe(PARAMETER_DELIMITER);
    }
    const main = { freeze: 'ecb_freeze_main', thaw: 'ecb_thaw_main', preflight: 'ecb_preflight_main' }[key];
    expect(lines[lines.length - 1]).toBe(`${main} "$@"`);
  });

  it('windowsReadiness pastes InstanceId only into a single-quoted string and checks it again', () => {
    const doc = renderDocument('windowsReadiness', DEFAULT_CONFIG);
    expect(doc.mainSteps[0].precondition).toEqual({ StringEquals: ['platformType', 'Windows'] });
    const lines = doc.mainSteps[0].inputs.runCommand;
    expect(lines.filter((l) => l.includes('{{'))).toEqual(["$instanceId = '{{ InstanceId }}'"]);
    const check = lines.findIndex((l) => l.startsWith('if ($instanceId -notmatch'));
    expect(check).toBe(lines.indexOf("$instanceId = '{{ InstanceId }}'") + 1);
    const pattern = new RegExp(doc.parameters.InstanceId.allowedPattern);
    expect(pattern.test('i-0123456789abcdef0')).toBe(true);
    for (const hostile of ["i-0123456789'; Remove-Item C:\\", 'i-0123$(calc)', 'i-01234567\n']) {
      expect(pattern.test(hostile)).toBe(false);
    }
    expect(lines.join('\n')).toContain('ConvertTo-Json');
  });

  it('leaves room for the longest parameter values the patterns allow', () => {
    const doc = renderDocument('freeze', DEFAULT_CONFIG);
    const vol = `vol-${'0'.repeat(17)}`;
    const longest: Record<string, string> = {
      Include: Array(MAX_PATHS)
        .fill(`/${'a'.repeat(255)}`)
        .join(','),
      Exclude: Array(MAX_PATHS)
        .fill(`/${'a'.repeat(255)}`)
        .join(','),
      VolumeIds: Array(40).fill(vol).join(','),
      VolumeDevices: Array(40)
        .fill(`${vol}=/dev/${'a'.repeat(16)}`)
        .join(','),
      ExecutionId: 'a'.repeat(128),
      NotAfter: '2026-11-22T02:00:00.000Z',
    };
    let total = 0;
    for (const [name, value] of Object.entries(longest)) {
      expect(new RegExp(doc.parameters[name].allowedPattern).test(value), name).toBe(true);
      total += value.length;
    }
    expect(total).toBeLessThan(PARAMETER_HEADROOM_BYTES);
    expect(Buffer.byteLength(JSON.stringify(doc)) + total).toBeLessThan(MAX_DOCUMENT_BYTES);
  });

  it('takes the watchdog and hook time limits from the config', () => {
    const config = parseConfig({ freezeBudgetSeconds: 30, watchdogSeconds: 45, hookTimeoutSeconds: 12 });
    const freeze = renderDocument('freeze', config);
    expect(freeze.parameters.WatchdogSeconds.default).toBe('45');
    expect(freeze.parameters.HookTimeoutSeconds.default).toBe('12');
    expect(renderDocument('thaw', config).parameters.HookTimeoutSeconds.default).toBe('12');
    expect(renderDocument('freeze', DEFAULT_CONFIG).parameters.WatchdogSeconds.default).toBe('90');
  });

  it('accepts every value config allows for the time limits, and the patterns refuse the rest', () => {
    const freeze = renderDocument('freeze', DEFAULT_CONFIG);
    const watchdog = new RegExp(freeze.parameters.WatchdogSeconds.allowedPattern);
    const hook = new RegExp(freeze.parameters.HookTimeoutSeconds.allowedPattern);
    for (let n = 0; n <= 700; n++) {
      expect(watchdog.test(String(n)), `watchdog ${n}`).toBe(n >= 6 && n <= 300);
      expect(hook.test(String(n)), `hook ${n}`).toBe(n >= 1 && n <= 600);
    }
    expect(watchdog.test('090')).toBe(false);
  });

  it('bundles every script file into some document, each at most once', () => {
    const files = fs.readdirSync(path.join(DOCUMENTS_DIR, 'scripts')).sort();
    // `@apps` is the packaged application hooks' text (ssm-documents/apps/), not a script file.
    const bundled = new Set(
      Object.values(SCRIPT_BUNDLES)
        .flat()
        .filter((f) => f !== '@apps'),
    );
    expect([...bundled].sort()).toEqual(files);
    for (const bundle of Object.values(SCRIPT_BUNDLES)) expect(new Set(bundle).size).toBe(bundle.length);
  });

  it.each([
    'freeze',
    'thaw',
    'preflight',
    'appHooks',
  ] as const)('%s: no value an allowedPattern accepts can end the parameter here-document', (key) => {
    const doc = renderDocument(key, DEFAULT_CONFIG);
    // A space and a line break: no pattern may match either, so no value can be the delimiter line.
    expect(PARAMETER_DELIMITER).toMatch(/ /);
    for (const [name, p] of Object.entries(doc.parameters)) {
      const re = new RegExp(p.allowedPattern);
      expect(re.test(PARAMETER_DELIMITER), name).toBe(false);
      expect(re.test('ECB_PARAMETER_END'), name).toBe(name === 'ExecutionId');
    }
  });

  it.each([
    ['^.{1,128}$', 'any character'],
    ['^[^,]*$', 'a negated class'],
    ['^[A-Za-z ]+$', 'a space'],
    ['^\\S+\\s?$', 'a shorthand class'],
    ['^[A-Za-z\\n]+$', 'a line break'],
  ])('refuses an allowedPattern that could let a value end its here-document: %s (%s)', (pattern) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ecb-docs-'));
    try {
      fs.cpSync(DOCUMENTS_DIR, dir, { recursive: true });
      const file = path.join(dir, 'thaw.yml');
      const yml = fs.readFileSync(file, 'utf8');
      fs.writeFileSync(
        file,
        yml.replace("'^[A-Za-z0-9_.:-]{1,128}$'", () => `'${pattern}'`),
      );
      expect(() => renderDocument('thaw', DEFAULT_CONFIG, dir)).toThrow(DocumentRenderError);
      expect(() => renderDocument('thaw', DEFAULT_CONFIG, dir)).toThrow(/ExecutionId/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses script text that SSM would read as a parameter reference', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ecb-docs-'));
    try {
      fs.cpSync(DOCUMENTS_DIR, dir, { recursive: true });
      fs.appendFileSync(path.join(dir, 'scripts', 'thaw.sh'), '# {{ ssm:/secret }}\n');
      expect(() => renderDocument('thaw', DEFAULT_CONFIG, dir)).toThrow(DocumentRenderError);
      expect(() => renderDocument('thaw', DEFAULT_CONFIG, dir)).toThrow(/thaw.sh contains "\{\{"/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('limits shared with the workflow', () => {
  it('runs the freeze and the thaw at most two hook timeouts plus a minute, capped, per the config', () => {
    for (const hookTimeoutSeconds of [1, 30, 200, 330, 600]) {
      const config = parseConfig({ hookTimeoutSeconds });
      const expected = Math.min(2 * hookTimeoutSeconds + 60, COMMAND_STEP_MAX_SECONDS);
      expect(commandStepSeconds(config)).toBe(expected);
      expect(renderDocument('freeze', config).mainSteps[0].inputs.timeoutSeconds).toBe(expected);
      expect(renderDocument('thaw', config).mainSteps[0].inputs.timeoutSeconds).toBe(expected);
    }
    // Preflight and the Windows readiness check keep their own limits from the YAML.
    expect(renderDocument('preflight', DEFAULT_CONFIG).mainSteps[0].inputs.timeoutSeconds).toBe(120);
  });

  it('accepts exactly MAX_FREEZE_VOLUMES volume ids, the limit discovery and the probe enforce', () => {
    const ids = (n: number) =>
      Array.from({ length: n }, (_, i) => `vol-${String(i).padStart(17, '0')}`).join(',');
    for (const key of ['freeze', 'preflight'] as const) {
      const pattern = new RegExp(renderDocument(key, DEFAULT_CONFIG).parameters.VolumeIds.allowedPattern);
      expect(pattern.test(ids(MAX_FREEZE_VOLUMES)), key).toBe(true);
      expect(pattern.test(ids(MAX_FREEZE_VOLUMES + 1)), key).toBe(false);
    }
  });

  it('accepts exactly MAX_PATHS Include and Exclude paths, what the orchestrator sends from a tag', () => {
    const paths = (n: number) =>
      Array(n)
        .fill(`/${'a'.repeat(255)}`)
        .join(',');
    for (const key of ['freeze', 'preflight'] as const) {
      for (const name of ['Include', 'Exclude']) {
        const pattern = new RegExp(renderDocument(key, DEFAULT_CONFIG).parameters[name].allowedPattern);
        expect(pattern.test(paths(MAX_PATHS)), `${key} ${name}`).toBe(true);
        expect(pattern.test(paths(MAX_PATHS + 1)), `${key} ${name}`).toBe(false);
      }
    }
  });

  it('refuses a VolumeIds pattern that disagrees with MAX_FREEZE_VOLUMES, naming the limit', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ecb-docs-'));
    try {
      fs.cpSync(DOCUMENTS_DIR, dir, { recursive: true });
      const file = path.join(dir, 'freeze.yml');
      const yml = fs.readFileSync(file, 'utf8');
      expect(yml).toContain('(,vol-[0-9a-f]{8,17}){0,39}$');
      fs.writeFileSync(file, yml.replace('(,vol-[0-9a-f]{8,17}){0,39}$', '(,vol-[0-9a-f]{8,17}){0,49}$'));
      expect(() => renderDocument('freeze', DEFAULT_CONFIG, dir)).toThrow(
        `the allowedPattern of VolumeIds must accept at most ${MAX_FREEZE_VOLUMES} entries`,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a config-derived step timeout above the YAML ceiling', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ecb-docs-'));
    try {
      fs.cpSync(DOCUMENTS_DIR, dir, { recursive: true });
      const file = path.join(dir, 'thaw.yml');
      fs.writeFileSync(
        file,
        fs.readFileSync(file, 'utf8').replace('timeoutSeconds: 900', 'timeoutSeconds: 100'),
      );
      expect(() => renderDocument('thaw', DEFAULT_CONFIG, dir)).toThrow(
        'step thaw would run 120 s, above its timeoutSeconds 100',
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('scriptWithParameters', () => {
  const freeze = renderDocument('freeze', DEFAULT_CONFIG);
  const base = { ExecutionId: 'e-1', VolumeIds: 'vol-0123456789abcdef0', NotAfter: '2030-01-01T00:00:00Z' };

  it('pastes values and defaults where SSM would', () => {
    const text = scriptWithParameters(freeze, base);
    expect(text).toContain(`<<'${PARAMETER_DELIMITER}' || true\ne-1\n${PARAMETER_DELIMITER}\n`);
    expect(text).toContain(`ECB_P_WatchdogSeconds <<'${PARAMETER_DELIMITER}' || true\n90\n`);
    expect(text).not.toContain('{{');
  });

  it('refuses a missing required parameter, an unknown one, and a value outside its pattern', () => {
    expect(() => scriptWithParameters(freeze, { ExecutionId: 'e-1' })).toThrow(/VolumeIds is required/);
    expect(() => scriptWithParameters(freeze, { ...base, Bogus: 'x' })).toThrow(ParameterValueError);
    expect(() => scriptWithParameters(freeze, { ...base, VolumeIds: 'vol-1' })).toThrow(/VolumeIds: "vol-1"/);
    expect(() =>
      scriptWithParameters(freeze, { ...base, VolumeIds: 'vol-1' }, { unchecked: true }),
    ).not.toThrow();
  });
});

describe('Documents construct', () => {
  const synth = (config = DEFAULT_CONFIG) => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'EcbDocs', { env: { account: '111122223333', region: 'eu-west-1' } });
    const documents = new Documents(stack, 'Documents', { config });
    return { stack, documents, template: Template.fromStack(stack) };
  };

  it('creates six versioned command documents with stable names', () => {
    const { template, documents } = synth();
    template.resourceCountIs('AWS::SSM::Document', 6);
    for (const [key, suffix] of [
      ['freeze', 'Freeze'],
      ['thaw', 'Thaw'],
      ['preflight', 'Preflight'],
      ['windowsReadiness', 'WindowsReadiness'],
      ['verifyRestore', 'VerifyRestore'],
      ['appHooks', 'AppHooks'],
    ] as const) {
      template.hasResourceProperties('AWS::SSM::Document', {
        Name: `EcbDocs-${suffix}`,
        DocumentType: 'Command',
        DocumentFormat: 'JSON',
        UpdateMethod: 'NewVersion',
        TargetType: '/AWS::EC2::Instance',
        Content: renderDocument(key, DEFAULT_CONFIG),
      });
      expect(documents.names[key]).toBe(`EcbDocs-${suffix}`);
    }
  });

  it('gives the ARNs IAM needs', () => {
    const { stack, documents } = synth();
    const arns = documents.arns();
    expect(stack.resolve(arns.freeze)).toEqual({
      'Fn::Join': [
        '',
        ['arn:', { Ref: 'AWS::Partition' }, ':ssm:eu-west-1:111122223333:document/EcbDocs-Freeze'],
      ],
    });
    expect(stack.resolve(arns.thaw)).toEqual({
      'Fn::Join': [
        '',
        ['arn:', { Ref: 'AWS::Partition' }, ':ssm:eu-west-1:111122223333:document/EcbDocs-Thaw'],
      ],
    });
  });

  it('exposes the AwsVssComponents install command only when configured', () => {
    expect(synth().documents.vssInstall).toBeUndefined();
    const { stack, documents } = synth(parseConfig({ installVssComponents: true }));
    expect(documents.vssInstall?.documentName).toBe('AWS-ConfigureAWSPackage');
    expect(documents.vssInstall?.parameters).toEqual({ action: ['Install'], name: ['AwsVssComponents'] });
    expect(stack.resolve(documents.vssInstall?.documentArn)).toEqual({
      'Fn::Join': [
        '',
        ['arn:', { Ref: 'AWS::Partition' }, ':ssm:eu-west-1::document/AWS-ConfigureAWSPackage'],
      ],
    });
  });
});
