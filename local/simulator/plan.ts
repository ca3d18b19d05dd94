/**
 * Who takes part in a simulation: legitimate devices and bad actors, in a seeded, reproducible order.
 * Pure: no I/O, no clock.
 */
import { seededRandom } from '../seeded-random';

/** A flow a device goes through to its first connection with its own certificate. */
export type SimulationFlow = 'fleet' | 'jitr' | 'jitp' | 'factory' | 'trusted-user';

/** What a simulated participant is. */
export type ActorKind =
  /** Allowlisted; must end ACTIVE with exactly one thing and one active certificate. */
  | 'legitimate'
  /** Same serial and key as a legitimate device, another certificate. */
  | 'clone'
  /** A serial nobody allowlisted. */
  | 'unknown-serial'
  /** A certificate outside its validity period. */
  | 'expired-certificate'
  /** An allowlisted serial already bound to a legitimate device, claimed with another key. */
  | 'takeover';

export const BAD_ACTOR_KINDS: readonly ActorKind[] = [
  'clone',
  'unknown-serial',
  'expired-certificate',
  'takeover',
];

export interface Participant {
  index: number;
  kind: ActorKind;
  serial: string;
  /** For clones and takeovers: the legitimate device whose serial (and, for clones, key) is reused. */
  victim?: number;
}

export interface SimulationPlan {
  runId: string;
  legitimate: Participant[];
  /** Bad actors, run after the legitimate devices they imitate have provisioned. */
  badActors: Participant[];
}

export interface PlanOptions {
  devices: number;
  clones: number;
  invalid: number;
  seed: number;
  runId: string;
}

/** The serial of the n-th device of a run: `SIM-<runId>-<n>` (matches the default serial pattern). */
export function serialFor(runId: string, index: number): string {
  return `SIM-${runId}-${String(index).padStart(6, '0')}`;
}

/**
 * Plans a run: `devices` legitimate devices, `clones` clones of random legitimate devices, and
 * `invalid` devices spread round-robin over unknown serials, expired certificates and takeovers.
 */
export function planSimulation(options: PlanOptions): SimulationPlan {
  const random = seededRandom(options.seed);
  const pick = () => Math.floor(random() * options.devices);
  const legitimate: Participant[] = Array.from({ length: options.devices }, (_, index) => ({
    index,
    kind: 'legitimate',
    serial: serialFor(options.runId, index),
  }));
  const badActors: Participant[] = [];
  let next = options.devices;
  const needsVictim = options.devices > 0;
  for (let i = 0; i < options.clones && needsVictim; i += 1) {
    const victim = pick();
    badActors.push({ index: next++, kind: 'clone', serial: serialFor(options.runId, victim), victim });
  }
  const invalidKinds: ActorKind[] = needsVictim
    ? ['unknown-serial', 'expired-certificate', 'takeover']
    : ['unknown-serial', 'expired-certificate'];
  for (let i = 0; i < options.invalid; i += 1) {
    const kind = invalidKinds[i % invalidKinds.length] ?? 'unknown-serial';
    const index = next++;
    if (kind === 'takeover') {
      const victim = pick();
      badActors.push({ index, kind, serial: serialFor(options.runId, victim), victim });
    } else {
      // Unknown serials are never allowlisted; expired devices are (the certificate is what is wrong).
      badActors.push({ index, kind, serial: serialFor(options.runId, index) });
    }
  }
  return { runId: options.runId, legitimate, badActors };
}
