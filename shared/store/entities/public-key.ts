/**
 * Public-key ownership (`PUBKEY#<sha256 of SPKI>` / `PUBKEY`): one key = one device, the clone
 * detection of every binding.
 */
import * as z from '../../../schemas/zod';
import type { Item, StoreClient, WriteItem } from '../client';
import { fromItem } from '../item';
import { keys } from '../keys';
import type { PublicKeyRecord } from '../records';

const publicKeySchema: z.ZodMiniType<PublicKeyRecord> = z.lazy(() =>
  z.looseObject({
    publicKeyHash: z.string(),
    serial: z.string(),
    certificateId: z.string(),
    createdAt: z.string(),
  }),
);

export function publicKeyItem(record: PublicKeyRecord): Item {
  return { ...keys.publicKey(record.publicKeyHash), ...record };
}

export function publicKeyFromItem(item: Item): PublicKeyRecord {
  return fromItem(publicKeySchema, 'public key', item);
}

/**
 * Claims the key for `record.serial`: fails when another device owns it (the same device may bind
 * the same key again: same-key reprovisioning). Returns the owner's item when it fails.
 */
export function publicKeyClaim(record: PublicKeyRecord): WriteItem {
  return {
    Put: {
      Item: publicKeyItem(record),
      ConditionExpression: 'attribute_not_exists(PK) OR #serial = :serial',
      ExpressionAttributeNames: { '#serial': 'serial' },
      ExpressionAttributeValues: { ':serial': record.serial },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    },
  };
}

/** The owner of a public key (one strongly consistent GetItem), or undefined. */
export function readPublicKeyOwner(
  db: StoreClient,
  publicKeyHash: string,
): Promise<PublicKeyRecord | undefined> {
  return db.readAs(keys.publicKey(publicKeyHash), publicKeyFromItem);
}
