/**
 * The rotation consumer, built around its dependencies (`handler.ts` composes them from the
 * environment): one `rotateCertificate` per RotationQueue record, outcomes logged and counted once.
 * A request that cannot be answered at all (not JSON, no thing name to reply to) fails its record,
 * so SQS dead-letters it to RotationDLQ; every other bad request is answered on `.../rotate/rejected`
 * and acknowledged.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { SQSRecord } from 'aws-lambda';
import { RotationRequest } from '../../schemas/iot-events';
import { formatIssues } from '../../schemas/issues';
import { parseBody } from '../../schemas/registration-events';
import type { Instant } from '../../shared/domain/provisioning-rules';
import { UnprocessableMessageError } from '../../shared/errors';
import { rotationTopics } from '../../shared/iot/device-messages';
import { countOutcome } from '../../shared/logging';
import { createSqsConsumer } from '../../shared/sqs-consumer';
import { type RotationDeps, type RotationOutcome, rotateCertificate } from './rotation';

export interface RotateCertificateDeps extends Omit<RotationDeps, 'newId'> {
  logger: Logger;
  metrics: Metrics;
  /** Epoch milliseconds; tests freeze it. */
  clock?: () => number;
  newId?: () => string;
}

const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;

export function createHandler(deps: RotateCertificateDeps) {
  const { logger, metrics } = deps;
  const clock = deps.clock ?? Date.now;
  const rotationDeps: RotationDeps = { ...deps, newId: deps.newId ?? randomUUID };

  const processRecord = async (record: SQSRecord): Promise<void> => {
    const parsed = parseBody(RotationRequest, record.body);
    if (!parsed.success) {
      const thingName = thingNameOf(record.body);
      const detail = formatIssues(parsed.issues);
      if (thingName === undefined) {
        throw new UnprocessableMessageError(`rotation request has no thing name to answer: ${detail}`);
      }
      await deps.messenger.publish(rotationTopics.rejected(thingName), {
        reason: 'INVALID_REQUEST',
        message: detail,
      });
      report({ status: 'rejected', thingName, reason: 'INVALID_REQUEST', detail }, record);
      return;
    }
    const epochMs = clock();
    const now: Instant = { iso: new Date(epochMs).toISOString(), epochMs };
    report(await rotateCertificate(parsed.data, record.messageId, rotationDeps, now), record);
  };

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

  return createSqsConsumer({
    logger,
    processRecord,
    onRetryableFailure: (record, error) => {
      logger.warn('rotation request will be retried', { messageId: record.messageId, error });
      countOutcome(metrics, 'RotationRetried');
    },
    onPermanentFailure: (record, error, code) => {
      logger.error('rotation request failed permanently; acknowledged', {
        messageId: record.messageId,
        code,
        error,
      });
      countOutcome(metrics, 'RotationFailed', { reason: code });
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
