/**
 * Provisioning by trusted user: may this installer get a temporary claim for this serial?
 * (AWS Fleet Provisioning's second mode: an installer signed in to the team's app asks for a
 * five-minute claim for one device; the device provisions with it.)
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/provision-wo-cert.html#trusted-user
 *
 * Rules, in order (the first that fails decides):
 * 1. the serial has the serial format (400);
 * 2. the installer is bound to the serial, or to the device's batch (403) — checked before the
 *    allowlist, so an installer cannot learn which serials exist by asking for ones not theirs;
 * 3. the serial is allowlisted (404);
 * 4. the device is not revoked, decommissioned or in quarantine (409);
 * 5. an ACTIVE or ROTATING device is claimed again only when the reprovisioning policy allows a
 *    new certificate at all (409 otherwise).
 * The hook decides the provisioning itself when the device uses the claim; these rules only refuse
 * claims that could never be used, so an installer hears why at once.
 */
import type { DeviceState } from './device-state';
import { closedStateDenial, type DeviceFacts, type ReprovisioningPolicy } from './provisioning-rules';

export const INSTALLER_CLAIM_REFUSALS = [
  'INVALID_REQUEST',
  'INVALID_SERIAL',
  'INSTALLER_NOT_BOUND',
  'SERIAL_NOT_ALLOWLISTED',
  'DEVICE_REVOKED',
  'DEVICE_DECOMMISSIONED',
  'DEVICE_QUARANTINED',
  'ALREADY_PROVISIONED',
  'RATE_EXCEEDED',
] as const;
export type InstallerClaimRefusal = (typeof INSTALLER_CLAIM_REFUSALS)[number];

/** The HTTP status each refusal is answered with. */
export const REFUSAL_STATUS: Readonly<Record<InstallerClaimRefusal, number>> = {
  INVALID_REQUEST: 400,
  INVALID_SERIAL: 400,
  INSTALLER_NOT_BOUND: 403,
  SERIAL_NOT_ALLOWLISTED: 404,
  DEVICE_REVOKED: 409,
  DEVICE_DECOMMISSIONED: 409,
  DEVICE_QUARANTINED: 409,
  ALREADY_PROVISIONED: 409,
  RATE_EXCEEDED: 429,
};

export interface InstallerClaimRequest {
  installer: string;
  serial: string;
}

/** What the store knows: the device, and how (if at all) the installer is bound to it. */
export interface InstallerClaimFacts {
  device?: Pick<DeviceFacts, 'serial' | 'state' | 'batch'>;
  binding?: 'SERIAL' | 'BATCH';
}

export interface InstallerClaimRules {
  serialPattern: RegExp;
  reprovisioningPolicy: ReprovisioningPolicy;
}

export type InstallerClaimDecision =
  | { allow: true; serial: string; installer: string; binding: 'SERIAL' | 'BATCH' }
  | { allow: false; reason: InstallerClaimRefusal; status: number; detail: string };

export function refuse(
  reason: InstallerClaimRefusal,
  detail: string,
): Extract<InstallerClaimDecision, { allow: false }> {
  return { allow: false, reason, status: REFUSAL_STATUS[reason], detail };
}

/** The serial-format check, on its own so that a bad serial costs no read. */
export function checkInstallerSerial(
  serial: string,
  rules: Pick<InstallerClaimRules, 'serialPattern'>,
): Extract<InstallerClaimDecision, { allow: false }> | undefined {
  return rules.serialPattern.test(serial)
    ? undefined
    : refuse('INVALID_SERIAL', `serial: must match ${rules.serialPattern.source}`);
}

const PROVISIONED: readonly DeviceState[] = ['ACTIVE', 'ROTATING'];

/** Pure: no I/O, no clock. */
export function decideInstallerClaim(
  request: InstallerClaimRequest,
  facts: InstallerClaimFacts,
  rules: InstallerClaimRules,
): InstallerClaimDecision {
  const invalid = checkInstallerSerial(request.serial, rules);
  if (invalid) return invalid;
  if (!facts.binding) {
    return refuse('INSTALLER_NOT_BOUND', `installer ${request.installer} may not install ${request.serial}`);
  }
  const { device } = facts;
  if (!device) return refuse('SERIAL_NOT_ALLOWLISTED', `${request.serial} is not on the allowlist`);
  const closed = closedStateDenial(device.state);
  if (closed) return refuse(closed.reason as InstallerClaimRefusal, closed.detail);
  if (PROVISIONED.includes(device.state) && rules.reprovisioningPolicy === 'never') {
    return refuse(
      'ALREADY_PROVISIONED',
      `${request.serial} is ${device.state} and the reprovisioning policy is never`,
    );
  }
  return { allow: true, serial: request.serial, installer: request.installer, binding: facts.binding };
}
