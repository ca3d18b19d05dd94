/**
 * Lambda entry point of `quarantineDevice` (QuarantineQueue consumer). Composition happens once per
 * container, here; the behaviour is in `create-handler.ts` and `quarantine.ts`.
 */
import { IoTClient } from '@aws-sdk/client-iot';
import { SQSClient } from '@aws-sdk/client-sqs';
import { documentClient } from '../../shared/aws/clients';
import { loadConfig } from '../../shared/config';
import { SqsDeadLetterQueue } from '../../shared/dlq/dead-letter-sender';
import { ConfigError } from '../../shared/errors';
import { IotQuarantineActions } from '../../shared/iot/quarantine-actions';
import { createLogger, createMetrics } from '../../shared/logging';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { QuarantineStore } from '../../shared/store/quarantine-store';
import { createHandler, type QuarantineDeps } from './create-handler';

export { createHandler, type QuarantineDeps } from './create-handler';

/** Composition from the environment, once per container. Throws ConfigError on a bad environment. */
function defaultDeps(): QuarantineDeps {
  const config = loadConfig(process.env);
  if (!config.deadLetterQueueUrl) throw new ConfigError(['DEAD_LETTER_QUEUE_URL: is required']);
  const store = new ProvisioningStore(documentClient(), config.tableName);
  return {
    config,
    store,
    quarantineStore: new QuarantineStore(store),
    iot: new IotQuarantineActions(new IoTClient({})),
    logger: createLogger('quarantineDevice'),
    metrics: createMetrics('quarantineDevice'),
    deadLetters: new SqsDeadLetterQueue(new SQSClient({ maxAttempts: 5 }), config.deadLetterQueueUrl),
  };
}

export const handler = createHandler(defaultDeps());
