/**
 * Lambda entry point of `deviceLifecycle` (serverless.yml): presence and registry thing events from
 * LifecycleQueue → the shared SQS consumer → verification, JITP follow-up and clone detection. Composition
 * happens once per container, here; the behaviour is in `lifecycle.ts`.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html
 */
import { IotRegistry, iotClient } from '../../shared/iot/iot-registry';
import { queueFunctionBase } from '../../shared/queue-function';
import { retireOnCommit } from '../../shared/rotation/retirement';
import { RegistrationStore } from '../../shared/store/registration-store';
import { RotationStore } from '../../shared/store/rotation-store';
import { createHandler, type DeviceLifecycleDeps } from './create-handler';

export { createHandler, type DeviceLifecycleDeps } from './create-handler';

function defaultDeps(): DeviceLifecycleDeps {
  const { config, store, quarantine, deadLetters, logger, metrics } = queueFunctionBase('deviceLifecycle', {
    quarantine: true,
  });
  const iot = new IotRegistry(iotClient());
  return {
    config,
    store,
    registrations: new RegistrationStore(store),
    iot,
    quarantine,
    deadLetters,
    logger,
    metrics,
    // Retires the old certificate of a committed rotation (deactivate, detach; delete after the grace).
    onRotationCommitted: retireOnCommit({ iot, rotations: new RotationStore(store), logger, metrics }),
  };
}

export const handler = createHandler(defaultDeps());
