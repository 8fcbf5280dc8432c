import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_STAGGER_SECONDS } from '../../lambda/discovery/stagger';
import { commandStepSeconds, renderDocument } from '../../lib/documents';
import { INPUT_CHECKS } from '../../lambda/shared/workflow-input';
import { BACKUP_FAILED, COMMAND_REPORT_MARGIN_SECONDS, REQUIRED_INPUT, STATE } from '../../lib/workflow';
import { nagFindings } from '../../sim/app-synth';
import {
  allStates,
  type Asl,
  synthWorkflow,
  toMermaid,
  type WorkflowSynth,
  worstCaseSeconds,
} from '../../sim/asl';

// asl-validator ships no types.
const validator = createRequire(__filename)('asl-validator') as (definition: unknown) => {
  isValid: boolean;
  errorsText: (separator?: string) => string;
};

type Statement = {
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
};

function statements(s: WorkflowSynth): Statement[] {
  return Object.values(s.template.findResources('AWS::IAM::Policy')).flatMap(
    (p) =>
      (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
        .Statement,
  );
}
const actions = (st: Statement) => (Array.isArray(st.Action) ? st.Action : [st.Action]);

/** States reachable from `start` through Next/Default/Choices, stopping at `stop`. */
function reachable(asl: Asl, start: string, stop: string | string[]): string[] {
  const stops = Array.isArray(stop) ? stop : [stop];
  const seen = new Set<string>();
  const queue = [start];
  while (queue.length) {
    const name = queue.shift() as string;
    if (stops.includes(name) || seen.has(name)) continue;
    seen.add(name);
    const st = asl.States[name];
    for (const n of [st.Next, st.Default, ...(st.Choices ?? []).map((c: { Next: string }) => c.Next)])
      if (n) queue.push(n);
  }
  return [...seen];
}

/**
 * True when every way into `target` is a Choice rule whose And checks `path` with IsPresent first:
 * the state may then read `path` without risking a States.Runtime error.
 */
function guardedEverywhere(asl: Asl, target: string, path: string): boolean {
  let ways = 0;
  for (const { state } of allStates(asl)) {
    if (state.Next === target || state.Default === target) return false;
    for (const c of state.Catch ?? []) if (c.Next === target) return false;
    for (const rule of state.Choices ?? []) {
      if (rule.Next !== target) continue;
      ways += 1;
      // biome-ignore lint/suspicious/noExplicitAny: ASL choice rules.
      const flat = (r: any): any[] => (r.And ? r.And.flatMap(flat) : [r]);
      if (!flat(rule).some((r) => r.Variable === path && r.IsPresent === true)) return false;
    }
  }
  return ways > 0;
}

/** Input fields discovery validated; everything else comes from a step's result and may be missing. */
const INPUT_FIELDS = ['$.platform', '$.instanceState'];

/** Comparisons not preceded, in their own And, by an IsPresent on the same variable. */
// biome-ignore lint/suspicious/noExplicitAny: ASL choice rules.
function unguarded(rule: any, guarded: Set<string> = new Set()): string[] {
  if (rule.And) {
    const seen = new Set(guarded);
    const bad: string[] = [];
    for (const r of rule.And) {
      bad.push(...unguarded(r, seen));
      if (r.IsPresent === true) seen.add(r.Variable);
    }
    return bad;
  }
  if (rule.Not) return rule.Not.IsPresent === true ? [] : unguarded(rule.Not, guarded);
  if (rule.Or) return rule.Or.flatMap((r: unknown) => unguarded(r, guarded));
  if (rule.IsPresent !== undefined || INPUT_FIELDS.includes(rule.Variable)) return [];
  return guarded.has(rule.Variable) ? [] : [rule.Variable];
}

describe('Workflow construct', () => {
  let s: WorkflowSynth;
  let vss: WorkflowSynth;
  beforeAll(() => {
    s = synthWorkflow();
    vss = synthWorkflow({ installVssComponents: true, onFreezeFailure: 'skip' });
  });

  it('synthesizes a valid ASL definition', () => {
    for (const w of [s, vss]) {
      const { isValid, errorsText } = validator(w.asl);
      expect(isValid, errorsText('\n')).toBe(true);
    }
  });

  it('routes every error of every state between the freeze and the thaw to the thaw', () => {
    for (const w of [s, vss]) {
      // From the freeze to the thaw on the frozen path: every state, Choice defaults included.
      // (Active job and not-sent lead to Record Outcome or the unfrozen start: nothing was frozen.)
      const frozenPath = reachable(w.asl, STATE.freeze, [
        STATE.sendThaw,
        STATE.recordOutcome,
        STATE.startUnfrozenBackup,
      ]);
      expect(frozenPath.sort()).toEqual([STATE.checkFreeze, STATE.freeze, STATE.startBackup].sort());
      for (const name of frozenPath) {
        const st = w.asl.States[name];
        if (st.Type === 'Choice') {
          expect(st.Default, `${name} needs a Default into the thaw`).toBe(STATE.sendThaw);
          continue;
        }
        expect(st.Type, name).toBe('Task');
        const catchAll = (st.Catch ?? []).find((c: { ErrorEquals: string[] }) =>
          c.ErrorEquals.includes('States.ALL'),
        );
        expect(catchAll?.Next, `${name} must catch States.ALL into the thaw`).toBe(STATE.sendThaw);
      }
      expect(w.asl.States[STATE.startBackup].Next).toBe(STATE.sendThaw);
      // Start Backup Job is bounded by what is left of the freeze budget, and never retried (a
      // retry would start a new timeout): a hung function cannot hold the freeze past the budget.
      expect(w.asl.States[STATE.startBackup].TimeoutSecondsPath).toBe('$.freeze.budgetSeconds');
      expect(w.asl.States[STATE.startBackup].Retry).toBeUndefined();
      expect(guardedEverywhere(w.asl, STATE.startBackup, '$.freeze.budgetSeconds')).toBe(true);
      // The thaw: every failure of the first attempt leads to a second one, after a short wait;
      // the second attempt's failure reaches Record Outcome (a Critical thaw-failed).
      const first = [STATE.sendThaw, STATE.waitThaw];
      for (const name of first)
        expect(w.asl.States[name].Catch[0], name).toMatchObject({
          ErrorEquals: ['States.ALL'],
          Next: STATE.waitBeforeThawRetry,
        });
      expect(w.asl.States[STATE.checkThaw].Default).toBe(STATE.waitBeforeThawRetry);
      expect(w.asl.States[STATE.waitBeforeThawRetry]).toMatchObject({ Type: 'Wait', Next: STATE.retryThaw });
      for (const name of [STATE.retryThaw, STATE.waitRetriedThaw])
        expect(w.asl.States[name].Catch[0], name).toMatchObject({
          ErrorEquals: ['States.ALL'],
          Next: STATE.recordOutcome,
        });
      expect(w.asl.States[STATE.checkRetriedThaw].Default).toBe(STATE.recordOutcome);
      // SendCommand itself is retried with backoff on throttling, 5xx and timeouts.
      for (const name of [STATE.sendThaw, STATE.retryThaw]) {
        expect(w.asl.States[name].Retry[0].BackoffRate, name).toBe(2);
        expect(w.asl.States[name].Retry[0].ErrorEquals, name).toContain('Ssm.ThrottlingException');
      }
    }
  });

  it('reads after the freeze only paths that always exist: checked input fields or whole step results', () => {
    // biome-ignore lint/suspicious/noExplicitAny: ASL.
    const paths = (v: any): string[] =>
      typeof v === 'string'
        ? [...v.matchAll(/\$\$?(\.[A-Za-z0-9_]+|\[\d+\])*/g)].map((m) => m[0])
        : v && typeof v === 'object'
          ? Object.entries(v).flatMap(([k, x]) =>
              k.endsWith('.$') ? paths(x) : typeof x === 'object' ? paths(x) : [],
            )
          : [];
    const wholeResults = new Set<string>();
    for (const { state } of allStates(vss.asl)) {
      if (state.ResultPath) wholeResults.add(state.ResultPath);
      for (const c of state.Catch ?? []) if (c.ResultPath) wholeResults.add(c.ResultPath);
      // A field a Pass state sets with a literal key exists after it.
      if (state.Type === 'Pass' && state.ResultPath)
        for (const key of Object.keys(state.Parameters ?? {}))
          wholeResults.add(`${state.ResultPath}.${key.replace(/\.\$$/, '')}`);
    }
    const allowed = (p: string) =>
      p.startsWith('$$.') ||
      REQUIRED_INPUT.includes(p) ||
      wholeResults.has(p) ||
      // A Catch result always has Error; `$` is the whole state.
      p === '$.recordError.Error' ||
      p === '$';
    const read = allStates(vss.asl).flatMap(({ name, state }) =>
      [...paths(state.Parameters), ...paths(state.ResultSelector)].map((p) => ({ name, p })),
    );
    expect(read.map((r) => r.p)).toEqual(
      expect.arrayContaining(['$.freeze', '$.thawCommand', '$.retriedThawCommand', '$.instanceArn']),
    );
    expect(
      read
        .filter(({ name, p }) => !allowed(p) && !guardedEverywhere(vss.asl, name, p))
        .map(({ name, p }) => `${name}: ${p}`),
    ).toEqual([]);
  });

  it('guards every Choice on a response field with IsPresent and gives it a Default', () => {
    for (const { name, state } of allStates(vss.asl)) {
      if (state.Type !== 'Choice') continue;
      expect(state.Default, name).toBeDefined();
      for (const rule of state.Choices)
        expect(unguarded(rule), `${name}: ${JSON.stringify(rule)}`).toEqual([]);
    }
  });

  it('gives every Task an explicit timeout and named Retry errors with backoff and jitter', () => {
    for (const { name, state } of allStates(vss.asl)) {
      if (state.Type !== 'Task') continue;
      if (state.TimeoutSecondsPath) expect(name).toBe(STATE.startBackup);
      else expect(state.TimeoutSeconds, name).toBeGreaterThan(0);
      for (const r of state.Retry ?? []) {
        expect(r.JitterStrategy, name).toBe('FULL');
        expect(r.BackoffRate, name).toBeGreaterThan(1);
        if (name !== STATE.publishUnrecorded) expect(r.ErrorEquals, name).not.toContain('States.ALL');
      }
    }
  });

  it('sets the execution timeout above the worst case of the longest path, stagger included', () => {
    for (const w of [
      s,
      vss,
      synthWorkflow({ hookTimeoutSeconds: 600, freezeBudgetSeconds: 110, watchdogSeconds: 300 }),
    ]) {
      const worst = worstCaseSeconds(w.asl, {
        timestampWaitSeconds: 14 * 86400,
        // Start Backup Job's timeout is the budget left when the freeze was seen: at most the budget.
        timeoutPathSeconds: w.config.freezeBudgetSeconds,
      });
      expect(w.asl.TimeoutSeconds).toBeGreaterThan(worst);
      // …and not absurdly above it.
      expect(w.asl.TimeoutSeconds).toBeLessThan(worst * 2);
    }
  });

  it('waits for the freeze and the thaw command longer than the instance may run them', () => {
    for (const w of [
      s,
      synthWorkflow({ hookTimeoutSeconds: 1 }),
      synthWorkflow({ hookTimeoutSeconds: 600 }),
    ]) {
      const step = renderDocument('freeze', w.config).mainSteps[0].inputs.timeoutSeconds;
      expect(step).toBe(commandStepSeconds(w.config));
      expect(renderDocument('thaw', w.config).mainSteps[0].inputs.timeoutSeconds).toBe(step);
      const timeoutOf = (fn: { node: { defaultChild: unknown } }) =>
        w.template.toJSON().Resources[w.stack.getLogicalId(fn.node.defaultChild as never)].Properties
          .Timeout as number;
      for (const [name, fn] of [
        [STATE.freeze, w.workflow.freezer],
        [STATE.waitThaw, w.workflow.waiter],
        [STATE.waitRetriedThaw, w.workflow.waiter],
      ] as const) {
        const task = allStates(w.asl).find((x) => x.name === name)?.state;
        const wait = task?.Parameters?.timeoutSeconds as number;
        // Delivery (30 s), the document's own limit, then time for the agent to report.
        expect(wait, name).toBeGreaterThanOrEqual(30 + step + COMMAND_REPORT_MARGIN_SECONDS);
        // The function and the task outlast the wait, so the function reports WaitTimedOut itself.
        expect(timeoutOf(fn), name).toBeGreaterThan(wait);
        expect(task?.TimeoutSeconds, name).toBeGreaterThan(wait);
        expect(timeoutOf(fn), name).toBeLessThanOrEqual(900);
      }
    }
  });

  it('defaults its stagger limit to the one discovery enforces', () => {
    expect(s.workflow.maxStagger.toSeconds()).toBe(DEFAULT_MAX_STAGGER_SECONDS);
  });

  it('checks the input first, then waits for the stagger, and uses the execution name as the idempotency token', () => {
    expect(s.asl.StartAt).toBe(STATE.checkInput);
    const check = s.asl.States[STATE.checkInput];
    // Check Input routes by state and platform itself: one Wait per path, no extra Choice.
    expect(check.Choices.map((c: { Next: string }) => c.Next)).toEqual([
      STATE.waitStopped,
      STATE.waitWindows,
      STATE.waitForStart,
    ]);
    expect(check.Default).toBe(STATE.inputRejected);
    for (const name of [STATE.waitForStart, STATE.waitStopped, STATE.waitWindows])
      expect(s.asl.States[name].TimestampPath).toBe('$.startAt');
    const modes: Record<string, string> = {
      [STATE.startBackup]: 'frozen',
      [STATE.startUnfrozenBackup]: 'unfrozen',
      [STATE.startWindowsBackup]: 'windows-vss',
    };
    for (const [name, mode] of Object.entries(modes)) {
      const p = s.asl.States[name].Parameters;
      expect(p.mode, name).toBe(mode);
      expect(p['idempotencyToken.$']).toBe('$$.Execution.Name');
      expect(p.recoveryPointTags['ConsistentBackup:Consistency']).toBe('pending');
    }
  });

  it('logs every transition without execution data, and traces with X-Ray', () => {
    s.template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: { Level: 'ALL', IncludeExecutionData: false },
    });
  });

  it('authorises the thaw on any instance of this account and Region whatever its tags, and nothing else there', () => {
    for (const w of [s, vss]) {
      const roleOf = (fragment: string) =>
        Object.values(w.template.findResources('AWS::IAM::Policy'))
          .filter((p) => JSON.stringify(p.Properties.Roles).includes(fragment))
          .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
      const send = (sts: Statement[]) => sts.filter((st) => actions(st).includes('ssm:SendCommand'));
      const instanceStatements = (sts: Statement[]) =>
        send(sts).filter((st) => JSON.stringify(st.Resource).includes(':instance/'));
      const documents = (sts: Statement[]) =>
        send(sts)
          .filter((st) => !JSON.stringify(st.Resource).includes(':instance/'))
          .map((st) => JSON.stringify(st.Resource));
      const instanceArn = {
        'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':ec2:eu-west-1:111122223333:instance/*']],
      };
      // The state machine's role: the thaw document only, on any instance of the account and Region.
      const machine = roleOf('StateMachineRole');
      expect(instanceStatements(machine)).toEqual([
        { Action: 'ssm:SendCommand', Effect: 'Allow', Resource: instanceArn },
      ]);
      expect(documents(machine)).toHaveLength(1);
      expect(documents(machine)[0]).toMatch(/document\/.*ThawDocument/);
      // The freeze (freeze-filesystems' role) keeps the opt-in tag condition.
      const probe = roleOf('FreezeFilesystemsRole');
      expect(instanceStatements(probe)).toEqual([
        {
          Action: 'ssm:SendCommand',
          Effect: 'Allow',
          Resource: instanceArn,
          Condition: { StringEquals: { 'ssm:resourceTag/ConsistentBackup': 'enabled' } },
        },
      ]);
      expect(documents(probe)).toHaveLength(1);
      expect(documents(probe)[0]).toMatch(/document\/.*FreezeDocument/);
      // Every other SendCommand grant (the VSS install's role) is for opted-in instances only.
      const all = send(statements(w));
      const others = send(
        Object.values(w.template.findResources('AWS::IAM::Policy'))
          .filter((p) => !/StateMachineRole|FreezeFilesystemsRole/.test(JSON.stringify(p.Properties.Roles)))
          .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]),
      );
      expect(others.length).toBe(w === vss ? 2 : 0);
      for (const st of others.filter((x) => JSON.stringify(x.Resource).includes(':instance/')))
        expect(st.Condition).toEqual({ StringEquals: { 'ssm:resourceTag/ConsistentBackup': 'enabled' } });
      for (const st of all) expect(JSON.stringify(st.Resource)).not.toMatch(/document\/\*/);
    }
    // The VSS install runs under its own role, which only the state machine's role may assume.
    const task = vss.asl.States[STATE.installVss];
    expect(task.Credentials?.RoleArn).toMatch(/InstallVssRole/);
    const vssRole = Object.values(vss.template.findResources('AWS::IAM::Role')).find(
      (r) =>
        JSON.stringify(r).includes('AWS-ConfigureAWSPackage') ||
        r.Properties.Description?.includes('AwsVssComponents'),
    );
    expect(JSON.stringify(vssRole?.Properties.AssumeRolePolicyDocument)).toMatch(/StateMachineRole/);
  });

  it('ends a failed backup with a static error and cause: the Fail state reads no path', () => {
    for (const { name, state } of allStates(vss.asl)) {
      if (state.Type !== 'Fail') continue;
      expect(state.ErrorPath, name).toBeUndefined();
      expect(state.CausePath, name).toBeUndefined();
      expect(state.Error, name).toMatch(/^[A-Za-z]+$/);
      expect(state.Cause, name).toBeTruthy();
    }
    expect(s.asl.States[STATE.failed].Error).toBe(BACKUP_FAILED);
  });

  it('checks in Check Input every input field a later state reads, with its type', () => {
    const rule = s.asl.States[STATE.checkInput].Choices[0];
    // biome-ignore lint/suspicious/noExplicitAny: ASL choice rules.
    const flat = (r: any): any[] => (r.And ? r.And.flatMap(flat) : [r]);
    const checks = flat(rule);
    for (const c of INPUT_CHECKS) {
      const on = checks.filter((x) => x.Variable === c.path);
      expect(on[0], c.path).toEqual({ Variable: c.path, IsPresent: true });
      if (c.kind === 'timestamp') expect(on, c.path).toContainEqual({ Variable: c.path, IsTimestamp: true });
      if (c.kind === 'string') expect(on, c.path).toContainEqual({ Variable: c.path, IsString: true });
      if (c.matches) expect(on, c.path).toContainEqual({ Variable: c.path, StringMatches: c.matches });
    }
    expect(checks.find((x) => x.Variable === '$.instanceArn' && x.StringMatches)?.StringMatches).toBe(
      'arn:aws*:ec2:*:*:instance/i-*',
    );
    // Every path any state reads from the input is among them (or optional and guarded where read).
    expect(REQUIRED_INPUT).toEqual(expect.arrayContaining(['$.startAt', '$.instanceArn', '$.instanceId']));
  });

  it('passes the backup role only to AWS Backup and starts jobs only in the vault', () => {
    const pass = statements(s).filter((st) => actions(st).includes('iam:PassRole'));
    expect(pass.length).toBeGreaterThan(0);
    for (const st of pass) {
      expect(st.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'backup.amazonaws.com' } });
      expect(JSON.stringify(st.Resource)).toMatch(/BackupRole/);
    }
    for (const st of statements(s).filter((x) => actions(x).includes('backup:StartBackupJob'))) {
      expect(JSON.stringify(st.Resource)).toMatch(/Vault/);
    }
    // "*" only for the read actions that support no resource-level permissions.
    const wildcard = statements(s)
      .filter((st) => st.Resource === '*')
      .flatMap(actions);
    for (const a of wildcard) {
      expect(a).toMatch(
        /^(ssm:GetCommandInvocation|ssm:ListCommands|backup:ListBackupJobs|backup:DescribeBackupJob|ec2:DescribeSnapshots|xray:|logs:)/,
      );
    }
  });

  it('has no unacknowledged cdk-nag AwsSolutions findings', () => {
    expect(nagFindings(vss.app)).toEqual([]);
  });

  it('keeps the diagram in docs/workflow.md in step with the definition (UPDATE_DOCS=1 rewrites it)', () => {
    const readme = path.join(__dirname, '..', '..', 'docs', 'workflow.md');
    const text = fs.readFileSync(readme, 'utf8');
    const diagram = `\`\`\`mermaid\n${toMermaid(vss.asl)}\n\`\`\``;
    const re = /<!-- workflow-diagram:start -->[\s\S]*<!-- workflow-diagram:end -->/;
    const block = `<!-- workflow-diagram:start -->\n${diagram}\n<!-- workflow-diagram:end -->`;
    if (process.env.UPDATE_DOCS === '1') fs.writeFileSync(readme, text.replace(re, block));
    expect(fs.readFileSync(readme, 'utf8').match(re)?.[0]).toBe(block);
  });
});
