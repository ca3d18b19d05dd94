import type { DeviceRecord } from '../../shared/store/records';

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
