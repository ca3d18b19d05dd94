import { describe, expect, it } from 'vitest';
import { DEVICE_STATES } from '../../../shared/domain/device-state';
import { certificatesToDeactivate, planQuarantine } from '../../../shared/domain/quarantine';

describe('planQuarantine', () => {
  it.each([
    ['ALLOWLISTED', 'quarantine'],
    ['PROVISIONING', 'quarantine'],
    ['ACTIVE', 'quarantine'],
    ['ROTATING', 'quarantine'],
    ['QUARANTINED', 'add-evidence'],
    ['REVOKED', 'add-evidence'],
    ['DECOMMISSIONED', 'add-evidence'],
  ] as const)('%s → %s', (state, action) => {
    // Act / Assess
    expect(planQuarantine(state).action).toBe(action);
  });

  it('covers every device state', () => {
    expect(DEVICE_STATES.map((state) => planQuarantine(state).action)).toHaveLength(DEVICE_STATES.length);
  });
});

describe('certificatesToDeactivate', () => {
  it('deactivates the requested, proven and pending certificates of a device being quarantined, once each', () => {
    // Act
    const ids = certificatesToDeactivate(planQuarantine('ROTATING'), 'new', {
      certificateId: 'old',
      pendingCertificateId: 'new',
    });
    // Assess
    expect(ids).toEqual(['new', 'old']);
  });

  it('deactivates only the requested certificate of a device that cannot move', () => {
    // Act
    const ids = certificatesToDeactivate(planQuarantine('QUARANTINED'), 'clone', {
      certificateId: 'original',
    });
    // Assess
    expect(ids).toEqual(['clone']);
  });
});
