import { describe, expect, it } from 'vitest';
import {
  attributableDuplicateDisconnects,
  decideConnected,
  findConcurrentSessions,
  isDuplicateClientIdStorm,
  presenceRank,
} from '../../../shared/domain/presence-rules';
import { checkTrustedCa, reject, serialFromSubject } from '../../../shared/domain/registration-rules';

const CN = { serialSource: 'cn' as const, serialCnPattern: /^acme-([A-Z0-9-]+)$/ };

describe('serialFromSubject', () => {
  it.each([
    [{ commonName: 'acme-SN-1' }, CN, 'SN-1'],
    [{ commonName: 'other-SN-1' }, CN, undefined],
    [{}, CN, undefined],
    [{ commonName: 'x', serialNumber: 'SN-2' }, { ...CN, serialSource: 'serialNumber' as const }, 'SN-2'],
    [{ commonName: 'acme-SN-3' }, { ...CN, serialSource: 'serialNumber' as const }, undefined],
  ])('%o under %o → %s', (subject, rules, expected) => {
    expect(serialFromSubject(subject, rules)).toBe(expected);
  });
});

describe('registration rejections', () => {
  it('leaves a revoked serial REVOKED and everything else INACTIVE', () => {
    expect(reject('DEVICE_REVOKED', 'x').certificateStatus).toBe('REVOKED');
    expect(reject('SERIAL_NOT_ALLOWLISTED', 'x').certificateStatus).toBe('INACTIVE');
  });
  it('fails closed (issue 15): an empty TRUSTED_CA_IDS trusts no CA the store has not recorded', () => {
    expect(checkTrustedCa('AB'.repeat(32), { trustedCaIds: [], recordedCa: false })).toMatchObject({
      trusted: false,
      detail: expect.stringContaining('TRUSTED_CA_IDS (empty)'),
    });
    expect(checkTrustedCa('AB'.repeat(32), { trustedCaIds: [], recordedCa: true })).toEqual({
      trusted: true,
    });
    expect(checkTrustedCa('AB'.repeat(32), { trustedCaIds: ['ab'.repeat(32)], recordedCa: false })).toEqual({
      trusted: true,
    });
    expect(
      checkTrustedCa('cd'.repeat(32), { trustedCaIds: ['ab'.repeat(32)], recordedCa: false }).trusted,
    ).toBe(false);
  });
});

describe('decideConnected', () => {
  const device = (state: string, certificateId?: string, pendingCertificateId?: string) =>
    ({ serial: 'S', state, certificateId, pendingCertificateId }) as Parameters<typeof decideConnected>[0];
  it.each([
    [device('PROVISIONING', undefined, 'p'), 'p', { kind: 'verify', event: 'ACTIVATE' }],
    [device('ROTATING', 'c', 'p'), 'p', { kind: 'verify', event: 'COMMIT_ROTATION' }],
    [device('ROTATING', 'c', 'p'), 'c', { kind: 'expected' }],
    [device('ACTIVE', 'c'), 'c', { kind: 'expected' }],
    [
      device('ACTIVE', 'c'),
      'x',
      expect.objectContaining({ kind: 'mismatch', reason: 'CLONE_CERTIFICATE_MISMATCH' }),
    ],
    [device('PROVISIONING', undefined, 'p'), 'x', expect.objectContaining({ kind: 'mismatch' })],
    [device('QUARANTINED', 'c'), 'c', expect.objectContaining({ kind: 'ignore' })],
    [undefined, 'c', expect.objectContaining({ kind: 'ignore' })],
  ])('%o connecting with %s', (facts, principal, expected) => {
    expect(decideConnected(facts, principal)).toEqual(expected);
  });
});

describe('findConcurrentSessions', () => {
  it('finds two client ids whose sessions overlap, an open session extending forever', () => {
    const pair = findConcurrentSessions([
      { sessionIdentifier: 'a', clientId: 'dev', connectedAt: 10, disconnectedAt: 20 },
      { sessionIdentifier: 'b', clientId: 'rogue', connectedAt: 15 },
    ]);
    expect(pair?.map((s) => s.sessionIdentifier)).toEqual(['a', 'b']);
  });
  it('ignores sessions that follow each other, and sessions of one client id', () => {
    expect(
      findConcurrentSessions([
        { sessionIdentifier: 'a', clientId: 'dev', connectedAt: 10, disconnectedAt: 20 },
        { sessionIdentifier: 'b', clientId: 'other', connectedAt: 20 },
        { sessionIdentifier: 'c', clientId: 'other', connectedAt: 25 },
        { sessionIdentifier: 'd', clientId: 'late' },
      ]),
    ).toBeUndefined();
  });
});

describe('presenceRank', () => {
  it('ranks a newer session above a late disconnect of an older one, and a disconnect above its connect', () => {
    const connected1 = presenceRank({ versionNumber: 1, eventType: 'connected', timestamp: 100 });
    const disconnected1 = presenceRank({ versionNumber: 1, eventType: 'disconnected', timestamp: 200 });
    const connected2 = presenceRank({ versionNumber: 2, eventType: 'connected', timestamp: 150 });
    expect([connected2, disconnected1, connected1].sort()).toEqual([connected1, disconnected1, connected2]);
  });
});

describe('isDuplicateClientIdStorm', () => {
  const W = 300_000;
  it.each<[string, number[], number, boolean]>([
    ['three within the window, seen by the last', [0, 1_000, 2_000], 2_000, true],
    // Handled out of order: the earliest one is handled last and must still see the storm.
    ['three within the window, seen by the first', [0, 1_000, 2_000], 0, true],
    ['three within the window, seen by the middle one', [0, 1_000, 2_000], 1_000, true],
    ['two only', [0, 1_000], 1_000, false],
    ['three, but spread over more than the window', [0, W / 2 + 1, W + 1], W / 2 + 1, false],
    ['a storm that does not include this event', [0, 1, 2, W * 3], W * 3, false],
  ])('%s', (_name, times, atMs, storm) => {
    expect(isDuplicateClientIdStorm(times, atMs, W, 3)).toBe(storm);
  });
});

describe('attributableDuplicateDisconnects (issue 15: only the device own identity used twice counts)', () => {
  const own = 'a'.repeat(64);
  const claim = 'c'.repeat(64);
  const disconnect = (versionNumber: number, principalIdentifier = own) => ({
    sessionIdentifier: `s${versionNumber}`,
    atMs: 1_000 * versionNumber,
    principalIdentifier,
    versionNumber,
  });
  const session = (versionNumber: number, clientId = 'SN-1') => ({
    sessionIdentifier: `s${versionNumber}`,
    clientId,
    connectedAt: 1_000 * versionNumber,
    versionNumber,
  });
  /** The disconnects of client id SN-1 that count, the device's own certificate being `own`. */
  const attributable = (
    disconnects: ReturnType<typeof disconnect>[],
    sessions: ReturnType<typeof session>[],
  ) => attributableDuplicateDisconnects(disconnects, sessions, [own], 'SN-1');

  it('counts a disconnect whose taker (the next connection of the client id) was the device own certificate', () => {
    expect(attributable([disconnect(1), disconnect(2)], [session(2), session(3)])).toHaveLength(2);
  });

  it('does not count a disconnect taken over by another principal (its taker is not among the own sessions)', () => {
    // v1 own kicked by v2 (claim), v3 own kicked by v4 (claim): no own session numbered 2 or 4.
    expect(attributable([disconnect(1), disconnect(3)], [session(1), session(3)])).toEqual([]);
  });

  it('never counts a disconnect of another principal, nor one whose taker has not arrived yet', () => {
    expect(attributable([disconnect(1, claim)], [session(2)])).toEqual([]);
    expect(attributable([disconnect(5)], [session(4)])).toEqual([]);
  });

  it('does not count an own session on another client id as the taker', () => {
    expect(attributable([disconnect(1)], [session(2, 'other')])).toEqual([]);
  });
});
