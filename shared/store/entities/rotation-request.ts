/**
 * A rotation request (`ROTATION#<serial>` / `REQUEST#<sha256(SPKI)>`, TTL'd): one device, one new
 * key. Claimed with a lease before CreateCertificateFromCsr, then holds the issued certificate id
 * and, once answered, the answer.
 */
import * as z from '../../../schemas/zod';
import type { Item } from '../client';
import { fromItem } from '../item';

/** The answer a rotation request got (re-published as is on a repeat). */
export type RotationAnswer =
  | { accepted: true; certificateId: string; rotationDeadline: string }
  | { accepted: false; reason: string; message: string };

export interface RotationRequestRecord {
  serial: string;
  publicKeyHash: string;
  owner: string;
  leaseUntil: string;
  done: boolean;
  /** Set as soon as CreateCertificateFromCsr returned (before anything else is done with it). */
  certificateId?: string;
  answer?: RotationAnswer;
  createdAt: string;
}

const answerSchema: z.ZodMiniType<RotationAnswer> = z.lazy(() =>
  z.union([
    z.looseObject({ accepted: z.literal(true), certificateId: z.string(), rotationDeadline: z.string() }),
    z.looseObject({ accepted: z.literal(false), reason: z.string(), message: z.string() }),
  ]),
);

const rotationRequestSchema: z.ZodMiniType<RotationRequestRecord> = z.lazy(() =>
  z.looseObject({
    serial: z.string(),
    publicKeyHash: z.string(),
    owner: z.string(),
    leaseUntil: z.string(),
    done: z.boolean(),
    certificateId: z.optional(z.string()),
    answer: z.optional(answerSchema),
    createdAt: z.string(),
  }),
);

export function rotationRequestFromItem(item: Item): RotationRequestRecord {
  return fromItem(rotationRequestSchema, 'rotation request', item);
}
