import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { nagFindings, synthApp } from '../../sim/app-synth';

type Statement = { Action: string | string[]; Resource: unknown };

describe('ServiceNow forwarder', () => {
  it('is not deployed unless serviceNowForwarder is true', () => {
    const { template } = synthApp();
    expect(JSON.stringify(template.toJSON())).not.toContain('servicenow-forwarder');
    template.resourceCountIs('AWS::SecretsManager::Secret', 0);
  });

  it('subscribes a queue with raw delivery, and a function reads it with a dead-letter queue behind', () => {
    const { template } = synthApp({ serviceNowForwarder: 'true' });
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'sqs',
      RawMessageDelivery: true,
      TopicArn: { Ref: Match.stringLikeRegexp('NotificationsTopic') },
    });
    template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: 360,
      RedrivePolicy: {
        deadLetterTargetArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('ServiceNowUndeliverable'), 'Arn'] },
        maxReceiveCount: 5,
      },
    });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: 5,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 2 },
    });
    // The stack's secret holds empty values, never a credential.
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      SecretString: '{"instanceUrl":"","username":"","password":""}',
    });
    expect(JSON.stringify(template.toJSON())).not.toMatch(/"password":"[^"]/);
  });

  it('lets the function read only the secret value and send only to its dead-letter queue', () => {
    const { template, stack } = synthApp({ serviceNowForwarder: 'true' });
    const fn = stack.backup.serviceNow?.function;
    expect(fn).toBeDefined();
    const roleId = stack.getLogicalId(fn?.role?.node.defaultChild as never);
    const policies = template.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: roleId }] } });
    const statements = Object.values(policies).flatMap(
      (p) => p.Properties.PolicyDocument.Statement as Statement[],
    );
    const actions = statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
    expect(actions).toContain('secretsmanager:GetSecretValue');
    expect(actions).not.toContain('secretsmanager:DescribeSecret');
    expect(actions.filter((a) => a.startsWith('sqs:SendMessage'))).toEqual(['sqs:SendMessage']);
    const env = Object.values(
      template.findResources('AWS::Lambda::Function', {
        Properties: {
          Description: 'Forwards ec2-consistent-backup notifications to ServiceNow Event Management',
        },
      }),
    )[0]?.Properties.Environment.Variables;
    expect(Object.keys(env).sort()).toEqual(
      [
        'NODE_OPTIONS',
        'POWERTOOLS_SERVICE_NAME',
        'SERVICENOW_DEAD_LETTER_QUEUE_URL',
        'SERVICENOW_SECRET_ARN',
      ].sort(),
    );
  });

  it('reads a secret named in config, matched by its name and the six-character suffix only', () => {
    const { template, app } = synthApp({
      serviceNowForwarder: 'true',
      serviceNowSecretName: 'ops/servicenow',
    });
    template.resourceCountIs('AWS::SecretsManager::Secret', 0);
    const statements = Object.values(template.findResources('AWS::IAM::Policy')).flatMap(
      (p) => p.Properties.PolicyDocument.Statement as Statement[],
    );
    const read = statements.find((s) => s.Action === 'secretsmanager:GetSecretValue');
    expect(JSON.stringify(read?.Resource)).toContain(':secret:ops/servicenow-??????');
    expect(nagFindings(app)).toEqual([]);
  });

  it('is cdk-nag clean with the secret the stack creates, and environment-agnostic with a named one', () => {
    expect(nagFindings(synthApp({ serviceNowForwarder: 'true' }).app)).toEqual([]);
    const agnostic = synthApp(
      { serviceNowForwarder: 'true', serviceNowSecretName: 'ops/servicenow' },
      { environmentAgnostic: true },
    );
    expect(nagFindings(agnostic.app)).toEqual([]);
  });

  it('passes cfn-lint', () => {
    const { template } = synthApp({ serviceNowForwarder: 'true' });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ecb-sn-'));
    const file = path.join(dir, 'template.json');
    fs.writeFileSync(file, JSON.stringify(template.toJSON()));
    const lint = spawnSync('cfn-lint', ['--ignore-checks', 'W3005', '--', file], { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true, force: true });
    expect(`${lint.stdout}${lint.stderr}`).toBe('');
    expect(lint.status).toBe(0);
    // A synth and a cfn-lint process: 15 s alone, 67 s seen beside a dozen other files on 2 cores.
  }, 180_000);
});
