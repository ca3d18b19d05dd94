/**
 * The SQS senders of a function — the dead-letter queue a consumer sends what can never succeed to,
 * and the quarantine queue for clone or takeover evidence — loaded on the first send. The SQS
 * client, its commands and the quarantine request's schema are chunks beside the handler (dynamic
 * `import()`, serverless.yml `splitting`) that a cold start neither parses nor runs, and that an
 * invocation with nothing to dead-letter or quarantine never loads. One SQS client serves both.
 */
import type { SQSClient, SQSClientConfig } from '@aws-sdk/client-sqs';
import type { DeadLetterSender } from './dlq/dead-letter-sender';
import { onFirstUse } from './on-first-use';
import type { QuarantineSender } from './quarantine-sender';

/** The SQS client of a function, created on first use. */
export type SqsOnFirstUse = () => Promise<SQSClient>;

export function sqsOnFirstUse(options: SQSClientConfig): SqsOnFirstUse {
  return onFirstUse(async () => {
    const { SQSClient } = await import('@aws-sdk/client-sqs');
    return new SQSClient(options);
  });
}

/** `SqsDeadLetterQueue` on `queueUrl`, loaded with the client on the first message sent. */
export function deadLettersOnFirstUse(sqs: SqsOnFirstUse, queueUrl: string): DeadLetterSender {
  const sender = onFirstUse(async () => {
    const [client, { SqsDeadLetterQueue }] = await Promise.all([sqs(), import('./dlq/dead-letter-sender')]);
    return new SqsDeadLetterQueue(client, queueUrl);
  });
  return { send: async (record, reason) => (await sender()).send(record, reason) };
}

/** `QuarantineQueue` on `queueUrl`, loaded with the client on the first request sent. */
export function quarantineOnFirstUse(sqs: SqsOnFirstUse, queueUrl: string): QuarantineSender {
  const sender = onFirstUse(async () => {
    const [client, { QuarantineQueue }] = await Promise.all([sqs(), import('./quarantine-queue')]);
    return new QuarantineQueue(client, queueUrl);
  });
  return { send: async (request) => (await sender()).send(request) };
}
