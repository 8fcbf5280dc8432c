import { Construct } from 'constructs';
import { CommandResults } from './command-results';
import type { BackupConfig } from './config';
import { Coordination } from './coordination';
import { Copies } from './copies';
import { DeadLetters } from './dead-letters';
import { Labels } from './labels';
import { Discovery } from './discovery';
import { Documents } from './documents';
import { ExecutionEvents } from './execution-events';
import { BackupFunction } from './lambda-function';
import { Monitoring } from './monitoring';
import { Notifications } from './notifications';
import { RestoreTesting } from './restore-testing';
import { Schedule } from './schedule';
import { ServiceNowForwarder } from './servicenow';
import { Vault } from './vault';
import { Workflow } from './workflow';

export interface ConsistentBackupProps {
  /** The validated configuration (lib/config.ts). */
  readonly config: BackupConfig;
}

/**
 * Application-consistent AWS Backup for opted-in EC2 instances:
 * schedule → discovery → one workflow execution per instance (freeze → backup → thaw) →
 * notifications. Each part is its own construct in its own file.
 */
export class ConsistentBackup extends Construct {
  readonly vault: Vault;
  readonly documents: Documents;
  readonly notifications: Notifications;
  readonly workflow: Workflow;
  /** The Coordination table and the shared snapshot poller (not yet wired: no workflow state registers waiters with it). */
  readonly coordination: Coordination;
  /** Freeze and thaw command results for the tasks waiting for them (events, thaw waiters, sweep). */
  readonly commandResults: CommandResults;
  /** Notifies workflow executions that failed, timed out or were aborted without a notification. */
  readonly executionEvents: ExecutionEvents;
  readonly labels: Labels;
  readonly discovery: Discovery;
  readonly schedule: Schedule;
  readonly deadLetters: DeadLetters;
  /** Present when copyDestinations or copyRegions name a destination. */
  readonly copies?: Copies;
  /** Present when restoreTestSubnetId is set. */
  readonly restoreTesting?: RestoreTesting;
  /** Present when config `serviceNowForwarder` is true. */
  readonly serviceNow?: ServiceNowForwarder;
  readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, props: ConsistentBackupProps) {
    super(scope, id);
    const { config } = props;
    this.vault = new Vault(this, 'Vault', { config });
    this.documents = new Documents(this, 'Documents', { config });
    this.notifications = new Notifications(this, 'Notifications', { config, vault: this.vault });
    this.workflow = new Workflow(this, 'Workflow', {
      config,
      vault: this.vault,
      documents: this.documents,
      notifications: this.notifications,
    });
    this.coordination = new Coordination(this, 'Coordination');
    this.coordination.grantAnswerTasks(this.workflow.stateMachine);
    this.commandResults = new CommandResults(this, 'CommandResults', {
      documents: this.documents,
      table: this.coordination.table,
    });
    this.commandResults.answersTo(this.workflow.stateMachine);
    this.executionEvents = new ExecutionEvents(this, 'ExecutionEvents', {
      config,
      stateMachine: this.workflow.stateMachine,
      notifications: this.notifications,
    });
    // The final label on each recovery point, requested when the verdict is recorded and when the
    // job ends, written at a pace within EC2's CreateTags quota.
    this.labels = new Labels(this, 'Labels', {
      vault: this.vault,
      notifications: this.notifications,
      requesters: [this.workflow.recorder, this.notifications.jobEvents],
    });
    this.discovery = new Discovery(this, 'Discovery', {
      config,
      stateMachine: this.workflow.stateMachine,
      notifications: this.notifications,
      // Discovery never schedules a wave later than the workflow is willing to wait for it.
      maxStagger: this.workflow.maxStagger,
    });
    this.schedule = new Schedule(this, 'Schedule', { config, discovery: this.discovery.function });
    // Discovery's failures (never invoked, or an invocation that failed) become notifications.
    this.deadLetters = new DeadLetters(this, 'DeadLetters', {
      notifications: this.notifications,
      discoveryFunction: this.discovery.function,
      scheduleDeadLetterQueue: this.schedule.deadLetterQueue,
      discoveryFailures: this.discovery.failedInvocations,
    });
    if (config.copyDestinations.length > 0 || config.copyRegions.length > 0) {
      this.copies = new Copies(this, 'Copies', {
        config,
        vault: this.vault,
        notifications: this.notifications,
      });
    }
    if (config.restoreTestSubnetId) {
      this.restoreTesting = new RestoreTesting(this, 'RestoreTesting', {
        config,
        vault: this.vault,
        documents: this.documents,
        notifications: this.notifications,
      });
    }
    if (config.serviceNowForwarder) {
      this.serviceNow = new ServiceNowForwarder(this, 'ServiceNow', {
        topic: this.notifications.topic,
        secretName: config.serviceNowSecretName,
      });
    }
    // Last: it watches every function and dead-letter queue created above.
    this.monitoring = new Monitoring(this, 'Monitoring', {
      config,
      topic: this.notifications.topic,
      stateMachine: this.workflow.stateMachine,
      functions: this.node.findAll().filter((c): c is BackupFunction => c instanceof BackupFunction),
      deadLetterQueues: [
        {
          queue: this.schedule.deadLetterQueue,
          title: 'Schedule dead letters',
          holds: 'windows EventBridge Scheduler could not start (discovery was not invoked).',
          drainedBy: 'dead-letters',
          todo: 'Each message is a discovery-not-invoked Major once notified; read the dead-letters log for the message id, fix the cause, and re-run discovery with the command the notification gives.',
        },
        {
          queue: this.discovery.failedInvocations,
          title: 'Discovery failures',
          holds:
            'discovery invocations (a window, or a hand-over) that failed: their instances were not started.',
          drainedBy: 'dead-letters',
          todo: 'Each message is a discovery-failed Major once notified; read the dead-letters log for the message id and re-run discovery with the payload it gives (safe: execution names are fixed per window).',
        },
        {
          queue: this.executionEvents.failures,
          title: 'Execution failures not notified',
          holds:
            'workflow executions that failed, timed out or were aborted, whose event the execution-events function could not handle or EventBridge could not deliver: nobody was told about them.',
          todo: 'Each message holds the execution event: read its executionArn and status, check the instance (a freeze may have been held until the watchdog fired), and read the execution-events log for why it failed; fix the cause, then move the messages back with aws sqs start-message-move-task --source-arn <this queue ARN>, or purge them once each execution is handled.',
        },
        {
          queue: this.commandResults.deadLetterQueue,
          title: 'Command results not handled',
          holds:
            'status-change events of freeze and thaw commands, and thaw waiters, that the command-results function failed on at every delivery or EventBridge could not deliver: a waiting task may have been answered by the sweep, or may have timed out into the thaw path.',
          todo: 'Read the command-results log (Errors on the dashboard) for the cause and fix it; the minute sweep answers any registered waiter by itself. Purge the messages once fixed: a task token in them is long expired.',
        },
        {
          queue: this.labels.deadLetterQueue,
          title: 'Labels not written',
          holds:
            'label requests the label-writer failed on at every delivery: a recovery point may still read pending, or carry a label that is not its final one.',
          todo: 'Read the label-writer log (Errors on the dashboard) for the cause and fix it; the hourly label sweep then labels every completed job whose recovery point still reads pending. Move the messages back with aws sqs start-message-move-task --source-arn <this queue ARN> once fixed, or purge them after the sweep.',
        },
        ...(this.copies?.queue.deadLetterQueue
          ? [
              {
                queue: this.copies.queue.deadLetterQueue.queue,
                title: 'Copy events not handled',
                holds:
                  'AWS Backup events the copy-jobs function failed on at every delivery. Its last attempt reports each one, so a message here was not reported either: a copy may not have started, or its failure not been notified.',
                todo: 'Read the copy-jobs log (Errors on the dashboard) for the cause and fix it; the hourly copy sweep then starts missing copies of the last 26 hours by itself. Move the messages back with aws sqs start-message-move-task --source-arn <this queue ARN> once fixed, or purge them after the sweep (docs/protecting-backups.md).',
              },
            ]
          : []),
        ...(this.restoreTesting?.queue.deadLetterQueue
          ? [
              {
                queue: this.restoreTesting.queue.deadLetterQueue.queue,
                title: 'Restore validations not handled',
                holds:
                  'Restore test events the restore-validation function failed on at every delivery and could not report: a restored copy may not have been checked, or its verdict not been notified or reported to AWS Backup.',
                todo: 'Read the restore-validation log (Errors on the dashboard) for the cause and fix it; the hourly restore sweep then handles the restore jobs it finds. Move the messages back with aws sqs start-message-move-task --source-arn <this queue ARN> once fixed, or purge them after the sweep (docs/protecting-backups.md).',
              },
            ]
          : []),
        ...(this.serviceNow
          ? [
              {
                queue: this.serviceNow.deadLetterQueue,
                title: 'ServiceNow undeliverable',
                holds: 'notifications the forwarder could not deliver to ServiceNow Event Management.',
                todo: 'Read the reason attribute (aws sqs receive-message --message-attribute-names All), fix it (usually the secret), then aws sqs start-message-move-task --source-arn <this queue ARN> (docs/servicenow.md).',
              },
            ]
          : []),
      ],
    });
  }
}
