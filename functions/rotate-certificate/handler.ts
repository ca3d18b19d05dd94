/**
 * Lambda entry point of `rotateCertificate` (serverless.yml): RotationQueue (fed by
 * RotationRequestRule from `fleetgate/<thingName>/rotate/request`) → the shared SQS consumer →
 * `rotateCertificate` per record. Composition happens once per container, here; the behaviour is in
 * `rotation.ts`.
 */
import { IotDataMessenger, iotDataClient } from '../../shared/iot/device-messages';
import { IotRegistry, iotClient } from '../../shared/iot/iot-registry';
import { queueFunctionBase } from '../../shared/queue-function';
import { RotationStore } from '../../shared/store/rotation-store';
import { createHandler, type RotateCertificateDeps } from './create-handler';

export { createHandler, type RotateCertificateDeps } from './create-handler';

/** Composition from the environment, once per container. Throws ConfigError on a bad environment. */
function defaultDeps(): RotateCertificateDeps {
  const { config, store, logger, metrics, deadLetters } = queueFunctionBase('rotateCertificate');
  return {
    config,
    store,
    rotations: new RotationStore(store),
    iot: new IotRegistry(iotClient()),
    messenger: new IotDataMessenger(iotDataClient()),
    logger,
    metrics,
    deadLetters,
  };
}

export const handler = createHandler(defaultDeps());
