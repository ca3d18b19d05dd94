/**
 * The lifecycle handler, built around its dependencies (`handler.ts` composes them from the
 * environment): presence and registry events from LifecycleQueue, one per SQS record, on the shared
 * SQS consumer. An event that is neither goes to LifecycleDLQ at once; any error while handling one
 * fails the record, to be retried and then dead-lettered by the queue's redrive policy.
 */
import { randomUUID } from 'node:crypto';
import { LifecycleEvent } from '../../schemas/iot-events';
import { countOutcome } from '../../shared/logging';
import { createQueueHandler, type QueueHandlerDeps } from '../../shared/sqs-consumer';
import type { LifecycleDeps, LifecycleOutcome } from './deps';
import { handleThingEvent } from './jitp';
import { handlePresence } from './lifecycle';

/** `deadLetters` is LifecycleDLQ: where a message that is not a lifecycle event goes at once. */
export interface DeviceLifecycleDeps
  extends Omit<LifecycleDeps, 'newId' | 'onRotationCommitted'>,
    QueueHandlerDeps {
  onRotationCommitted?: LifecycleDeps['onRotationCommitted'];
}

export function createHandler(deps: DeviceLifecycleDeps) {
  const { logger, metrics } = deps;
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

  return createQueueHandler(deps, {
    name: 'Lifecycle',
    body: LifecycleEvent,
    process: async (event, record, now) => {
      const outcomes =
        event.eventType === 'THING_EVENT'
          ? await handleThingEvent(event, record.messageId, lifecycleDeps, now)
          : await handlePresence(event, record.messageId, lifecycleDeps, now);
      for (const outcome of outcomes) report(outcome);
    },
  });
}
