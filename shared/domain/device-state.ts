/**
 * The device state machine (docs/architecture.md §2). This table is the only place that says which move is
 * legal; the store enforces it with conditional writes on `state` and `version`.
 */

export const DEVICE_STATES = [
  'ALLOWLISTED',
  'PROVISIONING',
  'ACTIVE',
  'ROTATING',
  'QUARANTINED',
  'REVOKED',
  'DECOMMISSIONED',
] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

export const DEVICE_EVENTS = [
  'PROVISION',
  'ACTIVATE',
  'EXPIRE_PROVISIONING',
  'START_ROTATION',
  'COMMIT_ROTATION',
  'ABORT_ROTATION',
  'QUARANTINE',
  'RELEASE',
  'REJECT',
  'DECOMMISSION',
] as const;
export type DeviceEvent = (typeof DEVICE_EVENTS)[number];

/**
 * Where `RELEASE` goes is the state recorded when the device was quarantined — except ROTATING: the
 * interrupted rotation is abandoned and the device is ACTIVE again.
 */
export const RESTORE_PREVIOUS = 'RESTORE_PREVIOUS' as const;

type Target = DeviceState | typeof RESTORE_PREVIOUS;

/** States from which a device may be quarantined: everything not already terminal or quarantined. */
const QUARANTINABLE: readonly DeviceState[] = ['ALLOWLISTED', 'PROVISIONING', 'ACTIVE', 'ROTATING'];

const TABLE: Readonly<Record<DeviceEvent, Partial<Record<DeviceState, Target>>>> = {
  // allow by the hook, JITR or JITP; ACTIVE → PROVISIONING only when the reprovisioning policy lets it
  PROVISION: { ALLOWLISTED: 'PROVISIONING', ACTIVE: 'PROVISIONING' },
  ACTIVATE: { PROVISIONING: 'ACTIVE' },
  EXPIRE_PROVISIONING: { PROVISIONING: 'ALLOWLISTED' },
  START_ROTATION: { ACTIVE: 'ROTATING' },
  COMMIT_ROTATION: { ROTATING: 'ACTIVE' },
  ABORT_ROTATION: { ROTATING: 'ACTIVE' },
  QUARANTINE: Object.fromEntries(QUARANTINABLE.map((state) => [state, 'QUARANTINED'])),
  RELEASE: { QUARANTINED: RESTORE_PREVIOUS },
  REJECT: { QUARANTINED: 'REVOKED' },
  DECOMMISSION: { ACTIVE: 'DECOMMISSIONED' },
};

export type TransitionResult =
  | { legal: true; from: DeviceState; to: DeviceState }
  | { legal: false; from: DeviceState; event: DeviceEvent; reason: string };

/**
 * Applies `event` to a device in state `from`.
 * @param previousState the state recorded at quarantine time; required to resolve `RELEASE`.
 */
export function transition(
  from: DeviceState,
  event: DeviceEvent,
  previousState?: DeviceState,
): TransitionResult {
  const target = TABLE[event][from];
  if (target === undefined) {
    return { legal: false, from, event, reason: `${event} is not allowed from ${from}` };
  }
  if (target === RESTORE_PREVIOUS) {
    if (previousState === undefined || previousState === 'QUARANTINED') {
      return { legal: false, from, event, reason: `${event} needs the state recorded before quarantine` };
    }
    // A rotation the quarantine interrupted is abandoned (its new certificate never committed): the
    // device goes back to ACTIVE with its current certificate, free to rotate again.
    return { legal: true, from, to: previousState === 'ROTATING' ? 'ACTIVE' : previousState };
  }
  return { legal: true, from, to: target };
}

/** The states from which `event` is legal (used to build conditional writes). */
export function sourcesOf(event: DeviceEvent): DeviceState[] {
  return DEVICE_STATES.filter((state) => TABLE[event][state] !== undefined);
}

export function isDeviceState(value: unknown): value is DeviceState {
  return typeof value === 'string' && (DEVICE_STATES as readonly string[]).includes(value);
}
