import { parse } from 'yaml';
import { type BackupConfig, DEFAULT_CONFIG } from '../lib/config';
import { renderDocument } from '../lib/documents';

/** One SSM command document as the agent sees it: parameters with defaults and patterns, and the shell. */
export interface LabDocument {
  readonly name: string;
  readonly parameters: Record<string, { readonly default?: string; readonly allowedPattern?: string }>;
  /** The runCommand lines of every aws:runShellScript step, joined as the agent joins them. */
  readonly script: string;
}

interface RawContent {
  parameters?: Record<string, { default?: unknown; allowedPattern?: string }>;
  mainSteps?: { action?: string; inputs?: { runCommand?: string | string[] } }[];
}

export function toLabDocument(name: string, content: unknown): LabDocument {
  const raw = (typeof content === 'string' ? parse(content) : content) as RawContent;
  const steps = (raw.mainSteps ?? []).filter((s) => s.action === 'aws:runShellScript');
  if (steps.length === 0) throw new Error(`document ${name} has no aws:runShellScript step`);
  const script = steps
    .map((s) => {
      const rc = s.inputs?.runCommand ?? [];
      return Array.isArray(rc) ? rc.join('\n') : rc;
    })
    .join('\n');
  const parameters: LabDocument['parameters'] = {};
  for (const [k, v] of Object.entries(raw.parameters ?? {})) {
    parameters[k] = {
      default: v.default === undefined ? undefined : String(v.default),
      allowedPattern: v.allowedPattern,
    };
  }
  return { name, parameters, script };
}

export class DocumentParameterError extends Error {
  override readonly name = 'InvalidParameters';
}

/**
 * Substitute `{{ Name }}` references as SSM does before the agent runs anything: every declared
 * parameter gets the given value or its default, values are checked against allowedPattern, and an
 * undeclared parameter is refused.
 */
export function substituteParameters(
  doc: LabDocument,
  given: Record<string, readonly string[] | undefined>,
): string {
  const values: Record<string, string> = {};
  for (const key of Object.keys(given)) {
    if (!(key in doc.parameters))
      throw new DocumentParameterError(`document ${doc.name} has no parameter ${key}`);
  }
  for (const [key, spec] of Object.entries(doc.parameters)) {
    const value = given[key]?.join(',') ?? spec.default;
    if (value === undefined)
      throw new DocumentParameterError(`document ${doc.name}: parameter ${key} is required`);
    if (spec.allowedPattern && !new RegExp(spec.allowedPattern).test(value)) {
      throw new DocumentParameterError(
        `document ${doc.name}: parameter ${key}=${JSON.stringify(value)} does not match ${spec.allowedPattern}`,
      );
    }
    values[key] = value;
  }
  return doc.script.replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (whole, key: string) => values[key] ?? whole);
}

/** The documents the deployed app would create, rendered by the real lib/documents.ts. */
export interface LabDocuments {
  readonly freeze: LabDocument;
  readonly thaw: LabDocument;
  readonly preflight: LabDocument;
  /** Installs the packaged application hooks the Apps tag names (ssm-documents/app-hooks.yml). */
  readonly appHooks: LabDocument;
}

/** Render the documents with lib/documents.ts, so the lab runs exactly the text the app deploys. */
export function loadDocuments(config: BackupConfig = DEFAULT_CONFIG): LabDocuments {
  return {
    freeze: toLabDocument('Freeze', renderDocument('freeze', config)),
    thaw: toLabDocument('Thaw', renderDocument('thaw', config)),
    preflight: toLabDocument('Preflight', renderDocument('preflight', config)),
    appHooks: toLabDocument('AppHooks', renderDocument('appHooks', config)),
  };
}
