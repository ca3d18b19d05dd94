/**
 * Exactly-once markers and effect leases (`DEDUP#<identity>` / `DEDUP`, TTL'd).
 *
 * - A marker says an effect happened (`markOnce`, a transition's dedup, a quarantine request).
 * - An effect claim adds an owner (an SQS message id), a lease and `done`, for effects outside
 *   DynamoDB that must happen once per identity: one delivery at a time does them, a redelivery of
 *   the same message resumes them, and `done` answers every later one.
 */
import * as z from '../../../schemas/zod';
import type { Item, PutItem, WriteItem } from '../client';
import { epochSeconds, fromItem, plusSeconds } from '../item';
import { keys } from '../keys';

export interface DedupRecord {
  identity: string;
  createdAt: string;
  /** Effect claims only: who holds the lease, until when, and whether the effect is done. */
  owner?: string;
  leaseUntil?: string;
  done?: boolean;
  completedAt?: string;
}

const dedupSchema: z.ZodMiniType<DedupRecord> = z.lazy(() =>
  z.looseObject({
    identity: z.string(),
    createdAt: z.string(),
    owner: z.optional(z.string()),
    leaseUntil: z.optional(z.string()),
    done: z.optional(z.boolean()),
    completedAt: z.optional(z.string()),
  }),
);

/** A marker item for `identity`, kept `ttlSeconds` after `now`. */
export function dedupItem(identity: string, ttlSeconds: number, now: string): Item {
  return { ...keys.dedup(identity), identity, createdAt: now, ttl: epochSeconds(now) + ttlSeconds };
}

/** Writes the marker; fails (with the old image) when it is already there. */
export function dedupPut(identity: string, ttlSeconds: number, now: string): WriteItem {
  return {
    Put: {
      Item: dedupItem(identity, ttlSeconds, now),
      ConditionExpression: 'attribute_not_exists(PK)',
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    },
  };
}

export function dedupFromItem(item: Item): DedupRecord {
  return fromItem(dedupSchema, 'dedup', item);
}

/**
 * Claims the effect `identity` for `owner`: granted when new, when the lease ran out, or when
 * `owner` already holds it; fails (with the old image) while another owner holds it or once done.
 */
export function effectClaimPut(
  identity: string,
  owner: string,
  options: { now: string; leaseSeconds: number; ttlSeconds: number },
): { Put: PutItem } {
  return {
    Put: {
      Item: {
        ...keys.dedup(identity),
        identity,
        owner,
        leaseUntil: plusSeconds(options.now, options.leaseSeconds),
        done: false,
        createdAt: options.now,
        ttl: epochSeconds(options.now) + options.ttlSeconds,
      },
      ConditionExpression:
        'attribute_not_exists(PK) OR (done = :false AND (leaseUntil <= :now OR #owner = :owner))',
      ExpressionAttributeNames: { '#owner': 'owner' },
      ExpressionAttributeValues: { ':false': false, ':now': options.now, ':owner': owner },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    },
  };
}
