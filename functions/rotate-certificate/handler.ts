/**
 * Lambda entry point of `rotateCertificate` (serverless.yml): RotationQueue (fed by
 * RotationRequestRule from `fleetgate/<thingName>/rotate/request`) → BatchProcessor →
 * `rotateCertificate` per record. Composition happens once per container, here; the behaviour is in
 * `rotation.ts`.
 */
import { documentClient } from '../../shared/aws/clients';
import { loadConfig } from '../../shared/config';
import { IotDataMessenger, iotDataClient } from '../../shared/iot/device-messages';
import { IotRegistry, iotClient } from '../../shared/iot/iot-registry';
import { createLogger, createMetrics } from '../../shared/logging';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { RotationStore } from '../../shared/store/rotation-store';
import { createHandler, type RotateCertificateDeps } from './consumer';

export { createHandler, type RotateCertificateDeps } from './consumer';

/** Composition from the environment, once per container. Throws ConfigError on a bad environment. */
function defaultDeps(): RotateCertificateDeps {
  const config = loadConfig(process.env);
  const store = new ProvisioningStore(documentClient(), config.tableName);
  return {
    config,
    store,
    rotations: new RotationStore(store),
    iot: new IotRegistry(iotClient()),
    messenger: new IotDataMessenger(iotDataClient()),
    logger: createLogger('rotateCertificate'),
    metrics: createMetrics('rotateCertificate'),
  };
}

export const handler = createHandler(defaultDeps());
