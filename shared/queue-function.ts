/**
 * What every queue-fed function composes from its environment first, once per container: the
 * config (with the queue URLs it cannot run without), the table's store, its logger and metrics, and
 * the dead-letter queue its consumer sends what can never succeed to.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { SQSClient } from '@aws-sdk/client-sqs';
import { documentClient } from './aws/clients';
import { type Config, loadConfig } from './config';
import { SqsDeadLetterQueue } from './dlq/dead-letter-sender';
import { ConfigError } from './errors';
import { createLogger, createMetrics } from './logging';
import { QuarantineQueue } from './quarantine-queue';
import { ProvisioningStore } from './store/provisioning-store';

export interface QueueFunctionBase {
  config: Config;
  store: ProvisioningStore;
  sqs: SQSClient;
  logger: Logger;
  metrics: Metrics;
  deadLetters: SqsDeadLetterQueue;
}

/**
 * @throws ConfigError when a required queue URL is missing (QUARANTINE_QUEUE_URL first, when the
 *   function sends quarantine requests, then DEAD_LETTER_QUEUE_URL).
 */
export function queueFunctionBase(
  functionName: string,
  options: { quarantine: true },
): QueueFunctionBase & { quarantine: QuarantineQueue };
export function queueFunctionBase(functionName: string): QueueFunctionBase;
export function queueFunctionBase(
  functionName: string,
  options: { quarantine?: boolean } = {},
): QueueFunctionBase & { quarantine?: QuarantineQueue } {
  const config = loadConfig(process.env);
  const quarantineQueueUrl = options.quarantine
    ? required(config.quarantineQueueUrl, 'QUARANTINE_QUEUE_URL')
    : undefined;
  const deadLetterQueueUrl = required(config.deadLetterQueueUrl, 'DEAD_LETTER_QUEUE_URL');
  const sqs = new SQSClient({ maxAttempts: 5 });
  return {
    config,
    store: new ProvisioningStore(documentClient(), config.tableName),
    sqs,
    logger: createLogger(functionName),
    metrics: createMetrics(functionName),
    deadLetters: new SqsDeadLetterQueue(sqs, deadLetterQueueUrl),
    ...(quarantineQueueUrl ? { quarantine: new QuarantineQueue(sqs, quarantineQueueUrl) } : {}),
  };
}

function required(value: string | undefined, variable: string): string {
  if (!value) throw new ConfigError([`${variable}: is required`]);
  return value;
}
