import { describe, expect, it } from 'vitest';
import { configFor } from '../../shared/config';
import {
  DENY_REASONS,
  type DenyReason,
  type DeviceFacts,
  decideProvisioning,
  deny,
  hookSuspicion,
  type Instant,
  type ProvisioningFacts,
  type ProvisioningRequest,
  type ProvisioningRules,
  type TemporaryClaimFacts,
} from '../../shared/domain/provisioning-rules';

const NOW: Instant = { iso: '2026-11-24T12:00:00.000Z', epochMs: Date.parse('2026-11-24T12:00:00.000Z') };
const HOUR = 3_600_000;
const CLAIM = 'c'.repeat(64);
const OTHER_CLAIM = 'd'.repeat(64);
const CERT = 'a'.repeat(64);
const OLD_CERT = 'b'.repeat(64);
const KEY = '1'.repeat(64);

const RULES: ProvisioningRules = configFor({
  CLAIM_GROUPS: JSON.stringify({ factory: [CLAIM] }),
  THING_NAME_PREFIX: 'fg-',
});

function request(
  overrides: Partial<ProvisioningRequest> = {},
  certificate: Partial<ProvisioningRequest['certificate']> = {},
): ProvisioningRequest {
  return {
    serial: 'SN-0001',
    certificateId: CERT,
    claimCertificateId: CLAIM,
    ...overrides,
    certificate: {
      certificateId: CERT,
      publicKeyHash: KEY,
      key: { algorithm: 'EC', curve: 'P-256' },
      notBefore: new Date(NOW.epochMs - HOUR).toISOString(),
      notBeforeMs: NOW.epochMs - HOUR,
      notAfterMs: NOW.epochMs + 365 * 24 * HOUR,
      ...certificate,
    },
  };
}

function temporary(overrides: Partial<TemporaryClaimFacts> = {}): TemporaryClaimFacts {
  return {
    serial: 'SN-0001',
    installer: 'installer-1',
    expiration: new Date(NOW.epochMs + 120_000).toISOString(),
    templateName: 'fleetgate-dev-installer',
    ...overrides,
  };
}

function device(overrides: Partial<DeviceFacts> = {}): DeviceFacts {
  return {
    serial: 'SN-0001',
    state: 'ALLOWLISTED',
    allowedClaim: CLAIM,
    productLine: 'gw',
    batch: 'B7',
    ...overrides,
  };
}

const inWindow = new Date(NOW.epochMs + HOUR / 2).toISOString();
const pastWindow = new Date(NOW.epochMs - 1).toISOString();

interface Case {
  name: string;
  request?: ProvisioningRequest;
  facts: ProvisioningFacts;
  rules?: Partial<ProvisioningRules>;
  reason: DenyReason;
}

const denials: Case[] = [
  {
    name: 'a serial that breaks the pattern',
    request: request({ serial: 'a b' }),
    facts: { device: device() },
    reason: 'INVALID_SERIAL',
  },
  {
    name: 'a serial with injection',
    request: request({ serial: "SN'; DROP--" }),
    facts: {},
    reason: 'INVALID_SERIAL',
  },
  {
    name: 'a certificate id that is not the hash of the certificate',
    request: request({ certificateId: OLD_CERT }),
    facts: { device: device() },
    reason: 'INVALID_CERTIFICATE',
  },
  {
    name: 'an RSA-1024 key',
    request: request({}, { key: { algorithm: 'RSA', bits: 1024 } }),
    facts: { device: device() },
    reason: 'WEAK_KEY',
  },
  {
    name: 'a secp256k1 key',
    request: request({}, { key: { algorithm: 'EC', curve: 'secp256k1' } }),
    facts: { device: device() },
    reason: 'WEAK_KEY',
  },
  {
    name: 'a P-521 key by default',
    request: request({}, { key: { algorithm: 'EC', curve: 'P-521' } }),
    facts: { device: device() },
    reason: 'WEAK_KEY',
  },
  {
    name: 'an Ed25519 key',
    request: request({}, { key: { algorithm: 'OTHER', name: 'ed25519' } }),
    facts: { device: device() },
    reason: 'WEAK_KEY',
  },
  {
    name: 'a certificate valid only from tomorrow',
    request: request({}, { notBeforeMs: NOW.epochMs + 24 * HOUR }),
    facts: { device: device() },
    reason: 'CERTIFICATE_NOT_YET_VALID',
  },
  {
    name: 'an expired certificate',
    request: request({}, { notAfterMs: NOW.epochMs }),
    facts: { device: device() },
    reason: 'CERTIFICATE_EXPIRED',
  },
  { name: 'a serial not on the allowlist', facts: {}, reason: 'SERIAL_NOT_ALLOWLISTED' },
  { name: 'a revoked device', facts: { device: device({ state: 'REVOKED' }) }, reason: 'DEVICE_REVOKED' },
  {
    name: 'a decommissioned device',
    facts: { device: device({ state: 'DECOMMISSIONED' }) },
    reason: 'DEVICE_DECOMMISSIONED',
  },
  {
    name: 'a quarantined device',
    facts: { device: device({ state: 'QUARANTINED' }) },
    reason: 'DEVICE_QUARANTINED',
  },
  {
    name: 'another claim certificate',
    facts: { device: device({ allowedClaim: OTHER_CLAIM }) },
    reason: 'CLAIM_NOT_ALLOWED',
  },
  {
    name: 'a claim outside the allowed group',
    facts: { device: device({ allowedClaim: 'group:elsewhere' }) },
    reason: 'CLAIM_NOT_ALLOWED',
  },
  {
    name: 'an entry without a claim and no default',
    facts: { device: device({ allowedClaim: undefined }) },
    reason: 'CLAIM_NOT_ALLOWED',
  },
  {
    name: 'a claim over its per-minute budget',
    facts: { device: device(), claimCount: 60 },
    reason: 'CLAIM_RATE_EXCEEDED',
  },
  {
    name: 'a takeover of an ACTIVE serial (policy never)',
    facts: { device: device({ state: 'ACTIVE', certificateId: OLD_CERT }) },
    reason: 'SERIAL_BOUND_TO_OTHER_CERTIFICATE',
  },
  {
    name: 'a new key on an ACTIVE serial (policy same-key)',
    facts: { device: device({ state: 'ACTIVE', certificateId: OLD_CERT }) },
    rules: { reprovisioningPolicy: 'same-key' },
    reason: 'SERIAL_BOUND_TO_OTHER_CERTIFICATE',
  },
  {
    name: 'a ROTATING serial',
    facts: { device: device({ state: 'ROTATING', certificateId: OLD_CERT }) },
    reason: 'SERIAL_BOUND_TO_OTHER_CERTIFICATE',
  },
  {
    name: 'a cloned public key',
    facts: { device: device(), publicKeyOwner: { serial: 'SN-0002', certificateId: OLD_CERT } },
    reason: 'PUBLIC_KEY_IN_USE',
  },
  {
    name: 'a certificate bound to another device',
    facts: { device: device(), certificate: { certificateId: CERT, serial: 'SN-0002' } },
    reason: 'CERTIFICATE_IN_USE',
  },
  {
    name: 'the certificate of an expired attempt',
    facts: {
      device: device({ state: 'PROVISIONING', pendingCertificateId: CERT, provisioningDeadline: pastWindow }),
      certificate: { certificateId: CERT, serial: 'SN-0001' },
    },
    reason: 'CERTIFICATE_IN_USE',
  },
  {
    name: 'another certificate while PROVISIONING inside the window',
    facts: {
      device: device({
        state: 'PROVISIONING',
        pendingCertificateId: OLD_CERT,
        provisioningDeadline: inWindow,
      }),
    },
    reason: 'PROVISIONING_IN_PROGRESS',
  },
  // Provisioning by trusted user (https://docs.aws.amazon.com/iot/latest/developerguide/provision-wo-cert.html#trusted-user)
  {
    name: 'the trusted-user template with a claim the installer API never issued',
    request: request({ viaInstallerTemplate: true }),
    facts: { device: device() },
    reason: 'TEMPORARY_CLAIM_NOT_ISSUED',
  },
  {
    name: 'a temporary claim issued for another serial',
    request: request({ viaInstallerTemplate: true }),
    facts: { device: device(), temporaryClaim: temporary({ serial: 'SN-0002' }) },
    reason: 'TEMPORARY_CLAIM_OTHER_SERIAL',
  },
  {
    name: 'a temporary claim past its expiration (clock ahead of the handshake)',
    request: request({ viaInstallerTemplate: true }),
    facts: { device: device(), temporaryClaim: temporary({ expiration: NOW.iso }) },
    reason: 'TEMPORARY_CLAIM_EXPIRED',
  },
  {
    name: 'a temporary claim through the claim template',
    request: request(),
    facts: { device: device(), temporaryClaim: temporary() },
    reason: 'CLAIM_NOT_ALLOWED',
  },
  {
    name: 'a valid temporary claim for a quarantined device',
    request: request({ viaInstallerTemplate: true }),
    facts: { device: device({ state: 'QUARANTINED' }), temporaryClaim: temporary() },
    reason: 'DEVICE_QUARANTINED',
  },
];

describe('decideProvisioning denies', () => {
  it.each(denials)('$name → $reason', ({ request: req, facts, rules, reason }) => {
    // Act
    const decision = decideProvisioning(req ?? request(), facts, { ...RULES, ...rules }, NOW);
    // Assess
    expect(decision).toEqual({ allow: false, reason, detail: expect.any(String) });
  });

  it('covers every reason code the rules can produce', () => {
    const produced = new Set(denials.map((c) => c.reason));
    const flowOnly: DenyReason[] = [
      'INVALID_EVENT',
      'STORE_UNAVAILABLE',
      'TIME_BUDGET_EXCEEDED',
      'INTERNAL_ERROR',
    ];
    expect([...produced, ...flowOnly].sort()).toEqual([...DENY_REASONS].sort());
  });
});

describe('decideProvisioning allows', () => {
  it('a temporary claim for its serial, unexpired, through the trusted-user template — whatever claim the allowlist names', () => {
    const decision = decideProvisioning(
      request({ viaInstallerTemplate: true, claimCertificateId: OTHER_CLAIM }),
      { device: device({ allowedClaim: CLAIM }), temporaryClaim: temporary() },
      RULES,
      NOW,
    );
    expect(decision).toMatchObject({ allow: true, serial: 'SN-0001', binding: 'new' });
  });

  it('a first provisioning, with the thing name and attributes as overrides', () => {
    const decision = decideProvisioning(request(), { device: device() }, RULES, NOW);
    expect(decision).toEqual({
      allow: true,
      serial: 'SN-0001',
      thingName: 'fg-SN-0001',
      overrides: {
        ThingName: 'fg-SN-0001',
        ProductLine: 'gw',
        Batch: 'B7',
        CertificateIssueDate: new Date(NOW.epochMs - HOUR).toISOString(),
      },
      alreadyBound: false,
      binding: 'new',
    });
  });

  it('the same certificate again, with the same overrides and nothing to write', () => {
    const first = decideProvisioning(request(), { device: device() }, RULES, NOW);
    const facts = {
      device: device({
        state: 'PROVISIONING' as const,
        pendingCertificateId: CERT,
        provisioningDeadline: inWindow,
        thingName: 'fg-SN-0001',
      }),
      certificate: { certificateId: CERT, serial: 'SN-0001' },
      publicKeyOwner: { serial: 'SN-0001', certificateId: CERT },
      claimCount: 10_000,
    };
    const again = decideProvisioning(request(), facts, RULES, NOW);
    expect(again).toMatchObject({ allow: true, alreadyBound: true, binding: 'existing' });
    expect(again.allow && first.allow && again.overrides).toEqual(first.allow && first.overrides);
  });

  it('a certificate of this serial the device does not reference yet (a read racing a concurrent binding): the write decides', () => {
    const facts = {
      device: device(),
      certificate: { certificateId: CERT, serial: 'SN-0001' },
      publicKeyOwner: { serial: 'SN-0001', certificateId: CERT },
    };
    expect(decideProvisioning(request(), facts, RULES, NOW)).toMatchObject({ allow: true, binding: 'new' });
  });

  it('the current certificate of an ACTIVE device again', () => {
    const decision = decideProvisioning(
      request(),
      { device: device({ state: 'ACTIVE', certificateId: CERT }) },
      RULES,
      NOW,
    );
    expect(decision).toMatchObject({ allow: true, alreadyBound: true });
  });

  it('a fresh attempt once the PROVISIONING window has passed', () => {
    const facts = {
      device: device({
        state: 'PROVISIONING' as const,
        pendingCertificateId: OLD_CERT,
        provisioningDeadline: pastWindow,
      }),
    };
    expect(decideProvisioning(request(), facts, RULES, NOW)).toMatchObject({
      allow: true,
      binding: 'after-expired-provisioning',
    });
  });

  it('the same key on an ACTIVE serial under same-key', () => {
    const facts = {
      device: device({ state: 'ACTIVE' as const, certificateId: OLD_CERT }),
      publicKeyOwner: { serial: 'SN-0001', certificateId: OLD_CERT },
    };
    const rules = { ...RULES, reprovisioningPolicy: 'same-key' as const };
    expect(decideProvisioning(request(), facts, rules, NOW)).toMatchObject({
      allow: true,
      binding: 'reprovision',
    });
  });

  it('any new certificate on an ACTIVE serial under replace', () => {
    const facts = { device: device({ state: 'ACTIVE' as const, certificateId: OLD_CERT }) };
    const rules = { ...RULES, reprovisioningPolicy: 'replace' as const };
    expect(decideProvisioning(request(), facts, rules, NOW)).toMatchObject({
      allow: true,
      binding: 'reprovision',
    });
  });

  it.each([
    ['a claim in the allowed group', device({ allowedClaim: 'group:factory' }), RULES],
    ['a claim id in another case', device({ allowedClaim: CLAIM.toUpperCase() }), RULES],
    [
      'the default claim when the entry names none',
      device({ allowedClaim: undefined }),
      { ...RULES, defaultAllowedClaim: CLAIM },
    ],
    [
      'any claim under the * default',
      device({ allowedClaim: undefined }),
      { ...RULES, defaultAllowedClaim: '*' },
    ],
  ])('%s', (_name, entry, rules) => {
    expect(decideProvisioning(request(), { device: entry }, rules, NOW)).toMatchObject({ allow: true });
  });

  it('a notBefore inside the clock-skew tolerance', () => {
    const req = request({}, { notBeforeMs: NOW.epochMs + 60_000 });
    expect(decideProvisioning(req, { device: device() }, RULES, NOW)).toMatchObject({ allow: true });
  });

  it('a claim one below its budget', () => {
    expect(decideProvisioning(request(), { device: device(), claimCount: 59 }, RULES, NOW)).toMatchObject({
      allow: true,
    });
  });

  it('keeps a thing name already stored for the serial', () => {
    const decision = decideProvisioning(
      request(),
      { device: device({ thingName: 'legacy-name' }) },
      RULES,
      NOW,
    );
    expect(decision).toMatchObject({
      allow: true,
      thingName: 'legacy-name',
      overrides: { ThingName: 'legacy-name' },
    });
  });
});

describe('hookSuspicion', () => {
  const owner = (serial: string) => ({ publicKeyOwner: { serial, certificateId: OLD_CERT } });
  it.each([
    [
      'the serial’s own key under a new certificate → clone, device quarantined',
      'SERIAL_BOUND_TO_OTHER_CERTIFICATE',
      owner('SN-1'),
      { reason: 'CLONE_PUBLIC_KEY', serial: 'SN-1' },
    ],
    [
      'another device’s key → its owner quarantined',
      'PUBLIC_KEY_IN_USE',
      owner('SN-2'),
      { reason: 'PUBLIC_KEY_IN_USE', serial: 'SN-2' },
    ],
    [
      'a new key for a bound serial → only the certificate',
      'SERIAL_BOUND_TO_OTHER_CERTIFICATE',
      {},
      { reason: 'SERIAL_TAKEOVER_ATTEMPT' },
    ],
  ] as const)('%s', (_, reason, facts, expected) => {
    const suspicion = hookSuspicion(deny(reason, 'x'), 'SN-1', facts);
    expect(suspicion).toMatchObject(expected);
    if (!('serial' in expected)) expect(suspicion?.serial).toBeUndefined();
  });

  it.each(DENY_REASONS.filter((r) => r !== 'PUBLIC_KEY_IN_USE' && r !== 'SERIAL_BOUND_TO_OTHER_CERTIFICATE'))(
    '%s is not clone evidence',
    (reason) => {
      expect(hookSuspicion(deny(reason, 'x'), 'SN-1', owner('SN-1'))).toBeUndefined();
    },
  );
});
