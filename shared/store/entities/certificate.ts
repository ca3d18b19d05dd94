/**
 * The certificate record (`CERT#<certificateId>` / `CERT`) of a device, claim or CA certificate,
 * indexed by expiry day (ExpiryIndex) and issue month (IssuedIndex); while retirement work or a
 * quarantine is pending it also sits in its own StateIndex partitions. Its item, its checked
 * reading, and the conditional writes several flows share.
 */
import * as z from '../../../schemas/zod';
import type { StoreCertificateFact } from '../../domain/reconciliation';
import type { Item, PutItem, StoreClient, WriteItem } from '../client';
import { fromItem, normalizeIso, stripUndefined } from '../item';
import { keys } from '../keys';
import {
  CERTIFICATE_KINDS,
  CERTIFICATE_SOURCES,
  CERTIFICATE_STATUSES,
  type CertificateRecord,
  type Retirement,
} from '../records';
import { quarantineInfoSchema } from './device';

const kind = z.enum(CERTIFICATE_KINDS);
const status = z.enum(CERTIFICATE_STATUSES);

const retirementSchema: z.ZodMiniType<Retirement> = z.lazy(() =>
  z.looseObject({
    step: z.enum(['DEACTIVATE', 'DELETE', 'REVOKE']),
    dueAt: z.string(),
    deleteAfter: z.optional(z.string()),
    serial: z.string(),
    thingName: z.optional(z.string()),
    reason: z.enum(['ROTATED', 'ROTATION_ABORTED']),
  }),
);

const certificateSchema: z.ZodMiniType<CertificateRecord> = z.lazy(() =>
  z.looseObject({
    certificateId: z.string(),
    kind,
    status,
    source: z.enum(CERTIFICATE_SOURCES),
    serial: z.optional(z.string()),
    thingName: z.optional(z.string()),
    issuer: z.string(),
    subject: z.optional(z.string()),
    notBefore: z.string(),
    notAfter: z.string(),
    publicKeyHash: z.optional(z.string()),
    quarantine: z.optional(quarantineInfoSchema),
    retirement: z.optional(retirementSchema),
    createdAt: z.string(),
    updatedAt: z.string(),
  }),
);

/**
 * A certificate as the ExpiryIndex and IssuedIndex hold it: they project only these attributes
 * (`NonKeyAttributes` in serverless.yml), so a record read from them is this much of one.
 */
export type IndexedCertificate = Pick<
  CertificateRecord,
  | 'certificateId'
  | 'kind'
  | 'status'
  | 'source'
  | 'issuer'
  | 'notBefore'
  | 'notAfter'
  | 'serial'
  | 'thingName'
>;

const indexedCertificateSchema: z.ZodMiniType<IndexedCertificate> = z.lazy(() =>
  z.looseObject({
    certificateId: z.string(),
    kind,
    status,
    source: z.enum(CERTIFICATE_SOURCES),
    issuer: z.string(),
    notBefore: z.string(),
    notAfter: z.string(),
    serial: z.optional(z.string()),
    thingName: z.optional(z.string()),
  }),
);

/** What reconciliation reads of a certificate (a projection: `CERTIFICATE_FACT_PROJECTION`). */
const certificateFactSchema: z.ZodMiniType<StoreCertificateFact> = z.lazy(() =>
  z.object({
    certificateId: z.string(),
    kind,
    status: z.string(),
    serial: z.optional(z.string()),
  }),
);

export const CERTIFICATE_FACT_PROJECTION = 'PK, SK, certificateId, kind, #status, serial';

/** The full certificate item: record, expiry index and issued index keys. */
export function certificateItem(record: CertificateRecord): Item {
  const notAfter = normalizeIso(record.notAfter);
  const notBefore = normalizeIso(record.notBefore);
  return {
    ...keys.certificate(record.certificateId),
    ...keys.expiryIndex(notAfter, record.certificateId),
    ...keys.issuedIndex(notBefore, record.certificateId, record.kind),
    ...stripUndefined({ ...record, notAfter, notBefore }),
  };
}

export function certificateFromItem(item: Item): CertificateRecord {
  return fromItem(certificateSchema, 'certificate', item);
}

/** A certificate read from the ExpiryIndex or the IssuedIndex. */
export function indexedCertificateFromItem(item: Item): IndexedCertificate {
  return fromItem(indexedCertificateSchema, 'certificate (index projection)', item);
}

export function certificateFactFromItem(item: Item): StoreCertificateFact {
  return fromItem(certificateFactSchema, 'certificate', item);
}

/**
 * Writes a certificate item that must not exist yet (with `extra` attributes beside the record);
 * returns the existing item when it fails.
 */
export function certificateCreate(record: CertificateRecord, extra: Item = {}): { Put: PutItem } {
  return {
    Put: {
      Item: { ...certificateItem(record), ...extra },
      ConditionExpression: 'attribute_not_exists(PK)',
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    },
  };
}

/** Puts retirement work on a certificate record (status, work item, StateIndex keys). */
export function retirementUpdate(
  retire: { certificateId: string; status: CertificateRecord['status']; retirement: Retirement },
  now: string,
): WriteItem {
  const index = keys.retirementIndex(retire.retirement.dueAt, retire.certificateId);
  return {
    Update: {
      Key: keys.certificate(retire.certificateId),
      UpdateExpression:
        'SET #status = :status, retirement = :retirement, GSI2PK = :g2pk, GSI2SK = :g2sk, updatedAt = :now',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: {
        ':status': retire.status,
        ':retirement': retire.retirement,
        ':g2pk': index.GSI2PK,
        ':g2sk': index.GSI2SK,
        ':now': now,
      },
    },
  };
}

/** The certificate record of `certificateId` (one strongly consistent GetItem), or undefined. */
export function readCertificate(
  db: StoreClient,
  certificateId: string,
): Promise<CertificateRecord | undefined> {
  return db.readAs(keys.certificate(certificateId), certificateFromItem);
}
