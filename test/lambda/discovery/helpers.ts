import { EC2Client } from '@aws-sdk/client-ec2';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { DiscoveryDeps, Log } from '../../../lambda/discovery/discover';
import type { DiscoverySettings } from '../../../lambda/discovery/settings';
import type {
  DiscoverySummary,
  ExcludedInstance,
  OutcomeSink,
  WorkflowOutcome,
} from '../../../lambda/shared/outcome';

export const STATE_MACHINE_ARN = 'arn:aws:states:eu-west-1:111122223333:stateMachine:Workflow';
export const FUNCTION_ARN = 'arn:aws:lambda:eu-west-1:111122223333:function:Discovery';

export function testSettings(overrides: Partial<DiscoverySettings> = {}): DiscoverySettings {
  return {
    region: 'eu-west-1',
    stateMachineArn: STATE_MACHINE_ARN,
    optInTagKey: 'ConsistentBackup',
    optInTagValue: 'enabled',
    defaultOnFreezeFailure: 'crash-consistent',
    stagger: {
      maxFrozenPerGroup: 1,
      watchdogSeconds: 90,
      hookTimeoutSeconds: 30,
      groupSlackSeconds: 900,
      ungroupedSlackSeconds: 3600,
      marginSeconds: 60,
    },
    startBurst: 1300,
    startRatePerSecond: 300,
    startConcurrency: 16,
    ssmRatePerSecond: 1000,
    ssmConcurrency: 4,
    handOverReserveMs: 1000,
    notifyMsPerExclusion: 0,
    retryBaseMs: 1,
    retryCapMs: 10,
    ...overrides,
  };
}

/** Records what the notifier would receive. */
export class RecordingSink implements OutcomeSink {
  readonly discoveries: { summary: DiscoverySummary; excluded: readonly ExcludedInstance[] }[] = [];
  readonly outcomes: WorkflowOutcome[] = [];
  async recordOutcome(outcome: WorkflowOutcome): Promise<void> {
    this.outcomes.push(outcome);
  }
  async recordDiscovery(summary: DiscoverySummary, excluded: readonly ExcludedInstance[]): Promise<void> {
    this.discoveries.push({ summary, excluded });
  }
}

export class RecordingLog implements Log {
  readonly lines: { level: string; message: string; extra: Record<string, unknown> }[] = [];
  info = ((message: string, extra?: Record<string, unknown>) => {
    this.lines.push({ level: 'info', message, extra: extra ?? {} });
  }) as Log['info'];
  warn = ((message: string, extra?: Record<string, unknown>) => {
    this.lines.push({ level: 'warn', message, extra: extra ?? {} });
  }) as Log['warn'];
  error = ((message: string, extra?: Record<string, unknown>) => {
    this.lines.push({ level: 'error', message, extra: extra ?? {} });
  }) as Log['error'];
  summaries() {
    return this.lines.filter((l) => l.message === 'discovery run summary').map((l) => l.extra);
  }
}

export function deps(sink: OutcomeSink, logger: Log, settings = testSettings()): DiscoveryDeps {
  return {
    ec2: new EC2Client({ region: 'eu-west-1' }),
    ssm: new SSMClient({ region: 'eu-west-1' }),
    sfn: new SFNClient({ region: 'eu-west-1' }),
    lambda: new LambdaClient({ region: 'eu-west-1' }),
    sink,
    logger,
    settings,
  };
}

/** An invocation with plenty of time. */
export const plentyOfTime = { functionArn: FUNCTION_ARN, remainingMs: () => 900_000 };
