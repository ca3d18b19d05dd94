/**
 * Lambda entry point of `deviceLifecycle` (serverless.yml): presence and registry thing events from
 * LifecycleQueue → BatchProcessor → verification, JITP follow-up and clone detection. Composition
 * happens once per container, here; the behaviour is in `lifecycle.ts`.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import { documentClient } from '../../shared/aws/clients';
import { loadConfig } from '../../shared/config';
import { ConfigError } from '../../shared/errors';
import { IotRegistry, iotClient } from '../../shared/iot/iot-registry';
import { createLogger, createMetrics } from '../../shared/logging';
import { QuarantineQueue } from '../../shared/quarantine-queue';
import { retireOnCommit } from '../../shared/rotation/retirement';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { RegistrationStore } from '../../shared/store/registration-store';
import { RotationStore } from '../../shared/store/rotation-store';
import { createHandler, type DeviceLifecycleDeps } from './consumer';

export { createHandler, type DeviceLifecycleDeps } from './consumer';

function defaultDeps(): DeviceLifecycleDeps {
  const config = loadConfig(process.env);
  if (!config.quarantineQueueUrl) throw new ConfigError(['QUARANTINE_QUEUE_URL: is required']);
  const store = new ProvisioningStore(documentClient(), config.tableName);
  const iot = new IotRegistry(iotClient());
  const logger = createLogger('deviceLifecycle');
  const metrics = createMetrics('deviceLifecycle');
  return {
    config,
    store,
    registrations: new RegistrationStore(store),
    iot,
    quarantine: new QuarantineQueue(new SQSClient({ maxAttempts: 5 }), config.quarantineQueueUrl),
    logger,
    metrics,
    // Retires the old certificate of a committed rotation (deactivate, detach; delete after the grace).
    onRotationCommitted: retireOnCommit({ iot, rotations: new RotationStore(store), logger, metrics }),
  };
}

export const handler = createHandler(defaultDeps());
