/**
 * Lambda entry point of the expiry sweep (`expirySweep` in serverless.yml, `rate(1 day)`).
 * Composition happens once per container, here; the behaviour is in `sweep-handler.ts` and
 * `shared/expiry/expiry-sweep.ts`.
 */
import { documentClient } from '../../shared/aws/clients';
import { loadConfig } from '../../shared/config';
import { sweepPolicy } from '../../shared/expiry/expiry-sweep';
import { createLogger, createMetrics } from '../../shared/logging';
import { createReportSink } from '../../shared/reports/report-sink';
import { SweepStore } from '../../shared/store/sweep-store';
import { createHandler, type ExpirySweepDeps } from './sweep-handler';

export { createHandler, type ExpirySweepDeps } from './sweep-handler';

/** Composition from the environment, once per container. Throws ConfigError on a bad environment. */
function defaultDeps(): ExpirySweepDeps {
  const config = loadConfig(process.env);
  return {
    policy: sweepPolicy(config),
    sweepStore: new SweepStore(documentClient(), config.tableName),
    sink: createReportSink(config.reportDestination),
    logger: createLogger('expirySweep'),
    metrics: createMetrics('expirySweep'),
    safetyMarginMs: config.sweepSafetyMarginMs,
    pageSize: config.sweepPageSize,
  };
}

export const handler = createHandler(defaultDeps());
