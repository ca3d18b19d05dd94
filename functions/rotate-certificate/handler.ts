/**
 * Lambda entry point of `rotateCertificate` (serverless.yml): RotationQueue (fed by
 * RotationRequestRule from `fleetgate/<thingName>/rotate/request`) → the shared SQS consumer →
 * `rotateCertificate` per record. Composition happens once per container, here; the behaviour is in
 * `rotation.ts`.
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import { documentClient } from '../../shared/aws/clients';
import { loadConfig } from '../../shared/config';
import { SqsDeadLetterQueue } from '../../shared/dlq/dead-letter-sender';
import { ConfigError } from '../../shared/errors';
import { IotDataMessenger, iotDataClient } from '../../shared/iot/device-messages';
import { IotRegistry, iotClient } from '../../shared/iot/iot-registry';
import { createLogger, createMetrics } from '../../shared/logging';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { RotationStore } from '../../shared/store/rotation-store';
import { createHandler, type RotateCertificateDeps } from './create-handler';

export { createHandler, type RotateCertificateDeps } from './create-handler';

/** Composition from the environment, once per container. Throws ConfigError on a bad environment. */
function defaultDeps(): RotateCertificateDeps {
  const config = loadConfig(process.env);
  if (!config.deadLetterQueueUrl) throw new ConfigError(['DEAD_LETTER_QUEUE_URL: is required']);
  const store = new ProvisioningStore(documentClient(), config.tableName);
  return {
    config,
    store,
    rotations: new RotationStore(store),
    iot: new IotRegistry(iotClient()),
    messenger: new IotDataMessenger(iotDataClient()),
    logger: createLogger('rotateCertificate'),
    metrics: createMetrics('rotateCertificate'),
    deadLetters: new SqsDeadLetterQueue(new SQSClient({ maxAttempts: 5 }), config.deadLetterQueueUrl),
  };
}

export const handler = createHandler(defaultDeps());
