/**
 * The producer side of the quarantine queue over SQS: every flow that finds a suspicious or failed
 * device sends a `QuarantineRequest` here (consumed by `quarantineDevice`). The request is validated
 * before it is sent; `requestId` is its dedup identity. The functions load it on their first
 * request (`queue-senders.ts`); what they call is in `quarantine-sender.ts`.
 */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { QuarantineRequest } from '../schemas/quarantine-request';
import { isTransientAwsError, PermanentError, TransientError, ValidationError } from './errors';
import type { QuarantineSender } from './quarantine-sender';

export type { QuarantineSender } from './quarantine-sender';

export class QuarantineQueue implements QuarantineSender {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
  ) {}

  /**
   * Sends one request.
   * @throws ValidationError for a request that breaks the schema, TransientError when SQS may
   * accept it later, PermanentError otherwise.
   */
  async send(request: QuarantineRequest): Promise<void> {
    const parsed = QuarantineRequest.safeParse(request);
    if (!parsed.success) {
      throw new ValidationError(
        parsed.error.issues.map((issue) => ({
          field: issue.path.map(String).join('.') || 'request',
          rule: issue.message,
        })),
      );
    }
    try {
      await this.client.send(
        new SendMessageCommand({
          QueueUrl: this.queueUrl,
          MessageBody: JSON.stringify(parsed.data),
          MessageAttributes: {
            reason: { DataType: 'String', StringValue: parsed.data.reason },
            source: { DataType: 'String', StringValue: parsed.data.source },
          },
        }),
      );
    } catch (error) {
      if (isTransientAwsError(error))
        throw new TransientError('SendMessage to the quarantine queue failed', { cause: error });
      throw new PermanentError('SendMessage to the quarantine queue was refused', { cause: error });
    }
  }
}
