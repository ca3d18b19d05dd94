/**
 * The producer side of the quarantine queue: every flow that finds a suspicious or failed device
 * sends a `QuarantineRequest` here (consumed by `quarantineDevice`). The request is validated
 * before it is sent; `requestId` is its dedup identity.
 */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { QuarantineRequest } from '../schemas/quarantine-request';
import { isTransientAwsError, PermanentError, TransientError, ValidationError } from './errors';

export interface QuarantineSender {
  send(request: QuarantineRequest): Promise<void>;
}

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

/** Where a claimed effect is recorded (a `RegistrationStore` fits). */
export interface EffectClaims {
  claimEffect(
    identity: string,
    owner: string,
    options: { now: string; leaseSeconds: number; ttlSeconds: number },
  ): Promise<'acquired' | 'held' | 'done'>;
  completeEffect(identity: string, now: string): Promise<void>;
}

export type RequestOutcome = 'sent' | 'already-sent' | 'in-flight';

/**
 * Sends the quarantine request of one suspicion at most once per `ttlSeconds`, whichever event or
 * redelivery finds it: the suspicion's identity is claimed by the delivery (`owner`, its SQS
 * message id) first, the request sent, then the claim completed. A delivery that fails after the
 * claim is redelivered with the same owner and sends again with the same `requestId` (the worker
 * deduplicates on it); other deliveries of the same suspicion stand back while the claim is held.
 */
export async function requestQuarantineOnce(
  deps: { claims: EffectClaims; queue: QuarantineSender },
  input: {
    identity: string;
    owner: string;
    now: string;
    leaseSeconds: number;
    ttlSeconds: number;
    request: QuarantineRequest;
  },
): Promise<RequestOutcome> {
  const claim = await deps.claims.claimEffect(`quarantine:${input.identity}`, input.owner, input);
  if (claim === 'done') return 'already-sent';
  if (claim === 'held') return 'in-flight';
  await deps.queue.send(input.request);
  await deps.claims.completeEffect(`quarantine:${input.identity}`, input.now);
  return 'sent';
}
