/**
 * What starts or continues an inventory reconciliation: the EventBridge scheduled event (weekly) or
 * a manual invocation (the schedule entry point), or a continuation message on `ReconcileQueue`
 * (the queue entry point, one body per SQS record).
 * @see https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html
 */

import { scheduledOrManual } from './scheduled-event';
import * as z from './zod';

const isoTime = z
  .string({ error: 'must be a string' })
  .check(z.refine((value) => !Number.isNaN(Date.parse(value)), 'must be an ISO-8601 time'));

const runId = z.string().check(z.regex(/^[A-Za-z0-9._-]{1,128}$/, 'must match [A-Za-z0-9._-]{1,128}'));

/** A manual run: `{ "runId": "…" }` resumes that run, `{ "now": "…" }` starts one as of that instant. */
export const ManualReconcileEventSchema = z.strictObject({
  runId: z.optional(runId),
  now: z.optional(isoTime),
});

/** The body of a continuation message: the run to continue and the sequence it stopped at. */
export const ReconcileContinuationSchema = z.strictObject({
  runId,
  seq: z.number().check(z.int(), z.gte(0)),
  now: isoTime,
});
export type ReconcileContinuation = z.infer<typeof ReconcileContinuationSchema>;

/** What the schedule entry point takes: the scheduled event or a manual invocation. */
export const ReconcileRunEventSchema = scheduledOrManual(ManualReconcileEventSchema);
export type ReconcileRunEvent = z.infer<typeof ReconcileRunEventSchema>;
