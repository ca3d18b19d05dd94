/**
 * One certificate an expiry report lists (in the report files, and in the sweep's committed pages),
 * apart from the sweep's event schemas: the store's run items read it without building those.
 */
import * as z from './zod';

/** An expiry class: `EXPIRED`, `EXPIRING_<days>D` or `TOO_OLD`. */
export const ExpiryClassSchema = z.custom<'EXPIRED' | 'TOO_OLD' | `EXPIRING_${number}D`>(
  (value) => typeof value === 'string' && /^(EXPIRED|EXPIRING_\d+D|TOO_OLD)$/.test(value),
  'must be EXPIRED, EXPIRING_<days>D or TOO_OLD',
);

/** One certificate an expiry report lists (in the report files, and in the sweep's committed pages). */
export const AtRiskCertificateSchema = z.object({
  certificateId: z.string(),
  kind: z.enum(['DEVICE', 'CLAIM', 'CA']),
  status: z.string(),
  serial: z.optional(z.string()),
  thingName: z.optional(z.string()),
  /** The device's state when the report was built (absent for claim and CA certificates). */
  deviceState: z.optional(z.string()),
  notBefore: z.string(),
  notAfter: z.string(),
  daysLeft: z.number(),
  ageDays: z.number(),
  class: ExpiryClassSchema,
});
