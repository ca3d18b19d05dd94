/**
 * The parts of automatic registration (JITR, and the JITP follow-up) that the fleet-provisioning
 * hook does not have: where the serial comes from, whether the issuer is trusted, and which
 * certificate status a rejection leaves behind. Everything about the serial itself (allowlist,
 * revoked, takeover, cloned key, validity, key strength) is `decideProvisioning`, shared with the
 * hook: this module only adds what comes before it and maps its answer onto registration outcomes.
 * Pure: no I/O, no clock, no randomness.
 */
import {
  type DenyReason,
  decideProvisioning,
  type deny,
  hookSuspicion,
  type Instant,
  type PresentedCertificate,
  type ProvisioningDecision,
  type ProvisioningFacts,
  type ProvisioningRules,
} from './provisioning-rules';

export const SERIAL_SOURCES = ['cn', 'serialNumber'] as const;
/** Where a device certificate carries the serial: the CN (through a regex capture) or 2.5.4.5. */
export type SerialSource = (typeof SERIAL_SOURCES)[number];

/** Reasons only registration produces (the rest are the shared `DenyReason`s). */
export const REGISTRATION_REASONS = [
  /** The issuing CA is not registered, not ACTIVE, not on TRUSTED_CA_IDS, or did not sign it. */
  'UNTRUSTED_ISSUER',
  /** The subject does not carry a serial where the configuration says it is. */
  'SERIAL_NOT_IN_SUBJECT',
] as const;
export type RegistrationReason = DenyReason | (typeof REGISTRATION_REASONS)[number];

export type RegistrationDecision =
  | Extract<ProvisioningDecision, { allow: true }>
  | {
      allow: false;
      reason: RegistrationReason;
      detail: string;
      /** The serial the certificate claims, when one could be read. */
      serial?: string;
      /** What the rejected certificate becomes in AWS IoT: REVOKED for revoked serials. */
      certificateStatus: 'INACTIVE' | 'REVOKED';
    };

export type Rejection = Extract<RegistrationDecision, { allow: false }>;

/** The subject fields the serial may come from. */
export interface SubjectFacts {
  commonName?: string;
  serialNumber?: string;
}

export interface SerialRules {
  serialSource: SerialSource;
  /** Applied to the CN when `serialSource` is `cn`; capture group 1 is the serial. */
  serialCnPattern: RegExp;
}

/** The serial a subject carries under `rules`, or undefined when it carries none. */
export function serialFromSubject(subject: SubjectFacts, rules: SerialRules): string | undefined {
  if (rules.serialSource === 'serialNumber') return nonEmpty(subject.serialNumber);
  if (subject.commonName === undefined) return undefined;
  return nonEmpty(rules.serialCnPattern.exec(subject.commonName)?.[1]);
}

/** What was learnt about the issuer before the decision (signature checked by the adapter). */
export type IssuerCheck = { trusted: true } | { trusted: false; detail: string };

/**
 * The tag an operator puts on a CA certificate to trust it in the same command that registers it
 * (`aws iot register-ca-certificate … --tags Key=fleetgate:trusted,Value=true`, or TagResource later).
 * Setting it takes `iot:TagResource` on the CA, which an account can deny separately from
 * `iot:RegisterCACertificate` (condition key `aws:TagKeys`); docs/security.md.
 */
export const CA_TRUST_TAG = { key: 'fleetgate:trusted', value: 'true' } as const;

/**
 * Whether `caCertificateId` may issue device certificates. Fail closed: only a CA the operator named
 * — in `TRUSTED_CA_IDS`, recorded in fleetgate's store as a CA (`fleetgate certificates register
 * <ca.pem> --kind ca`), or tagged {@link CA_TRUST_TAG} in AWS IoT — is trusted. Being registered in
 * AWS IoT is not enough (anyone with iot:RegisterCACertificate, or a CA registered for another
 * purpose, would otherwise mint devices).
 */
export function checkTrustedCa(
  caCertificateId: string,
  trust: { trustedCaIds: readonly string[]; recordedCa: boolean; taggedCa?: boolean },
): IssuerCheck {
  if (trust.trustedCaIds.includes(caCertificateId.toLowerCase()) || trust.recordedCa || trust.taggedCa)
    return { trusted: true };
  return {
    trusted: false,
    detail: `caCertificateId: the CA is not on TRUSTED_CA_IDS${
      trust.trustedCaIds.length === 0 ? ' (empty)' : ''
    }, not recorded as a CA in the store, and not tagged ${CA_TRUST_TAG.key}=${CA_TRUST_TAG.value}`,
  };
}

/**
 * Decides a JITR registration: issuer, serial from the subject, then the shared provisioning rules
 * (no claim certificate). Never throws.
 */
export function decideRegistration(
  input: {
    certificateId: string;
    certificate: PresentedCertificate & SubjectFacts;
    issuer: IssuerCheck;
  },
  facts: ProvisioningFacts,
  rules: ProvisioningRules & SerialRules,
  now: Instant,
): RegistrationDecision {
  if (!input.issuer.trusted) return reject('UNTRUSTED_ISSUER', input.issuer.detail);
  const serial = serialFromSubject(input.certificate, rules);
  if (serial === undefined) {
    return reject(
      'SERIAL_NOT_IN_SUBJECT',
      rules.serialSource === 'cn'
        ? `commonName does not match ${rules.serialCnPattern.source}`
        : 'subject has no serialNumber attribute',
    );
  }
  const decision = decideProvisioning(
    { serial, certificateId: input.certificateId, certificate: input.certificate },
    facts,
    rules,
    now,
  );
  if (decision.allow) return decision;
  return reject(decision.reason, decision.detail, serial);
}

/** A rejection; revoked serials leave their certificate REVOKED, everything else INACTIVE. */
export function reject(reason: RegistrationReason, detail: string, serial?: string): Rejection {
  return {
    allow: false,
    reason,
    detail,
    ...(serial !== undefined ? { serial } : {}),
    certificateStatus: reason === 'DEVICE_REVOKED' ? 'REVOKED' : 'INACTIVE',
  };
}

/** The same rejection built from a shared denial (e.g. a conflict the store found). */
export function rejectFromDenial(denial: ReturnType<typeof deny>, serial?: string): Rejection {
  return reject(denial.reason, denial.detail, serial);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

/** What the store already holds of the certificate a registration event names. */
export interface KnownCertificateFacts {
  status: string;
  source: string;
  /** The delivery that reserved it and until when (a registration in progress). */
  lease?: { leaseOwner: string; leaseUntil: string };
}

export type EntryDecision =
  | { kind: 'continue' }
  | { kind: 'duplicate'; detail: string }
  | { kind: 'ignored'; reason: 'CERTIFICATE_NOT_PENDING'; detail: string };

/**
 * Whether a registration event needs work, from the store's record of its certificate alone: a
 * repeat of a finished registration or rejection, a certificate of another flow, or one another
 * delivery (`owner` is this one) is registering under a live lease.
 */
export function decideRegistrationEntry(
  known: KnownCertificateFacts | undefined,
  owner: string,
  now: Instant,
): EntryDecision {
  if (!known) return { kind: 'continue' };
  if (known.status !== 'PENDING')
    return { kind: 'duplicate', detail: `certificate is already ${known.status} in the store` };
  if (known.source !== 'JITR')
    return {
      kind: 'ignored',
      reason: 'CERTIFICATE_NOT_PENDING',
      detail: `certificate belongs to ${known.source}`,
    };
  const lease = known.lease;
  if (lease && lease.leaseOwner !== owner && lease.leaseUntil > now.iso)
    return { kind: 'duplicate', detail: 'another delivery is registering this certificate' };
  return { kind: 'continue' };
}

/**
 * Whether fleetgate may activate the certificate: it is still PENDING_ACTIVATION in IoT, or ACTIVE
 * because an earlier delivery of this registration (`ours`) activated it. Anything else somebody
 * (an operator) changed: fleetgate never re-activates it.
 */
export function isActivatable(iotStatus: string, ours: boolean): boolean {
  return iotStatus === 'PENDING_ACTIVATION' || (ours && iotStatus === 'ACTIVE');
}

/** States a device cannot leave by a new certificate: evidence goes on its record. */
const CLOSED_STATES = new Set(['REVOKED', 'QUARANTINED', 'DECOMMISSIONED']);

/** The quarantine request and history a JITR rejection makes. */
export interface RejectionPlan {
  /** The device the request names; absent: the request is certificate-scoped. */
  serial?: string;
  reason: string;
  evidence: Record<string, unknown>;
  /** The device whose history records the rejection (the one the certificate claims, if it exists). */
  historySerial?: string;
}

/**
 * Whom a JITR rejection's quarantine request names (issue 15: a certificate that is not a device's
 * own never quarantines the device). A device only when the certificate proves the device's own key
 * copied (its key under a new certificate: CLONE_PUBLIC_KEY; another device's key: that device), or
 * when the device cannot move anyway (revoked, quarantined, decommissioned: evidence on its
 * record). Anything else — a second key for a bound serial, a race lost, a weak key — is the
 * presented certificate's alone: a certificate-scoped request, as the pre-provisioning hook does.
 */
export function planRejection(
  rejection: Rejection,
  facts: {
    caCertificateId: string;
    device?: { serial: string; state: string };
    publicKeyOwner?: ProvisioningFacts['publicKeyOwner'];
    certificate?: { subject: string; issuer: string; notAfter: string };
  },
): RejectionPlan {
  const { device, certificate } = facts;
  const historySerial = device && rejection.serial === device.serial ? device.serial : undefined;
  const suspicion =
    rejection.serial !== undefined
      ? hookSuspicion(
          { allow: false, reason: rejection.reason, detail: rejection.detail } as ProvisioningDecision,
          rejection.serial,
          { ...(facts.publicKeyOwner ? { publicKeyOwner: facts.publicKeyOwner } : {}) },
        )
      : undefined;
  const closed = device !== undefined && historySerial !== undefined && CLOSED_STATES.has(device.state);
  const named = suspicion?.serial ?? (closed ? historySerial : undefined);
  return {
    ...(named !== undefined ? { serial: named } : {}),
    reason: suspicion?.reason === 'CLONE_PUBLIC_KEY' ? suspicion.reason : rejection.reason,
    evidence: {
      flow: 'JITR',
      caCertificateId: facts.caCertificateId,
      detail: rejection.detail,
      ...(rejection.serial !== undefined ? { claimedSerial: rejection.serial } : {}),
      ...(certificate
        ? { subject: certificate.subject, issuer: certificate.issuer, notAfter: certificate.notAfter }
        : {}),
    },
    ...(historySerial !== undefined ? { historySerial } : {}),
  };
}
