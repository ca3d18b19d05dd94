/**
 * Lambda entry point of `sweepRotations` (serverless.yml, a schedule): aborts overdue rotations and
 * carries out due certificate retirement work (`sweep.ts`). Composition happens once per container.
 */
import { documentClient } from '../../shared/aws/clients';
import { loadConfig } from '../../shared/config';
import { IotRegistry, iotClient } from '../../shared/iot/iot-registry';
import { createLogger, createMetrics } from '../../shared/logging';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { RotationStore } from '../../shared/store/rotation-store';
import { createHandler, type SweepRotationsHandlerDeps } from './create-handler';

export { createHandler, type SweepRotationsHandlerDeps } from './create-handler';

/** Composition from the environment, once per container. Throws ConfigError on a bad environment. */
function defaultDeps(): SweepRotationsHandlerDeps {
  const config = loadConfig(process.env);
  const store = new ProvisioningStore(documentClient(), config.tableName);
  return {
    config,
    store,
    rotations: new RotationStore(store),
    iot: new IotRegistry(iotClient()),
    logger: createLogger('sweepRotations'),
    metrics: createMetrics('sweepRotations'),
  };
}

export const handler = createHandler(defaultDeps());
