import { type ExpirySweepEvent, ExpirySweepEventSchema } from '../../schemas/expiry-sweep';
import { fieldIssues } from '../../schemas/issues';
import { ValidationError } from '../../shared/errors';
import { runIdFor } from '../../shared/expiry/expiry-sweep';

/** Which run an invocation works on, and the instant that run classifies against. */
export interface RunRequest {
  runId: string;
  now: string;
  /** A what-if run: a manual invocation that names the instant (never the next run's baseline). */
  simulated?: boolean;
}

/**
 * The run of a scheduled event is named after its scheduled `time`, which EventBridge keeps on
 * every retry: a retried invocation resumes the run instead of starting another.
 * @throws ValidationError naming the field and the rule when the event is neither shape.
 */
export function toRunRequest(event: unknown, clockMs: number): RunRequest {
  const parsed = ExpirySweepEventSchema.safeParse(event);
  if (!parsed.success) throw new ValidationError(fieldIssues(parsed.error));
  const value: ExpirySweepEvent = parsed.data;
  if ('source' in value) {
    const now = new Date(Date.parse(value.time)).toISOString();
    return { runId: runIdFor('scheduled', now), now };
  }
  const now = value.now ? new Date(Date.parse(value.now)).toISOString() : new Date(clockMs).toISOString();
  return { runId: value.runId ?? runIdFor('manual', now), now, ...(value.now ? { simulated: true } : {}) };
}
