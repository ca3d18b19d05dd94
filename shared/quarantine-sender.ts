/**
 * What a flow that finds a suspicious or failed device calls to have it quarantined: a
 * `QuarantineSender` (the SQS queue of `quarantine-queue.ts`, loaded on first use), and
 * `requestQuarantineOnce`, which sends one suspicion's request at most once. No SQS client here, so
 * a function's cold start does not load one.
 */
import type { QuarantineRequest } from '../schemas/quarantine-request';

export interface QuarantineSender {
  send(request: QuarantineRequest): Promise<void>;
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
