/**
 * Crash points for the chaos run (`npm run chaos`, `local/chaos.ts`): a function "crashes" between
 * its IoT call and its store write, the moment a real crash (a killed container, a timeout) hurts
 * most. Off unless `FLEETGATE_CHAOS_CRASH_RATE` (0..1) is set — serverless.yml never sets it; only
 * the local chaos stack does. `FLEETGATE_CHAOS_CRASH_POINTS` (comma list) limits it to some points.
 *
 * The crash is a {@link TransientError}: the record fails and SQS delivers it again after the
 * visibility timeout, with everything before the crash point done and nothing after it — what a
 * redelivery after a real crash finds.
 */
import { TransientError } from './errors';

export class SimulatedCrash extends TransientError {
  override name = 'SimulatedCrash';
}

// One count per process, whichever module instance a function's handler was loaded with.
const COUNTS = Symbol.for('fleetgate.chaos.crashes');

/** Crashes so far in this process, by crash point. */
export function chaosCrashes(): Record<string, number> {
  const holder = globalThis as { [COUNTS]?: Record<string, number> };
  holder[COUNTS] ??= {};
  return holder[COUNTS];
}

const ONCE = Symbol.for('fleetgate.chaos.crashed-once');

/**
 * Crashes at `point` with the configured probability. With `FLEETGATE_CHAOS_CRASH_ONCE=1`, instead,
 * the first time `point` is reached for `key` (e.g. a certificate id) it crashes and never again:
 * every unit of work crashes exactly once there, deterministically (the test suite's short chaos run).
 */
export function crashPoint(point: string, key?: string, env: NodeJS.ProcessEnv = process.env): void {
  const rate = Number(env.FLEETGATE_CHAOS_CRASH_RATE ?? 0);
  const once = env.FLEETGATE_CHAOS_CRASH_ONCE === '1';
  if (!(rate > 0) && !once) return;
  const points = env.FLEETGATE_CHAOS_CRASH_POINTS?.split(',').map((name) => name.trim());
  if (points && !points.includes(point)) return;
  if (once && key !== undefined) {
    const holder = globalThis as { [ONCE]?: Set<string> };
    holder[ONCE] ??= new Set();
    if (holder[ONCE].has(`${point}:${key}`)) return;
    holder[ONCE].add(`${point}:${key}`);
  } else if (Math.random() >= rate) return;
  const counts = chaosCrashes();
  counts[point] = (counts[point] ?? 0) + 1;
  throw new SimulatedCrash(`chaos: crashed at ${point}`);
}
