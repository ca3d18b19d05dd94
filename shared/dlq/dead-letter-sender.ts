/**
 * Sends a message that can never be processed to its queue's DLQ at once — the same DLQ the
 * queue's RedrivePolicy names (`DEAD_LETTER_QUEUE_URL: !Ref <Queue>DLQ` in serverless.yml) — with
 * its body and message attributes as they were, plus the reason and the source message id, so
 * `fleetgate dlq list|replay|discard` finds it like any redriven message.
 */
import { type MessageAttributeValue, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';
import { isTransientAwsError, PermanentError, TransientError } from '../errors';

/** Where a consumer puts a message that can never be processed. */
export interface DeadLetterSender {
  /** Sends `record` (body and attributes intact) with `reason`; throws when the DLQ did not take it. */
  send(record: SQSRecord, reason: string): Promise<void>;
}

/** Message attributes the DLQ copy carries besides the original ones (SQS allows 10 in all). */
export const DEAD_LETTER_REASON = 'fleetgate-dead-letter-reason';
export const DEAD_LETTER_SOURCE_MESSAGE = 'fleetgate-source-message-id';
const MAX_ATTRIBUTES = 10;
const MAX_REASON = 1024;

export class SqsDeadLetterQueue implements DeadLetterSender {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
  ) {}

  /** @throws TransientError when SQS may take it later, PermanentError when it refused it. */
  async send(record: SQSRecord, reason: string): Promise<void> {
    try {
      await this.client.send(
        new SendMessageCommand({
          QueueUrl: this.queueUrl,
          MessageBody: record.body,
          MessageAttributes: deadLetterAttributes(record, reason),
        }),
      );
    } catch (error) {
      if (isTransientAwsError(error))
        throw new TransientError('SendMessage to the dead-letter queue failed', { cause: error });
      throw new PermanentError('SendMessage to the dead-letter queue was refused', { cause: error });
    }
  }
}

/** The record's own attributes (Lambda's shape back to SQS's), then the reason and source id while room is left. */
export function deadLetterAttributes(
  record: SQSRecord,
  reason: string,
): Record<string, MessageAttributeValue> {
  const attributes: Record<string, MessageAttributeValue> = {};
  for (const [name, value] of Object.entries(record.messageAttributes ?? {})) {
    if (name === DEAD_LETTER_REASON || name === DEAD_LETTER_SOURCE_MESSAGE) continue;
    attributes[name] = {
      DataType: value.dataType,
      ...(value.stringValue !== undefined ? { StringValue: value.stringValue } : {}),
      ...(value.binaryValue !== undefined ? { BinaryValue: Buffer.from(value.binaryValue, 'base64') } : {}),
    };
  }
  const extra: Array<[string, string]> = [
    [DEAD_LETTER_REASON, reason.slice(0, MAX_REASON)],
    [DEAD_LETTER_SOURCE_MESSAGE, record.messageId],
  ];
  for (const [name, value] of extra) {
    if (Object.keys(attributes).length >= MAX_ATTRIBUTES) break;
    attributes[name] = { DataType: 'String', StringValue: value };
  }
  return attributes;
}
