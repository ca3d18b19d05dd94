/**
 * The EventBridge scheduled event that starts a scheduled function (the expiry sweep, the
 * reconciliation), in a module of its own: each function's manual-run schema stays in its own file.
 * @see https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html
 */
import { EventBridgeSchema } from '@aws-lambda-powertools/parser/schemas/eventbridge';
import * as z from 'zod';

/**
 * EventBridge's scheduled event (Powertools' `EventBridgeSchema`); `time` is the scheduled instant,
 * identical on every retry.
 */
export const ScheduledEventSchema = EventBridgeSchema.extend({
  'detail-type': z.literal('Scheduled Event'),
  source: z.literal('aws.events'),
});
