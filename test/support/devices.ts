import type { CertificateRecord, DeviceRecord } from '../../shared/store/records';

export const NOW = '2026-11-24T12:00:00.000Z';

/** A device record as the allowlist import creates it, with overrides. */
export function allowlistedDevice(overrides: Partial<DeviceRecord> = {}): DeviceRecord {
  return {
    serial: 'SN-000001',
    state: 'ALLOWLISTED',
    version: 1,
    attributes: {},
    createdAt: NOW,
    updatedAt: NOW,
    ...overrides,
  };
}

/** A PENDING fleet-provisioning device certificate record, as the hook records one at `NOW`. */
export function pendingCertificate(
  certificateId: string,
  overrides: Partial<CertificateRecord> = {},
): CertificateRecord {
  return {
    certificateId,
    kind: 'DEVICE',
    status: 'PENDING',
    source: 'FLEET_PROVISIONING',
    issuer: 'CN=Test CA',
    notBefore: '2026-11-24T00:00:00.000Z',
    notAfter: '2027-11-24T00:00:00.000Z',
    createdAt: NOW,
    updatedAt: NOW,
    ...overrides,
  };
}
