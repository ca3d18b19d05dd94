/**
 * The one SQS consumer every SQS-triggered function is built on (docs/quarantine.md, "Dead
 * letters"). Powertools' `BatchProcessor` handles the records of a batch (in parallel) and
 * reports partial failures (`ReportBatchItemFailures`); each body is parsed as JSON and checked
 * against the function's schema before the function sees it, with the reasons Powertools' parser
 * integration gives (`body: Invalid JSON - …`, `body.<field>: <rule>`). Not that integration itself:
 * it is built on zod's classic build (its whole namespace, every locale), which no Lambda bundles:
 * fleetgate's schemas are zod's `mini` build (schemas/zod.ts).
 *
 * Failure policy, the same for every consumer:
 * - **Invalid message** — the body is not JSON or breaks the schema, or processing threw
 *   `InvalidMessageError` (a request that can never succeed): recorded with its reason (`field:
 *   rule`) in the log and a metric, then handled by the consumer's `invalid` option:
 *   `dead-letter` sends it to the queue's DLQ at once (body and attributes intact) and acknowledges
 *   it; `acknowledge` only acknowledges it. It is never redelivered to fail again.
 * - **Anything else** — AWS errors (throttling, 5xx, timeouts, AccessDenied, a resource of our own
 *   configuration that is missing), a store conflict, a bug: the record fails, SQS redelivers it
 *   after the visibility timeout and dead-letters it after `maxReceiveCount` receives (the DLQ
 *   alarms fire). Nothing is acknowledged that was neither processed nor dead-lettered.
 *
 * middy carries Powertools' logger (`injectLambdaContext`) and metrics (`logMetrics`: the batch's
 * `SqsRecords` / `SqsRecordsRetried` counts) middleware. Logs name the message id and the reason,
 * never the body.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import * as z from '../schemas/zod';
import type { DeadLetterSender } from './dlq/dead-letter-sender';
import { type Instant, instantAt } from './domain/provisioning-rules';
import { FleetgateError, InvalidMessageError } from './errors';
import { countOutcome } from './logging';

/** What happens to a message that can never be processed. */
export type InvalidMessagePolicy =
  /** Sent to the queue's DLQ at once (then acknowledged): kept for an operator, the DLQ alarm fires. */
  | { action: 'dead-letter'; deadLetters: DeadLetterSender }
  /** Acknowledged: the reason is recorded elsewhere (the log and metric; an answer to the sender). */
  | { action: 'acknowledge' };

export interface SqsConsumerOptions<T> {
  /** Prefix of the consumer's metrics: `<name>Retried{reason}`, `<name>Invalid{reason}`. */
  name: string;
  logger: Logger;
  metrics: Metrics;
  /** Schema of the message body, a JSON document. */
  body: z.ZodMiniType<T>;
  invalid: InvalidMessagePolicy;
  /**
   * Handles one valid message. Throw `InvalidMessageError` for a request that can never succeed;
   * anything else thrown fails the record, to be retried.
   */
  process(message: T, delivery: { record: SQSRecord; context: Context }): Promise<void>;
  /**
   * A body that breaks the schema may still be answerable (a device told why on its reply topic):
   * resolves true when it was answered — the record is then acknowledged, not dead-lettered.
   */
  answerInvalid?(record: SQSRecord, reason: string): Promise<boolean>;
  /** middy's `timeoutEarlyInMillis` (0 when the function watches its own remaining time). */
  timeoutEarlyInMillis?: number;
}

/** The SQS record Lambda delivers (the fields Powertools' `SqsRecordSchema` requires). */
const sqsEnvelope = z.object({
  messageId: z.string(),
  receiptHandle: z.string(),
  body: z.string(),
  attributes: z.record(z.string(), z.unknown()),
  messageAttributes: z.record(z.string(), z.unknown()),
  md5OfBody: z.string(),
  eventSource: z.literal('aws:sqs'),
  eventSourceARN: z.string(),
  awsRegion: z.string(),
});

/** What the parser hands the record handler: the parsed body, or why there is none. */
type Parsed<T> =
  | { valid: true; record: SQSRecord; body: T }
  | { valid: false; record: SQSRecord; reason: string };

/** A Lambda handler for an SQS event source with `ReportBatchItemFailures`. */
export function createSqsConsumer<T>(options: SqsConsumerOptions<T>) {
  const { logger, metrics, name } = options;
  const parse = (record: SQSRecord): Parsed<T> => {
    const reason = (path: PropertyKey[], message: string) =>
      `${['body', ...path].map(String).join('.')}: ${message}`;
    const envelope = sqsEnvelope.safeParse(record);
    if (!envelope.success) {
      const reasons = envelope.error.issues.map(
        (issue) => `${issue.path.map(String).join('.')}: ${issue.message}`,
      );
      return { valid: false, record, reason: reasons.join('; ') };
    }
    let json: unknown;
    try {
      json = JSON.parse(record.body);
    } catch (error) {
      return { valid: false, record, reason: reason([], `Invalid JSON - ${(error as Error).message}`) };
    }
    const result = options.body.safeParse(json);
    if (result.success) return { valid: true, record, body: result.data };
    const reasons = result.error.issues.map((issue) => reason(issue.path, issue.message));
    return { valid: false, record, reason: reasons.join('; ') };
  };

  const receiveCount = (record: SQSRecord) => record.attributes?.ApproximateReceiveCount;

  const rejectInvalid = async (record: SQSRecord, reason: string, where: 'body' | 'request') => {
    const fields = { messageId: record.messageId, receiveCount: receiveCount(record), reason };
    if (where === 'body' && options.answerInvalid && (await options.answerInvalid(record, reason))) {
      logger.warn('invalid message answered and acknowledged', fields);
      countOutcome(metrics, `${name}Invalid`, { reason: where });
      return;
    }
    if (options.invalid.action === 'dead-letter') {
      await options.invalid.deadLetters.send(record, reason);
      logger.warn('invalid message sent to the dead-letter queue', fields);
    } else {
      logger.warn('invalid message acknowledged', fields);
    }
    countOutcome(metrics, `${name}Invalid`, { reason: where });
  };

  const handleRecord = async (record: SQSRecord, context: Context): Promise<void> => {
    const item = parse(record);
    try {
      if (!item.valid) return await rejectInvalid(record, item.reason, 'body');
      try {
        await options.process(item.body, { record, context });
      } catch (error) {
        if (!(error instanceof InvalidMessageError)) throw error;
        await rejectInvalid(record, error.message, 'request');
      }
    } catch (error) {
      logger.warn('message failed; SQS redelivers it, then dead-letters it', {
        messageId: record.messageId,
        receiveCount: receiveCount(record),
        code: errorCode(error),
        error,
      });
      countOutcome(metrics, `${name}Retried`, { reason: errorCode(error) });
      throw error;
    }
  };

  const consume = async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    // One processor per invocation: it holds the batch's state, and a handler may be invoked
    // concurrently in one process (the local stack, tests).
    const processor = new BatchProcessor(EventType.SQS);
    const response = await processPartialResponse(
      event,
      handleRecord as (record: SQSRecord, context?: Context) => Promise<void>,
      processor,
      { context, throwOnFullBatchFailure: false, processInParallel: true },
    );
    metrics.addMetric('SqsRecords', MetricUnit.Count, event.Records.length);
    metrics.addMetric('SqsRecordsRetried', MetricUnit.Count, response.batchItemFailures.length);
    return response;
  };

  return middy<SQSEvent, SQSBatchResponse>(
    options.timeoutEarlyInMillis !== undefined ? { timeoutEarlyInMillis: options.timeoutEarlyInMillis } : {},
  )
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics))
    .handler(consume);
}

/** What a queue-fed function's handler takes besides the dependencies of its own work. */
export interface QueueHandlerDeps {
  logger: Logger;
  metrics: Metrics;
  /** The queue's DLQ: where a message that can never succeed goes at once. */
  deadLetters: DeadLetterSender;
  /** Epoch milliseconds; tests freeze it. */
  clock?: () => number;
  newId?: () => string;
}

/**
 * The consumer of a queue-fed function: `createSqsConsumer` with the function's logger and metrics,
 * dead-lettering at once what can never succeed, and handing each valid message to `process` with
 * the instant the clock reads as it is handled.
 */
export function createQueueHandler<T>(
  deps: QueueHandlerDeps,
  options: Pick<SqsConsumerOptions<T>, 'name' | 'body' | 'answerInvalid'> & {
    process(message: T, record: SQSRecord, now: Instant): Promise<void>;
  },
) {
  const clock = deps.clock ?? Date.now;
  return createSqsConsumer({
    ...options,
    logger: deps.logger,
    metrics: deps.metrics,
    invalid: { action: 'dead-letter', deadLetters: deps.deadLetters },
    process: (message, { record }) => options.process(message, record, instantAt(clock())),
  });
}

/** AWS's error name (of the error or the SDK error it wraps), else fleetgate's code, else the error's name. */
export function errorCode(error: unknown): string {
  if (error instanceof FleetgateError) {
    const aws = (error as { awsCode?: unknown }).awsCode;
    if (typeof aws === 'string') return aws;
    const cause = error.cause as { name?: unknown; $metadata?: unknown } | undefined;
    if (typeof cause?.name === 'string' && cause.$metadata !== undefined) return cause.name;
    return error.code;
  }
  return error instanceof Error ? error.name : 'UNKNOWN';
}
