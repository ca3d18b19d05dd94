/**
 * The expiry sweep built around its dependencies (`handler.ts` composes them from the
 * environment). One invocation works on one run until it finishes or runs short of time; then it
 * saves the checkpoint and fails with `SweepIncompleteError`, so Lambda's asynchronous retry
 * delivers the same scheduled event again and the next invocation resumes the same run.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type { ExpiryPolicy } from '../../shared/domain/expiry';
import { FleetgateError } from '../../shared/errors';
import { type RotationRequester, runExpirySweep, type SweepOutcome } from '../../shared/expiry/expiry-sweep';
import type { ReportSink } from '../../shared/reports/report-sink';
import type { SweepFacts } from '../../shared/store/sweep-facts';
import type { SweepStore } from '../../shared/store/sweep-store';
import { toRunRequest } from './run-request';

/** Thrown when an invocation stopped before the run was complete; the checkpoint is saved. */
export class SweepIncompleteError extends FleetgateError {
  readonly code = 'SWEEP_INCOMPLETE';
  readonly retryable = true;
}

export interface ExpirySweepDeps {
  policy: ExpiryPolicy;
  sweepStore: SweepStore;
  /** Device states for the report rows, and the table's previous run (the baseline). */
  facts: Pick<SweepFacts, 'devices' | 'latest' | 'setLatest'>;
  sink: ReportSink;
  logger: Logger;
  metrics: Metrics;
  safetyMarginMs: number;
  pageSize: number;
  /** The rotation flow's hook; until it exists the candidates are only listed in the report. */
  rotation?: RotationRequester;
  /** Epoch milliseconds; tests freeze it. */
  clock?: () => number;
}

/** What the handler returns: the summary of a complete run, without the report body. */
export type ExpirySweepResult = Omit<Extract<SweepOutcome, { status: 'complete' }>, 'report'>;

export function createHandler(deps: ExpirySweepDeps) {
  const { logger, metrics } = deps;
  const clock = deps.clock ?? Date.now;
  const sweep = async (event: unknown, context: Context): Promise<ExpirySweepResult> => {
    const request = toRunRequest(event, clock());
    logger.appendKeys({ runId: request.runId });
    // One per invocation, published by logMetrics (an incomplete run is invoked again).
    metrics.addMetric('ExpirySweepInvocations', MetricUnit.Count, 1);
    const outcome = await runExpirySweep(
      { ...request, policy: deps.policy },
      {
        sweepStore: deps.sweepStore,
        facts: deps.facts,
        sink: deps.sink,
        remainingMs: () => context.getRemainingTimeInMillis(),
        safetyMarginMs: deps.safetyMarginMs,
        pageSize: deps.pageSize,
        clock,
        ...(deps.rotation ? { rotation: deps.rotation } : {}),
      },
    );
    if (outcome.status === 'incomplete') {
      logger.warn('expiry sweep stopped before the end; checkpoint saved', {
        step: outcome.step,
        steps: outcome.steps,
        itemsRead: outcome.itemsRead,
      });
      single(metrics, 'ExpirySweepIncomplete', 1, MetricUnit.Count);
      throw new SweepIncompleteError(
        `sweep ${outcome.runId} stopped at step ${outcome.step} of ${outcome.steps}`,
      );
    }
    const { report: _report, ...result } = outcome;
    if (!outcome.alreadyComplete) {
      logger.info('expiry sweep complete', {
        summary: outcome.summary,
        change: outcome.change,
        files: outcome.files,
      });
      for (const [name, count] of Object.entries(outcome.summary.counts)) {
        single(metrics, 'CertificatesAtRisk', count, MetricUnit.Count, { class: name });
      }
      single(metrics, 'RotationCandidates', outcome.summary.rotationCandidates, MetricUnit.Count);
      single(metrics, 'ExpirySweepItemsRead', outcome.summary.itemsRead, MetricUnit.Count);
      single(metrics, 'ExpirySweepReadUnits', outcome.summary.readUnits, MetricUnit.Count);
    }
    return result;
  };
  // The sweep watches the remaining time itself; middy must not abort it early.
  return middy<unknown, ExpirySweepResult>({ timeoutEarlyInMillis: 0 })
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics))
    .handler(sweep);
}

function single(
  metrics: Metrics,
  name: string,
  value: number,
  unit: (typeof MetricUnit)[keyof typeof MetricUnit],
  dimensions: Record<string, string> = {},
): void {
  const metric = metrics.singleMetric();
  for (const [key, dimension] of Object.entries(dimensions)) metric.addDimension(key, dimension);
  metric.addMetric(name, unit, value);
}
