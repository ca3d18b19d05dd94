/**
 * The rotation decision: may the device that sent this CSR on `fleetgate/<thingName>/rotate/request`
 * get a new certificate for it? Pure: parsed values in, a decision out.
 *
 * Rules, in the order they are applied (the first that fails decides):
 * 1. the thing name stands for an allowlisted device (`UNKNOWN_DEVICE`);
 * 2. the sender is that device: the connection's principal is the device's current certificate
 *    (`PRINCIPAL_MISMATCH`: another device's certificate, or one the device does not hold);
 * 3. the device is ACTIVE, or ROTATING (the caller resumes or re-answers the same request, or
 *    refuses another one with `ROTATION_IN_PROGRESS`) (`DEVICE_NOT_ACTIVE`);
 * 4. the CSR is signed by the key it carries (`CSR_SIGNATURE_INVALID`), that key satisfies the key
 *    policy (`WEAK_KEY`) and is not the current certificate's key (`KEY_NOT_NEW`);
 * 5. the CSR's subject names the device: the serial read from it as JITR reads it
 *    (`SERIAL_SOURCE`, `SERIAL_CN_PATTERN`), or a CN equal to the thing name (`SUBJECT_MISMATCH`).
 */
import { checkKeyPolicy, type KeyFacts, type KeyPolicy } from './certificate-rules';
import type { DeviceState } from './device-state';
import { type SerialRules, type SubjectFacts, serialFromSubject } from './registration-rules';

/** Stable reason codes of a rejected rotation request (published on `.../rotate/rejected`). */
/** The states rotation accepts a request in (rule 3); the expiry sweep asks only these devices. */
export const ROTATABLE_STATES: readonly DeviceState[] = ['ACTIVE', 'ROTATING'];

export const ROTATION_REJECT_REASONS = [
  'INVALID_REQUEST',
  'INVALID_CSR',
  'UNKNOWN_DEVICE',
  'PRINCIPAL_MISMATCH',
  'DEVICE_NOT_ACTIVE',
  'ROTATION_IN_PROGRESS',
  'CSR_SIGNATURE_INVALID',
  'WEAK_KEY',
  'KEY_NOT_NEW',
  'KEY_REVOKED',
  'SUBJECT_MISMATCH',
  'PUBLIC_KEY_IN_USE',
  'CERTIFICATE_REJECTED',
] as const;
export type RotationRejectReason = (typeof ROTATION_REJECT_REASONS)[number];

/** What the rules need from the CSR (see `ParsedCsr` in shared/certificates.ts). */
export interface CsrFacts extends SubjectFacts {
  key: KeyFacts;
  publicKeyHash: string;
  signatureValid: boolean;
}

/** What the rules need from the store. */
export interface RotationDeviceFacts {
  serial: string;
  state: DeviceState;
  certificateId?: string;
  pendingCertificateId?: string;
}

export interface RotationRules extends SerialRules {
  keyPolicy: KeyPolicy;
}

export type RotationDecision =
  | { allow: true; serial: string; resume: boolean }
  | { allow: false; reason: RotationRejectReason; detail: string };

/** A rejection value. */
export function rejectRotation(reason: RotationRejectReason, detail: string): RotationDecision {
  return { allow: false, reason, detail };
}

/**
 * Decides a rotation request. `resume` is true when the device is already ROTATING: the caller
 * continues (or answers again) only the request that started that rotation.
 * @param currentPublicKeyHash the public-key hash of the device's current certificate, when known.
 */
export function decideRotation(
  request: { thingName: string; principal: string; csr: CsrFacts },
  device: RotationDeviceFacts | undefined,
  currentPublicKeyHash: string | undefined,
  rules: RotationRules,
): RotationDecision {
  if (!device) return rejectRotation('UNKNOWN_DEVICE', `no device is known for thing ${request.thingName}`);
  const principal = request.principal.toLowerCase();
  if (device.certificateId === undefined || device.certificateId !== principal) {
    return rejectRotation(
      'PRINCIPAL_MISMATCH',
      'the request was not sent with the certificate the device currently holds',
    );
  }
  if (!ROTATABLE_STATES.includes(device.state)) {
    return rejectRotation('DEVICE_NOT_ACTIVE', `device is ${device.state}`);
  }
  const { csr } = request;
  if (!csr.signatureValid) {
    return rejectRotation('CSR_SIGNATURE_INVALID', 'csr: is not signed by the key it carries');
  }
  const key = checkKeyPolicy(csr.key, rules.keyPolicy);
  if (!key.ok) return rejectRotation('WEAK_KEY', `csr: ${key.rule}`);
  if (currentPublicKeyHash !== undefined && csr.publicKeyHash === currentPublicKeyHash) {
    return rejectRotation('KEY_NOT_NEW', 'the CSR carries the key of the current certificate');
  }
  const serial = serialFromSubject(csr, rules);
  if (serial !== device.serial && csr.commonName !== request.thingName) {
    return rejectRotation(
      'SUBJECT_MISMATCH',
      `the CSR subject names ${serial ?? csr.commonName ?? 'no serial'}, not ${device.serial}`,
    );
  }
  return { allow: true, serial: device.serial, resume: device.state === 'ROTATING' };
}
