/**
 * Turns the synthesized state machine into plain, runnable ASL: the DefinitionString is an
 * Fn::Join of literal text and Ref/Fn::GetAtt tokens (plus DefinitionSubstitutions); evaluating
 * those with placeholder names and ARNs gives JSON that aws-local-stepfunctions and asl-validator
 * accept. Tests synthesize without bundling Lambda code.
 */

import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { type BackupConfig, parseConfig } from '../lib/config';
import { Vault } from '../lib/vault';
import { Workflow, type WorkflowNotifications } from '../lib/workflow';
import { synthApp } from './app-synth';

export const ACCOUNT = '111122223333';
export const REGION = 'eu-west-1';

// biome-ignore lint/suspicious/noExplicitAny: ASL is free-form JSON.
export type Asl = { StartAt: string; States: Record<string, any>; TimeoutSeconds?: number; Comment?: string };

/** Stand-in for lib/notifications.ts until it lands: a topic and the grant the real one makes. */
class StandInNotifications extends Construct implements WorkflowNotifications {
  readonly topic: sns.Topic;
  readonly table: dynamodb.Table;
  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Topic', { enforceSSL: true });
    this.table = new dynamodb.Table(this, 'State', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    });
  }
  grantNotify(fn: lambda.IFunction): void {
    this.topic.grantPublish(fn);
    (fn as lambda.Function).addEnvironment('NOTIFICATION_TOPIC_ARN', this.topic.topicArn);
  }
}

function standInDocument(scope: Construct, id: string): ssm.CfnDocument {
  return new ssm.CfnDocument(scope, id, {
    documentType: 'Command',
    updateMethod: 'NewVersion',
    content: {
      schemaVersion: '2.2',
      description: 'stand-in',
      mainSteps: [{ action: 'aws:runShellScript', name: 'run', inputs: { runCommand: ['true'] } }],
    },
  });
}

export interface WorkflowSynth {
  readonly app: App;
  readonly stack: Stack;
  readonly workflow: Workflow;
  readonly template: Template;
  readonly config: BackupConfig;
  readonly asl: Asl;
}

/** Synthesizes the Workflow construct in a stack of its own (stand-ins for documents and notifications). */
export function synthWorkflow(raw: Partial<Record<keyof BackupConfig, unknown>> = {}): WorkflowSynth {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'WorkflowTest', { env: { account: ACCOUNT, region: REGION } });
  const config = parseConfig(raw);
  const vault = new Vault(stack, 'Vault', { config });
  const documents = {
    freeze: standInDocument(stack, 'FreezeDocument'),
    thaw: standInDocument(stack, 'ThawDocument'),
  };
  const notifications = new StandInNotifications(stack, 'Notifications');
  const workflow = new Workflow(stack, 'Workflow', { config, vault, documents, notifications });
  const template = Template.fromStack(stack);
  return { app, stack, workflow, template, config, asl: aslFromTemplate(template.toJSON()) };
}

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON.
type Json = any;

function placeholder(logicalId: string, type: string, attribute?: string): string {
  const name = logicalId;
  switch (type) {
    case 'AWS::Lambda::Function':
      return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${name}`;
    case 'AWS::SNS::Topic':
      return attribute === 'TopicName' ? name : `arn:aws:sns:${REGION}:${ACCOUNT}:${name}`;
    case 'AWS::SSM::Document':
      return name;
    case 'AWS::Backup::BackupVault':
      return attribute === 'BackupVaultArn'
        ? `arn:aws:backup:${REGION}:${ACCOUNT}:backup-vault:${name}`
        : name;
    case 'AWS::IAM::Role':
      return attribute === 'Arn' ? `arn:aws:iam::${ACCOUNT}:role/${name}` : name;
    default:
      return attribute ? `arn:aws:placeholder:${REGION}:${ACCOUNT}:${name}/${attribute}` : name;
  }
}

/** Evaluate the CloudFormation intrinsics that CDK puts into a definition. */
export function resolveIntrinsics(value: Json, resources: Record<string, { Type: string }>): Json {
  if (Array.isArray(value)) return value.map((v) => resolveIntrinsics(v, resources));
  if (value === null || typeof value !== 'object') return value;
  const keys = Object.keys(value);
  if (keys.length === 1) {
    const [k] = keys;
    const arg = value[k];
    if (k === 'Ref') {
      const pseudo: Record<string, string> = {
        'AWS::Partition': 'aws',
        'AWS::Region': REGION,
        'AWS::AccountId': ACCOUNT,
        'AWS::URLSuffix': 'amazonaws.com',
        'AWS::StackName': 'WorkflowTest',
      };
      if (pseudo[arg]) return pseudo[arg];
      const r = resources[arg];
      if (!r) throw new Error(`Ref to unknown resource ${arg}`);
      return placeholder(arg, r.Type);
    }
    if (k === 'Fn::GetAtt') {
      const [id, attr] = Array.isArray(arg) ? arg : String(arg).split('.');
      const r = resources[id];
      if (!r) throw new Error(`GetAtt of unknown resource ${id}`);
      return placeholder(id, r.Type, attr);
    }
    if (k === 'Fn::Join') {
      const [sep, parts] = arg;
      return (resolveIntrinsics(parts, resources) as unknown[]).join(sep);
    }
  }
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) out[k] = resolveIntrinsics(v, resources);
  return out;
}

/** The state machine's definition from a template, as plain ASL. */
export function aslFromTemplate(template: Json): Asl {
  const resources = template.Resources as Record<string, { Type: string; Properties: Json }>;
  const machines = Object.values(resources).filter((r) => r.Type === 'AWS::StepFunctions::StateMachine');
  if (machines.length !== 1) throw new Error(`expected one state machine, found ${machines.length}`);
  const props = machines[0].Properties;
  let text: string = resolveIntrinsics(props.DefinitionString, resources);
  const subs = resolveIntrinsics(props.DefinitionSubstitutions ?? {}, resources) as Record<string, string>;
  for (const [k, v] of Object.entries(subs)) text = text.split(`\${${k}}`).join(v);
  return JSON.parse(text) as Asl;
}

/** Every state of the definition, including those inside Parallel branches, with its owner. */
export function allStates(
  asl: Pick<Asl, 'States'>,
  parent?: string,
): { name: string; state: Json; parent?: string }[] {
  return Object.entries(asl.States).flatMap(([name, state]) => [
    { name, state, parent },
    ...((state.Branches ?? []) as Asl[]).flatMap((b) => allStates(b, name)),
  ]);
}

/** Mermaid flowchart of a definition: Parallel branches as subgraphs, Catch edges dotted. */
export function toMermaid(asl: Pick<Asl, 'StartAt' | 'States'>): string {
  const ids = new Map<string, string>();
  const id = (name: string) => {
    if (!ids.has(name)) ids.set(name, `s${ids.size}`);
    return ids.get(name) as string;
  };
  const lines: string[] = ['flowchart TD'];
  const emit = (def: Pick<Asl, 'StartAt' | 'States'>, indent: string) => {
    for (const [name, st] of Object.entries(def.States)) {
      const shape =
        st.Type === 'Choice'
          ? `{"${name}"}`
          : st.Type === 'Fail' || st.Type === 'Succeed'
            ? `(["${name}"])`
            : `["${name}"]`;
      if (st.Type === 'Parallel') {
        lines.push(`${indent}subgraph ${id(name)} ["${name}"]`);
        for (const b of st.Branches as Asl[]) emit(b, `${indent}  `);
        lines.push(`${indent}end`);
      } else {
        lines.push(`${indent}${id(name)}${shape}`);
      }
    }
    for (const [name, st] of Object.entries(def.States)) {
      if (st.Next) lines.push(`${indent}${id(name)} --> ${id(st.Next)}`);
      for (const c of st.Choices ?? []) lines.push(`${indent}${id(name)} --> ${id(c.Next)}`);
      if (st.Default) lines.push(`${indent}${id(name)} -- otherwise --> ${id(st.Default)}`);
      for (const c of st.Catch ?? []) lines.push(`${indent}${id(name)} -. error .-> ${id(c.Next)}`);
    }
  };
  emit(asl, '  ');
  return lines.join('\n');
}

export interface WorstCaseOptions {
  /** Seconds a Wait with a TimestampPath can last (discovery's stagger). */
  readonly timestampWaitSeconds: number;
  /** Seconds a Task with a TimeoutSecondsPath can last (Start Backup Job: the freeze budget). */
  readonly timeoutPathSeconds?: number;
}

/**
 * Worst-case duration in seconds of the longest path: every Task times out on every attempt, every
 * retry waits its longest, every Wait waits its longest. The workflow has no loops; a cycle throws.
 */
export function worstCaseSeconds(def: Pick<Asl, 'StartAt' | 'States'>, opts: WorstCaseOptions): number {
  const memo = new Map<string, number>();
  const visiting = new Set<string>();
  const retryTime = (st: Asl['States'][string], attemptSeconds: number): number => {
    let total = attemptSeconds;
    for (const r of (st.Retry ?? []) as {
      IntervalSeconds?: number;
      MaxAttempts?: number;
      BackoffRate?: number;
      MaxDelaySeconds?: number;
    }[]) {
      const attempts = r.MaxAttempts ?? 3;
      for (let i = 0; i < attempts; i += 1) {
        const wait = (r.IntervalSeconds ?? 1) * (r.BackoffRate ?? 2) ** i;
        total += Math.min(wait, r.MaxDelaySeconds ?? Infinity) + attemptSeconds;
      }
    }
    return total;
  };
  const own = (st: Asl['States'][string]): number => {
    switch (st.Type) {
      case 'Task':
        if (typeof st.TimeoutSecondsPath === 'string') {
          if (opts.timeoutPathSeconds === undefined)
            throw new Error(`Task with TimeoutSecondsPath ${st.TimeoutSecondsPath}: pass timeoutPathSeconds`);
          return retryTime(st, opts.timeoutPathSeconds);
        }
        if (typeof st.TimeoutSeconds !== 'number') throw new Error('Task without TimeoutSeconds');
        return retryTime(st, st.TimeoutSeconds);
      case 'Parallel':
        return retryTime(st, Math.max(...(st.Branches as Asl[]).map((b) => worstCaseSeconds(b, opts))));
      case 'Wait':
        return st.Seconds ?? opts.timestampWaitSeconds;
      default:
        return 0;
    }
  };
  const from = (name: string): number => {
    if (memo.has(name)) return memo.get(name) as number;
    if (visiting.has(name)) throw new Error(`cycle through ${name}`);
    visiting.add(name);
    const st = def.States[name];
    const nexts = [
      st.Next,
      st.Default,
      ...(st.Choices ?? []).map((c: { Next: string }) => c.Next),
      ...(st.Catch ?? []).map((c: { Next: string }) => c.Next),
    ].filter(Boolean);
    const value = own(st) + Math.max(0, ...nexts.map(from));
    visiting.delete(name);
    memo.set(name, value);
    return value;
  };
  return from(def.StartAt);
}

/** The workflow definition of the whole app (bin/app.ts's stack), as plain ASL. */
export function synthStackAsl(raw: Partial<Record<keyof BackupConfig, unknown>> = {}): Asl {
  return aslFromTemplate(synthApp(raw).template.toJSON());
}
