/**
 * The lifecycle handler, built around its dependencies (`handler.ts` composes them from the
 * environment): presence and registry events from LifecycleQueue, one per SQS record, on the shared
 * SQS consumer. An event that is neither goes to LifecycleDLQ at once; any error while handling one
 * fails the record, to be retried and then dead-lettered by the queue's redrive policy.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { LifecycleEvent } from '../../schemas/iot-events';
import type { DeadLetterSender } from '../../shared/dlq/dead-letter-sender';
import { instantAt } from '../../shared/domain/provisioning-rules';
import { countOutcome } from '../../shared/logging';
import { createSqsConsumer } from '../../shared/sqs-consumer';
import type { LifecycleDeps, LifecycleOutcome } from './deps';
import { handleThingEvent } from './jitp';
import { handlePresence } from './lifecycle';

export interface DeviceLifecycleDeps extends Omit<LifecycleDeps, 'newId' | 'onRotationCommitted'> {
  logger: Logger;
  metrics: Metrics;
  /** LifecycleDLQ: where a message that is not a lifecycle event goes at once. */
  deadLetters: DeadLetterSender;
  clock?: () => number;
  newId?: () => string;
  onRotationCommitted?: LifecycleDeps['onRotationCommitted'];
}

export function createHandler(deps: DeviceLifecycleDeps) {
  const { logger, metrics } = deps;
  const clock = deps.clock ?? Date.now;
  const lifecycleDeps: LifecycleDeps = {
    ...deps,
    newId: deps.newId ?? randomUUID,
    onRotationCommitted:
      deps.onRotationCommitted ??
      (async (input) => {
        // Seam: retiring the previous certificate is the rotation work's (rotateCertificate).
        logger.info('rotation committed; previous certificate left for retirement', input);
      }),
  };

  const report = (outcome: LifecycleOutcome): void => {
    switch (outcome.kind) {
      case 'verified':
        logger.info('device verified', outcome);
        countOutcome(metrics, outcome.event === 'ACTIVATE' ? 'DeviceActivated' : 'RotationCommitted');
        return;
      case 'suspicion':
        logger.warn('device suspected', outcome);
        if (outcome.sent === 'sent') countOutcome(metrics, 'QuarantineRequested', { reason: outcome.reason });
        return;
      case 'recorded':
        logger.info('JITP device recorded', outcome);
        countOutcome(metrics, 'JitpDeviceRecorded');
        return;
      default:
        logger.debug('lifecycle event noted', outcome);
    }
  };

  return createSqsConsumer({
    name: 'Lifecycle',
    logger,
    metrics,
    body: LifecycleEvent,
    invalid: { action: 'dead-letter', deadLetters: deps.deadLetters },
    process: async (event, { record }) => {
      const now = instantAt(clock());
      const outcomes =
        event.eventType === 'THING_EVENT'
          ? await handleThingEvent(event, record.messageId, lifecycleDeps, now)
          : await handlePresence(event, record.messageId, lifecycleDeps, now);
      for (const outcome of outcomes) report(outcome);
    },
  });
}
