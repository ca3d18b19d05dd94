/**
 * The lifecycle consumer, built around its dependencies (`handler.ts` composes them from the
 * environment): presence and registry events from LifecycleQueue, one per SQS record.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { SQSRecord } from 'aws-lambda';
import { formatIssues } from '../../schemas/issues';
import { LifecycleEvent, parseBody } from '../../schemas/registration-events';
import type { Instant } from '../../shared/domain/provisioning-rules';
import { countOutcome } from '../../shared/logging';
import { createSqsConsumer } from '../../shared/sqs-consumer';
import { handlePresence, handleThingEvent, type LifecycleDeps, type LifecycleOutcome } from './lifecycle';

export interface DeviceLifecycleDeps extends Omit<LifecycleDeps, 'newId' | 'onRotationCommitted'> {
  logger: Logger;
  metrics: Metrics;
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

  const processRecord = async (record: SQSRecord): Promise<void> => {
    const parsed = parseBody(LifecycleEvent, record.body);
    if (!parsed.success) {
      logger.warn('lifecycle event rejected', {
        messageId: record.messageId,
        reason: 'INVALID_EVENT',
        detail: formatIssues(parsed.issues),
      });
      countOutcome(metrics, 'LifecycleEventInvalid');
      return;
    }
    const epochMs = clock();
    const now: Instant = { iso: new Date(epochMs).toISOString(), epochMs };
    const event = parsed.data;
    const outcomes =
      event.eventType === 'THING_EVENT'
        ? await handleThingEvent(event, record.messageId, lifecycleDeps, now)
        : await handlePresence(event, record.messageId, lifecycleDeps, now);
    for (const outcome of outcomes) report(outcome);
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
    logger,
    processRecord,
    onRetryableFailure: (record, error) => {
      logger.warn('lifecycle event will be retried', { messageId: record.messageId, error });
      countOutcome(metrics, 'LifecycleRetried');
    },
    onPermanentFailure: (record, error, code) => {
      logger.error('lifecycle event failed permanently; acknowledged', {
        messageId: record.messageId,
        code,
        error,
      });
      countOutcome(metrics, 'LifecycleFailed', { reason: code });
    },
  });
}
