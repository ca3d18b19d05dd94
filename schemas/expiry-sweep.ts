/**
 * What starts an expiry sweep: the EventBridge scheduled event (`rate(1 day)`), or a manual
 * invocation that names the run to resume and/or the instant to classify against.
 * @see https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html
 */
import { EventBridgeSchema } from '@aws-lambda-powertools/parser/schemas/eventbridge';
import * as z from 'zod';

const isoTime = z
  .string({ error: 'must be a string' })
  .refine((value) => !Number.isNaN(Date.parse(value)), 'must be an ISO-8601 time');

/**
 * EventBridge's scheduled event (Powertools' `EventBridgeSchema`); `time` is the scheduled instant,
 * identical on every retry.
 */
export const ScheduledEventSchema = EventBridgeSchema.extend({
  'detail-type': z.literal('Scheduled Event'),
  source: z.literal('aws.events'),
});

/** A manual run: `{ "runId": "…" }` resumes that run, `{ "now": "…" }` sweeps as of that instant. */
export const ManualSweepEventSchema = z
  .object({
    runId: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,128}$/, 'must match [A-Za-z0-9._-]{1,128}')
      .optional(),
    now: isoTime.optional(),
  })
  .strict();

export const ExpirySweepEventSchema = z.union([ScheduledEventSchema, ManualSweepEventSchema]);
export type ExpirySweepEvent = z.infer<typeof ExpirySweepEventSchema>;

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
  serial: z.string().optional(),
  thingName: z.string().optional(),
  /** The device's state when the report was built (absent for claim and CA certificates). */
  deviceState: z.string().optional(),
  notBefore: z.string(),
  notAfter: z.string(),
  daysLeft: z.number(),
  ageDays: z.number(),
  class: ExpiryClassSchema,
});
