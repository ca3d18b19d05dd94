/**
 * What starts or continues an inventory reconciliation: the EventBridge scheduled event (weekly),
 * a manual invocation, or a continuation message on `ReconcileQueue` (an SQS event).
 * @see https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html
 */
import { z } from 'zod';
import { ScheduledEventSchema } from './expiry-sweep';

const isoTime = z
  .string({ error: 'must be a string' })
  .refine((value) => !Number.isNaN(Date.parse(value)), 'must be an ISO-8601 time');

const runId = z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'must match [A-Za-z0-9._-]{1,128}');

/** A manual run: `{ "runId": "…" }` resumes that run, `{ "now": "…" }` starts one as of that instant. */
export const ManualReconcileEventSchema = z
  .object({ runId: runId.optional(), now: isoTime.optional() })
  .strict();

/** The body of a continuation message: the run to continue and the sequence it stopped at. */
export const ReconcileContinuationSchema = z
  .object({ runId, seq: z.number().int().min(0), now: isoTime })
  .strict();
export type ReconcileContinuation = z.infer<typeof ReconcileContinuationSchema>;

/** The SQS event delivering continuation messages (bodies are parsed one by one). */
export const ReconcileSqsEventSchema = z.object({
  Records: z.array(z.object({ messageId: z.string(), body: z.string() })).min(1),
});

export const ReconcileInventoryEventSchema = z.union([
  ScheduledEventSchema,
  ReconcileSqsEventSchema,
  ManualReconcileEventSchema,
]);
export type ReconcileInventoryEvent = z.infer<typeof ReconcileInventoryEventSchema>;
