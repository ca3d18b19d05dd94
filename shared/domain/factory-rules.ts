/**
 * Factory-issued certificates (`fleetgate factory import`): the decision for one row of a batch —
 * register it, report it as already registered, resume an interrupted import of it, or reject it
 * with a specific reason. Request-level checks (serial format, key strength, validity, not a CA) are
 * the shared `checkRequest` of the provisioning rules, so a factory certificate is held to exactly
 * what the hook and JITR hold a device certificate to. Pure: no I/O, no clock, no randomness.
 */
import type { DeviceState } from './device-state';
import {
  checkRequest,
  type DenyReason,
  type DeviceFacts,
  type Instant,
  type PresentedCertificate,
  type ProvisioningRules,
  thingNameFor,
} from './provisioning-rules';
import { type SerialRules, type SubjectFacts, serialFromSubject } from './registration-rules';

/** Reasons only the factory import produces (beside the shared `DenyReason`s it reuses). */
export const FACTORY_REASONS = [
  /** The certificate is not signed by the batch's CA (or the CA given is not what IoT knows). */
  'WRONG_CA',
  /** The serial the manifest names is not the one the certificate's subject carries. */
  'SERIAL_MISMATCH',
  /** The subject carries no serial where `SERIAL_SOURCE` says (and no manifest names one). */
  'SERIAL_NOT_IN_SUBJECT',
  /** The row's public key is another row's of the same batch, or another device's in the store. */
  'KEY_REUSED',
  /** Another row of the batch has the same serial. */
  'DUPLICATE_SERIAL',
  /** Another row of the batch is the very same certificate. */
  'DUPLICATE_CERTIFICATE',
  /** The file or manifest cell is not exactly one well-formed certificate. */
  'INVALID_CERTIFICATE',
  /** AWS IoT refused to register the certificate (the reason names AWS's error). */
  'REGISTRATION_REFUSED',
] as const;
export type FactoryReason = DenyReason | (typeof FACTORY_REASONS)[number];

/** One row as read from the batch, after parsing its certificate. */
export interface FactoryRow {
  /** The serial the manifest names (absent for a directory of PEM files: the subject decides). */
  manifestSerial?: string;
  certificate: PresentedCertificate & SubjectFacts;
  /** Whether the certificate verifies against the batch's CA (undefined: registered without a CA). */
  signedByCa?: boolean;
  /** What earlier rows of the same batch already hold. */
  batch: { serialSeen: boolean; certificateSeen: boolean; keyOwner?: string };
}

/** What the store knows about the row (one BatchGetItem). */
export interface FactoryFacts {
  device?: DeviceFacts & { state: DeviceState };
  certificate?: { certificateId: string; serial?: string; source: string; status: string };
  publicKeyOwner?: { serial: string; certificateId: string };
}

export type FactoryDecision =
  /** Nothing is recorded yet: create (or bind to the allowlisted) device and register. */
  | { action: 'register'; serial: string; thingName: string; deviceExists: boolean }
  /** A run before this one reserved the row but did not finish (IoT steps or commit pending). */
  | { action: 'resume'; serial: string; thingName: string }
  /** The row is fully imported already: nothing to do, no IoT call. */
  | { action: 'already-registered'; serial: string; thingName: string }
  | { action: 'reject'; reason: FactoryReason; detail: string; serial?: string };

type RowRejection = Extract<FactoryDecision, { action: 'reject' }>;

const rejectRow = (reason: FactoryReason, detail: string, serial?: string): RowRejection => ({
  action: 'reject',
  reason,
  detail,
  ...(serial !== undefined ? { serial } : {}),
});

/**
 * Decides one row. Rules, in order (the first that fails decides): the batch itself (duplicate
 * certificate, serial from the subject, manifest serial = subject serial, duplicate serial, the
 * batch's CA signed it), the shared request checks, a repeat of this very import (already
 * registered / resume), then the store: the device is not revoked, quarantined or decommissioned and
 * holds no other certificate, the certificate is nobody else's, the key is not another row's or
 * another device's.
 */
export function decideFactoryRow(
  row: FactoryRow,
  facts: FactoryFacts,
  rules: ProvisioningRules & SerialRules,
  now: Instant,
): FactoryDecision {
  const checked = checkBatchRow(row, rules, now);
  if (checked.action === 'reject') return checked;
  const { serial } = checked;
  const { device } = facts;
  const thingName = thingNameFor(device ?? { serial, state: 'ALLOWLISTED' }, rules);
  if (facts.certificate) {
    return decideRecorded(facts.certificate, device, row.certificate.certificateId, { serial, thingName });
  }
  const refused = device ? refuseDevice(device.state, serial) : undefined;
  if (refused) return refused;
  const keyOwner = facts.publicKeyOwner;
  if (keyOwner && keyOwner.serial !== serial) {
    return rejectRow('KEY_REUSED', `certificate: public key belongs to device ${keyOwner.serial}`, serial);
  }
  return { action: 'register', serial, thingName, deviceExists: device !== undefined };
}

/** The rules about the row itself and its batch: the row's serial, or the first rule it breaks. */
function checkBatchRow(
  row: FactoryRow,
  rules: ProvisioningRules & SerialRules,
  now: Instant,
): { action: 'checked'; serial: string } | RowRejection {
  const { certificate } = row;
  if (row.batch.certificateSeen) {
    return rejectRow(
      'DUPLICATE_CERTIFICATE',
      'certificate: appears earlier in the batch',
      row.manifestSerial,
    );
  }
  const subjectSerial = serialFromSubject(certificate, rules);
  if (
    row.manifestSerial !== undefined &&
    subjectSerial !== undefined &&
    subjectSerial !== row.manifestSerial
  ) {
    return rejectRow(
      'SERIAL_MISMATCH',
      `serial: the manifest says ${row.manifestSerial}, the certificate's subject says ${subjectSerial}`,
      row.manifestSerial,
    );
  }
  const serial = subjectSerial ?? row.manifestSerial;
  if (serial === undefined || subjectSerial === undefined) {
    return rejectRow(
      'SERIAL_NOT_IN_SUBJECT',
      rules.serialSource === 'cn'
        ? `certificate: commonName does not match ${rules.serialCnPattern.source}`
        : 'certificate: subject has no serialNumber attribute',
      row.manifestSerial,
    );
  }
  if (row.batch.serialSeen)
    return rejectRow('DUPLICATE_SERIAL', 'serial: appears earlier in the batch', serial);
  if (row.signedByCa === false) {
    return rejectRow(
      'WRONG_CA',
      'certificate: is not signed by the batch CA (signature does not verify)',
      serial,
    );
  }
  const invalid = checkRequest({ serial, certificateId: certificate.certificateId, certificate }, rules, now);
  // The shared rules name the hook's field (`certificatePem`); a batch row's is `certificate`.
  if (invalid)
    return rejectRow(invalid.reason, invalid.detail.replace(/^certificatePem:/, 'certificate:'), serial);
  if (row.batch.keyOwner !== undefined) {
    return rejectRow(
      'KEY_REUSED',
      `certificate: public key is also the one of ${row.batch.keyOwner} in this batch`,
      serial,
    );
  }

  return { action: 'checked', serial };
}

/** The certificate is recorded already: a repeat of this import (resume or done), or someone else's. */
function decideRecorded(
  recorded: NonNullable<FactoryFacts['certificate']>,
  device: FactoryFacts['device'],
  certificateId: string,
  row: { serial: string; thingName: string },
): FactoryDecision {
  const { serial, thingName } = row;
  if (recorded.serial !== serial) {
    return rejectRow(
      'CERTIFICATE_IN_USE',
      'certificate: is recorded for another device (or was rejected)',
      serial,
    );
  }
  if (recorded.source !== 'FACTORY') {
    return rejectRow(
      'CERTIFICATE_IN_USE',
      `certificate: was bound by ${recorded.source}, not by an import`,
      serial,
    );
  }
  const bound = device?.pendingCertificateId === certificateId || device?.certificateId === certificateId;
  if (!bound) {
    return rejectRow('CERTIFICATE_IN_USE', 'certificate: is no longer the device’s', serial);
  }
  return recorded.status === 'PENDING'
    ? { action: 'resume', serial, thingName }
    : { action: 'already-registered', serial, thingName };
}

/** A known device that cannot take an imported certificate (only an allowlisted one can). */
function refuseDevice(state: DeviceState, serial: string): FactoryDecision | undefined {
  switch (state) {
    case 'REVOKED':
      return rejectRow('DEVICE_REVOKED', 'serial: the device was revoked', serial);
    case 'DECOMMISSIONED':
      return rejectRow('DEVICE_DECOMMISSIONED', 'serial: the device was decommissioned', serial);
    case 'QUARANTINED':
      return rejectRow('DEVICE_QUARANTINED', 'serial: the device is in quarantine', serial);
    case 'ALLOWLISTED':
      return undefined;
    default:
      return rejectRow(
        'SERIAL_BOUND_TO_OTHER_CERTIFICATE',
        `serial: the device is ${state} with another certificate`,
        serial,
      );
  }
}

/** How a batch row ended, for the per-row report. */
export type FactoryRowStatus = 'registered' | 'already-registered' | 'rejected' | 'failed';
