/**
 * The registration consumer, built around its dependencies (`handler.ts` composes them from the
 * environment): one `registerCertificate` per SQS record, outcomes logged and counted once.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { SQSRecord } from 'aws-lambda';
import { formatIssues } from '../../schemas/issues';
import { CertificateRegisteredEvent, parseBody } from '../../schemas/registration-events';
import type { Instant } from '../../shared/domain/provisioning-rules';
import { countOutcome } from '../../shared/logging';
import { createSqsConsumer } from '../../shared/sqs-consumer';
import { type RegistrationDeps, type RegistrationOutcome, registerCertificate } from './registration';

export interface RegisterCertificateDeps extends Omit<RegistrationDeps, 'newId'> {
  logger: Logger;
  metrics: Metrics;
  /** Epoch milliseconds; tests freeze it. */
  clock?: () => number;
  newId?: () => string;
}

export function createHandler(deps: RegisterCertificateDeps) {
  const { logger, metrics } = deps;
  const clock = deps.clock ?? Date.now;
  const registrationDeps: RegistrationDeps = { ...deps, newId: deps.newId ?? randomUUID };

  const processRecord = async (record: SQSRecord): Promise<void> => {
    const parsed = parseBody(CertificateRegisteredEvent, record.body);
    if (!parsed.success) {
      logger.warn('registration event rejected', {
        messageId: record.messageId,
        reason: 'INVALID_EVENT',
        detail: formatIssues(parsed.issues),
      });
      countOutcome(metrics, 'RegistrationFailed', { reason: 'INVALID_EVENT' });
      return;
    }
    const epochMs = clock();
    const now: Instant = { iso: new Date(epochMs).toISOString(), epochMs };
    report(await registerCertificate(parsed.data, record.messageId, registrationDeps, now));
  };

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
    logger,
    processRecord,
    onRetryableFailure: (record, error) => {
      logger.warn('registration will be retried', { messageId: record.messageId, error });
      countOutcome(metrics, 'RegistrationRetried');
    },
    onPermanentFailure: (record, error, code) => {
      logger.error('registration failed permanently; acknowledged', {
        messageId: record.messageId,
        code,
        error,
      });
      countOutcome(metrics, 'RegistrationFailed', { reason: code });
    },
  });
}
