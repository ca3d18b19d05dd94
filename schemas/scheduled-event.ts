/**
 * The EventBridge scheduled event that starts a scheduled function (the expiry sweep, the
 * reconciliation), in a module of its own: each function's manual-run schema stays in its own file.
 * @see https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html
 * @see https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-events-structure.html
 */
import * as z from './zod';

/**
 * EventBridge's scheduled event: Powertools' `EventBridgeSchema` field for field, with `detail-type`
 * and `source` fixed to a schedule's. Written here in zod's `mini` build because Powertools' schema
 * is built with the classic one, which would put all of classic zod back into the two scheduled
 * functions (./zod.ts says what that costs). `test/unit/zod-mini.test.ts` holds it to Powertools'
 * answers. `time` is the scheduled instant, identical on every retry.
 */
export const ScheduledEventSchema = z.object({
  version: z.string(),
  id: z.string(),
  source: z.literal('aws.events'),
  account: z.string(),
  time: z.iso.datetime(),
  region: z.string(),
  resources: z.array(z.string()),
  'detail-type': z.literal('Scheduled Event'),
  detail: z.unknown(),
  'replay-name': z.optional(z.string()),
});

export type ScheduledEvent = z.infer<typeof ScheduledEventSchema>;

/** Whether an event is meant as EventBridge's (it carries `source` or `detail-type`). */
function looksScheduled(input: unknown): boolean {
  return typeof input === 'object' && input !== null && ('source' in input || 'detail-type' in input);
}

/**
 * What a scheduled function takes: the scheduled event, or the manual invocation `manual` describes.
 * Told apart by shape, then held to that one schema, so a mistake is reported against the event it
 * was meant as (`runId: Invalid input: expected string, received number`, `detail-type: …`) — a
 * plain union of the two could only say "Invalid input", or blame a scheduled event's fields on the
 * manual schema.
 */
export function scheduledOrManual<M extends z.ZodMiniType>(manual: M) {
  return z.pipe(
    z.unknown(),
    z.transform((input, context): ScheduledEvent | z.infer<M> => {
      const parsed = looksScheduled(input) ? ScheduledEventSchema.safeParse(input) : manual.safeParse(input);
      if (parsed.success) return parsed.data as ScheduledEvent | z.infer<M>;
      for (const issue of parsed.error.issues) {
        context.issues.push({ ...issue, input } as (typeof context.issues)[number]);
      }
      return z.NEVER;
    }),
  );
}
