/**
 * The registration handler, built around its dependencies (`handler.ts` composes them from the
 * environment): one `registerCertificate` per RegistrationQueue record on the shared SQS consumer,
 * outcomes logged and counted once. A body that is not a JITR event goes to RegistrationDLQ at once;
 * any error (AWS, the device policy missing, the store) fails the record, to be retried and then
 * dead-lettered by the queue's redrive policy.
 */
import { randomUUID } from 'node:crypto';
import { CertificateRegisteredEvent } from '../../schemas/iot-events';
import { countOutcome } from '../../shared/logging';
import { createQueueHandler, type QueueHandlerDeps } from '../../shared/sqs-consumer';
import { type RegistrationDeps, type RegistrationOutcome, registerCertificate } from './registration';

/** `deadLetters` is RegistrationDLQ: where an event that is not a JITR event goes at once. */
export interface RegisterCertificateDeps extends Omit<RegistrationDeps, 'newId'>, QueueHandlerDeps {}

export function createHandler(deps: RegisterCertificateDeps) {
  const { logger, metrics } = deps;
  const registrationDeps: RegistrationDeps = { ...deps, newId: deps.newId ?? randomUUID };

  const report = (outcome: RegistrationOutcome): void => {
    switch (outcome.status) {
      case 'registered':
        logger.info('certificate registered', outcome);
        countOutcome(metrics, 'DeviceRegistered');
        return;
      case 'rejected':
        logger.warn('certificate rejected', outcome);
        countOutcome(metrics, 'RegistrationRejected', { reason: outcome.reason });
        return;
      case 'ignored':
        logger.warn('registration event ignored', outcome);
        countOutcome(metrics, 'RegistrationIgnored', { reason: outcome.reason });
        return;
      default:
        logger.debug('duplicate registration event', outcome);
        countOutcome(metrics, 'RegistrationDuplicate');
    }
  };

  return createQueueHandler(deps, {
    name: 'Registration',
    body: CertificateRegisteredEvent,
    process: async (event, record, now) => {
      report(await registerCertificate(event, record.messageId, registrationDeps, now));
    },
  });
}
