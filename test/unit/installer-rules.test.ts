/**
 * Who may get a temporary claim for which serial (provisioning by trusted user):
 * https://docs.aws.amazon.com/iot/latest/developerguide/provision-wo-cert.html#trusted-user
 */
import { describe, expect, it } from 'vitest';
import { configFor } from '../../shared/config';
import {
  decideInstallerClaim,
  INSTALLER_CLAIM_REFUSALS,
  type InstallerClaimFacts,
  REFUSAL_STATUS,
} from '../../shared/domain/installer-rules';

const RULES = configFor();
const REQUEST = { installer: 'alice', serial: 'SN-0001' };
const device = (state: NonNullable<InstallerClaimFacts['device']>['state'], batch?: string) => ({
  serial: 'SN-0001',
  state,
  ...(batch ? { batch } : {}),
});

describe('decideInstallerClaim', () => {
  it.each([
    { name: 'bad serial', request: { ...REQUEST, serial: 'no spaces' }, facts: {}, reason: 'INVALID_SERIAL' },
    // Binding before allowlist: an unbound installer cannot tell a missing serial from another's.
    { name: 'not bound, serial missing', facts: {}, reason: 'INSTALLER_NOT_BOUND' },
    {
      name: 'not bound, serial exists',
      facts: { device: device('ALLOWLISTED') },
      reason: 'INSTALLER_NOT_BOUND',
    },
    {
      name: 'bound, not allowlisted',
      facts: { binding: 'SERIAL' as const },
      reason: 'SERIAL_NOT_ALLOWLISTED',
    },
    {
      name: 'revoked',
      facts: { binding: 'SERIAL' as const, device: device('REVOKED') },
      reason: 'DEVICE_REVOKED',
    },
    {
      name: 'decommissioned',
      facts: { binding: 'BATCH' as const, device: device('DECOMMISSIONED', 'B1') },
      reason: 'DEVICE_DECOMMISSIONED',
    },
    {
      name: 'quarantined',
      facts: { binding: 'SERIAL' as const, device: device('QUARANTINED') },
      reason: 'DEVICE_QUARANTINED',
    },
    {
      name: 'ACTIVE under the never policy',
      facts: { binding: 'SERIAL' as const, device: device('ACTIVE') },
      reason: 'ALREADY_PROVISIONED',
    },
  ])('refuses: $name → $reason', ({ request, facts, reason }) => {
    const decision = decideInstallerClaim(request ?? REQUEST, facts, RULES);
    expect(decision).toEqual({
      allow: false,
      reason,
      status: REFUSAL_STATUS[reason as keyof typeof REFUSAL_STATUS],
      detail: expect.any(String),
    });
  });

  it('allows a bound, allowlisted device that can take a certificate (by serial or by batch)', () => {
    expect(
      decideInstallerClaim(REQUEST, { binding: 'SERIAL', device: device('ALLOWLISTED') }, RULES),
    ).toEqual({
      allow: true,
      serial: 'SN-0001',
      installer: 'alice',
      binding: 'SERIAL',
    });
    expect(
      decideInstallerClaim(REQUEST, { binding: 'BATCH', device: device('PROVISIONING', 'B1') }, RULES),
    ).toMatchObject({
      allow: true,
      binding: 'BATCH',
    });
  });

  it('allows an ACTIVE device again when the reprovisioning policy lets it take a new certificate', () => {
    const rules = configFor({ REPROVISIONING_POLICY: 'replace' });
    expect(decideInstallerClaim(REQUEST, { binding: 'SERIAL', device: device('ACTIVE') }, rules).allow).toBe(
      true,
    );
  });

  it('answers every refusal with a 4xx status', () => {
    for (const reason of INSTALLER_CLAIM_REFUSALS) {
      expect(REFUSAL_STATUS[reason]).toBeGreaterThanOrEqual(400);
      expect(REFUSAL_STATUS[reason]).toBeLessThan(500);
    }
  });
});
