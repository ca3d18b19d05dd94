/**
 * The inventory reconciliation built around its dependencies (`handler.ts` composes them from the
 * environment). A scheduled event starts (or, on an asynchronous retry, resumes) the week's run; a
 * continuation message from `ReconcileQueue` continues a run; a manual event `{runId?, now?}` does
 * either. When an invocation runs short of time it commits its checkpoint and sends one
 * continuation; a duplicate or stale continuation finds the run further on (or complete) and only
 * continues from there.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import type { Context, SQSBatchResponse } from 'aws-lambda';
import { fieldIssues } from '../../schemas/issues';
import {
  type ReconcileContinuation,
  ReconcileContinuationSchema,
  ReconcileInventoryEventSchema,
} from '../../schemas/reconcile-inventory';
import { isRetryable, ValidationError } from '../../shared/errors';
import { runIdFor } from '../../shared/expiry/expiry-sweep';
import type { ContinuationQueue } from '../../shared/reconcile/continuation-queue';
import {
  type ReconcileDeps,
  type ReconcileOutcome,
  type ReconcileRequest,
  runReconciliation,
} from '../../shared/reconcile/reconcile-inventory';

export interface ReconcileInventoryDeps extends Omit<ReconcileDeps, 'remainingMs'> {
  continuations: ContinuationQueue;
  logger: Logger;
  metrics: Metrics;
}

/** What the handler returns for a scheduled or manual event. */
export type ReconcileInventoryResult =
  | Omit<Extract<ReconcileOutcome, { status: 'complete' }>, 'report'>
  | Exclude<ReconcileOutcome, { status: 'complete' }>;

export function createHandler(deps: ReconcileInventoryDeps) {
  const { logger, metrics } = deps;

  const work = async (request: ReconcileRequest, context: Context): Promise<ReconcileOutcome> => {
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
      single(metrics, 'ReconcileContinued', 1);
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
      for (const [kind, count] of Object.entries(summary.counts))
        single(metrics, 'InventoryDrift', count, { kind });
      single(metrics, 'ReconcileCertificatesListed', summary.certificatesListed);
      single(metrics, 'ReconcileThingsListed', summary.thingsListed);
      single(
        metrics,
        'ReconcileApiCalls',
        Object.values(summary.apiCalls).reduce((a, b) => a + b, 0),
      );
    }
    return outcome;
  };

  const reconcile = async (
    event: unknown,
    context: Context,
  ): Promise<ReconcileInventoryResult | SQSBatchResponse> => {
    const parsed = ReconcileInventoryEventSchema.safeParse(event);
    if (!parsed.success) throw new ValidationError(fieldIssues(parsed.error));
    const value = parsed.data;
    if ('Records' in value) {
      // Continuations, one run each (the event source's batch size is 1; any batch is handled).
      const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
      for (const record of value.Records) {
        const continuation = parseContinuation(record.body);
        if (!continuation) {
          logger.error('continuation message is not one; dropped', { messageId: record.messageId });
          continue;
        }
        try {
          await work({ runId: continuation.runId, now: continuation.now }, context);
        } catch (error) {
          // Unlike the event consumers, a permanent error is not acknowledged: that would drop the
          // week's run silently. The message is retried and then dead-lettered (ReconcileDLQ alarms);
          // `fleetgate dlq replay` resumes the run from its checkpoint once the cause is fixed.
          if (isRetryable(error))
            logger.warn('reconciliation failed; the continuation will be retried', { error });
          else
            logger.error('reconciliation failed; the continuation goes to the DLQ after its retries', {
              error,
            });
          batchItemFailures.push({ itemIdentifier: record.messageId });
        }
      }
      return { batchItemFailures };
    }
    const request = toRequest(value, deps.clock());
    const outcome = await work(request, context);
    if (outcome.status !== 'complete') return outcome;
    const { report: _report, ...result } = outcome;
    return result;
  };

  // The run watches the remaining time itself; middy must not abort it early.
  return middy<unknown, ReconcileInventoryResult | SQSBatchResponse>({ timeoutEarlyInMillis: 0 })
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .handler(reconcile);
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

function parseContinuation(body: string): ReconcileContinuation | undefined {
  try {
    const parsed = ReconcileContinuationSchema.safeParse(JSON.parse(body));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function single(
  metrics: Metrics,
  name: string,
  value: number,
  dimensions: Record<string, string> = {},
): void {
  const metric = metrics.singleMetric();
  for (const [key, dimension] of Object.entries(dimensions)) metric.addDimension(key, dimension);
  metric.addMetric(name, MetricUnit.Count, value);
}
