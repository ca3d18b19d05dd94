/**
 * Lambda entry point of `quarantineDevice` (QuarantineQueue consumer). Composition happens once per
 * container, here; the behaviour is in `create-handler.ts` and `quarantine.ts`.
 */
import { IoTClient } from '@aws-sdk/client-iot';
import { IotQuarantineActions } from '../../shared/iot/quarantine-actions';
import { queueFunctionBase } from '../../shared/queue-function';
import { QuarantineStore } from '../../shared/store/quarantine-store';
import { createHandler, type QuarantineDeps } from './create-handler';

export { createHandler, type QuarantineDeps } from './create-handler';

/** Composition from the environment, once per container. Throws ConfigError on a bad environment. */
function defaultDeps(): QuarantineDeps {
  const { config, store, logger, metrics, deadLetters } = queueFunctionBase('quarantineDevice');
  return {
    config,
    store,
    quarantineStore: new QuarantineStore(store),
    iot: new IotQuarantineActions(new IoTClient({})),
    logger,
    metrics,
    deadLetters,
  };
}

export const handler = createHandler(defaultDeps());
