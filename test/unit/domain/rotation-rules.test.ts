import { describe, expect, it } from 'vitest';
import { DEFAULT_KEY_POLICY } from '../../../shared/domain/certificate-rules';
import {
  type CsrFacts,
  decideRotation,
  type RotationDeviceFacts,
  type RotationRules,
} from '../../../shared/domain/rotation-rules';

const CURRENT = 'a'.repeat(64);
const OTHER = 'b'.repeat(64);
const RULES: RotationRules = {
  keyPolicy: DEFAULT_KEY_POLICY,
  serialSource: 'cn',
  serialCnPattern: /^(.+)$/,
};

function device(overrides: Partial<RotationDeviceFacts> = {}): RotationDeviceFacts {
  return { serial: 'SN-1', state: 'ACTIVE', certificateId: CURRENT, ...overrides };
}

function csr(overrides: Partial<CsrFacts> = {}): CsrFacts {
  return {
    commonName: 'SN-1',
    key: { algorithm: 'EC', curve: 'P-256' },
    publicKeyHash: 'c'.repeat(64),
    signatureValid: true,
    ...overrides,
  };
}

const request = (overrides: { thingName?: string; principal?: string; csr?: CsrFacts } = {}) => ({
  thingName: 'SN-1',
  principal: CURRENT,
  csr: csr(),
  ...overrides,
});

describe('decideRotation', () => {
  it('allows a CSR sent with the current certificate of an ACTIVE device', () => {
    expect(decideRotation(request(), device(), 'd'.repeat(64), RULES)).toEqual({
      allow: true,
      serial: 'SN-1',
      resume: false,
    });
  });

  it('marks a request for a ROTATING device as a resume (the caller decides which one may go on)', () => {
    expect(
      decideRotation(request(), device({ state: 'ROTATING', pendingCertificateId: OTHER }), undefined, RULES),
    ).toEqual({
      allow: true,
      serial: 'SN-1',
      resume: true,
    });
  });

  it('accepts a CN equal to the thing name when the serial rules read something else', () => {
    const decision = decideRotation(
      request({ thingName: 'fg-SN-1', csr: csr({ commonName: 'fg-SN-1' }) }),
      device(),
      undefined,
      { ...RULES, serialSource: 'serialNumber' },
    );
    expect(decision).toMatchObject({ allow: true });
  });

  it.each([
    ['no device', request(), undefined, undefined, 'UNKNOWN_DEVICE'],
    [
      "another device's certificate",
      request({ principal: OTHER }),
      device(),
      undefined,
      'PRINCIPAL_MISMATCH',
    ],
    [
      'a device without a current certificate',
      request(),
      device({ certificateId: undefined }),
      undefined,
      'PRINCIPAL_MISMATCH',
    ],
    [
      'the pending (not yet proven) certificate',
      request({ principal: OTHER }),
      device({ state: 'ROTATING', pendingCertificateId: OTHER }),
      undefined,
      'PRINCIPAL_MISMATCH',
    ],
    ['a QUARANTINED device', request(), device({ state: 'QUARANTINED' }), undefined, 'DEVICE_NOT_ACTIVE'],
    ['a PROVISIONING device', request(), device({ state: 'PROVISIONING' }), undefined, 'DEVICE_NOT_ACTIVE'],
    [
      'a bad CSR signature',
      request({ csr: csr({ signatureValid: false }) }),
      device(),
      undefined,
      'CSR_SIGNATURE_INVALID',
    ],
    [
      'a P-521 key',
      request({ csr: csr({ key: { algorithm: 'EC', curve: 'P-521' } }) }),
      device(),
      undefined,
      'WEAK_KEY',
    ],
    [
      'an RSA-1024 key',
      request({ csr: csr({ key: { algorithm: 'RSA', bits: 1024 } }) }),
      device(),
      undefined,
      'WEAK_KEY',
    ],
    [
      'an Ed25519 key',
      request({ csr: csr({ key: { algorithm: 'OTHER', name: 'ed25519' } }) }),
      device(),
      undefined,
      'WEAK_KEY',
    ],
    ['the current key again', request(), device(), 'c'.repeat(64), 'KEY_NOT_NEW'],
    [
      'another serial in the subject',
      request({ csr: csr({ commonName: 'SN-2' }) }),
      device(),
      undefined,
      'SUBJECT_MISMATCH',
    ],
    ['no CN', request({ csr: csr({ commonName: undefined }) }), device(), undefined, 'SUBJECT_MISMATCH'],
  ] as const)('rejects %s', (_name, input, facts, currentKey, reason) => {
    expect(decideRotation(input, facts, currentKey, RULES)).toEqual({
      allow: false,
      reason,
      detail: expect.any(String),
    });
  });

  it('accepts RSA-2048 and P-384 keys', () => {
    for (const key of [
      { algorithm: 'RSA', bits: 2048 },
      { algorithm: 'EC', curve: 'P-384' },
    ] as const) {
      expect(decideRotation(request({ csr: csr({ key }) }), device(), undefined, RULES)).toMatchObject({
        allow: true,
      });
    }
  });
});
