import { describe, expect, it } from 'vitest';
import {
  DEVICE_EVENTS,
  DEVICE_STATES,
  type DeviceEvent,
  type DeviceState,
  sourcesOf,
  transition,
} from '../../../shared/domain/device-state';

// The whole legal table, written out independently of the implementation: anything not listed
// here must be illegal.
const LEGAL: ReadonlyArray<[DeviceState, DeviceEvent, DeviceState]> = [
  ['ALLOWLISTED', 'PROVISION', 'PROVISIONING'],
  ['ACTIVE', 'PROVISION', 'PROVISIONING'],
  ['PROVISIONING', 'ACTIVATE', 'ACTIVE'],
  ['PROVISIONING', 'EXPIRE_PROVISIONING', 'ALLOWLISTED'],
  ['ACTIVE', 'START_ROTATION', 'ROTATING'],
  ['ROTATING', 'COMMIT_ROTATION', 'ACTIVE'],
  ['ROTATING', 'ABORT_ROTATION', 'ACTIVE'],
  ['ALLOWLISTED', 'QUARANTINE', 'QUARANTINED'],
  ['PROVISIONING', 'QUARANTINE', 'QUARANTINED'],
  ['ACTIVE', 'QUARANTINE', 'QUARANTINED'],
  ['ROTATING', 'QUARANTINE', 'QUARANTINED'],
  ['QUARANTINED', 'REJECT', 'REVOKED'],
  ['ACTIVE', 'DECOMMISSION', 'DECOMMISSIONED'],
];

describe('device state machine', () => {
  const legal = new Map(LEGAL.map(([from, event, to]) => [`${from}/${event}`, to]));
  const cases = DEVICE_STATES.flatMap((from) =>
    DEVICE_EVENTS.filter((event) => event !== 'RELEASE').map((event) => ({ from, event })),
  );

  it.each(cases)('$event from $from', ({ from, event }) => {
    // Act
    const result = transition(from, event);
    // Assess
    const expected = legal.get(`${from}/${event}`);
    if (expected) expect(result).toEqual({ legal: true, from, to: expected });
    else
      expect(result).toMatchObject({
        legal: false,
        from,
        event,
        reason: `${event} is not allowed from ${from}`,
      });
  });

  it.each(['ALLOWLISTED', 'PROVISIONING', 'ACTIVE'] as const)(
    'RELEASE restores the state before quarantine (%s)',
    (previous) => {
      expect(transition('QUARANTINED', 'RELEASE', previous)).toEqual({
        legal: true,
        from: 'QUARANTINED',
        to: previous,
      });
    },
  );

  it('RELEASE of a device quarantined while ROTATING abandons the rotation: ACTIVE, free to rotate again', () => {
    expect(transition('QUARANTINED', 'RELEASE', 'ROTATING')).toEqual({
      legal: true,
      from: 'QUARANTINED',
      to: 'ACTIVE',
    });
    expect(transition('ACTIVE', 'START_ROTATION')).toMatchObject({ legal: true, to: 'ROTATING' });
  });

  it('RELEASE without a recorded previous state is illegal', () => {
    expect(transition('QUARANTINED', 'RELEASE')).toMatchObject({ legal: false });
    expect(transition('QUARANTINED', 'RELEASE', 'QUARANTINED')).toMatchObject({ legal: false });
  });

  it.each(DEVICE_STATES.filter((state) => state !== 'QUARANTINED'))('RELEASE from %s is illegal', (from) => {
    expect(transition(from, 'RELEASE', 'ACTIVE')).toMatchObject({ legal: false });
  });

  it('REVOKED and DECOMMISSIONED are terminal', () => {
    for (const event of DEVICE_EVENTS) {
      expect(transition('REVOKED', event, 'ACTIVE').legal).toBe(false);
      expect(transition('DECOMMISSIONED', event, 'ACTIVE').legal).toBe(false);
    }
  });

  it('sourcesOf lists the states an event may start from', () => {
    expect(sourcesOf('QUARANTINE')).toEqual(['ALLOWLISTED', 'PROVISIONING', 'ACTIVE', 'ROTATING']);
    expect(sourcesOf('ACTIVATE')).toEqual(['PROVISIONING']);
  });
});
