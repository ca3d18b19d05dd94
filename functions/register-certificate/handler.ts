/**
 * Lambda entry point of JITR (`registerCertificate` in serverless.yml): RegistrationQueue → the
 * shared SQS consumer → `registerCertificate` per record. Composition happens once per container, here;
 * the behaviour is in `registration.ts`.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/auto-register-device-cert.html
 */
import { IotRegistry, iotClient } from '../../shared/iot/iot-registry';
import { queueFunctionBase } from '../../shared/queue-function';
import { RegistrationStore } from '../../shared/store/registration-store';
import { CaTrust } from './ca-trust';
import { createHandler, type RegisterCertificateDeps } from './create-handler';

export { createHandler, type RegisterCertificateDeps } from './create-handler';

/** Composition from the environment, once per container. Throws ConfigError on a bad environment. */
function defaultDeps(): RegisterCertificateDeps {
  const base = queueFunctionBase('registerCertificate', { quarantine: true });
  const { config, store } = base;
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
    quarantine: base.quarantine,
    deadLetters: base.deadLetters,
    logger: base.logger,
    metrics: base.metrics,
  };
}

export const handler = createHandler(defaultDeps());
