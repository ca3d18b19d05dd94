/**
 * The claim-certificate rate window (`CLAIM#<claimCertificateId>#<minute>` / `CLAIM`): an atomic
 * per-minute counter of bindings, TTL'd a few minutes after its minute.
 */
import * as z from '../../../schemas/zod';
import type { Item, WriteItem } from '../client';
import { epochSeconds, fromItem } from '../item';
import { type Key, keys, minuteBucket } from '../keys';

/** How long a window's item outlives its minute. */
const WINDOW_TTL_SECONDS = 180;

const claimWindowSchema = z.lazy(() => z.looseObject({ count: z.number() }));

/** The key of the window `now` falls in. */
export function claimWindowKey(claimCertificateId: string, now: string) {
  return keys.claimWindow(claimCertificateId, minuteBucket(now));
}

/** Bindings counted in a window item. */
export function claimCountFromItem(item: Item): number {
  return fromItem(claimWindowSchema, 'claim window', item).count;
}

/**
 * Counts one binding in the window of `now`; the condition keeps the count at or below
 * `limitPerMinute` under any concurrency.
 */
export function claimWindowIncrement(
  claimCertificateId: string,
  now: string,
  limitPerMinute: number,
): WriteItem {
  return { Update: boundedCounterIncrement(claimWindowKey(claimCertificateId, now), now, limitPerMinute) };
}

/**
 * Adds one to the counter at `key` unless it has reached `limit` (the condition holds under any
 * concurrency); the item expires `WINDOW_TTL_SECONDS` after `now`. The claim window's and the
 * installer rate window's one shape.
 */
export function boundedCounterIncrement(key: Key, now: string, limit: number) {
  return {
    Key: key,
    UpdateExpression: 'ADD #count :one SET #ttl = if_not_exists(#ttl, :ttl)',
    ConditionExpression: 'attribute_not_exists(#count) OR #count < :limit',
    ExpressionAttributeNames: { '#count': 'count', '#ttl': 'ttl' },
    ExpressionAttributeValues: {
      ':one': 1,
      ':limit': limit,
      ':ttl': epochSeconds(now) + WINDOW_TTL_SECONDS,
    },
  };
}
