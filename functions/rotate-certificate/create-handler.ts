/**
 * The rotation handler, built around its dependencies (`handler.ts` composes them from the
 * environment): one `rotateCertificate` per RotationQueue record on the shared SQS consumer, outcomes
 * logged and counted once. A request that breaks the schema is answered on `.../rotate/rejected`
 * when it names a thing to answer, and acknowledged; one that cannot be answered at all (not JSON,
 * no thing name) goes to RotationDLQ at once. Any error while handling a request fails the record,
 * to be retried and then dead-lettered by the queue's redrive policy.
 */
import { randomUUID } from 'node:crypto';
import type { SQSRecord } from 'aws-lambda';
import { RotationRequest } from '../../schemas/iot-events';
import { rotationTopics } from '../../shared/iot/device-messages';
import { countOutcome } from '../../shared/logging';
import { createQueueHandler, type QueueHandlerDeps } from '../../shared/sqs-consumer';
import { type RotationDeps, type RotationOutcome, rotateCertificate } from './rotation';

/** `deadLetters` is RotationDLQ: where a request that cannot even be answered goes at once. */
export interface RotateCertificateDeps extends Omit<RotationDeps, 'newId'>, QueueHandlerDeps {}

const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;

export function createHandler(deps: RotateCertificateDeps) {
  const { logger, metrics } = deps;
  const rotationDeps: RotationDeps = { ...deps, newId: deps.newId ?? randomUUID };

  const report = (outcome: RotationOutcome, record: SQSRecord): void => {
    const fields = { messageId: record.messageId, ...outcome };
    switch (outcome.status) {
      case 'accepted':
        logger.info(outcome.repeat ? 'rotation answer published again' : 'rotation started', fields);
        countOutcome(metrics, outcome.repeat ? 'RotationRepeated' : 'RotationStarted');
        return;
      case 'rejected':
        logger.warn('rotation request rejected', fields);
        countOutcome(metrics, 'RotationRejected', { reason: outcome.reason });
        return;
      default:
        logger.info('rotation request in progress in another delivery', fields);
        countOutcome(metrics, 'RotationInProgress');
    }
  };

  return createQueueHandler(deps, {
    name: 'Rotation',
    body: RotationRequest,
    process: async (request, record, now) => {
      report(await rotateCertificate(request, record.messageId, rotationDeps, now), record);
    },
    // The device asked: it is told why on its rejected topic (the request is then acknowledged).
    answerInvalid: async (record, reason) => {
      const thingName = thingNameOf(record.body);
      if (thingName === undefined) return false;
      await deps.messenger.publish(rotationTopics.rejected(thingName), {
        reason: 'INVALID_REQUEST',
        message: reason,
      });
      report({ status: 'rejected', thingName, reason: 'INVALID_REQUEST', detail: reason }, record);
      return true;
    },
  });
}

/** The thing name of a body that is JSON with a valid `thingName`, else undefined. */
function thingNameOf(body: string): string | undefined {
  try {
    const json: unknown = JSON.parse(body);
    if (typeof json !== 'object' || json === null) return undefined;
    const thingName = (json as { thingName?: unknown }).thingName;
    return typeof thingName === 'string' && THING_NAME.test(thingName) ? thingName : undefined;
  } catch {
    return undefined;
  }
}
