/**
 * Provisioning by trusted user: an installer's bindings (`INSTALLER#<installer>` / `BIND#SERIAL#…`
 * or `BIND#BATCH#…`), its per-minute claim counter (`RATE#<minute>`, TTL) and the record of each
 * temporary claim issued (`TEMPCLAIM#<claimCertificateId>` / `TEMPCLAIM`): who asked, for which
 * serial, through which template, until when. Items, checked readings and the writes.
 */
import * as z from '../../../schemas/zod';
import type { TemporaryClaimFacts } from '../../domain/provisioning-rules';
import type { Item, PutItem, WriteItem } from '../client';
import { epochSeconds, fromItem } from '../item';
import { keys, minuteBucket } from '../keys';
import { boundedCounterIncrement } from './claim-window';

/** A temporary-claim record is kept this long after the claim expired (audit; the history keeps it for good). */
const TEMPORARY_CLAIM_TTL_SECONDS = 90 * 86_400;

export interface InstallerBinding {
  installer: string;
  scope: 'SERIAL' | 'BATCH';
  /** The serial, or the batch. */
  value: string;
  boundBy: string;
  boundAt: string;
}

const bindingSchema: z.ZodMiniType<InstallerBinding> = z.lazy(() =>
  z.looseObject({
    installer: z.string(),
    scope: z.enum(['SERIAL', 'BATCH']),
    value: z.string(),
    boundBy: z.string(),
    boundAt: z.string(),
  }),
);

export interface TemporaryClaimRecord extends TemporaryClaimFacts {
  claimCertificateId: string;
  issuedAt: string;
  /** The request that asked for it (API Gateway's request id), for the audit trail. */
  requestId?: string;
}

const temporaryClaimSchema: z.ZodMiniType<TemporaryClaimRecord> = z.lazy(() =>
  z.looseObject({
    claimCertificateId: z.string(),
    serial: z.string(),
    installer: z.string(),
    expiration: z.string(),
    templateName: z.string(),
    issuedAt: z.string(),
    requestId: z.optional(z.string()),
  }),
);

export function bindingItem(binding: InstallerBinding): Item {
  return { ...keys.installerBinding(binding.installer, binding.scope, binding.value), ...binding };
}

export function bindingFromItem(item: Item): InstallerBinding {
  return fromItem(bindingSchema, 'installer binding', item);
}

/** A binding written once; binding again keeps the first (who bound it, and when). */
export function bindingPut(binding: InstallerBinding): PutItem {
  return { Item: bindingItem(binding), ConditionExpression: 'attribute_not_exists(PK)' };
}

export function temporaryClaimFromItem(item: Item): TemporaryClaimRecord {
  return fromItem(temporaryClaimSchema, 'temporary claim', item);
}

/** The record of a claim just issued; a claim certificate is recorded once. */
export function temporaryClaimPut(record: TemporaryClaimRecord): WriteItem {
  return {
    Put: {
      Item: {
        ...keys.temporaryClaim(record.claimCertificateId),
        ...record,
        claimCertificateId: record.claimCertificateId.toLowerCase(),
        ttl: epochSeconds(record.expiration) + TEMPORARY_CLAIM_TTL_SECONDS,
      },
      ConditionExpression: 'attribute_not_exists(PK)',
    },
  };
}

/** Counts one claim in the installer's window of `now`, at most `limitPerMinute`. */
export function installerRateIncrement(installer: string, now: string, limitPerMinute: number) {
  return boundedCounterIncrement(keys.installerRate(installer, minuteBucket(now)), now, limitPerMinute);
}
