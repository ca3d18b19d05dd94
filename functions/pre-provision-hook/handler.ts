/**
 * Lambda entry point of the fleet-provisioning pre-provisioning hook (`preProvisionHook` in
 * serverless.yml). Composition happens once per container, here; the behaviour is in `create-handler.ts`.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/pre-provisioning-hook.html
 */
import { documentClient } from '../../shared/aws/clients';
import { loadConfig } from '../../shared/config';
import { createLogger, createMetrics } from '../../shared/logging';
import type { QuarantineSender } from '../../shared/quarantine-queue';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { createHandler, type HookDeps } from './create-handler';

export { createHandler, type HookDeps } from './create-handler';

/**
 * The quarantine queue, loaded on the first clone or takeover evidence: the SQS client and the
 * request schema stay out of the hook's cold start (the bundle still carries them), and a device
 * that is not suspicious never waits for them.
 */
function lazyQuarantine(queueUrl: string): QuarantineSender {
  let queue: Promise<QuarantineSender> | undefined;
  return {
    async send(request) {
      queue ??= Promise.all([import('@aws-sdk/client-sqs'), import('../../shared/quarantine-queue')]).then(
        ([{ SQSClient }, { QuarantineQueue }]) =>
          new QuarantineQueue(new SQSClient({ maxAttempts: 2 }), queueUrl),
      );
      return (await queue).send(request);
    },
  };
}

/** Composition from the environment, once per container. Throws ConfigError on a bad environment. */
function defaultDeps(): HookDeps {
  const config = loadConfig(process.env);
  return {
    config,
    store: new ProvisioningStore(documentClient(), config.tableName),
    logger: createLogger('preProvisionHook'),
    metrics: createMetrics('preProvisionHook'),
    ...(config.quarantineQueueUrl ? { quarantine: lazyQuarantine(config.quarantineQueueUrl) } : {}),
  };
}

export const handler = createHandler(defaultDeps());
