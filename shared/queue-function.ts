/**
 * What every queue-fed function composes from its environment first, once per container: the
 * config (with the queue URLs it cannot run without), the table's store, its logger and metrics, and
 * the dead-letter queue its consumer sends what can never succeed to (with the quarantine queue,
 * loaded on the first send: `queue-senders.ts`).
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { documentClient } from './aws/clients';
import { type Config, loadConfig } from './config';
import type { DeadLetterSender } from './dlq/dead-letter-sender';
import { ConfigError } from './errors';
import { createLogger, createMetrics } from './logging';
import type { QuarantineSender } from './quarantine-sender';
import { deadLettersOnFirstUse, quarantineOnFirstUse, sqsOnFirstUse } from './queue-senders';
import { ProvisioningStore } from './store/provisioning-store';

export interface QueueFunctionBase {
  config: Config;
  store: ProvisioningStore;
  logger: Logger;
  metrics: Metrics;
  deadLetters: DeadLetterSender;
}

/**
 * @throws ConfigError when a required queue URL is missing (QUARANTINE_QUEUE_URL first, when the
 *   function sends quarantine requests, then DEAD_LETTER_QUEUE_URL).
 */
export function queueFunctionBase(
  functionName: string,
  options: { quarantine: true },
): QueueFunctionBase & { quarantine: QuarantineSender };
export function queueFunctionBase(functionName: string): QueueFunctionBase;
export function queueFunctionBase(
  functionName: string,
  options: { quarantine?: boolean } = {},
): QueueFunctionBase & { quarantine?: QuarantineSender } {
  const config = loadConfig(process.env);
  const quarantineQueueUrl = options.quarantine
    ? required(config.quarantineQueueUrl, 'QUARANTINE_QUEUE_URL')
    : undefined;
  const deadLetterQueueUrl = required(config.deadLetterQueueUrl, 'DEAD_LETTER_QUEUE_URL');
  const sqs = sqsOnFirstUse({ maxAttempts: 5 });
  return {
    config,
    store: new ProvisioningStore(documentClient(), config.tableName),
    logger: createLogger(functionName),
    metrics: createMetrics(functionName),
    deadLetters: deadLettersOnFirstUse(sqs, deadLetterQueueUrl),
    ...(quarantineQueueUrl ? { quarantine: quarantineOnFirstUse(sqs, quarantineQueueUrl) } : {}),
  };
}

function required(value: string | undefined, variable: string): string {
  if (!value) throw new ConfigError([`${variable}: is required`]);
  return value;
}
