/**
 * What starts an expiry sweep: the EventBridge scheduled event (`rate(1 day)`), or a manual
 * invocation that names the run to resume and/or the instant to classify against.
 * @see https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html
 */

import { ScheduledEventSchema, scheduledOrManual } from './scheduled-event';
import * as z from './zod';

export { ScheduledEventSchema };

const isoTime = z
  .string({ error: 'must be a string' })
  .check(z.refine((value) => !Number.isNaN(Date.parse(value)), 'must be an ISO-8601 time'));

/** A manual run: `{ "runId": "…" }` resumes that run, `{ "now": "…" }` sweeps as of that instant. */
export const ManualSweepEventSchema = z.strictObject({
  runId: z.optional(z.string().check(z.regex(/^[A-Za-z0-9._-]{1,128}$/, 'must match [A-Za-z0-9._-]{1,128}'))),
  now: z.optional(isoTime),
});

export const ExpirySweepEventSchema = scheduledOrManual(ManualSweepEventSchema);
export type ExpirySweepEvent = z.infer<typeof ExpirySweepEventSchema>;

export { AtRiskCertificateSchema, ExpiryClassSchema } from './at-risk-certificate';
