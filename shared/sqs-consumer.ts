/**
 * The one place where an SQS consumer maps errors to outcomes (docs/architecture.md, “Adding a flow”): every record of the
 * batch is handled (Powertools `BatchProcessor`, in parallel); a retryable error fails just that
 * record, so SQS redelivers it after its visibility timeout (and dead-letters it after
 * maxReceiveCount); any other error is reported once and the record acknowledged.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { FleetgateError, isRetryable } from './errors';

export interface SqsConsumerOptions {
  logger: Logger;
  /** Handles one record; throws to fail it. */
  processRecord(record: SQSRecord): Promise<void>;
  /** Records a failure no retry can fix (the record is then acknowledged). */
  onPermanentFailure(record: SQSRecord, error: unknown, code: string): void;
  /** Notes a failure that SQS will retry. */
  onRetryableFailure?(record: SQSRecord, error: unknown): void;
}

/** A Lambda handler for an SQS event source with `ReportBatchItemFailures`. */
export function createSqsConsumer(options: SqsConsumerOptions) {
  const recordHandler = async (record: SQSRecord): Promise<void> => {
    try {
      await options.processRecord(record);
    } catch (error) {
      if (isRetryable(error)) {
        options.onRetryableFailure?.(record, error);
        throw error;
      }
      options.onPermanentFailure(record, error, errorCode(error));
    }
  };
  return middy<SQSEvent, SQSBatchResponse>()
    .use(injectLambdaContext(options.logger, { resetKeys: true }))
    .handler((event: SQSEvent, context: Context) =>
      // One processor per invocation: it holds the batch's state, and a handler may be invoked
      // concurrently in one process (the local stack, tests).
      processPartialResponse(event, recordHandler, new BatchProcessor(EventType.SQS), {
        context,
        throwOnFullBatchFailure: false,
        processInParallel: true,
      }),
    );
}

function errorCode(error: unknown): string {
  if (error instanceof FleetgateError) {
    const aws = (error as { awsCode?: unknown }).awsCode;
    return typeof aws === 'string' ? aws : error.code;
  }
  return error instanceof Error ? error.name : 'UNKNOWN';
}
