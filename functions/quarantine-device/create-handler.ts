/**
 * The quarantine handler, built around its dependencies (`handler.ts` composes them from the
 * environment): one `quarantine` per QuarantineQueue record on the shared SQS consumer.
 *
 * Failure policy: a request that can never succeed — a body that does not parse or breaks the
 * schema, a request naming a serial fleetgate does not know and no certificate — is sent to
 * QuarantineDLQ at once with its reason (never acknowledged: a quarantine request is evidence, and
 * `fleetgate dlq replay quarantine-dlq` carries it out once, say, the serial is imported). Every
 * other error (IoT, the store, a device that keeps changing) fails the record: SQS redelivers it
 * and dead-letters it after maxReceiveCount receives. Logs name the messageId and the field-precise
 * reason, never the body.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { QuarantineRequest } from '../../schemas/quarantine-request';
import { countOutcome } from '../../shared/logging';
import { createQueueHandler, type QueueHandlerDeps } from '../../shared/sqs-consumer';
import { type QuarantineOutcome, type QuarantineWorkDeps, quarantine } from './quarantine';

/** `deadLetters` is QuarantineDLQ: where a request that can never succeed goes at once. */
export interface QuarantineDeps extends QuarantineWorkDeps, QueueHandlerDeps {}

/** Builds the handler around its dependencies (tests pass their own store, IoT client and clock). */
export function createHandler(deps: QuarantineDeps) {
  const { logger, metrics } = deps;
  const newId = deps.newId ?? randomUUID;

  return createQueueHandler(deps, {
    name: 'Quarantine',
    body: QuarantineRequest,
    process: async (request, record, now) => {
      const ids = { messageId: record.messageId, requestId: request.requestId, reason: request.reason };
      const outcome = await quarantine(request, deps, { now: now.iso, newId });
      report(outcome, ids, request, logger, metrics);
    },
  });
}

function report(
  outcome: QuarantineOutcome,
  ids: Record<string, string>,
  request: QuarantineRequest,
  logger: Logger,
  metrics: Metrics,
): void {
  switch (outcome.kind) {
    case 'device-quarantined':
      logger.info('device quarantined', {
        ...ids,
        serial: outcome.serial,
        from: outcome.from,
        thingName: outcome.thingName,
        certificates: outcome.certificates,
      });
      countOutcome(metrics, 'DeviceQuarantined', { reason: request.reason });
      return;
    case 'certificate-quarantined':
      logger.info('certificate of an unknown device quarantined', {
        ...ids,
        certificateId: outcome.certificateId,
        certificates: outcome.certificates,
      });
      countOutcome(metrics, 'CertificateQuarantined', { reason: request.reason });
      return;
    case 'evidence-added':
      logger.info('evidence added to a device that cannot be quarantined again', {
        ...ids,
        serial: outcome.serial,
        state: outcome.state,
      });
      countOutcome(metrics, 'QuarantineEvidenceAdded', { reason: request.reason });
      return;
    case 'duplicate':
      logger.info('quarantine request already handled', ids);
      return;
  }
}
