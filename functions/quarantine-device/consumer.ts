/**
 * The quarantine-queue consumer, built around its dependencies (`handler.ts` composes them from the
 * environment). Every record of a batch is handled on its own and failures are reported per record
 * (Powertools BatchProcessor, `ReportBatchItemFailures`).
 *
 * Failure policy — why a permanent failure is not acknowledged here: the only permanent failures
 * are bodies that do not parse and requests naming nothing fleetgate or IoT knows. Acknowledging
 * them would delete the only copy; failing them lets SQS redrive the message, body intact, to
 * QuarantineDLQ after maxReceiveCount receives, where `fleetgate dlq list|replay|discard` finds it.
 * The error log names the messageId and the field-precise reason, never the body.
 */
import { randomUUID } from 'node:crypto';
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { fieldIssues, formatIssues } from '../../schemas/issues';
import { QuarantineRequest } from '../../schemas/quarantine-request';
import { isRetryable, ValidationError } from '../../shared/errors';
import { countOutcome } from '../../shared/logging';
import { type QuarantineOutcome, type QuarantineWorkDeps, quarantine } from './quarantine';

export interface QuarantineDeps extends QuarantineWorkDeps {
  logger: Logger;
  metrics: Metrics;
  /** Epoch milliseconds; tests freeze it. */
  clock?: () => number;
  newId?: () => string;
}

/**
 * Parses one SQS body into a QuarantineRequest.
 * @throws ValidationError naming each broken field (`body` when it is not JSON at all).
 */
export function parseQuarantineBody(body: string): QuarantineRequest {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new ValidationError([{ field: 'body', rule: 'must be a JSON document' }]);
  }
  const parsed = QuarantineRequest.safeParse(json);
  if (!parsed.success) throw new ValidationError(fieldIssues(parsed.error));
  return parsed.data;
}

/** Builds the consumer around its dependencies (tests pass their own store, IoT client and clock). */
export function createHandler(deps: QuarantineDeps) {
  const { logger, metrics } = deps;
  const clock = deps.clock ?? Date.now;
  const newId = deps.newId ?? randomUUID;

  const handleRecord = async (record: SQSRecord): Promise<void> => {
    const receiveCount = record.attributes?.ApproximateReceiveCount;
    let request: QuarantineRequest;
    try {
      request = parseQuarantineBody(record.body);
    } catch (error) {
      const reason = error instanceof ValidationError ? formatIssues(error.issues) : 'unreadable body';
      logger.error(
        'quarantine request rejected: the body does not parse; it stays on the queue for the DLQ',
        {
          messageId: record.messageId,
          receiveCount,
          reason,
        },
      );
      countOutcome(metrics, 'QuarantineRequestRejected', { reason: 'UNPARSEABLE' });
      throw error;
    }
    const ids = { messageId: record.messageId, requestId: request.requestId, reason: request.reason };
    let outcome: QuarantineOutcome;
    try {
      outcome = await quarantine(request, deps, { now: new Date(clock()).toISOString(), newId });
    } catch (error) {
      const retryable = isRetryable(error);
      logger.error('quarantine request failed', {
        ...ids,
        serial: request.serial,
        certificateId: request.certificateId,
        receiveCount,
        retryable,
        error,
      });
      throw error;
    }
    report(outcome, ids, request, logger, metrics);
  };

  const consume = async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    // One processor per invocation: a processor holds the batch it is working on.
    const processor = new BatchProcessor(EventType.SQS);
    return processPartialResponse(event, handleRecord, processor, {
      context,
      throwOnFullBatchFailure: false,
    });
  };

  return middy<SQSEvent, SQSBatchResponse>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .handler(consume);
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
