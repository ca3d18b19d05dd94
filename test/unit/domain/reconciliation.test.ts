import { describe, expect, it } from 'vitest';
import {
  type CertificateReference,
  certificateReferences,
  classifyIotCertificates,
  classifyReference,
  classifyThing,
  countDrift,
  type Drift,
  type IotCertificateState,
  isIntendedUnusable,
  mergeDrift,
  needsConfirmation,
  type StoreCertificateFact,
  serialOfThing,
} from '../../../shared/domain/reconciliation';

const id = (n: number) => n.toString(16).padStart(64, '0');

function records(...facts: StoreCertificateFact[]): Map<string, StoreCertificateFact> {
  return new Map(facts.map((fact) => [fact.certificateId, fact]));
}

describe('classifyIotCertificates', () => {
  it('reports an ACTIVE certificate the store has no record of', () => {
    // Act
    const drift = classifyIotCertificates([{ certificateId: id(1), status: 'ACTIVE' }], records());
    // Assess
    expect(drift).toEqual([
      {
        key: `CERTIFICATE_UNKNOWN_TO_STORE#${id(1)}`,
        kind: 'CERTIFICATE_UNKNOWN_TO_STORE',
        certificateId: id(1),
        iotState: 'ACTIVE',
      },
    ]);
  });

  it.each(['INACTIVE', 'REVOKED', 'PENDING_ACTIVATION', 'PENDING_TRANSFER'])(
    'does not report an unknown certificate that is %s (nothing can connect with it)',
    (status) => {
      expect(classifyIotCertificates([{ certificateId: id(1), status }], records())).toEqual([]);
    },
  );

  it.each([
    ['ACTIVE', 'INACTIVE', 1],
    ['ACTIVE', 'REVOKED', 1],
    ['ACTIVE', 'ACTIVE', 0],
    ['RETIRED', 'INACTIVE', 0],
    ['INACTIVE', 'INACTIVE', 0],
    ['REVOKED', 'REVOKED', 0],
  ] as const)('store record %s, IoT %s → %i findings', (storeStatus, iotStatus, findings) => {
    // Prepare
    const known = records({ certificateId: id(2), kind: 'DEVICE', status: storeStatus, serial: 'SN-2' });
    // Act
    const drift = classifyIotCertificates([{ certificateId: id(2), status: iotStatus }], known);
    // Assess
    expect(drift).toHaveLength(findings);
    if (findings)
      expect(drift[0]).toMatchObject({
        kind: 'STORE_CERTIFICATE_NOT_ACTIVE',
        role: 'record',
        serial: 'SN-2',
      });
  });
});

describe("a quarantined device's unusable certificate", () => {
  // The quarantine worker deactivates the device's certificates in IoT; the certificate record keeps
  // the status it had (ACTIVE), and the device's state says why. That is intended, not drift.
  it.each([
    ['QUARANTINED', 'INACTIVE', 0],
    ['QUARANTINED', 'REVOKED', 0],
    ['REVOKED', 'REVOKED', 0],
    ['ACTIVE', 'INACTIVE', 1],
    ['ROTATING', 'INACTIVE', 1],
  ] as const)(
    'device %s, certificate ACTIVE in the store and %s in IoT → %i findings',
    (state, iotStatus, findings) => {
      const known = records({ certificateId: id(3), kind: 'DEVICE', status: 'ACTIVE', serial: 'SN-3' });
      const devices = new Map([['SN-3', { state }]]);
      const drift = classifyIotCertificates([{ certificateId: id(3), status: iotStatus }], known, devices);
      expect(drift).toHaveLength(findings);
      expect(isIntendedUnusable({ serial: 'SN-3' }, iotStatus, devices)).toBe(findings === 0);
    },
  );

  it('an unusable certificate whose device the store does not have is still drift', () => {
    const known = records({ certificateId: id(4), kind: 'DEVICE', status: 'ACTIVE', serial: 'SN-GONE' });
    const drift = classifyIotCertificates([{ certificateId: id(4), status: 'INACTIVE' }], known, new Map());
    expect(drift.map((finding) => finding.kind)).toEqual(['STORE_CERTIFICATE_NOT_ACTIVE']);
  });
});

describe('certificateReferences', () => {
  it.each([
    ['ACTIVE', ['current']],
    ['ROTATING', ['current', 'pending']],
    ['PROVISIONING', ['current', 'pending']],
    ['QUARANTINED', []],
    ['REVOKED', []],
    ['ALLOWLISTED', []],
    ['DECOMMISSIONED', []],
  ] as const)('a %s device relies on %j', (state, roles) => {
    const references = certificateReferences({
      serial: 'SN-1',
      state,
      thingName: 'SN-1',
      certificateId: id(1),
      pendingCertificateId: id(2),
    });
    expect(references.map((reference) => reference.role)).toEqual(roles);
  });

  it('a first-time PROVISIONING device relies only on its pending certificate', () => {
    const references = certificateReferences({
      serial: 'SN-1',
      state: 'PROVISIONING',
      pendingCertificateId: id(2),
    });
    expect(references).toEqual([
      { serial: 'SN-1', storeState: 'PROVISIONING', certificateId: id(2), role: 'pending' },
    ]);
  });
});

describe('classifyReference', () => {
  const current: CertificateReference = {
    certificateId: id(1),
    role: 'current',
    serial: 'SN-1',
    storeState: 'ACTIVE',
  };
  const pending: CertificateReference = { ...current, role: 'pending', storeState: 'PROVISIONING' };

  it.each([
    [current, 'ACTIVE', undefined],
    [current, 'NOT_FOUND', 'STORE_CERTIFICATE_GONE'],
    [current, 'INACTIVE', 'STORE_CERTIFICATE_NOT_ACTIVE'],
    [current, 'REVOKED', 'STORE_CERTIFICATE_NOT_ACTIVE'],
    [current, 'PENDING_ACTIVATION', 'STORE_CERTIFICATE_NOT_ACTIVE'],
    [pending, 'ACTIVE', undefined],
    [pending, 'INACTIVE', undefined],
    [pending, 'PENDING_ACTIVATION', undefined],
    [pending, 'REVOKED', 'STORE_CERTIFICATE_NOT_ACTIVE'],
    [pending, 'NOT_FOUND', 'STORE_CERTIFICATE_GONE'],
  ] as Array<[CertificateReference, IotCertificateState, string | undefined]>)(
    '%o with IoT %s → %s',
    (reference, iot, kind) => {
      expect(classifyReference(reference, iot)?.kind).toBe(kind);
    },
  );

  it('describes only what the listing did not settle', () => {
    expect(needsConfirmation(current, 'ACTIVE')).toBe(false);
    expect(needsConfirmation(current, undefined)).toBe(true);
    expect(needsConfirmation(current, 'INACTIVE')).toBe(true);
    expect(needsConfirmation(pending, 'INACTIVE')).toBe(false);
  });
});

describe('classifyThing', () => {
  it.each([
    [1, true, []],
    [0, true, ['THING_WITHOUT_PRINCIPALS']],
    [1, false, ['THING_UNKNOWN_TO_STORE']],
    [0, false, ['THING_WITHOUT_PRINCIPALS', 'THING_UNKNOWN_TO_STORE']],
  ] as const)('%i principals, known %s → %j', (principals, knownToStore, kinds) => {
    expect(classifyThing({ thingName: 'T', principals, knownToStore }).map((drift) => drift.kind)).toEqual(
      kinds,
    );
  });

  it('maps thing names to serials through the prefix', () => {
    expect(serialOfThing('fg-SN-1', 'fg-')).toBe('SN-1');
    expect(serialOfThing('other-SN-1', 'fg-')).toBeUndefined();
    expect(serialOfThing('fg-', 'fg-')).toBeUndefined();
    expect(serialOfThing('SN-1', '')).toBe('SN-1');
  });
});

describe('mergeDrift', () => {
  it('keeps one finding per key, preferring the one that names the device, and sorts', () => {
    // Prepare
    const fromRecord: Drift = {
      key: 'STORE_CERTIFICATE_NOT_ACTIVE#b',
      kind: 'STORE_CERTIFICATE_NOT_ACTIVE',
      certificateId: 'b',
      role: 'record',
    };
    const fromDevice: Drift = { ...fromRecord, role: 'current', serial: 'SN-B', storeState: 'ACTIVE' };
    const unknown: Drift = {
      key: 'CERTIFICATE_UNKNOWN_TO_STORE#a',
      kind: 'CERTIFICATE_UNKNOWN_TO_STORE',
      certificateId: 'a',
    };
    // Act
    const merged = mergeDrift([[fromRecord, unknown], [unknown], [fromDevice], [fromRecord]]);
    // Assess
    expect(merged).toEqual([unknown, fromDevice]);
    expect(countDrift(merged)).toEqual({
      CERTIFICATE_UNKNOWN_TO_STORE: 1,
      STORE_CERTIFICATE_GONE: 0,
      STORE_CERTIFICATE_NOT_ACTIVE: 1,
      THING_WITHOUT_PRINCIPALS: 0,
      THING_UNKNOWN_TO_STORE: 0,
      FACTORY_NEVER_CONNECTED: 0,
    });
  });
});
