/** The pure deciders the lifecycle and JITR handlers apply: plain inputs, no mocks. */
import { describe, expect, it } from 'vitest';
import {
  decideDuplicateClientIdStorm,
  decideForeignConnection,
  decideJitpThing,
  decideOtherConnection,
  decideThingCreated,
  decideVerification,
  hasOwnCertificate,
  jitpSuspicions,
  needsThingCheck,
  ownDevice,
  principalKindOf,
  serialFromName,
  stormCandidates,
} from '../../../shared/domain/lifecycle-rules';
import { closedStateDenial } from '../../../shared/domain/provisioning-rules';
import {
  decideRegistrationEntry,
  isActivatable,
  planRejection,
  reject,
} from '../../../shared/domain/registration-rules';

const NOW = { iso: '2026-01-01T00:00:00.000Z', epochMs: Date.parse('2026-01-01T00:00:00.000Z') };
const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);
const deviceCert = {
  kind: 'DEVICE' as const,
  serial: 'SN-1',
  status: 'ACTIVE',
  source: 'FLEET_PROVISIONING',
};

describe('the state → reason mapping', () => {
  it.each([
    ['REVOKED', 'DEVICE_REVOKED'],
    ['DECOMMISSIONED', 'DEVICE_DECOMMISSIONED'],
    ['QUARANTINED', 'DEVICE_QUARANTINED'],
  ] as const)('%s → %s', (state, reason) => {
    expect(closedStateDenial(state)?.reason).toBe(reason);
  });
  it.each(['ALLOWLISTED', 'PROVISIONING', 'ACTIVE', 'ROTATING'] as const)('%s is open', (state) => {
    expect(closedStateDenial(state)).toBeUndefined();
  });
});

describe('serialFromName', () => {
  const rules = { thingNamePrefix: 'dev-', serialPattern: /^SN-\d+$/ };
  it.each([
    ['dev-SN-1', 'SN-1'],
    ['dev-XX', undefined],
    ['SN-1', undefined],
  ])('%s → %s', (name, serial) => expect(serialFromName(name, rules)).toBe(serial));
});

describe('ownDevice', () => {
  const device = { serial: 'SN-1', state: 'ACTIVE' as const, certificateId: A, pendingCertificateId: B };
  it('is the device when the principal is its current or pending certificate bound to it', () => {
    expect(ownDevice(A, deviceCert, device)).toBe(device);
    expect(ownDevice(B, deviceCert, device)).toBe(device);
  });
  it('is nothing for a claim certificate, another serial or an old certificate', () => {
    expect(ownDevice(A, { ...deviceCert, kind: 'CLAIM' }, device)).toBeUndefined();
    expect(ownDevice(A, { ...deviceCert, serial: 'SN-2' }, device)).toBeUndefined();
    expect(ownDevice(C, deviceCert, device)).toBeUndefined();
    expect(ownDevice(A, undefined, device)).toBeUndefined();
  });
});

describe('decideOtherConnection', () => {
  it('notes the revoked certificate of an aborted rotation', () => {
    const decision = decideOtherConnection(
      C,
      { kind: 'DEVICE', serial: 'SN-1', status: 'REVOKED', source: 'ROTATION' },
      { serial: 'SN-1', state: 'ACTIVE', certificateId: A },
    );
    expect(decision).toEqual({
      kind: 'noted',
      detail: 'connected with the certificate of an aborted rotation',
    });
  });
  it('calls an old certificate of the device foreign', () => {
    expect(
      decideOtherConnection(C, deviceCert, { serial: 'SN-1', state: 'ACTIVE', certificateId: A }),
    ).toEqual({
      kind: 'foreign',
    });
  });
  it('lets an unknown certificate through on a device without one of its own (the JITP device)', () => {
    expect(decideOtherConnection(C, undefined, { serial: 'SN-1', state: 'ALLOWLISTED' })).toEqual({
      kind: 'none',
    });
  });
  it('calls a claim certificate foreign even on a device without one of its own', () => {
    const claim = { kind: 'CLAIM' as const, status: 'ACTIVE', source: 'CLAIM' };
    expect(decideOtherConnection(C, claim, { serial: 'SN-1', state: 'ALLOWLISTED' })).toEqual({
      kind: 'foreign',
    });
  });
  it('hasOwnCertificate: PROVISIONING only with a pending certificate', () => {
    expect(hasOwnCertificate({ serial: 'x', state: 'PROVISIONING' })).toBe(false);
    expect(hasOwnCertificate({ serial: 'x', state: 'PROVISIONING', pendingCertificateId: A })).toBe(true);
    expect(hasOwnCertificate({ serial: 'x', state: 'REVOKED' })).toBe(true);
  });
});

describe('decideForeignConnection', () => {
  const device = { serial: 'SN-1', state: 'ACTIVE' as const, certificateId: A, thingName: 'dev-SN-1' };
  const event = { clientId: 'dev-SN-1', sessionIdentifier: 's-1', timestamp: NOW.epochMs };
  it('records a claim certificate for an operator, never quarantines it, and needs no registry read', () => {
    const kind = principalKindOf({ kind: 'CLAIM', status: 'ACTIVE', source: 'CLAIM' });
    expect(kind).toBe('CLAIM');
    expect(needsThingCheck(kind)).toBe(false);
    const decision = decideForeignConnection(device, C, kind, true, event);
    expect(decision.history.reason).toBe('CLAIM_CERTIFICATE_AS_DEVICE');
    expect(decision.history.at).toBe(NOW.iso);
    expect(decision.quarantine).toBeUndefined();
    expect(decision.recordedIdentity).toBe('SUSPICIOUS:s-1');
  });
  it('quarantines a bound certificate alone (certificate scope)', () => {
    const decision = decideForeignConnection(device, C, principalKindOf(deviceCert), false, event);
    expect(decision.quarantine).toMatchObject({
      reason: 'CLONE_CERTIFICATE_MISMATCH',
      scope: 'certificate',
      certificateId: C,
      claimedSerial: 'SN-1',
    });
    expect(decision.quarantine?.serial).toBeUndefined();
  });
  it('quarantines an unknown certificate only when it is attached to the thing', () => {
    expect(needsThingCheck('UNKNOWN')).toBe(true);
    expect(decideForeignConnection(device, C, 'UNKNOWN', false, event).quarantine).toBeUndefined();
    expect(decideForeignConnection(device, C, 'UNKNOWN', true, event).quarantine).toBeDefined();
  });
});

describe('duplicate client id storms', () => {
  const rules = { duplicateClientIdWindowSeconds: 60, duplicateClientIdThreshold: 2 };
  const device = { serial: 'SN-1', state: 'ACTIVE' as const, certificateId: A };
  const disconnects = [
    { sessionIdentifier: 's1', atMs: 1000, principalIdentifier: A, versionNumber: 1 },
    { sessionIdentifier: 's2', atMs: 2000, principalIdentifier: A, versionNumber: 2 },
  ];
  const sessions = [2, 3].map((versionNumber) => ({
    sessionIdentifier: `t${versionNumber}`,
    clientId: 'dev-SN-1',
    versionNumber,
    connectedAt: 0,
  }));
  it('needs the threshold of disconnects made with the device own certificates', () => {
    expect(stormCandidates(device, disconnects.slice(0, 1), rules)).toBeUndefined();
    expect(
      stormCandidates(
        device,
        disconnects.map((d) => ({ ...d, principalIdentifier: C })),
        rules,
      ),
    ).toBeUndefined();
    expect(stormCandidates(device, disconnects, rules)).toHaveLength(2);
  });
  it('raises one suspicion per client id when both disconnects were taken over by the device', () => {
    const suspicion = decideDuplicateClientIdStorm(
      { device, clientId: 'dev-SN-1', anchorMs: 2000, candidates: disconnects, sessions },
      rules,
    );
    expect(suspicion).toMatchObject({
      reason: 'CLONE_DUPLICATE_CLIENTID',
      identity: 'CLONE_DUPLICATE_CLIENTID:dev-SN-1',
      serial: 'SN-1',
      certificateId: A,
      ttlSeconds: 60,
    });
  });
  it('raises none when the takers are not the device own sessions', () => {
    expect(
      decideDuplicateClientIdStorm(
        { device, clientId: 'dev-SN-1', anchorMs: 2000, candidates: disconnects, sessions: [] },
        rules,
      ),
    ).toBeUndefined();
  });
});

describe('decideVerification', () => {
  const presence = { sessionIdentifier: 's-1', clientId: 'dev-SN-1' };
  it('activates a provisioning device without retiring anything', () => {
    const verification = decideVerification(
      { serial: 'SN-1', state: 'PROVISIONING', pendingCertificateId: B },
      'ACTIVATE',
      B,
      presence,
      { rotationGraceSeconds: 60 },
      NOW,
    );
    expect(verification).toEqual({
      event: 'ACTIVATE',
      transitionKey: `ACTIVATE:${B}`,
      set: { certificateId: B },
      remove: ['pendingCertificateId', 'provisioningDeadline'],
      historyDetail: { certificateId: B, ...presence },
      dedupIdentity: 'verify:s-1',
    });
  });
  it('retires the old certificate in the rotation commit, deleted after the grace period', () => {
    const verification = decideVerification(
      { serial: 'SN-1', state: 'ROTATING', certificateId: A, pendingCertificateId: B, thingName: 't' },
      'COMMIT_ROTATION',
      B,
      presence,
      { rotationGraceSeconds: 60 },
      NOW,
    );
    expect(verification.remove).toEqual(['pendingCertificateId', 'rotationDeadline']);
    expect(verification.retire).toEqual({
      certificateId: A,
      retirement: {
        step: 'DEACTIVATE',
        dueAt: NOW.iso,
        deleteAfter: '2026-01-01T00:01:00.000Z',
        serial: 'SN-1',
        thingName: 't',
        reason: 'ROTATED',
      },
    });
  });
});

describe('JITP things', () => {
  it('leaves the things of fleetgate own flows to verification', () => {
    const device = {
      serial: 'SN-1',
      state: 'PROVISIONING' as const,
      thingName: 't',
      pendingCertificateId: A,
    };
    expect(decideThingCreated('t', device)).toEqual({ kind: 'own-flow', pendingCertificateId: A });
    expect(decideThingCreated('t', { ...device, state: 'ACTIVE' })).toEqual({ kind: 'own-flow' });
    expect(decideThingCreated('other', device)).toEqual({ kind: 'jitp' });
    expect(decideThingCreated('t', { ...device, state: 'ALLOWLISTED' })).toEqual({ kind: 'jitp' });
  });
  it.each([
    [undefined, undefined, [A], 'suspect', 'SERIAL_NOT_ALLOWLISTED'],
    ['SN-1', { serial: 'SN-1', state: 'REVOKED' as const }, [A], 'suspect', 'DEVICE_REVOKED'],
    ['SN-1', { serial: 'SN-1', state: 'QUARANTINED' as const }, [A], 'suspect', 'DEVICE_QUARANTINED'],
    [
      'SN-1',
      { serial: 'SN-1', state: 'ALLOWLISTED' as const },
      [A, B],
      'suspect',
      'JITP_MULTIPLE_CERTIFICATES',
    ],
    ['SN-1', { serial: 'SN-1', state: 'ALLOWLISTED' as const }, [], 'noted', undefined],
    ['SN-1', { serial: 'SN-1', state: 'ALLOWLISTED' as const }, [A], 'inspect', undefined],
  ])('serial %s, device %o, certificates %o → %s %s', (serial, device, ids, kind, reason) => {
    const decision = decideJitpThing(serial, device, ids);
    expect(decision.kind).toBe(kind);
    if (decision.kind === 'suspect') expect(decision.reason).toBe(reason);
    if (decision.kind === 'inspect')
      expect(decision).toEqual({ kind: 'inspect', serial: 'SN-1', certificateId: A });
  });
  it('asks one quarantine per certificate, the first with the thing identity', () => {
    const requests = jitpSuspicions(
      { thingName: 't', eventId: 'e', certificateIds: [A, B] },
      { deviceSerial: 'SN-1', claimedSerial: 'SN-1' },
      'JITP_MULTIPLE_CERTIFICATES',
      'two',
    );
    expect(requests.map((request) => request.identity)).toEqual(['JITP:t', `JITP:t:${B}`]);
    expect(requests.map((request) => request.certificateId)).toEqual([A, B]);
    const none = jitpSuspicions({ thingName: 't', eventId: 'e', certificateIds: [] }, {}, 'R', 'd');
    expect(none).toHaveLength(1);
    expect(none[0]).not.toHaveProperty('certificateId');
    expect(none[0]).not.toHaveProperty('serial');
  });
});

describe('JITR entry and activation', () => {
  it.each([
    [undefined, 'continue'],
    [{ status: 'ACTIVE', source: 'JITR' }, 'duplicate'],
    [{ status: 'PENDING', source: 'JITP' }, 'ignored'],
    [
      { status: 'PENDING', source: 'JITR', lease: { leaseOwner: 'other', leaseUntil: '2027-01-01' } },
      'duplicate',
    ],
    [
      { status: 'PENDING', source: 'JITR', lease: { leaseOwner: 'me', leaseUntil: '2027-01-01' } },
      'continue',
    ],
    [
      { status: 'PENDING', source: 'JITR', lease: { leaseOwner: 'other', leaseUntil: '2025-01-01' } },
      'continue',
    ],
  ])('%o → %s', (known, kind) => {
    expect(decideRegistrationEntry(known, 'me', NOW).kind).toBe(kind);
  });
  it('activates only a PENDING_ACTIVATION certificate, or an ACTIVE one an earlier delivery activated', () => {
    expect(isActivatable('PENDING_ACTIVATION', false)).toBe(true);
    expect(isActivatable('ACTIVE', true)).toBe(true);
    expect(isActivatable('ACTIVE', false)).toBe(false);
    expect(isActivatable('INACTIVE', true)).toBe(false);
  });
});

describe('planRejection', () => {
  const facts = { caCertificateId: 'ca-1' };
  it('is certificate-scoped for a second key on a bound serial', () => {
    const plan = planRejection(reject('SERIAL_BOUND_TO_OTHER_CERTIFICATE', 'x', 'SN-1'), {
      ...facts,
      device: { serial: 'SN-1', state: 'ACTIVE' },
    });
    expect(plan.serial).toBeUndefined();
    expect(plan.reason).toBe('SERIAL_BOUND_TO_OTHER_CERTIFICATE');
    expect(plan.historySerial).toBe('SN-1');
    expect(plan.evidence).toMatchObject({ flow: 'JITR', caCertificateId: 'ca-1', claimedSerial: 'SN-1' });
  });
  it('names the device when its own key comes under a new certificate (CLONE_PUBLIC_KEY)', () => {
    const plan = planRejection(reject('SERIAL_BOUND_TO_OTHER_CERTIFICATE', 'x', 'SN-1'), {
      ...facts,
      device: { serial: 'SN-1', state: 'ACTIVE' },
      publicKeyOwner: { serial: 'SN-1', certificateId: A },
    });
    expect(plan).toMatchObject({ serial: 'SN-1', reason: 'CLONE_PUBLIC_KEY' });
  });
  it('names the owner of a copied key, and a device that cannot move anyway', () => {
    expect(
      planRejection(reject('PUBLIC_KEY_IN_USE', 'x', 'SN-1'), {
        ...facts,
        publicKeyOwner: { serial: 'SN-9', certificateId: A },
      }),
    ).toMatchObject({ serial: 'SN-9', reason: 'PUBLIC_KEY_IN_USE' });
    expect(
      planRejection(reject('DEVICE_REVOKED', 'x', 'SN-1'), {
        ...facts,
        device: { serial: 'SN-1', state: 'REVOKED' },
      }),
    ).toMatchObject({ serial: 'SN-1', reason: 'DEVICE_REVOKED', historySerial: 'SN-1' });
  });
  it('records no history for a serial without a device', () => {
    const plan = planRejection(reject('UNTRUSTED_ISSUER', 'x'), facts);
    expect(plan.historySerial).toBeUndefined();
    expect(plan.evidence).not.toHaveProperty('claimedSerial');
  });
});
