/**
 * The `sweepRotations` handler around its dependencies (`handler.ts` composes them from the
 * environment): one run of `sweepRotations`, each abort an alert, each step logged and counted once.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import { instantAt } from '../../shared/domain/provisioning-rules';
import { countOutcome } from '../../shared/logging';
import { type SweepRotationsDeps, sweepRotations } from './sweep';

export interface SweepRotationsHandlerDeps extends Omit<SweepRotationsDeps, 'newId'> {
  logger: Logger;
  metrics: Metrics;
  clock?: () => number;
  newId?: () => string;
}

/** The handler around its dependencies; answers `{aborted, retired, failures}` counts. */
export function createHandler(deps: SweepRotationsHandlerDeps) {
  const { logger, metrics } = deps;
  const clock = deps.clock ?? Date.now;
  const sweepDeps: SweepRotationsDeps = { ...deps, newId: deps.newId ?? randomUUID };
  return middy()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics))
    .handler(async (event: unknown) => {
      // A manual invocation `{"now": "<ISO>"}` runs as of that instant (like expirySweep's);
      // the schedule's event has no `now`.
      const requested = (event as { now?: unknown } | null)?.now;
      const epochMs =
        typeof requested === 'string' && !Number.isNaN(Date.parse(requested))
          ? Date.parse(requested)
          : clock();
      const result = await sweepRotations(sweepDeps, instantAt(epochMs));
      for (const aborted of result.aborted) {
        // An alert: a device did not connect with its new certificate in time.
        logger.error('rotation aborted: no connect with the new certificate before the deadline', {
          ...aborted,
        });
        countOutcome(metrics, 'RotationAborted');
      }
      for (const retired of result.retired) {
        if (retired.result === 'not-due' || retired.result === 'already-done') continue;
        logger.info('certificate retirement step done', { ...retired });
        countOutcome(metrics, 'CertificateRetired', { step: retired.step });
      }
      for (const failure of result.failures) {
        logger.warn('rotation housekeeping failed for one item; next run retries', { ...failure });
        countOutcome(metrics, 'RotationSweepFailed');
      }
      // The run's counts, published by logMetrics (alerts stay single metrics above).
      metrics.addMetric('RotationSweepFailures', MetricUnit.Count, result.failures.length);
      return {
        aborted: result.aborted.length,
        retired: result.retired.filter((r) => r.result !== 'not-due' && r.result !== 'already-done').length,
        failures: result.failures.length,
      };
    });
}
