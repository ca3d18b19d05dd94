import type { DeviceState } from '../domain/device-state';

/** The device record: the allowlist entry and the device's provisioning state in one item. */
export interface DeviceRecord {
  serial: string;
  state: DeviceState;
  /** Optimistic lock: incremented by every write to the record. */
  version: number;
  productLine?: string;
  batch?: string;
  /** Claim certificate id (or `group:<name>`) that may provision this serial. */
  allowedClaim?: string;
  attributes: Record<string, string>;
  thingName?: string;
  /** The certificate the device has proven it holds (connected with it). */
  certificateId?: string;
  /** The certificate issued or registered but not yet proven (PROVISIONING / ROTATING). */
  pendingCertificateId?: string;
  /** PROVISIONING returns to ALLOWLISTED after this instant (ownership-token window). */
  provisioningDeadline?: string;
  /** ROTATING is aborted after this instant if the device never connected with the new certificate. */
  rotationDeadline?: string;
  /** Set while QUARANTINED: where RELEASE goes back to. */
  previousState?: DeviceState;
  quarantine?: QuarantineInfo;
  /** When `fleetgate factory import` bound the device's factory-issued certificate. */
  factoryImportedAt?: string;
  /** Key of the last transition applied; a repeat of the same key is "already done". */
  lastTransitionKey?: string;
  createdAt: string;
  updatedAt: string;
}

export interface QuarantineInfo {
  reason: string;
  source: string;
  at: string;
  evidence: Record<string, unknown>;
  /** The quarantine request that put the device (or certificate) here. */
  requestId?: string;
  /** Certificates the quarantine deactivated; a release activates exactly these again. */
  certificateIds?: string[];
  /** The thing added to the quarantine thing group, when there was one. */
  thingName?: string;
}

export const CERTIFICATE_KINDS = ['DEVICE', 'CLAIM', 'CA'] as const;
export type CertificateKind = (typeof CERTIFICATE_KINDS)[number];

export const CERTIFICATE_STATUSES = [
  'PENDING',
  'ACTIVE',
  'INACTIVE',
  'REVOKED',
  'RETIRED',
  'DELETED',
] as const;
export type CertificateStatus = (typeof CERTIFICATE_STATUSES)[number];

export const CERTIFICATE_SOURCES = [
  'FLEET_PROVISIONING',
  'JITR',
  'JITP',
  'ROTATION',
  'IMPORT',
  /** Factory-issued, registered by `fleetgate factory import`. */
  'FACTORY',
  'CLAIM',
  'CA',
] as const;
export type CertificateSource = (typeof CERTIFICATE_SOURCES)[number];

/** What fleetgate knows about one certificate (device, claim or CA). */
export interface CertificateRecord {
  certificateId: string;
  kind: CertificateKind;
  status: CertificateStatus;
  source: CertificateSource;
  serial?: string;
  thingName?: string;
  issuer: string;
  subject?: string;
  notBefore: string;
  notAfter: string;
  publicKeyHash?: string;
  /** Set while a certificate of an unknown device is quarantined (listed by `quarantine list`). */
  quarantine?: QuarantineInfo;
  /** Set while retirement work on the certificate is pending (certificate rotation). */
  retirement?: Retirement;
  createdAt: string;
  updatedAt: string;
}

/**
 * Retirement work on a certificate, carried out by `shared/rotation/retirement.ts`:
 * `DEACTIVATE` (INACTIVE in IoT, detached from the thing; then `DELETE` at `deleteAfter`),
 * `DELETE` (deleted from IoT), `REVOKE` (REVOKED in IoT and detached: an aborted rotation's new
 * certificate).
 */
export type RetirementStep = 'DEACTIVATE' | 'DELETE' | 'REVOKE';

export interface Retirement {
  step: RetirementStep;
  /** When the step is due (the StateIndex sort key of the work item). */
  dueAt: string;
  /** When the certificate may be deleted (after the grace period). */
  deleteAfter?: string;
  serial: string;
  thingName?: string;
  reason: 'ROTATED' | 'ROTATION_ABORTED';
}

/** One append-only audit entry next to the device record. */
export interface HistoryEntry {
  serial: string;
  at: string;
  id: string;
  event: string;
  from?: DeviceState;
  to?: DeviceState;
  actor: string;
  reason?: string;
  detail?: Record<string, unknown>;
}

/** Owner of a public key (one key = one device). */
export interface PublicKeyRecord {
  publicKeyHash: string;
  serial: string;
  certificateId: string;
  createdAt: string;
}

/** What a certificate record needs from a parsed device certificate (`shared/certificates.ts`). */
export interface CertificateFacts {
  certificateId: string;
  issuer: string;
  subject: string;
  notBefore: string;
  notAfter: string;
  publicKeyHash: string;
}

/**
 * The record of a claim or CA certificate fleetgate should know: the expiry sweep reports all of
 * them (an expired claim certificate stops every device still on the shelf) and reconciliation
 * does not count them as unknown.
 */
export function anchorCertificateRecord(
  certificate: CertificateFacts,
  fields: { kind: 'CLAIM' | 'CA'; now: string },
): CertificateRecord {
  return certificateRecord(certificate, {
    kind: fields.kind,
    status: 'ACTIVE',
    source: fields.kind,
    now: fields.now,
  });
}

/** The store's record of a device certificate, built the same way by every flow. */
export function deviceCertificateRecord(
  certificate: CertificateFacts,
  fields: {
    status: CertificateStatus;
    source: CertificateSource;
    now: string;
    serial?: string;
    thingName?: string;
  },
): CertificateRecord {
  return certificateRecord(certificate, { kind: 'DEVICE', ...fields });
}

/** A certificate record: what the certificate says, plus how fleetgate holds it. */
function certificateRecord(
  certificate: CertificateFacts,
  fields: {
    kind: CertificateKind;
    status: CertificateStatus;
    source: CertificateSource;
    now: string;
    serial?: string;
    thingName?: string;
  },
): CertificateRecord {
  return {
    certificateId: certificate.certificateId,
    kind: fields.kind,
    status: fields.status,
    source: fields.source,
    ...(fields.serial !== undefined ? { serial: fields.serial } : {}),
    ...(fields.thingName !== undefined ? { thingName: fields.thingName } : {}),
    issuer: certificate.issuer,
    subject: certificate.subject,
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
    publicKeyHash: certificate.publicKeyHash,
    createdAt: fields.now,
    updatedAt: fields.now,
  };
}
