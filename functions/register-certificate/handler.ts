/**
 * Lambda entry point of JITR (`registerCertificate` in serverless.yml): RegistrationQueue → the
 * shared SQS consumer → `registerCertificate` per record. Composition happens once per container, here;
 * the behaviour is in `registration.ts`.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/auto-register-device-cert.html
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import { documentClient } from '../../shared/aws/clients';
import { loadConfig } from '../../shared/config';
import { SqsDeadLetterQueue } from '../../shared/dlq/dead-letter-sender';
import { ConfigError } from '../../shared/errors';
import { IotRegistry, iotClient } from '../../shared/iot/iot-registry';
import { createLogger, createMetrics } from '../../shared/logging';
import { QuarantineQueue } from '../../shared/quarantine-queue';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { RegistrationStore } from '../../shared/store/registration-store';
import { CaTrust } from './ca-trust';
import { createHandler, type RegisterCertificateDeps } from './create-handler';

export { createHandler, type RegisterCertificateDeps } from './create-handler';

/** Composition from the environment, once per container. Throws ConfigError on a bad environment. */
function defaultDeps(): RegisterCertificateDeps {
  const config = loadConfig(process.env);
  if (!config.quarantineQueueUrl) throw new ConfigError(['QUARANTINE_QUEUE_URL: is required']);
  if (!config.deadLetterQueueUrl) throw new ConfigError(['DEAD_LETTER_QUEUE_URL: is required']);
  const sqs = new SQSClient({ maxAttempts: 5 });
  const store = new ProvisioningStore(documentClient(), config.tableName);
  const iot = new IotRegistry(iotClient());
  return {
    config,
    store,
    registrations: new RegistrationStore(store),
    iot,
    caTrust: new CaTrust(iot, {
      ttlMs: config.caCacheTtlSeconds * 1000,
      trustedCaIds: config.trustedCaIds,
      store,
    }),
    quarantine: new QuarantineQueue(sqs, config.quarantineQueueUrl),
    deadLetters: new SqsDeadLetterQueue(sqs, config.deadLetterQueueUrl),
    logger: createLogger('registerCertificate'),
    metrics: createMetrics('registerCertificate'),
  };
}

export const handler = createHandler(defaultDeps());
