/**
 * Lambda entry point of `quarantineDevice` (QuarantineQueue consumer). Composition happens once per
 * container, here; the behaviour is in `consumer.ts` and `quarantine.ts`.
 */
import { IoTClient } from '@aws-sdk/client-iot';
import { documentClient } from '../../shared/aws/clients';
import { loadConfig } from '../../shared/config';
import { IotQuarantineActions } from '../../shared/iot/quarantine-actions';
import { createLogger, createMetrics } from '../../shared/logging';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { QuarantineStore } from '../../shared/store/quarantine-store';
import { createHandler, type QuarantineDeps } from './consumer';

export { createHandler, type QuarantineDeps } from './consumer';

/** Composition from the environment, once per container. Throws ConfigError on a bad environment. */
function defaultDeps(): QuarantineDeps {
  const config = loadConfig(process.env);
  const store = new ProvisioningStore(documentClient(), config.tableName);
  return {
    config,
    store,
    quarantineStore: new QuarantineStore(store),
    iot: new IotQuarantineActions(new IoTClient({})),
    logger: createLogger('quarantineDevice'),
    metrics: createMetrics('quarantineDevice'),
  };
}

export const handler = createHandler(defaultDeps());
