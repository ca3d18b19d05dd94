/**
 * Lambda entry point of the fleet-provisioning pre-provisioning hook (`preProvisionHook` in
 * serverless.yml). Composition happens once per container, here; the behaviour is in `create-handler.ts`.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/pre-provisioning-hook.html
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import { documentClient } from '../../shared/aws/clients';
import { loadConfig } from '../../shared/config';
import { createLogger, createMetrics } from '../../shared/logging';
import { QuarantineQueue } from '../../shared/quarantine-queue';
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
    ...(config.quarantineQueueUrl
      ? { quarantine: new QuarantineQueue(new SQSClient({ maxAttempts: 2 }), config.quarantineQueueUrl) }
      : {}),
  };
}

export const handler = createHandler(defaultDeps());
