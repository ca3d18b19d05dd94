/**
 * Lambda entry point of the expiry sweep (`expirySweep` in serverless.yml, `rate(1 day)`).
 * Composition happens once per container, here; the behaviour is in `create-handler.ts` and
 * `shared/expiry/expiry-sweep.ts`.
 */
import { documentClient } from '../../shared/aws/clients';
import { loadConfig } from '../../shared/config';
import { sweepPolicy } from '../../shared/expiry/expiry-sweep';
import { IotDataMessenger, iotDataClient } from '../../shared/iot/device-messages';
import { createLogger, createMetrics } from '../../shared/logging';
import { createReportSink } from '../../shared/reports/report-sink';
import { RotationNotices } from '../../shared/rotation/rotation-notices';
import { StoreClient } from '../../shared/store/client';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { SweepFacts } from '../../shared/store/sweep-facts';
import { SweepStore } from '../../shared/store/sweep-store';
import { createHandler, type ExpirySweepDeps } from './create-handler';

export { createHandler, type ExpirySweepDeps } from './create-handler';

/** Composition from the environment, once per container. Throws ConfigError on a bad environment. */
function defaultDeps(): ExpirySweepDeps {
  const config = loadConfig(process.env);
  const db = new StoreClient(documentClient(), config.tableName);
  const logger = createLogger('expirySweep');
  const metrics = createMetrics('expirySweep');
  return {
    policy: sweepPolicy(config),
    sweepStore: new SweepStore(db),
    facts: new SweepFacts(db),
    sink: createReportSink(config.reportDestination),
    logger,
    metrics,
    safetyMarginMs: config.sweepSafetyMarginMs,
    pageSize: config.sweepPageSize,
    // Devices inside the rotation window get a rotate/required notice (ROTATION_NOTICES_PER_RUN per run).
    rotation: new RotationNotices({
      messenger: new IotDataMessenger(iotDataClient()),
      marks: new ProvisioningStore(db),
      limit: config.rotationNoticesPerRun,
      logger,
      metrics,
    }),
  };
}

export const handler = createHandler(defaultDeps());
