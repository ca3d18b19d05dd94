/**
 * The registration handler, built around its dependencies (`handler.ts` composes them from the
 * environment): one `registerCertificate` per RegistrationQueue record on the shared SQS consumer,
 * outcomes logged and counted once. A body that is not a JITR event goes to RegistrationDLQ at once;
 * any error (AWS, the device policy missing, the store) fails the record, to be retried and then
 * dead-lettered by the queue's redrive policy.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { CertificateRegisteredEvent } from '../../schemas/iot-events';
import type { DeadLetterSender } from '../../shared/dlq/dead-letter-sender';
import { instantAt } from '../../shared/domain/provisioning-rules';
import { countOutcome } from '../../shared/logging';
import { createSqsConsumer } from '../../shared/sqs-consumer';
import { type RegistrationDeps, type RegistrationOutcome, registerCertificate } from './registration';

export interface RegisterCertificateDeps extends Omit<RegistrationDeps, 'newId'> {
  logger: Logger;
  metrics: Metrics;
  /** RegistrationDLQ: where an event that is not a JITR event goes at once. */
  deadLetters: DeadLetterSender;
  /** Epoch milliseconds; tests freeze it. */
  clock?: () => number;
  newId?: () => string;
}

export function createHandler(deps: RegisterCertificateDeps) {
  const { logger, metrics } = deps;
  const clock = deps.clock ?? Date.now;
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

  return createSqsConsumer({
    name: 'Registration',
    logger,
    metrics,
    body: CertificateRegisteredEvent,
    invalid: { action: 'dead-letter', deadLetters: deps.deadLetters },
    process: async (event, { record }) => {
      const now = instantAt(clock());
      report(await registerCertificate(event, record.messageId, registrationDeps, now));
    },
  });
}
