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
