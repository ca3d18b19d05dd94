/**
 * What a quarantine request does to a device, decided from the device's state alone. Pure: the
 * worker reads the device, asks here, then acts.
 */
import { type DeviceState, transition } from './device-state';

export type QuarantinePlan =
  /** Move the device to QUARANTINED: deactivate its certificates, restrict its thing, record it. */
  | { action: 'quarantine'; from: DeviceState }
  /**
   * The device cannot move (already QUARANTINED, REVOKED or DECOMMISSIONED): restrict what the
   * request names (its certificate, the thing) and add the evidence to the history, nothing else.
   */
  | { action: 'add-evidence'; state: DeviceState; why: string };

/** Decides what a quarantine request does to a device in `state`. */
export function planQuarantine(state: DeviceState): QuarantinePlan {
  const rule = transition(state, 'QUARANTINE');
  if (rule.legal) return { action: 'quarantine', from: state };
  return { action: 'add-evidence', state, why: rule.reason };
}

/**
 * The certificates a quarantine deactivates: the one the request names, and — when the device
 * itself is quarantined — the one it proved and the one it was about to prove. Order kept, no repeats.
 */
export function certificatesToDeactivate(
  plan: QuarantinePlan,
  requested: string | undefined,
  device: { certificateId?: string; pendingCertificateId?: string },
): string[] {
  const ids =
    plan.action === 'quarantine'
      ? [requested, device.certificateId, device.pendingCertificateId]
      : [requested];
  return [...new Set(ids.filter((id): id is string => typeof id === 'string' && id !== ''))];
}
