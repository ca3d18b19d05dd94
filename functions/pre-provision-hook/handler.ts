/**
 * Lambda entry point of the fleet-provisioning pre-provisioning hook (`preProvisionHook` in
 * serverless.yml). Composition happens once per container, here; the behaviour is in `create-handler.ts`.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/pre-provisioning-hook.html
 */
import { documentClient } from '../../shared/aws/clients';
import { loadConfig } from '../../shared/config';
import { createLogger, createMetrics } from '../../shared/logging';
import { quarantineOnFirstUse, sqsOnFirstUse } from '../../shared/queue-senders';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { createHandler, type HookDeps } from './create-handler';

export { createHandler, type HookDeps } from './create-handler';

/** Composition from the environment, once per container. Throws ConfigError on a bad environment. */
function defaultDeps(): HookDeps {
  const config = loadConfig(process.env);
  return {
    config,
    store: new ProvisioningStore(documentClient(), config.tableName),
    logger: createLogger('preProvisionHook'),
    metrics: createMetrics('preProvisionHook'),
    // Loaded on the first clone or takeover evidence: a device that is not suspicious never waits
    // for the SQS client; two attempts, inside the hook's 5 s.
    ...(config.quarantineQueueUrl
      ? { quarantine: quarantineOnFirstUse(sqsOnFirstUse({ maxAttempts: 2 }), config.quarantineQueueUrl) }
      : {}),
  };
}

export const handler = createHandler(defaultDeps());
