/**
 * What presence and registry events decide about devices, as pure functions: the device-lifecycle
 * handler (`functions/device-lifecycle/lifecycle.ts`) reads the facts, calls these, and applies what
 * they return (a quarantine request, a history entry, a verification transition). No I/O, no clock.
 */
import type { DeviceEvent, DeviceState } from './device-state';
import {
  attributableDuplicateDisconnects,
  type DuplicateDisconnectFacts,
  decideConnected,
  isDuplicateClientIdStorm,
  type PresenceDeviceFacts,
  type SessionFacts,
  suspicionIdentity,
} from './presence-rules';
import { closedStateDenial, type Instant } from './provisioning-rules';

/** A quarantine request a decision asks for; the handler sends it once per `identity`. */
export interface Suspicion {
  reason: string;
  identity: string;
  serial?: string;
  certificateId?: string;
  claimedSerial?: string;
  /** `certificate`: deactivate the named certificate only, never its device (a foreign principal). */
  scope?: 'certificate';
  evidence: Record<string, unknown>;
  ttlSeconds?: number;
}

/** The device fields the lifecycle rules read (a `DeviceRecord` fits). */
export interface LifecycleDeviceFacts extends PresenceDeviceFacts {
  thingName?: string;
}

/** The certificate record fields the lifecycle rules read (a `CertificateRecord` fits). */
export interface LifecycleCertificateFacts {
  kind: 'DEVICE' | 'CLAIM' | 'CA';
  serial?: string;
  status: string;
  source: string;
}

/** The serial a thing name or client id stands for (thing name = prefix + serial), if it does. */
export function serialFromName(
  name: string,
  rules: { thingNamePrefix: string; serialPattern: RegExp },
): string | undefined {
  if (!name.startsWith(rules.thingNamePrefix)) return undefined;
  const serial = name.slice(rules.thingNamePrefix.length);
  return rules.serialPattern.test(serial) ? serial : undefined;
}

/** The device's own certificates: the current one and the one it is about to prove. */
export function ownCertificateIds(
  device: Pick<PresenceDeviceFacts, 'certificateId' | 'pendingCertificateId'>,
): string[] {
  return [device.certificateId, device.pendingCertificateId].filter(
    (id): id is string => typeof id === 'string' && id !== '',
  );
}

/** States in which a device's certificates are all known to the store. */
const HAS_OWN_CERTIFICATE = new Set<DeviceState>([
  'ACTIVE',
  'ROTATING',
  'QUARANTINED',
  'REVOKED',
  'DECOMMISSIONED',
]);

/**
 * Whether every certificate of `device` is known to the store, so that an unknown one connecting
 * on its client id is an imitation: a device that has (or had) its own certificate, or one
 * PROVISIONING with a pending certificate (a clone connecting while the original is still being
 * verified must not slip through).
 */
export function hasOwnCertificate(device: PresenceDeviceFacts): boolean {
  return (
    HAS_OWN_CERTIFICATE.has(device.state) ||
    (device.state === 'PROVISIONING' && device.pendingCertificateId !== undefined)
  );
}

/**
 * The device a connection is evidence about: only one made with the device's own certificate — its
 * current one, or the one it is about to prove (provisioning, rotation). Anything else on its
 * client id (a claim certificate, a certificate fleetgate does not know, an old one of its own)
 * never counts toward its clone detection and never quarantines it.
 */
export function ownDevice<D extends PresenceDeviceFacts>(
  principal: string,
  certificate: LifecycleCertificateFacts | undefined,
  device: D | undefined,
): D | undefined {
  const boundSerial = certificate?.kind === 'DEVICE' ? certificate.serial : undefined;
  return boundSerial !== undefined &&
    device?.serial === boundSerial &&
    ownCertificateIds(device).includes(principal)
    ? device
    : undefined;
}

export type OtherConnectionDecision =
  /** Nothing to say about it. */
  | { kind: 'none' }
  | { kind: 'noted'; detail: string }
  /** A principal that is not the device's own on its client id: record it (`decideForeignConnection`). */
  | { kind: 'foreign' };

/**
 * A connection with a certificate principal that is not `device`'s own (`ownDevice` said no), on
 * the device's client id or with a certificate bound to it.
 */
export function decideOtherConnection(
  principal: string,
  certificate: LifecycleCertificateFacts | undefined,
  device: PresenceDeviceFacts,
): OtherConnectionDecision {
  const boundSerial = certificate?.kind === 'DEVICE' ? certificate.serial : undefined;
  if (boundSerial !== undefined) {
    // A certificate fleetgate bound to this device, but neither its current nor its pending one.
    // The new certificate of a rotation that was aborted while this connect was on its way (the
    // abort won the race and revoked it): the device's own, not a clone's. IoT refuses it from now
    // on and the device falls back to its current certificate.
    if (
      certificate?.status === 'REVOKED' &&
      certificate.source === 'ROTATION' &&
      device.state === 'ACTIVE' &&
      device.serial === boundSerial &&
      device.certificateId !== principal
    ) {
      return { kind: 'noted', detail: 'connected with the certificate of an aborted rotation' };
    }
    const decision = decideConnected(device, principal);
    if (decision.kind !== 'mismatch') {
      return { kind: 'noted', detail: decision.kind === 'ignore' ? decision.detail : decision.kind };
    }
    return { kind: 'foreign' };
  }
  // A certificate the store does not know on the client id of a device that has none of its own
  // yet: the JITP device itself, connecting before its thing event was handled.
  if (certificate?.kind !== 'CLAIM' && !hasOwnCertificate(device)) return { kind: 'none' };
  return { kind: 'foreign' };
}

/**
 * What a foreign principal is. CLAIM: a claim certificate; BOUND: a device certificate fleetgate
 * bound to a serial (an old one of this device's); UNBOUND: a certificate record without a device;
 * UNKNOWN: not in the store.
 */
export type PrincipalKind = 'CLAIM' | 'BOUND' | 'UNBOUND' | 'UNKNOWN';

export function principalKindOf(certificate: LifecycleCertificateFacts | undefined): PrincipalKind {
  if (certificate === undefined) return 'UNKNOWN';
  if (certificate.kind === 'CLAIM') return 'CLAIM';
  return certificate.kind === 'DEVICE' && certificate.serial !== undefined ? 'BOUND' : 'UNBOUND';
}

/**
 * Whether the handler must ask the registry if the foreign principal is attached to the device's
 * thing before deciding (`decideForeignConnection`'s `onThing`).
 */
export function needsThingCheck(kind: PrincipalKind): boolean {
  return kind === 'UNKNOWN' || kind === 'UNBOUND';
}

export interface ForeignConnectionEvent {
  clientId: string;
  sessionIdentifier: string;
  ipAddress?: string;
  timestamp: number;
}

export interface ForeignConnectionDecision {
  /** The SUSPICIOUS_CONNECTION entry of the device's history. */
  history: { id: string; at: string; reason: string; detail: Record<string, unknown> };
  /** The identity of the recorded suspicion (no quarantine request of its own). */
  recordedIdentity: string;
  /** A certificate-scoped quarantine request when the principal is attached to the device. */
  quarantine?: Suspicion;
}

/**
 * A connection on `device`'s client id made with a principal that is not the device's own. It is
 * never evidence against the device: it is recorded in the device's history, and the principal is
 * quarantined alone (certificate scope) when it is bound to the device or attached to its thing
 * (`onThing`); a claim certificate never is (that would stop a product line's provisioning).
 */
export function decideForeignConnection(
  device: LifecycleDeviceFacts,
  principal: string,
  kind: PrincipalKind,
  onThing: boolean,
  event: ForeignConnectionEvent,
): ForeignConnectionDecision {
  const deactivate = kind === 'BOUND' || (kind !== 'CLAIM' && onThing);
  const reason = kind === 'CLAIM' ? 'CLAIM_CERTIFICATE_AS_DEVICE' : 'FOREIGN_CERTIFICATE_AS_DEVICE';
  const detail = {
    certificateId: principal,
    principalKind: kind,
    clientId: event.clientId,
    sessionIdentifier: event.sessionIdentifier,
    ipAddress: event.ipAddress,
    at: event.timestamp,
    deviceState: device.state,
    currentCertificateId: device.certificateId,
    pendingCertificateId: device.pendingCertificateId,
    action: deactivate ? 'certificate-quarantined' : 'recorded-for-an-operator',
  };
  return {
    history: {
      id: `suspicious-${event.sessionIdentifier}`.slice(0, 128),
      at: new Date(event.timestamp).toISOString(),
      reason,
      detail,
    },
    recordedIdentity: `SUSPICIOUS:${event.sessionIdentifier}`,
    ...(deactivate
      ? {
          quarantine: {
            reason: 'CLONE_CERTIFICATE_MISMATCH',
            identity: suspicionIdentity.certificateMismatch(device.serial, principal),
            certificateId: principal,
            claimedSerial: device.serial,
            scope: 'certificate' as const,
            evidence: { detail: `a certificate that is not the device's own (${kind})`, ...detail },
          },
        }
      : {}),
  };
}

export interface DuplicateClientIdRules {
  duplicateClientIdWindowSeconds: number;
  duplicateClientIdThreshold: number;
}

/**
 * The DUPLICATE_CLIENTID disconnects made with one of the device's own certificates, or nothing
 * when they are fewer than the threshold (then the handler need not read the sessions).
 */
export function stormCandidates(
  device: PresenceDeviceFacts,
  disconnects: readonly DuplicateDisconnectFacts[],
  rules: DuplicateClientIdRules,
): DuplicateDisconnectFacts[] | undefined {
  const own = ownCertificateIds(device);
  const candidates = disconnects.filter(
    (disconnect) =>
      disconnect.principalIdentifier !== undefined && own.includes(disconnect.principalIdentifier),
  );
  return candidates.length < rules.duplicateClientIdThreshold ? undefined : candidates;
}

/**
 * Whether the DUPLICATE_CLIENTID disconnects around `anchorMs` make a storm of the device's own
 * identity: only disconnects whose closed session and taker were both the device's own certificates
 * count (`attributableDuplicateDisconnects`). The suspicion to raise when they do.
 */
export function decideDuplicateClientIdStorm(
  input: {
    device: PresenceDeviceFacts;
    clientId: string;
    anchorMs: number;
    candidates: readonly DuplicateDisconnectFacts[];
    /** The sessions of the device's own certificates. */
    sessions: readonly SessionFacts[];
  },
  rules: DuplicateClientIdRules,
): Suspicion | undefined {
  const { device, clientId, anchorMs } = input;
  const windowMs = rules.duplicateClientIdWindowSeconds * 1000;
  const threshold = rules.duplicateClientIdThreshold;
  const own = ownCertificateIds(device);
  const storm = attributableDuplicateDisconnects(input.candidates, input.sessions, own, clientId);
  const times = storm.map((disconnect) => disconnect.atMs);
  if (!isDuplicateClientIdStorm(times, anchorMs, windowMs, threshold)) return undefined;
  const certificateId =
    storm.find((disconnect) => disconnect.atMs === anchorMs)?.principalIdentifier ?? own[0];
  return {
    reason: 'CLONE_DUPLICATE_CLIENTID',
    identity: suspicionIdentity.duplicateClientId(clientId),
    serial: device.serial,
    ...(certificateId !== undefined ? { certificateId } : {}),
    ttlSeconds: rules.duplicateClientIdWindowSeconds,
    evidence: {
      clientId,
      windowSeconds: rules.duplicateClientIdWindowSeconds,
      threshold,
      disconnects: storm.map(({ sessionIdentifier, atMs, versionNumber }) => ({
        sessionIdentifier,
        atMs,
        versionNumber,
      })),
    },
  };
}

/** Two sessions of one certificate at once: the suspicion they raise. */
export function concurrentSessionsSuspicion(
  serial: string,
  certificateId: string,
  sessions: unknown,
  detectedBy: string,
): Suspicion {
  return {
    reason: 'CLONE_CONCURRENT_SESSIONS',
    identity: suspicionIdentity.concurrentSessions(certificateId),
    serial,
    certificateId,
    evidence: { sessions, detectedBy },
  };
}

/** The retirement of the old certificate a rotation commit puts on its record. */
export interface RetirementPlan {
  step: 'DEACTIVATE';
  dueAt: string;
  deleteAfter: string;
  serial: string;
  thingName?: string;
  reason: 'ROTATED';
}

/** The verification transition to apply: the store's `transition` input without ids. */
export interface Verification {
  event: Extract<DeviceEvent, 'ACTIVATE' | 'COMMIT_ROTATION'>;
  transitionKey: string;
  set: { certificateId: string };
  remove: ['pendingCertificateId', 'provisioningDeadline' | 'rotationDeadline'];
  historyDetail: { certificateId: string; clientId: string; sessionIdentifier: string };
  /** Not the event's own dedup identity: that one is marked only after every effect. */
  dedupIdentity: string;
  /** The old certificate to retire in the same transaction (a rotation commit). */
  retire?: { certificateId: string; retirement: RetirementPlan };
}

/**
 * The verification of `device` with `certificateId` (ACTIVATE, or COMMIT_ROTATION which retires the
 * old certificate in the same transaction: deactivate now, delete after the grace period).
 */
export function decideVerification(
  device: LifecycleDeviceFacts,
  event: Verification['event'],
  certificateId: string,
  presence: { sessionIdentifier: string; clientId: string },
  rules: { rotationGraceSeconds: number },
  now: Instant,
): Verification {
  const previous = device.certificateId;
  const retire =
    event === 'COMMIT_ROTATION' && previous !== undefined && previous !== certificateId
      ? {
          certificateId: previous,
          retirement: {
            step: 'DEACTIVATE' as const,
            dueAt: now.iso,
            deleteAfter: new Date(now.epochMs + rules.rotationGraceSeconds * 1000).toISOString(),
            serial: device.serial,
            ...(device.thingName !== undefined ? { thingName: device.thingName } : {}),
            reason: 'ROTATED' as const,
          },
        }
      : undefined;
  return {
    event,
    transitionKey: `${event}:${certificateId}`,
    set: { certificateId },
    remove:
      event === 'ACTIVATE'
        ? ['pendingCertificateId', 'provisioningDeadline']
        : ['pendingCertificateId', 'rotationDeadline'],
    historyDetail: {
      certificateId,
      clientId: presence.clientId,
      sessionIdentifier: presence.sessionIdentifier,
    },
    dedupIdentity: `verify:${presence.sessionIdentifier}`,
    ...(retire ? { retire } : {}),
  };
}

/** States of a device whose thing fleetgate's own flows (hook, JITR) created. */
const OWN_FLOW_STATES = new Set<DeviceState>(['PROVISIONING', 'ACTIVE', 'ROTATING']);

export type ThingCreatedDecision =
  /** Created by fleetgate's own flows: verify the pending certificate if it already connected. */
  | { kind: 'own-flow'; pendingCertificateId?: string }
  /** A JITP thing: its certificates decide (`decideJitpThing`). */
  | { kind: 'jitp' };

/**
 * A thing CREATED event: a thing fleetgate's own flows (hook or JITR) created after binding the
 * device, or a repeat of this event after the JITP binding, or a JITP thing to check.
 */
export function decideThingCreated(
  thingName: string,
  device: LifecycleDeviceFacts | undefined,
): ThingCreatedDecision {
  if (device?.thingName === thingName && OWN_FLOW_STATES.has(device.state)) {
    return {
      kind: 'own-flow',
      ...(device.state === 'PROVISIONING' && device.pendingCertificateId
        ? { pendingCertificateId: device.pendingCertificateId }
        : {}),
    };
  }
  return { kind: 'jitp' };
}

export type JitpThingDecision =
  | { kind: 'suspect'; reason: string; detail: string }
  | { kind: 'noted'; detail: string }
  /** Read and check the thing's one certificate. */
  | { kind: 'inspect'; serial: string; certificateId: string };

/** A new JITP thing of `serial` (if its name or attributes say one) with its certificates. */
export function decideJitpThing(
  serial: string | undefined,
  device: LifecycleDeviceFacts | undefined,
  certificateIds: readonly string[],
): JitpThingDecision {
  if (!device || serial === undefined)
    return { kind: 'suspect', reason: 'SERIAL_NOT_ALLOWLISTED', detail: 'serial is not on the allowlist' };
  const closed = closedStateDenial(device.state);
  if (closed) return { kind: 'suspect', reason: closed.reason, detail: `device is ${device.state}` };
  const [certificateId] = certificateIds;
  if (certificateId === undefined) return { kind: 'noted', detail: 'JITP thing has no certificate yet' };
  if (certificateIds.length > 1) {
    // A new thing with two certificates: a second device with this serial connected (and JITP
    // attached its certificate) before the first was recorded. Which one is the original cannot
    // be told; the device and every certificate go to quarantine for review.
    return {
      kind: 'suspect',
      reason: 'JITP_MULTIPLE_CERTIFICATES',
      detail: `${certificateIds.length} certificates on a new JITP thing`,
    };
  }
  return { kind: 'inspect', serial, certificateId };
}

/**
 * The quarantine requests of a suspicious JITP thing: one per certificate on the thing, each
 * deactivated (the first keeps the thing's identity, so a repeated event asks once).
 */
export function jitpSuspicions(
  thing: { thingName: string; eventId: string; certificateIds: readonly string[] },
  serials: { deviceSerial?: string; claimedSerial?: string },
  reason: string,
  detail: string,
): Suspicion[] {
  const { thingName, certificateIds } = thing;
  const ids = certificateIds.length > 0 ? certificateIds : [undefined];
  return ids.map((id, index) => ({
    reason,
    identity: index === 0 ? suspicionIdentity.jitp(thingName) : `${suspicionIdentity.jitp(thingName)}:${id}`,
    ...(serials.deviceSerial !== undefined ? { serial: serials.deviceSerial } : {}),
    ...(id !== undefined ? { certificateId: id } : {}),
    ...(serials.claimedSerial !== undefined ? { claimedSerial: serials.claimedSerial } : {}),
    evidence: { flow: 'JITP', thingName, certificateIds, detail, eventId: thing.eventId },
  }));
}
