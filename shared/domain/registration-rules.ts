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
 * Whether `caCertificateId` may issue device certificates. Fail closed: only a CA the operator named
 * in `TRUSTED_CA_IDS`, or one fleetgate recorded in its store as a CA (`fleetgate certificates
 * register <ca.pem> --kind ca`), is trusted — being registered in AWS IoT is not enough (anyone with
 * iot:RegisterCACertificate, or a CA registered for another purpose, would otherwise mint devices).
 */
export function checkTrustedCa(
  caCertificateId: string,
  trust: { trustedCaIds: readonly string[]; recordedCa: boolean },
): IssuerCheck {
  if (trust.trustedCaIds.includes(caCertificateId.toLowerCase()) || trust.recordedCa)
    return { trusted: true };
  return {
    trusted: false,
    detail:
      trust.trustedCaIds.length === 0
        ? 'caCertificateId: the CA is neither on TRUSTED_CA_IDS (empty) nor recorded as a CA in the store'
        : 'caCertificateId: the CA is neither on TRUSTED_CA_IDS nor recorded as a CA in the store',
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
