import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Stack } from 'aws-cdk-lib';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { parse as parseYaml } from 'yaml';
import { appsPattern, PACKAGED_APPS } from '../lambda/shared/apps';
import { MAX_PATHS } from '../lambda/shared/instance-options';
import { MAX_FREEZE_VOLUMES } from '../lambda/shared/outcome';
import type { BackupConfig } from './config';

/**
 * The on-instance SSM documents, rendered at synth from `ssm-documents/<name>.yml` and the shell in
 * `ssm-documents/scripts/`. Rendering is a pure function so that tests and the local lab execute
 * exactly the text a document contains.
 */

export const DOCUMENTS_DIR = path.join(__dirname, '..', 'ssm-documents');

export type DocumentKey = 'freeze' | 'thaw' | 'preflight' | 'windowsReadiness' | 'verifyRestore' | 'appHooks';

export const DOCUMENT_FILES: Readonly<Record<DocumentKey, string>> = {
  freeze: 'freeze.yml',
  thaw: 'thaw.yml',
  preflight: 'preflight.yml',
  windowsReadiness: 'windows-readiness.yml',
  verifyRestore: 'verify-restore.yml',
  appHooks: 'app-hooks.yml',
};

/** Name suffixes: each document is named `<stackName>-<suffix>`. */
export const DOCUMENT_SUFFIXES: Readonly<Record<DocumentKey, string>> = {
  freeze: 'Freeze',
  thaw: 'Thaw',
  preflight: 'Preflight',
  windowsReadiness: 'WindowsReadiness',
  verifyRestore: 'VerifyRestore',
  appHooks: 'AppHooks',
};

/** SSM's limit on a document's content, which also counts the parameter values given at run time. */
export const MAX_DOCUMENT_BYTES = 64 * 1024;

/**
 * Room left for parameter values, which count against the same limit: the longest the patterns
 * allow is about 11 KB (16 Include and 16 Exclude paths of 256 characters, 40 volume ids and devices).
 */
export const PARAMETER_HEADROOM_BYTES = 11 * 1024;

/**
 * The longest SSM lets the freeze or the thaw script run on the instance before killing it (the
 * rendered step's `timeoutSeconds`); lib/workflow.ts waits for the command this long plus delivery
 * and a margin, so the orchestrator never gives up on a command the instance is still running.
 */
export const COMMAND_STEP_MAX_SECONDS = 720;

/** Documents whose step timeout is derived from the config rather than taken from the YAML. */
const DERIVED_STEP_TIMEOUT: readonly DocumentKey[] = ['freeze', 'thaw'];

/**
 * Seconds the freeze (or thaw) script may run: pre-freeze (or post-thaw) hooks run one after another,
 * each bounded by hookTimeoutSeconds; two hooks at their limit plus a minute for discovery, sync and
 * the watchdog's start. A script still running then is killed by SSM, which the freeze survives by
 * rolling back (nothing stays frozen); capped so that the wait fits in one freeze-filesystems or wait-for-command invocation.
 */
export function commandStepSeconds(config: Pick<BackupConfig, 'hookTimeoutSeconds'>): number {
  return Math.min(config.hookTimeoutSeconds * 2 + 60, COMMAND_STEP_MAX_SECONDS);
}

/**
 * List parameters must take exactly as many entries as the orchestrator may send: VolumeIds and
 * VolumeDevices MAX_FREEZE_VOLUMES (the limit discovery and freeze-filesystems enforce), Include and Exclude
 * MAX_PATHS (the tag rule). A pattern edited without them would make SSM refuse a freeze the
 * orchestrator starts, or take values the size check below did not count.
 */
const LIST_LIMITS: Readonly<Record<string, { entry: string; max: number; source: string }>> = {
  VolumeIds: {
    entry: `vol-${'0'.repeat(17)}`,
    max: MAX_FREEZE_VOLUMES,
    source: 'MAX_FREEZE_VOLUMES in lambda/shared/outcome.ts',
  },
  VolumeDevices: {
    entry: `vol-${'0'.repeat(17)}=/dev/xvdf`,
    max: MAX_FREEZE_VOLUMES,
    source: 'MAX_FREEZE_VOLUMES in lambda/shared/outcome.ts',
  },
  Include: {
    entry: `/${'a'.repeat(255)}`,
    max: MAX_PATHS,
    source: 'MAX_PATHS in lambda/shared/instance-options.ts',
  },
  Exclude: {
    entry: `/${'a'.repeat(255)}`,
    max: MAX_PATHS,
    source: 'MAX_PATHS in lambda/shared/instance-options.ts',
  },
};

function checkListLimit(docName: string, name: string, pattern: string): void {
  const limit = LIST_LIMITS[name];
  if (!limit) return;
  const list = (n: number) => Array(n).fill(limit.entry).join(',');
  const re = new RegExp(pattern);
  if (!re.test(list(limit.max)) || re.test(list(limit.max + 1))) {
    throw new DocumentRenderError(
      `${docName}: the allowedPattern of ${name} must accept at most ${limit.max} entries (${limit.source})`,
    );
  }
}

export interface DocumentParameter {
  readonly type: 'String';
  readonly description: string;
  readonly allowedPattern: string;
  readonly default?: string;
}

export interface DocumentStep {
  readonly action: 'aws:runShellScript' | 'aws:runPowerShellScript';
  readonly name: string;
  readonly precondition?: Record<string, unknown>;
  readonly inputs: { readonly timeoutSeconds: number; readonly runCommand: string[] };
}

export interface DocumentContent {
  readonly schemaVersion: '2.2';
  readonly description: string;
  readonly parameters: Record<string, DocumentParameter>;
  readonly mainSteps: DocumentStep[];
}

export class DocumentRenderError extends Error {
  override readonly name = 'DocumentRenderError';
}

/**
 * Scripts each entry script needs, in order: the shared parts split by reason to change (core:
 * environment, log, time, JSON; validate; hooks: the hook runner; topology: mounts and targets;
 * state: the state directory and records; thawing: thaw helpers). The watchdog's functions ride
 * along in the freeze, which writes them to tmpfs for it.
 */
const SHARED_SCRIPTS = ['core.sh', 'validate.sh', 'hooks.sh', 'topology.sh', 'state.sh', 'thawing.sh'];
export const SCRIPT_BUNDLES: Readonly<Record<string, readonly string[]>> = {
  'freeze.sh': [...SHARED_SCRIPTS, 'watchdog.sh', 'freeze.sh'],
  'thaw.sh': [...SHARED_SCRIPTS, 'thaw.sh'],
  'preflight.sh': [...SHARED_SCRIPTS, 'preflight.sh'],
  // Installs the packaged application hooks an instance's Apps tag names (docs/hooks.md).
  'app-hooks.sh': ['core.sh', 'validate.sh', 'hooks.sh', '@apps', 'app-hooks.sh'],
  // Restore testing (lib/restore-testing.ts) sends it to restored test instances only.
  'verify-restore.sh': [...SHARED_SCRIPTS, 'verify-restore.sh'],
};

/**
 * Ends each parameter's here-document. It contains spaces, which no allowedPattern may accept
 * (checked below), so no parameter value can ever be this line.
 */
export const PARAMETER_DELIMITER = 'ECB PARAMETER END';

/** shellcheck directives, but for SC2317 (unreachable), excluded for the whole rendered script. */
const isKeptDirective = (line: string) =>
  line.startsWith('# shellcheck disable=') && !/disable=SC2317\b/.test(line);

/**
 * One script file as one runCommand entry (the agent writes the entries one per line, so this is
 * the same script). Comments, blank lines and indentation are for readers of ssm-documents/scripts/
 * and stay there: the rendered document is executed, not read, and SSM counts its bytes against
 * 64 KB together with the parameter values. shellcheck directives are kept.
 */
function readScript(file: string, dir: string): string {
  if (file === '@apps') return appsBlock(dir);
  const text = fs.readFileSync(path.join(dir, 'scripts', file), 'utf8');
  if (text.includes('{{')) {
    // SSM would substitute it as a parameter reference.
    throw new DocumentRenderError(
      `ssm-documents/scripts/${file} contains "{{", which SSM treats as a parameter`,
    );
  }
  return text
    .split('\n')
    .map((line) => line.replace(/^\s+/, ''))
    .filter((line) => line !== '' && (!line.startsWith('#') || isKeptDirective(line)))
    .join('\n');
}

/** Ends each packaged hook's here-document in the rendered script. */
export const APP_TEXT_DELIMITER = 'ECB APP END';

/**
 * One packaged application hook as installed on an instance: the shared prologue
 * (ssm-documents/apps/common.sh) and the application's part, comments kept for whoever reads it
 * there, then the call of its main function. `version` names the set of hooks a stack carries.
 */
export function appHookText(
  app: string,
  dir: string = DOCUMENTS_DIR,
  version = appHooksVersion(dir),
): string {
  const read = (f: string) => fs.readFileSync(path.join(dir, 'apps', f), 'utf8');
  return [
    '#!/bin/bash',
    `# ec2-consistent-backup packaged hook for ${app}, installed by the <stack>-AppHooks document`,
    '# (sources: ssm-documents/apps/ in the project). Edits here are overwritten by the next backup.',
    `ECB_APP=${app}`,
    `ECB_APP_VERSION=${version}`,
    read('common.sh'),
    read(`${app}.sh`),
    'ecb_app_main "$@"',
    '',
  ].join('\n');
}

/** A short hash of every packaged hook's sources: what the installed hooks and the documents report. */
export function appHooksVersion(dir: string = DOCUMENTS_DIR): string {
  const hash = createHash('sha256');
  for (const f of ['common.sh', ...PACKAGED_APPS.map((a) => `${a}.sh`)]) {
    hash.update(fs.readFileSync(path.join(dir, 'apps', f)));
  }
  return hash.digest('hex').slice(0, 12);
}

/** `ecb_app_text <app>` prints an app's hook; ECB_APP_NAMES lists them; ECB_APPS_VERSION names the set. */
function appsBlock(dir: string): string {
  const version = appHooksVersion(dir);
  const lines = [
    `ECB_APP_NAMES='${PACKAGED_APPS.join(' ')}'`,
    `ECB_APPS_VERSION=${version}`,
    'ecb_app_text() {',
    'case $1 in',
  ];
  for (const app of PACKAGED_APPS) {
    const text = appHookText(app, dir, version);
    if (text.includes('{{') || text.split('\n').includes(APP_TEXT_DELIMITER)) {
      throw new DocumentRenderError(
        `ssm-documents/apps/${app}.sh contains "{{" or a line "${APP_TEXT_DELIMITER}", which would break the rendered document`,
      );
    }
    lines.push(`${app}) cat <<'${APP_TEXT_DELIMITER}'`, text.replace(/\n$/, ''), APP_TEXT_DELIMITER, ';;');
  }
  lines.push('esac', '}');
  return lines.join('\n');
}

/**
 * Why a value matching `pattern` could contain a space or a line break, or undefined when none can.
 * Deliberately strict: only literals, escaped punctuation, `\d`, `\w` and classes of those.
 */
function patternWidening(pattern: string): string | undefined {
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    let code = pattern.charCodeAt(i);
    const c = pattern[i];
    if (c === '\\') {
      const e = pattern[i + 1] ?? '';
      i += 1;
      if (e === 'd' || e === 'w') continue;
      if (/[A-Za-z0-9]/.test(e) || e === '') return `the escape \\${e}`;
      code = e.charCodeAt(0);
    } else if (inClass && c === ']') {
      inClass = false;
      continue;
    } else if (!inClass && c === '[') {
      if (pattern[i + 1] === '^') return 'a negated character class';
      inClass = true;
      continue;
    } else if (!inClass && c === '.') {
      return 'an unescaped . (any character)';
    }
    // Every literal, and so both ends of every range, lies above the space: no range can reach it.
    if (code <= 0x20 || code === 0x7f) return `the character ${JSON.stringify(String.fromCharCode(code))}`;
  }
  return undefined;
}

/**
 * SSM pastes `{{ Name }}` into the script text as is. Each value lands in a quoted here-document,
 * where nothing is expanded and only a line equal to the delimiter could end it. The delimiter has
 * spaces, and no allowedPattern may admit a space or a line break; the script validates each value again.
 */
function parameterPrologue(docName: string, parameters: Record<string, DocumentParameter>): string[] {
  const lines: string[] = [];
  for (const [name, p] of Object.entries(parameters)) {
    if (!/^[A-Za-z][A-Za-z0-9]*$/.test(name)) {
      throw new DocumentRenderError(`parameter name "${name}" must be letters and digits`);
    }
    const widening = patternWidening(p.allowedPattern);
    if (widening !== undefined || new RegExp(p.allowedPattern).test(PARAMETER_DELIMITER)) {
      throw new DocumentRenderError(
        `${docName}: the allowedPattern of ${name} admits ${widening ?? 'the here-document delimiter'}; a value could end its here-document. Allowed: literals, escaped punctuation, \\d, \\w, and classes of those`,
      );
    }
    lines.push(
      `IFS= read -r -d '' ECB_P_${name} <<'${PARAMETER_DELIMITER}' || true`,
      `{{ ${name} }}`,
      PARAMETER_DELIMITER,
    );
  }
  // Each here-document ends its value with a newline: drop it from them all.
  lines.push(`for ECB_P in \${!ECB_P_*}; do printf -v "$ECB_P" %s "\${!ECB_P%$'\\n'}"; done`);
  return lines;
}

function expandScript(
  directive: string,
  docName: string,
  parameters: Record<string, DocumentParameter>,
  dir: string,
): string[] {
  const match = /^@script ([a-z-]+\.sh) (ecb_[a-z_]+)$/.exec(directive);
  if (!match) throw new DocumentRenderError(`${docName}: unknown directive "${directive}"`);
  const [, entry, main] = match;
  const bundle = SCRIPT_BUNDLES[entry];
  if (!bundle) throw new DocumentRenderError(`${docName}: no script bundle for ${entry}`);
  return [
    '#!/bin/bash',
    `# ec2-consistent-backup ${docName}, rendered from ssm-documents/ (edit the sources there).`,
    // SSM runs the file with `sh -c`; the shebang makes the kernel pick bash, this line covers a caller that does not.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
    'if [ -z "${BASH_VERSION:-}" ]; then exec /bin/bash "$0" "$@"; fi',
    ...parameterPrologue(docName, parameters),
    ...bundle.map((file) => readScript(file, dir)),
    `${main} "$@"`,
  ];
}

function configDefault(value: string, config: BackupConfig, docName: string): string {
  const match = /^@config:([A-Za-z]+)$/.exec(value);
  if (!match) return value;
  const key = match[1] as keyof BackupConfig;
  const resolved = config[key];
  if (typeof resolved !== 'number' && typeof resolved !== 'string') {
    throw new DocumentRenderError(`${docName}: default ${value} names no number or string in the config`);
  }
  return String(resolved);
}

/** Renders one document's content: parameters with config defaults, scripts expanded into lines. */
export function renderDocument(
  key: DocumentKey,
  config: BackupConfig,
  dir: string = DOCUMENTS_DIR,
): DocumentContent {
  const docName = DOCUMENT_FILES[key];
  const raw = parseYaml(fs.readFileSync(path.join(dir, docName), 'utf8')) as DocumentContent;
  if (raw.schemaVersion !== '2.2') throw new DocumentRenderError(`${docName}: schemaVersion must be '2.2'`);
  const parameters: Record<string, DocumentParameter> = {};
  for (const [name, p] of Object.entries(raw.parameters ?? {})) {
    if (p.type !== 'String' || typeof p.allowedPattern !== 'string' || !p.description) {
      throw new DocumentRenderError(
        `${docName}: parameter ${name} needs type String, a description and an allowedPattern`,
      );
    }
    const pattern = p.allowedPattern === '@apps-pattern' ? appsPattern() : p.allowedPattern;
    const withDefault = {
      ...p,
      allowedPattern: pattern,
      ...(p.default === undefined ? {} : { default: configDefault(p.default, config, docName) }),
    };
    if (
      withDefault.default !== undefined &&
      !new RegExp(withDefault.allowedPattern).test(withDefault.default)
    ) {
      throw new DocumentRenderError(
        `${docName}: default "${withDefault.default}" of ${name} does not match its allowedPattern ${withDefault.allowedPattern}`,
      );
    }
    checkListLimit(docName, name, pattern);
    parameters[name] = withDefault;
  }
  const derivedTimeout = DERIVED_STEP_TIMEOUT.includes(key) ? commandStepSeconds(config) : undefined;
  const mainSteps = raw.mainSteps.map((step) => {
    // The YAML's value is the ceiling; the config decides below it.
    if (derivedTimeout !== undefined && derivedTimeout > step.inputs.timeoutSeconds) {
      throw new DocumentRenderError(
        `${docName}: step ${step.name} would run ${derivedTimeout} s, above its timeoutSeconds ${step.inputs.timeoutSeconds}`,
      );
    }
    return {
      ...step,
      inputs: {
        ...step.inputs,
        timeoutSeconds: derivedTimeout ?? step.inputs.timeoutSeconds,
        runCommand: step.inputs.runCommand.flatMap((line) =>
          line.startsWith('@script ') ? expandScript(line, docName, parameters, dir) : [line],
        ),
      },
    };
  });
  const content: DocumentContent = { ...raw, parameters, mainSteps };
  const size = Buffer.byteLength(JSON.stringify(content), 'utf8');
  if (size > MAX_DOCUMENT_BYTES - PARAMETER_HEADROOM_BYTES) {
    throw new DocumentRenderError(
      `${docName}: ${size} bytes leaves less than ${PARAMETER_HEADROOM_BYTES} bytes for parameter values under SSM's ${MAX_DOCUMENT_BYTES}-byte limit`,
    );
  }
  return content;
}

export class ParameterValueError extends Error {
  override readonly name = 'ParameterValueError';
}

/**
 * The script of a document's first step with parameter values pasted in exactly as SSM does.
 * Values are checked against allowedPattern as SSM would, unless `unchecked` is set: tests use that
 * to prove the script itself refuses hostile values.
 */
export function scriptWithParameters(
  content: DocumentContent,
  values: Readonly<Record<string, string>>,
  options: { readonly unchecked?: boolean } = {},
): string {
  for (const name of Object.keys(values)) {
    if (!(name in content.parameters)) throw new ParameterValueError(`unknown parameter ${name}`);
  }
  const resolved: Record<string, string> = {};
  for (const [name, p] of Object.entries(content.parameters)) {
    const value = values[name] ?? p.default;
    if (value === undefined) throw new ParameterValueError(`parameter ${name} is required`);
    if (!options.unchecked && !new RegExp(p.allowedPattern).test(value)) {
      throw new ParameterValueError(`parameter ${name}: "${value}" does not match ${p.allowedPattern}`);
    }
    resolved[name] = value;
  }
  const text = content.mainSteps[0].inputs.runCommand.join('\n');
  return `${text.replace(/\{\{ ?([A-Za-z0-9]+) ?\}\}/g, (whole, name: string) => resolved[name] ?? whole)}\n`;
}

export interface DocumentsProps {
  /** The validated configuration: parameter defaults (watchdog, hook timeout) and Windows options. */
  readonly config: BackupConfig;
}

/** How the workflow installs AwsVssComponents before a Windows backup (AWS Backup does not). */
export interface VssInstallCommand {
  readonly documentName: 'AWS-ConfigureAWSPackage';
  readonly parameters: { readonly action: ['Install']; readonly name: ['AwsVssComponents'] };
  /** For IAM: AWS-owned documents have no account in their ARN. */
  readonly documentArn: string;
}

/**
 * The Command documents, named `<stackName>-Freeze|Thaw|Preflight|WindowsReadiness|...` so the
 * names are stable per stack and can be granted in IAM before deployment.
 */
export class Documents extends Construct {
  readonly freeze: ssm.CfnDocument;
  readonly thaw: ssm.CfnDocument;
  readonly preflight: ssm.CfnDocument;
  readonly windowsReadiness: ssm.CfnDocument;
  readonly verifyRestore: ssm.CfnDocument;
  /** Installs the packaged application hooks; the workflow runs it before a tagged instance's freeze. */
  readonly appHooks: ssm.CfnDocument;
  readonly names: Readonly<Record<DocumentKey, string>>;
  /** Set when config.installVssComponents is true: the workflow runs it before a Windows backup. */
  readonly vssInstall?: VssInstallCommand;

  constructor(scope: Construct, id: string, props: DocumentsProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const names = {} as Record<DocumentKey, string>;
    const make = (key: DocumentKey, constructId: string): ssm.CfnDocument => {
      names[key] = `${stack.stackName}-${DOCUMENT_SUFFIXES[key]}`;
      return new ssm.CfnDocument(this, constructId, {
        name: names[key],
        documentType: 'Command',
        documentFormat: 'JSON',
        // Without it a named document cannot be changed by a stack update.
        updateMethod: 'NewVersion',
        targetType: '/AWS::EC2::Instance',
        content: renderDocument(key, props.config),
      });
    };
    this.freeze = make('freeze', 'Freeze');
    this.thaw = make('thaw', 'Thaw');
    this.preflight = make('preflight', 'Preflight');
    this.windowsReadiness = make('windowsReadiness', 'WindowsReadiness');
    this.verifyRestore = make('verifyRestore', 'VerifyRestore');
    this.appHooks = make('appHooks', 'AppHooks');
    this.names = names;
    if (props.config.installVssComponents) {
      this.vssInstall = {
        documentName: 'AWS-ConfigureAWSPackage',
        parameters: { action: ['Install'], name: ['AwsVssComponents'] },
        documentArn: `arn:${stack.partition}:ssm:${stack.region}::document/AWS-ConfigureAWSPackage`,
      };
    }
  }

  /** Document ARNs for IAM (`ssm:SendCommand` needs the document and the instance). */
  arns(stack: Stack = Stack.of(this)): Readonly<Record<DocumentKey, string>> {
    const arn = (name: string) =>
      `arn:${stack.partition}:ssm:${stack.region}:${stack.account}:document/${name}`;
    return {
      freeze: arn(this.names.freeze),
      thaw: arn(this.names.thaw),
      preflight: arn(this.names.preflight),
      windowsReadiness: arn(this.names.windowsReadiness),
      verifyRestore: arn(this.names.verifyRestore),
      appHooks: arn(this.names.appHooks),
    };
  }
}
