/**
 * The inventory reconciliation built around its dependencies (`handler.ts` composes them from the
 * environment), with two entry points:
 * - **schedule** (`createScheduleHandler`): the EventBridge scheduled event starts (or, on an
 *   asynchronous retry, resumes) the week's run; a manual event `{runId?, now?}` does either;
 * - **queue** (`createQueueHandler`): a continuation message from `ReconcileQueue` continues a run,
 *   on the shared SQS consumer. A body that is not a continuation goes to ReconcileDLQ at once; a
 *   run that fails (IoT unreachable, the store) fails its record, to be retried and then
 *   dead-lettered — never acknowledged, which would drop the week's run silently
 *   (`fleetgate dlq replay reconcile-dlq` resumes it from its checkpoint).
 * `createHandler` routes a Lambda event to one of them (the function has both event sources).
 *
 * When an invocation runs short of time it commits its checkpoint and sends one continuation; a
 * duplicate or stale continuation finds the run further on (or complete) and only continues from
 * there.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { fieldIssues } from '../../schemas/issues';
import { ReconcileContinuationSchema, ReconcileRunEventSchema } from '../../schemas/reconcile-inventory';
import type { DeadLetterSender } from '../../shared/dlq/dead-letter-sender';
import { runIdFor } from '../../shared/domain/run-id';
import { ValidationError } from '../../shared/errors';
import type { ContinuationQueue } from '../../shared/reconcile/continuation-queue';
import {
  type ReconcileDeps,
  type ReconcileOutcome,
  type ReconcileRequest,
  runReconciliation,
} from '../../shared/reconcile/reconcile-inventory';
import { createSqsConsumer } from '../../shared/sqs-consumer';

export interface ReconcileInventoryDeps extends Omit<ReconcileDeps, 'remainingMs'> {
  continuations: ContinuationQueue;
  /** ReconcileDLQ: where a message that is not a continuation goes at once. */
  deadLetters: DeadLetterSender;
  logger: Logger;
  metrics: Metrics;
}

/** What the schedule entry point returns. */
export type ReconcileInventoryResult =
  | Omit<Extract<ReconcileOutcome, { status: 'complete' }>, 'report'>
  | Exclude<ReconcileOutcome, { status: 'complete' }>;

/** One invocation's share of a run: runs until done or short of time, then continues it. */
function reconciliationWork(deps: ReconcileInventoryDeps) {
  const { logger, metrics } = deps;
  return async (request: ReconcileRequest, context: Context): Promise<ReconcileOutcome> => {
    logger.appendKeys({ runId: request.runId });
    const outcome = await runReconciliation(request, {
      ...deps,
      remainingMs: () => context.getRemainingTimeInMillis(),
    });
    if (outcome.status === 'incomplete') {
      await deps.continuations.send({ runId: outcome.runId, seq: outcome.seq, now: request.now });
      logger.info('reconciliation continues in another invocation', {
        seq: outcome.seq,
        phase: outcome.phase,
      });
      metrics.addMetric('ReconcileContinued', MetricUnit.Count, 1);
    } else if (outcome.status === 'superseded') {
      logger.info('reconciliation advanced by another invocation; stopping', { seq: outcome.seq });
    } else if (!outcome.alreadyComplete) {
      const { summary } = outcome;
      logger.info('reconciliation complete', {
        counts: summary.counts,
        drift: summary.drift,
        certificatesListed: summary.certificatesListed,
        devicesRead: summary.devicesRead,
        thingsListed: summary.thingsListed,
        apiCalls: summary.apiCalls,
        sdkRetries: summary.sdkRetries,
        invocations: summary.invocations,
        files: outcome.files,
      });
      for (const [kind, count] of Object.entries(summary.counts)) {
        const metric = metrics.singleMetric();
        metric.addDimension('kind', kind);
        metric.addMetric('InventoryDrift', MetricUnit.Count, count);
      }
      metrics.addMetric('ReconcileCertificatesListed', MetricUnit.Count, summary.certificatesListed);
      metrics.addMetric('ReconcileThingsListed', MetricUnit.Count, summary.thingsListed);
      metrics.addMetric(
        'ReconcileApiCalls',
        MetricUnit.Count,
        Object.values(summary.apiCalls).reduce((a, b) => a + b, 0),
      );
    }
    // Every invocation publishes at least this one (logMetrics then has something to flush).
    metrics.addMetric('ReconcileInvocations', MetricUnit.Count, 1);
    return outcome;
  };
}

/** The schedule (and manual) entry point. @throws ValidationError for any other event. */
export function createScheduleHandler(deps: ReconcileInventoryDeps) {
  const work = reconciliationWork(deps);
  const reconcile = async (event: unknown, context: Context): Promise<ReconcileInventoryResult> => {
    const parsed = ReconcileRunEventSchema.safeParse(event);
    if (!parsed.success) throw new ValidationError(fieldIssues(parsed.error));
    const outcome = await work(toRequest(parsed.data, deps.clock()), context);
    if (outcome.status !== 'complete') return outcome;
    const { report: _report, ...result } = outcome;
    return result;
  };
  // The run watches the remaining time itself; middy must not abort it early.
  return middy<unknown, ReconcileInventoryResult>({ timeoutEarlyInMillis: 0 })
    .use(injectLambdaContext(deps.logger, { resetKeys: true }))
    .use(logMetrics(deps.metrics))
    .handler(reconcile);
}

/** The ReconcileQueue entry point: one continuation per record (the event source's batch size is 1). */
export function createQueueHandler(deps: ReconcileInventoryDeps) {
  const work = reconciliationWork(deps);
  return createSqsConsumer({
    name: 'Reconcile',
    logger: deps.logger,
    metrics: deps.metrics,
    body: ReconcileContinuationSchema,
    invalid: { action: 'dead-letter', deadLetters: deps.deadLetters },
    process: async (continuation, { context }) => {
      await work({ runId: continuation.runId, now: continuation.now }, context);
    },
    timeoutEarlyInMillis: 0,
  });
}

/** The Lambda handler of `reconcileInventory`: SQS events to the queue entry point, the rest to the schedule one. */
export function createHandler(deps: ReconcileInventoryDeps) {
  const schedule = createScheduleHandler(deps);
  const queue = createQueueHandler(deps);
  return (event: unknown, context: Context): Promise<ReconcileInventoryResult | SQSBatchResponse> =>
    isSqsEvent(event) ? queue(event, context) : schedule(event, context);
}

function isSqsEvent(event: unknown): event is SQSEvent {
  return (
    typeof event === 'object' && event !== null && Array.isArray((event as { Records?: unknown }).Records)
  );
}

/**
 * The run of a scheduled event is named after its scheduled `time`, which EventBridge keeps on
 * every retry: a retried invocation resumes the run instead of starting another.
 */
export function toRequest(
  value: { time?: string; runId?: string; now?: string },
  clockMs: number,
): ReconcileRequest {
  if (value.time !== undefined) {
    const now = new Date(Date.parse(value.time)).toISOString();
    return { runId: runIdFor('reconcile', now), now };
  }
  const now = value.now ? new Date(Date.parse(value.now)).toISOString() : new Date(clockMs).toISOString();
  return { runId: value.runId ?? runIdFor('reconcile-manual', now), now };
}
