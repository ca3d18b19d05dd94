/**
 * Lambda entry point of `deviceLifecycle` (serverless.yml): presence and registry thing events from
 * LifecycleQueue → the shared SQS consumer → verification, JITP follow-up and clone detection. Composition
 * happens once per container, here; the behaviour is in `lifecycle.ts`.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import { documentClient } from '../../shared/aws/clients';
import { loadConfig } from '../../shared/config';
import { SqsDeadLetterQueue } from '../../shared/dlq/dead-letter-sender';
import { ConfigError } from '../../shared/errors';
import { IotRegistry, iotClient } from '../../shared/iot/iot-registry';
import { createLogger, createMetrics } from '../../shared/logging';
import { QuarantineQueue } from '../../shared/quarantine-queue';
import { retireOnCommit } from '../../shared/rotation/retirement';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { RegistrationStore } from '../../shared/store/registration-store';
import { RotationStore } from '../../shared/store/rotation-store';
import { createHandler, type DeviceLifecycleDeps } from './create-handler';

export { createHandler, type DeviceLifecycleDeps } from './create-handler';

function defaultDeps(): DeviceLifecycleDeps {
  const config = loadConfig(process.env);
  if (!config.quarantineQueueUrl) throw new ConfigError(['QUARANTINE_QUEUE_URL: is required']);
  if (!config.deadLetterQueueUrl) throw new ConfigError(['DEAD_LETTER_QUEUE_URL: is required']);
  const sqs = new SQSClient({ maxAttempts: 5 });
  const store = new ProvisioningStore(documentClient(), config.tableName);
  const iot = new IotRegistry(iotClient());
  const logger = createLogger('deviceLifecycle');
  const metrics = createMetrics('deviceLifecycle');
  return {
    config,
    store,
    registrations: new RegistrationStore(store),
    iot,
    quarantine: new QuarantineQueue(sqs, config.quarantineQueueUrl),
    deadLetters: new SqsDeadLetterQueue(sqs, config.deadLetterQueueUrl),
    logger,
    metrics,
    // Retires the old certificate of a committed rotation (deactivate, detach; delete after the grace).
    onRotationCommitted: retireOnCommit({ iot, rotations: new RotationStore(store), logger, metrics }),
  };
}

export const handler = createHandler(defaultDeps());
