/**
 * The provisioning decision: may this certificate become the identity of this serial? One pure
 * function shared by every flow that binds a new certificate to a device (the fleet-provisioning
 * hook now, JITR later), so the rules exist once.
 *
 * Rules, in the order they are applied (the first that fails decides):
 * 1. the request itself: serial format, certificate id = SHA-256 of the certificate DER, key
 *    strength, validity period (no I/O needed: `checkRequest`);
 * 2. the serial is allowlisted and not REVOKED / DECOMMISSIONED / QUARANTINED;
 * 3. the claim certificate is the one (or in the group) the allowlist entry names — or, for
 *    provisioning by trusted user, a temporary claim issued for this very serial, unexpired, used
 *    through the trusted-user template (`checkTemporaryClaim`);
 * 4. the same certificate already bound to this serial is an idempotent repeat: allowed again with
 *    the same overrides and nothing written;
 * 5. no takeover: the certificate is not another device's, the public key is not another device's,
 *    a PROVISIONING serial inside its window is not rebound, and an ACTIVE serial is rebound only
 *    as the reprovisioning policy allows (`never` | `same-key` | `replace`);
 * 6. the claim certificate is within its per-minute budget (the store enforces it atomically too).
 */
import { checkKeyPolicy, checkValidity, type KeyFacts, type KeyPolicy } from './certificate-rules';
import type { DeviceState } from './device-state';

/** Stable reason codes: they appear in logs, metrics, history and the README. */
export const DENY_REASONS = [
  'INVALID_EVENT',
  'INVALID_SERIAL',
  'SERIAL_NOT_ALLOWLISTED',
  'DEVICE_REVOKED',
  'DEVICE_DECOMMISSIONED',
  'DEVICE_QUARANTINED',
  'CLAIM_NOT_ALLOWED',
  'CLAIM_RATE_EXCEEDED',
  'TEMPORARY_CLAIM_NOT_ISSUED',
  'TEMPORARY_CLAIM_OTHER_SERIAL',
  'TEMPORARY_CLAIM_EXPIRED',
  'SERIAL_BOUND_TO_OTHER_CERTIFICATE',
  'PUBLIC_KEY_IN_USE',
  'CERTIFICATE_IN_USE',
  'INVALID_CERTIFICATE',
  'WEAK_KEY',
  'CERTIFICATE_NOT_YET_VALID',
  'CERTIFICATE_EXPIRED',
  'PROVISIONING_IN_PROGRESS',
  'STORE_UNAVAILABLE',
  'TIME_BUDGET_EXCEEDED',
  'INTERNAL_ERROR',
] as const;
export type DenyReason = (typeof DENY_REASONS)[number];

export const REPROVISIONING_POLICIES = ['never', 'same-key', 'replace'] as const;
/**
 * What happens when an ACTIVE serial asks for a new certificate: `never` denies it, `same-key`
 * allows it only with the public key of the current certificate, `replace` allows it (retiring the
 * old certificate is the lifecycle flow's job, after the device connects with the new one).
 */
export type ReprovisioningPolicy = (typeof REPROVISIONING_POLICIES)[number];

/** A point in time, given to the domain in both forms it compares with. */
export interface Instant {
  /** `Date.prototype.toISOString()` form, comparable with stored ISO times as strings. */
  iso: string;
  epochMs: number;
}

/** The instant of `epochMs` in both forms (handlers read their clock once per event). */
export function instantAt(epochMs: number): Instant {
  return { iso: new Date(epochMs).toISOString(), epochMs };
}

/** What the parser read from the certificate presented with the request. */
export interface PresentedCertificate {
  /** SHA-256 of the certificate DER, lower-case hex: what AWS IoT calls the certificate id. */
  certificateId: string;
  /** SHA-256 of the SubjectPublicKeyInfo DER, lower-case hex. */
  publicKeyHash: string;
  key: KeyFacts;
  notBefore: string;
  notBeforeMs: number;
  notAfterMs: number;
  /** basicConstraints cA=TRUE. */
  isCa?: boolean;
}

/** One request to bind a certificate to a serial. */
export interface ProvisioningRequest {
  serial: string;
  /** The certificate id the caller (AWS IoT) claims the certificate has. */
  certificateId: string;
  /** The claim certificate that made the request; absent for flows without one (JITR). */
  claimCertificateId?: string;
  /** The request came through the provisioning-by-trusted-user template. */
  viaInstallerTemplate?: boolean;
  certificate: PresentedCertificate;
}

/** The device record fields the rules read (a `DeviceRecord` fits). */
export interface DeviceFacts {
  serial: string;
  state: DeviceState;
  productLine?: string;
  batch?: string;
  allowedClaim?: string;
  thingName?: string;
  certificateId?: string;
  pendingCertificateId?: string;
  provisioningDeadline?: string;
}

/** What the store knows that bears on the request, read in one round trip. */
export interface ProvisioningFacts {
  device?: DeviceFacts;
  /** The record of the presented certificate, if it was ever bound. */
  certificate?: { certificateId: string; serial?: string };
  /** Who owns the presented public key, if anyone. */
  publicKeyOwner?: { serial: string; certificateId: string };
  /** Bindings already counted against the claim certificate in the current minute. */
  claimCount?: number;
  /** The record of the claim certificate when the installer API issued it (a temporary claim). */
  temporaryClaim?: TemporaryClaimFacts;
}

/** A temporary claim (CreateProvisioningClaim) as the installer API recorded it. */
export interface TemporaryClaimFacts {
  serial: string;
  installer: string;
  /** ISO time the claim certificate stops being valid (CreateProvisioningClaim's `expiration`). */
  expiration: string;
  templateName: string;
}

export interface ProvisioningRules {
  serialPattern: RegExp;
  thingNamePrefix: string;
  reprovisioningPolicy: ReprovisioningPolicy;
  keyPolicy: KeyPolicy;
  /** Tolerance for a `notBefore` slightly in the future (clock skew), in seconds. */
  clockSkewSeconds: number;
  claimRateLimitPerMinute: number;
  /**
   * `allowedClaim: group:<name>` matches a claim certificate id listed under `<name>` here.
   * A claim id maps to every group that lists it.
   */
  claimGroups: Readonly<Record<string, readonly string[]>>;
  /** Used when an allowlist entry names no claim: a claim id, `group:<name>`, or `*` (any claim). */
  defaultAllowedClaim?: string;
}

/**
 * How the allowed binding is written: a first binding, a rebinding of an ACTIVE serial under the
 * reprovisioning policy, a fresh attempt after an expired PROVISIONING window, or nothing at all
 * (the same certificate is already bound).
 */
export type Binding = 'new' | 'reprovision' | 'after-expired-provisioning' | 'existing';

export type ProvisioningDecision =
  | {
      allow: true;
      serial: string;
      thingName: string;
      /** Template parameter overrides; strings only, as AWS IoT requires. */
      overrides: Record<string, string>;
      alreadyBound: boolean;
      binding: Binding;
    }
  | { allow: false; reason: DenyReason; detail: string };

export type Denial = Extract<ProvisioningDecision, { allow: false }>;

/** Builds a denial (the one shape every flow logs and counts). */
export function deny(reason: DenyReason, detail: string): Denial {
  return { allow: false, reason, detail };
}

/**
 * The one state → reason mapping: a device that can no longer take a certificate (revoked,
 * decommissioned, in quarantine) and why every flow (hook, JITR, JITP) refuses it.
 */
export function closedStateDenial(state: DeviceState): Denial | undefined {
  switch (state) {
    case 'REVOKED':
      return deny('DEVICE_REVOKED', 'device was revoked');
    case 'DECOMMISSIONED':
      return deny('DEVICE_DECOMMISSIONED', 'device was decommissioned');
    case 'QUARANTINED':
      return deny('DEVICE_QUARANTINED', 'device is in quarantine');
    default:
      return undefined;
  }
}

/**
 * The checks that need no stored facts. Flows run it before any I/O so that bad input never costs
 * a read; `decideProvisioning` runs it again, so it is complete on its own.
 */
export function checkRequest(
  request: ProvisioningRequest,
  rules: ProvisioningRules,
  now: Instant,
): Denial | undefined {
  if (!rules.serialPattern.test(request.serial)) {
    return deny('INVALID_SERIAL', `serial must match ${rules.serialPattern.source}`);
  }
  const presented = request.certificate;
  if (presented.certificateId !== request.certificateId.toLowerCase()) {
    return deny('INVALID_CERTIFICATE', 'certificateId: is not the SHA-256 of the certificate presented');
  }
  if (presented.isCa === true) {
    return deny(
      'INVALID_CERTIFICATE',
      'certificatePem: is a CA certificate (basicConstraints cA=TRUE); a device certificate must not be one',
    );
  }
  const key = checkKeyPolicy(presented.key, rules.keyPolicy);
  if (!key.ok) return deny('WEAK_KEY', `certificatePem: ${key.rule}`);
  const validity = checkValidity(presented, now.epochMs, rules.clockSkewSeconds * 1000);
  if (!validity.ok) return deny(validity.reason, `certificatePem: ${validity.rule}`);
  return undefined;
}

/**
 * Decides whether `request` may bind its certificate to its serial, given what the store knows.
 * Pure: no I/O, no clock, no randomness. Never throws on any combination of facts.
 */
export function decideProvisioning(
  request: ProvisioningRequest,
  facts: ProvisioningFacts,
  rules: ProvisioningRules,
  now: Instant,
): ProvisioningDecision {
  const invalid = checkRequest(request, rules, now);
  if (invalid) return invalid;
  const { device } = facts;
  const certificateId = request.certificate.certificateId;
  if (!device) return deny('SERIAL_NOT_ALLOWLISTED', 'serial is not on the allowlist');
  const closed = closedStateDenial(device.state);
  if (closed) return closed;
  const claim = claimDenial(request, facts, device, rules, now);
  if (claim) return claim;

  const allow = (binding: Binding): ProvisioningDecision => ({
    allow: true,
    serial: request.serial,
    thingName: thingNameFor(device, rules),
    overrides: overridesFor(device, request, rules),
    alreadyBound: binding === 'existing',
    binding,
  });

  if (isSameBinding(device, certificateId, now)) return allow('existing');
  const owner = facts.certificate;
  if (owner && owner.serial !== request.serial) {
    return deny('CERTIFICATE_IN_USE', 'certificate is bound to another device');
  }
  if (owner && (device?.pendingCertificateId === certificateId || device?.certificateId === certificateId)) {
    return deny('CERTIFICATE_IN_USE', 'certificate was bound to this device before and is no longer usable');
  }
  // A certificate record of this serial that the device does not reference: the read may predate a
  // concurrent binding of this very certificate (the facts are not one snapshot). The conditional
  // write decides: "already done" for that race, CERTIFICATE_IN_USE for an abandoned attempt.
  const keyOwner = facts.publicKeyOwner;
  if (keyOwner && keyOwner.serial !== request.serial) {
    return deny('PUBLIC_KEY_IN_USE', 'public key belongs to another device');
  }

  const binding = bindingFor(device, keyOwner, rules, now);
  if (typeof binding !== 'string') return binding;

  if (
    request.claimCertificateId !== undefined &&
    facts.claimCount !== undefined &&
    facts.claimCount >= rules.claimRateLimitPerMinute
  ) {
    return deny('CLAIM_RATE_EXCEEDED', `claim certificate used ${facts.claimCount} times this minute`);
  }
  return allow(binding);
}

/** How an allowed certificate is bound to `device` in its state, or why it may not be. */
function bindingFor(
  device: DeviceFacts,
  keyOwner: ProvisioningFacts['publicKeyOwner'],
  rules: ProvisioningRules,
  now: Instant,
): Binding | Denial {
  switch (device.state) {
    case 'ALLOWLISTED':
      return 'new';
    case 'PROVISIONING':
      return provisioningExpired(device, now)
        ? 'after-expired-provisioning'
        : deny(
            'PROVISIONING_IN_PROGRESS',
            'serial is provisioning with another certificate until its window ends',
          );
    case 'ACTIVE':
      return checkReprovisioning(device, keyOwner, rules.reprovisioningPolicy) ?? 'reprovision';
    default:
      return deny('SERIAL_BOUND_TO_OTHER_CERTIFICATE', `serial is ${device.state} with another certificate`);
  }
}

/** The claim check: a temporary claim (trusted user), or the claim the allowlist entry names. */
function claimDenial(
  request: ProvisioningRequest,
  facts: ProvisioningFacts,
  device: DeviceFacts,
  rules: ProvisioningRules,
  now: Instant,
): Denial | undefined {
  return request.viaInstallerTemplate === true || facts.temporaryClaim !== undefined
    ? checkTemporaryClaim(request, facts.temporaryClaim, now)
    : checkClaim(device, request.claimCertificateId, rules);
}

/**
 * Provisioning by trusted user: the temporary claim replaces the allowlist entry's claim. It must
 * have been issued by the installer API (recorded), for this serial, be used before it expires
 * (AWS IoT refuses an expired claim certificate at the handshake too; this holds when the clocks
 * disagree) and through the trusted-user template — and a temporary claim never works through the
 * other templates.
 */
function checkTemporaryClaim(
  request: ProvisioningRequest,
  temporary: TemporaryClaimFacts | undefined,
  now: Instant,
): Denial | undefined {
  if (!temporary) {
    return deny(
      'TEMPORARY_CLAIM_NOT_ISSUED',
      'the trusted-user template needs a temporary claim issued by the installer API; this claim was not',
    );
  }
  if (request.viaInstallerTemplate !== true) {
    return deny('CLAIM_NOT_ALLOWED', 'a temporary claim works only through the trusted-user template');
  }
  if (temporary.serial !== request.serial) {
    return deny(
      'TEMPORARY_CLAIM_OTHER_SERIAL',
      `temporary claim was issued for another serial (to installer ${temporary.installer})`,
    );
  }
  if (temporary.expiration <= now.iso) {
    return deny('TEMPORARY_CLAIM_EXPIRED', `temporary claim expired at ${temporary.expiration}`);
  }
  return undefined;
}

/** The claim ids a `group:<name>` or id entry admits; `*` admits every claim. */
function checkClaim(
  device: DeviceFacts,
  claimCertificateId: string | undefined,
  rules: ProvisioningRules,
): Denial | undefined {
  if (claimCertificateId === undefined) return undefined;
  const allowed = device.allowedClaim ?? rules.defaultAllowedClaim;
  if (allowed === undefined) return deny('CLAIM_NOT_ALLOWED', 'allowlist entry names no claim');
  if (allowed === '*') return undefined;
  const claim = claimCertificateId.toLowerCase();
  if (allowed.startsWith('group:')) {
    const members = rules.claimGroups[allowed.slice('group:'.length)] ?? [];
    return members.some((member) => member.toLowerCase() === claim)
      ? undefined
      : deny('CLAIM_NOT_ALLOWED', `claim certificate is not in ${allowed}`);
  }
  return allowed.toLowerCase() === claim
    ? undefined
    : deny('CLAIM_NOT_ALLOWED', 'claim certificate is not the one allowed for this serial');
}

/** The same certificate, already bound and still usable: a retry of a request that succeeded. */
function isSameBinding(device: DeviceFacts, certificateId: string, now: Instant): boolean {
  if (device.state === 'PROVISIONING') {
    return device.pendingCertificateId === certificateId && !provisioningExpired(device, now);
  }
  if (device.state === 'ACTIVE' || device.state === 'ROTATING') return device.certificateId === certificateId;
  return false;
}

function provisioningExpired(device: DeviceFacts, now: Instant): boolean {
  // A PROVISIONING record without a deadline predates deadlines: treat its window as over.
  return device.provisioningDeadline === undefined || device.provisioningDeadline <= now.iso;
}

function checkReprovisioning(
  device: DeviceFacts,
  keyOwner: ProvisioningFacts['publicKeyOwner'],
  policy: ReprovisioningPolicy,
): Denial | undefined {
  switch (policy) {
    case 'replace':
      return undefined;
    case 'same-key':
      // The key record names the certificate that last bound the key; it is the current one when
      // the device re-presents its current key.
      return keyOwner !== undefined &&
        keyOwner.serial === device.serial &&
        keyOwner.certificateId === device.certificateId
        ? undefined
        : deny(
            'SERIAL_BOUND_TO_OTHER_CERTIFICATE',
            'reprovisioning policy same-key: the new certificate has a different public key',
          );
    default:
      return deny(
        'SERIAL_BOUND_TO_OTHER_CERTIFICATE',
        'serial is ACTIVE with another certificate (reprovisioning policy never)',
      );
  }
}

/**
 * Denials the rules draw from an item besides the device record: the certificate record, the
 * public-key owner (also behind SERIAL_BOUND_TO_OTHER_CERTIFICATE under `same-key`) and the claim
 * counter. The facts are one BatchGetItem, read-committed item by item but not one snapshot
 * ("Isolation levels for DynamoDB transactions", Amazon DynamoDB Developer Guide). While a binding
 * of this very certificate commits (a retried request, a duplicate delivery), the read can hold the
 * device as it was before beside the key owner or claim count the binding wrote: an ACTIVE device
 * whose own key now names the new certificate looks like a clone, a claim at its limit like an
 * exhausted one. A read made after one item of a transaction showed shows all of it, so a flow
 * reads the facts of such a denial a second time and decides again before it acts on it. A denial
 * by the request or by the device record alone cannot be torn and costs no second read.
 */
const DENIALS_ACROSS_ITEMS: ReadonlySet<string> = new Set<DenyReason>([
  'CERTIFICATE_IN_USE',
  'PUBLIC_KEY_IN_USE',
  'SERIAL_BOUND_TO_OTHER_CERTIFICATE',
  'CLAIM_RATE_EXCEEDED',
]);

/** Whether a denial may come from a torn read and is to be read again before it is acted on. */
export function readAgainBeforeDenying(reason: string): boolean {
  return DENIALS_ACROSS_ITEMS.has(reason);
}

/**
 * Decides on the facts `read` returns, and reads them a second time when the answer is a denial a
 * torn read can explain (`readAgainBeforeDenying`): the second answer, on the second facts, stands.
 * An allow or any other denial costs one read. The caller's `read` does the I/O; this does none.
 */
export function decideOnFacts<F, D extends { allow: boolean; reason?: string }>(
  read: () => Promise<F>,
  decide: (facts: F) => D,
): Promise<{ facts: F; decision: D }> {
  return decideReadingTwiceIf(
    read,
    decide,
    (decision) => !decision.allow && decision.reason !== undefined && readAgainBeforeDenying(decision.reason),
  );
}

/**
 * Decides on the facts `read` returns; when `readAgain` says the decision may come from a torn read
 * (see `DENIALS_ACROSS_ITEMS`), reads the facts once more and decides again: that answer stands.
 */
export async function decideReadingTwiceIf<F, D>(
  read: () => Promise<F>,
  decide: (facts: F) => D,
  readAgain: (decision: D) => boolean,
): Promise<{ facts: F; decision: D }> {
  const facts = await read();
  const decision = decide(facts);
  if (!readAgain(decision)) return { facts, decision };
  const again = await read();
  return { facts: again, decision: decide(again) };
}

/** The thing a serial is (or will be) registered as: the stored name, else prefix + serial. */
export function thingNameFor(device: DeviceFacts, rules: Pick<ProvisioningRules, 'thingNamePrefix'>): string {
  return device.thingName ?? `${rules.thingNamePrefix}${device.serial}`;
}

/**
 * Template parameter overrides. Deterministic in the device and the certificate, so a retried
 * request gets exactly the same answer.
 */
function overridesFor(
  device: DeviceFacts,
  request: ProvisioningRequest,
  rules: ProvisioningRules,
): Record<string, string> {
  const overrides: Record<string, string> = {
    ThingName: thingNameFor(device, rules),
    CertificateIssueDate: request.certificate.notBefore,
  };
  if (device.productLine !== undefined) overrides.ProductLine = device.productLine;
  if (device.batch !== undefined) overrides.Batch = device.batch;
  return overrides;
}

/** A hook denial worth an operator's attention, as the quarantine request it becomes. */
export interface HookSuspicion {
  reason: 'CLONE_PUBLIC_KEY' | 'PUBLIC_KEY_IN_USE' | 'SERIAL_TAKEOVER_ATTEMPT';
  /** The device to quarantine; absent when only the presented certificate is quarantined. */
  serial?: string;
  detail: string;
}

/**
 * Which denials of the fleet-provisioning hook are clone or takeover evidence, and what they take
 * offline. The presented certificate is always quarantined (it is INACTIVE and stays so).
 * - the serial's own public key under a new certificate while the serial is bound: the device's
 *   key was copied (a clone), so the device is quarantined too, as JITR and JITP do;
 * - another device's public key: that key was copied, so its owner is quarantined;
 * - a different key for a bound serial: anyone holding a claim certificate can try a serial, so
 *   only the certificate is quarantined (with the claimed serial and claim in the evidence) and
 *   the device keeps working — a claim certificate is shared by many devices, and quarantining the
 *   original would let one leaked claim take a fleet offline.
 */
export function hookSuspicion(
  decision: ProvisioningDecision,
  serial: string,
  facts: Pick<ProvisioningFacts, 'publicKeyOwner'>,
): HookSuspicion | undefined {
  if (decision.allow) return undefined;
  const keyOwner = facts.publicKeyOwner;
  if (decision.reason === 'PUBLIC_KEY_IN_USE' && keyOwner) {
    return {
      reason: 'PUBLIC_KEY_IN_USE',
      serial: keyOwner.serial,
      detail: `key of ${keyOwner.serial} presented for ${serial}`,
    };
  }
  if (decision.reason !== 'SERIAL_BOUND_TO_OTHER_CERTIFICATE') return undefined;
  if (keyOwner?.serial === serial) {
    return {
      reason: 'CLONE_PUBLIC_KEY',
      serial,
      detail: 'the device key under a new certificate while the serial is bound',
    };
  }
  return { reason: 'SERIAL_TAKEOVER_ATTEMPT', detail: 'another key for a bound serial' };
}
