/**
 * What presence and registry events do to devices: verification (PROVISIONING → ACTIVE, the
 * rotation commit), the JITP follow-up (record a thing a template created, check it against the
 * allowlist), and real-time clone detection. Events are at-least-once and unordered:
 * - every state change is a conditional transaction carrying the event's dedup identity;
 * - session and presence items are written idempotently, the client's newest presence only by an
 *   event of higher rank (`presenceRank`), so a late `disconnected` never undoes a newer `connected`;
 * - a suspicion has one identity however many events reveal it, so it yields one quarantine request.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/registry-events.html
 */
import type { PresenceEvent, ThingEvent } from '../../schemas/registration-events';
import { parseCertificatePem } from '../../shared/certificates';
import type { Config } from '../../shared/config';
import {
  attributableDuplicateDisconnects,
  type CloneReason,
  type DuplicateDisconnectFacts,
  decideConnected,
  findConcurrentSessions,
  isDuplicateClientIdStorm,
  presenceRank,
  suspicionIdentity,
} from '../../shared/domain/presence-rules';
import { decideProvisioning, type Instant } from '../../shared/domain/provisioning-rules';
import { TransientError, ValidationError } from '../../shared/errors';
import type { IotRegistry } from '../../shared/iot/iot-registry';
import { type QuarantineSender, requestQuarantineOnce } from '../../shared/quarantine-queue';
import { provisionBinding } from '../../shared/store/bind-certificate';
import type { ProvisioningStore } from '../../shared/store/provisioning-store';
import {
  type CertificateRecord,
  type DeviceRecord,
  deviceCertificateRecord,
  type Retirement,
} from '../../shared/store/records';
import type { RegistrationStore } from '../../shared/store/registration-store';

export const ACTOR = 'deviceLifecycle';
const CERTIFICATE_ID = /^[0-9a-f]{64}$/;
/**
 * Whether every certificate of `device` is known to the store, so that an unknown one connecting
 * on its client id is an imitation: a device that has (or had) its own certificate, or one
 * PROVISIONING with a pending certificate (a clone connecting while the original is still being
 * verified must not slip through).
 */
function hasOwnCertificate(device: DeviceRecord): boolean {
  return (
    HAS_OWN_CERTIFICATE.has(device.state) ||
    (device.state === 'PROVISIONING' && device.pendingCertificateId !== undefined)
  );
}

/** States in which a device's certificates are all known to the store. */
const HAS_OWN_CERTIFICATE = new Set<DeviceRecord['state']>([
  'ACTIVE',
  'ROTATING',
  'QUARANTINED',
  'REVOKED',
  'DECOMMISSIONED',
]);

/**
 * The seam to the rotation work: called once a device has connected with its new certificate
 * (COMMIT_ROTATION applied). The commit's transaction already put the retirement of the old
 * certificate on its record (`retirement`: deactivate and detach now, delete after
 * ROTATION_GRACE_SECONDS), so the work survives a crash here; the seam carries it out right away
 * (`shared/rotation/retirement.ts`), and `sweepRotations` does whatever is still due.
 */
export type RotationCommitted = (input: {
  serial: string;
  certificateId: string;
  previousCertificateId?: string;
  retirement?: Retirement;
}) => Promise<void>;

export interface LifecycleDeps {
  config: Config;
  store: Pick<
    ProvisioningStore,
    | 'loadProvisioningFacts'
    | 'getCertificate'
    | 'getDevice'
    | 'transition'
    | 'updateCertificateStatus'
    | 'bindCertificate'
    | 'markOnce'
  >;
  registrations: Pick<
    RegistrationStore,
    | 'wasSeen'
    | 'recordSession'
    | 'sessionsOf'
    | 'recordPresence'
    | 'recordDuplicateClientId'
    | 'duplicateClientIds'
    | 'appendHistory'
    | 'presenceOf'
    | 'claimEffect'
    | 'completeEffect'
  >;
  iot: Pick<IotRegistry, 'listThingCertificateIds' | 'describeCertificate'>;
  quarantine: QuarantineSender;
  newId: () => string;
  onRotationCommitted: RotationCommitted;
}

export type LifecycleOutcome =
  | { kind: 'verified'; serial: string; event: 'ACTIVATE' | 'COMMIT_ROTATION'; certificateId: string }
  | {
      kind: 'suspicion';
      reason: CloneReason | string;
      identity: string;
      /** `recorded`: a suspicious connection written to the history only (no quarantine request). */
      sent: 'sent' | 'already-sent' | 'in-flight' | 'recorded';
    }
  | { kind: 'recorded'; serial: string; thingName: string; certificateId: string }
  | { kind: 'stale'; detail: string }
  | { kind: 'noted'; detail: string };

/** Handles one presence event. */
export async function handlePresence(
  event: PresenceEvent,
  owner: string,
  deps: LifecycleDeps,
  now: Instant,
): Promise<LifecycleOutcome[]> {
  // A repeat of an event processed to the end costs one read. (Everything below is idempotent
  // too, so a repeat that slips past this check, e.g. a concurrent duplicate, changes nothing.)
  const identity = presenceIdentity(event);
  if (await deps.registrations.wasSeen(identity))
    return [{ kind: 'noted', detail: 'duplicate presence event' }];
  const outcomes = await presenceEffects(event, owner, deps, now);
  await deps.store.markOnce(identity, { ttlSeconds: deps.config.sessionTtlSeconds, now: now.iso });
  return outcomes;
}

/** The dedup identity of a presence event (one connected and one disconnected per session). */
export function presenceIdentity(event: Pick<PresenceEvent, 'eventType' | 'sessionIdentifier'>): string {
  return `presence:${event.eventType}:${event.sessionIdentifier}`;
}

async function presenceEffects(
  event: PresenceEvent,
  owner: string,
  deps: LifecycleDeps,
  now: Instant,
): Promise<LifecycleOutcome[]> {
  const outcomes: LifecycleOutcome[] = [];
  const principal = event.principalIdentifier.toLowerCase();
  const isCertificate = CERTIFICATE_ID.test(principal);
  // The client's presence is recorded before the device is read. The JITP follow-up does the
  // reverse (binds, then reads the presence), so when the two race, at least one of them sees
  // the other's write and the device is verified; read the other way round, both could miss.
  const newest = await deps.registrations.recordPresence({
    clientId: event.clientId,
    rank: presenceRank(event),
    eventType: event.eventType,
    sessionIdentifier: event.sessionIdentifier,
    principalIdentifier: principal,
    timestamp: event.timestamp,
    ttlSeconds: deps.config.sessionTtlSeconds,
  });
  if (!newest)
    outcomes.push({ kind: 'stale', detail: 'a newer presence event of this client id was recorded' });

  const { certificate, device } = isCertificate ? await loadDeviceFor(event.clientId, principal, deps) : {};
  const boundSerial = certificate?.kind === 'DEVICE' ? certificate.serial : undefined;
  // Only a connection made with the device's own certificate — its current one, or the one it is
  // about to prove (provisioning, rotation) — is evidence about the device. Anything else on its
  // client id (a claim certificate, a certificate fleetgate does not know, an old one of its own)
  // never counts toward its clone detection and never quarantines it (`foreignConnection`).
  const own =
    boundSerial !== undefined &&
    device?.serial === boundSerial &&
    ownCertificateIds(device).includes(principal)
      ? device
      : undefined;

  if (own) {
    await deps.registrations.recordSession({
      certificateId: principal,
      sessionIdentifier: event.sessionIdentifier,
      clientId: event.clientId,
      versionNumber: event.versionNumber,
      ...(event.eventType === 'connected'
        ? { connectedAt: event.timestamp }
        : {
            disconnectedAt: event.timestamp,
            ...(event.disconnectReason ? { disconnectReason: event.disconnectReason } : {}),
          }),
      ttlSeconds: deps.config.sessionTtlSeconds,
    });
  }

  if (event.eventType === 'disconnected') {
    if (own && event.disconnectReason === 'DUPLICATE_CLIENTID') {
      const windowMs = deps.config.duplicateClientIdWindowSeconds * 1000;
      // Later disconnects count too: handled concurrently or out of order, the last one handled sees all.
      const disconnects = await deps.registrations.recordDuplicateClientId({
        clientId: event.clientId,
        atMs: event.timestamp,
        fromMs: event.timestamp - windowMs,
        toMs: event.timestamp + windowMs,
        sessionIdentifier: event.sessionIdentifier,
        principalIdentifier: principal,
        versionNumber: event.versionNumber,
        ttlSeconds: deps.config.duplicateClientIdWindowSeconds * 2,
      });
      const storm = await duplicateClientIdStorm(own, event.clientId, event.timestamp, disconnects, deps);
      if (storm) outcomes.push(await suspect(storm, owner, deps, now));
    }
    return outcomes;
  }

  if (own) {
    // This connection may be the one that took the client id over from an earlier session of the
    // same certificate (its DUPLICATE_CLIENTID disconnect handled first): then it completes a storm.
    if (event.versionNumber > 0) {
      const windowMs = deps.config.duplicateClientIdWindowSeconds * 1000;
      const disconnects = await deps.registrations.duplicateClientIds({
        clientId: event.clientId,
        fromMs: event.timestamp - windowMs,
        toMs: event.timestamp + windowMs,
      });
      const taken = disconnects.find((disconnect) => disconnect.versionNumber === event.versionNumber - 1);
      const storm = taken
        ? await duplicateClientIdStorm(own, event.clientId, taken.atMs, disconnects, deps)
        : undefined;
      if (storm) outcomes.push(await suspect(storm, owner, deps, now));
    }
    const pair = findConcurrentSessions(await deps.registrations.sessionsOf(principal));
    if (pair) {
      outcomes.push(
        await suspect(
          {
            reason: 'CLONE_CONCURRENT_SESSIONS',
            identity: suspicionIdentity.concurrentSessions(principal),
            serial: own.serial,
            certificateId: principal,
            evidence: { sessions: pair, detectedBy: event.sessionIdentifier },
          },
          owner,
          deps,
          now,
        ),
      );
    }
    const decision = decideConnected(own, principal);
    switch (decision.kind) {
      case 'verify':
        outcomes.push(...(await verify(own, decision.event, principal, certificate, event, deps, now)));
        break;
      case 'mismatch':
        // Its own pending certificate on a device that is not expecting it (e.g. ACTIVE): not a clone
        // of the device; recorded for an operator like any other foreign connection.
        outcomes.push(...(await foreignConnection(own, principal, certificate, event, owner, deps, now)));
        break;
      case 'ignore':
        outcomes.push({ kind: 'noted', detail: decision.detail });
        break;
      default:
        break;
    }
    return outcomes;
  }

  if (!isCertificate || !device) return outcomes;
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
      outcomes.push({ kind: 'noted', detail: 'connected with the certificate of an aborted rotation' });
      return outcomes;
    }
    const decision = decideConnected(device, principal);
    if (decision.kind !== 'mismatch') {
      outcomes.push({ kind: 'noted', detail: decision.kind === 'ignore' ? decision.detail : decision.kind });
      return outcomes;
    }
  } else if (certificate?.kind !== 'CLAIM' && !hasOwnCertificate(device)) {
    // A certificate the store does not know on the client id of a device that has none of its own
    // yet: the JITP device itself, connecting before its thing event was handled.
    return outcomes;
  }
  outcomes.push(...(await foreignConnection(device, principal, certificate, event, owner, deps, now)));
  return outcomes;
}

/** The device's own certificates: the current one and the one it is about to prove. */
function ownCertificateIds(device: Pick<DeviceRecord, 'certificateId' | 'pendingCertificateId'>): string[] {
  return [device.certificateId, device.pendingCertificateId].filter(
    (id): id is string => typeof id === 'string' && id !== '',
  );
}

/**
 * Whether the DUPLICATE_CLIENTID disconnects around `anchorMs` make a storm of the device's own
 * identity: only disconnects whose closed session and taker were both the device's own certificates
 * count (`attributableDuplicateDisconnects`). The suspicion to raise when they do.
 */
async function duplicateClientIdStorm(
  device: DeviceRecord,
  clientId: string,
  anchorMs: number,
  disconnects: readonly DuplicateDisconnectFacts[],
  deps: LifecycleDeps,
): Promise<Parameters<typeof suspect>[0] | undefined> {
  const windowMs = deps.config.duplicateClientIdWindowSeconds * 1000;
  const threshold = deps.config.duplicateClientIdThreshold;
  const own = ownCertificateIds(device);
  const candidates = disconnects.filter(
    (disconnect) =>
      disconnect.principalIdentifier !== undefined && own.includes(disconnect.principalIdentifier),
  );
  if (candidates.length < threshold) return undefined;
  const sessions = (
    await Promise.all(own.map((certificateId) => deps.registrations.sessionsOf(certificateId)))
  ).flat();
  const storm = attributableDuplicateDisconnects(candidates, sessions, own, clientId);
  if (
    !isDuplicateClientIdStorm(
      storm.map((disconnect) => disconnect.atMs),
      anchorMs,
      windowMs,
      threshold,
    )
  )
    return undefined;
  const certificateId =
    storm.find((disconnect) => disconnect.atMs === anchorMs)?.principalIdentifier ?? own[0];
  return {
    reason: 'CLONE_DUPLICATE_CLIENTID',
    identity: suspicionIdentity.duplicateClientId(clientId),
    serial: device.serial,
    ...(certificateId !== undefined ? { certificateId } : {}),
    ttlSeconds: deps.config.duplicateClientIdWindowSeconds,
    evidence: {
      clientId,
      windowSeconds: deps.config.duplicateClientIdWindowSeconds,
      threshold,
      disconnects: storm.map(({ sessionIdentifier, atMs, versionNumber }) => ({
        sessionIdentifier,
        atMs,
        versionNumber,
      })),
    },
  };
}

/**
 * A connection on `device`'s client id (or with a certificate bound to it) made with a principal
 * that is not the device's own current or pending certificate. It is never evidence against the
 * device: the device is not quarantined and its certificates are untouched. It is recorded in the
 * device's history (`SUSPICIOUS_CONNECTION`) for an operator, and the foreign certificate itself is
 * deactivated only when it is one of fleetgate's device certificates or the registry attached it to
 * the device's thing (a JITP takeover) — never a claim certificate, and never a certificate the
 * store does not know that only a permissive policy let in (it may be an unrecorded claim
 * certificate: deactivating it would stop a product line's provisioning; that is an operator's call).
 */
async function foreignConnection(
  device: DeviceRecord,
  principal: string,
  certificate: CertificateRecord | undefined,
  event: PresenceEvent,
  owner: string,
  deps: LifecycleDeps,
  now: Instant,
): Promise<LifecycleOutcome[]> {
  // CLAIM: a claim certificate; BOUND: a device certificate fleetgate bound to a serial (an old one
  // of this device's); UNBOUND: a certificate record without a device; UNKNOWN: not in the store.
  const principalKind =
    certificate === undefined
      ? 'UNKNOWN'
      : certificate.kind === 'CLAIM'
        ? 'CLAIM'
        : certificate.kind === 'DEVICE' && certificate.serial !== undefined
          ? 'BOUND'
          : 'UNBOUND';
  let deactivate = principalKind === 'BOUND';
  if (principalKind !== 'CLAIM' && !deactivate) {
    const thingName = device.thingName ?? event.clientId;
    deactivate = (await deps.iot.listThingCertificateIds(thingName)).includes(principal);
  }
  const reason = principalKind === 'CLAIM' ? 'CLAIM_CERTIFICATE_AS_DEVICE' : 'FOREIGN_CERTIFICATE_AS_DEVICE';
  const detail = {
    certificateId: principal,
    principalKind,
    clientId: event.clientId,
    sessionIdentifier: event.sessionIdentifier,
    ipAddress: event.ipAddress,
    at: event.timestamp,
    deviceState: device.state,
    currentCertificateId: device.certificateId,
    pendingCertificateId: device.pendingCertificateId,
    action: deactivate ? 'certificate-quarantined' : 'recorded-for-an-operator',
  };
  await deps.registrations.appendHistory({
    serial: device.serial,
    at: new Date(event.timestamp).toISOString(),
    id: `suspicious-${event.sessionIdentifier}`.slice(0, 128),
    event: 'SUSPICIOUS_CONNECTION',
    actor: ACTOR,
    reason,
    detail,
  });
  const outcomes: LifecycleOutcome[] = [
    { kind: 'suspicion', reason, identity: `SUSPICIOUS:${event.sessionIdentifier}`, sent: 'recorded' },
  ];
  if (deactivate) {
    outcomes.push(
      await suspect(
        {
          reason: 'CLONE_CERTIFICATE_MISMATCH',
          identity: suspicionIdentity.certificateMismatch(device.serial, principal),
          certificateId: principal,
          claimedSerial: device.serial,
          scope: 'certificate',
          evidence: { detail: `a certificate that is not the device's own (${principalKind})`, ...detail },
        },
        owner,
        deps,
        now,
      ),
    );
  }
  return outcomes;
}

/** Handles one registry thing event (JITP follow-up on CREATED; the rest is noted). */
export async function handleThingEvent(
  event: ThingEvent,
  owner: string,
  deps: LifecycleDeps,
  now: Instant,
): Promise<LifecycleOutcome[]> {
  if (event.operation !== 'CREATED') {
    return [
      { kind: 'noted', detail: `thing ${event.operation.toLowerCase()} (reconciliation reports drift)` },
    ];
  }
  const serial = event.attributes.serial ?? serialFromName(event.thingName, deps.config);
  const device = serial !== undefined ? await deps.store.getDevice(serial) : undefined;
  if (
    device?.thingName === event.thingName &&
    ['PROVISIONING', 'ACTIVE', 'ROTATING'].includes(device.state)
  ) {
    // Created by fleetgate's own flows (hook or JITR), which bound the device first, or a repeat
    // of this event after the binding below: then the connect may still be waiting for it.
    const pending = device.state === 'PROVISIONING' ? device.pendingCertificateId : undefined;
    const verified = pending
      ? await verifyIfConnected(device, pending, event.thingName, undefined, deps, now)
      : [];
    return [{ kind: 'noted', detail: 'thing of a device fleetgate is provisioning' }, ...verified];
  }
  const certificateIds = await deps.iot.listThingCertificateIds(event.thingName);
  const [certificateId] = certificateIds;
  // One request per certificate on the thing: each is deactivated (the first keeps the thing's
  // identity, so a repeated event asks once).
  const suspicion = async (reason: string, detail: string): Promise<LifecycleOutcome> => {
    const sent = await Promise.all(
      (certificateIds.length > 0 ? certificateIds : [undefined]).map((id, index) =>
        suspect(
          {
            reason,
            identity:
              index === 0
                ? suspicionIdentity.jitp(event.thingName)
                : `${suspicionIdentity.jitp(event.thingName)}:${id}`,
            serial: device?.serial,
            certificateId: id,
            claimedSerial: serial,
            evidence: {
              flow: 'JITP',
              thingName: event.thingName,
              certificateIds,
              detail,
              eventId: event.eventId,
            },
          },
          owner,
          deps,
          now,
        ),
      ),
    );
    return sent[0] as LifecycleOutcome;
  };
  if (!device || serial === undefined)
    return [await suspicion('SERIAL_NOT_ALLOWLISTED', 'serial is not on the allowlist')];
  if (device.state === 'REVOKED' || device.state === 'DECOMMISSIONED' || device.state === 'QUARANTINED') {
    const reason =
      device.state === 'REVOKED'
        ? 'DEVICE_REVOKED'
        : device.state === 'QUARANTINED'
          ? 'DEVICE_QUARANTINED'
          : 'DEVICE_DECOMMISSIONED';
    return [await suspicion(reason, `device is ${device.state}`)];
  }
  if (certificateId === undefined) return [{ kind: 'noted', detail: 'JITP thing has no certificate yet' }];
  if (certificateIds.length > 1) {
    // A new thing with two certificates: a second device with this serial connected (and JITP
    // attached its certificate) before the first was recorded. Which one is the original cannot
    // be told; the device and every certificate go to quarantine for review.
    return [
      await suspicion(
        'JITP_MULTIPLE_CERTIFICATES',
        `${certificateIds.length} certificates on a new JITP thing`,
      ),
    ];
  }
  const description = await deps.iot.describeCertificate(certificateId);
  if (!description) return [{ kind: 'noted', detail: 'certificate of the JITP thing no longer exists' }];
  let certificate: ReturnType<typeof parseCertificatePem>;
  try {
    certificate = parseCertificatePem(description.certificatePem, {
      maxBytes: deps.config.maxCertificatePemBytes,
    });
  } catch (error) {
    if (error instanceof ValidationError) return [await suspicion('INVALID_CERTIFICATE', error.message)];
    throw error;
  }
  const facts = await deps.store.loadProvisioningFacts({
    serial,
    certificateId,
    publicKeyHash: certificate.publicKeyHash,
  });
  const decision = decideProvisioning({ serial, certificateId, certificate }, facts, deps.config, now);
  if (!decision.allow) return [await suspicion(decision.reason, decision.detail)];
  if (decision.alreadyBound || !facts.device) {
    return [{ kind: 'recorded', serial, thingName: event.thingName, certificateId }];
  }
  const record = deviceCertificateRecord(
    { ...certificate, certificateId },
    {
      status: description.status === 'ACTIVE' ? 'ACTIVE' : 'PENDING',
      source: 'JITP',
      serial,
      thingName: event.thingName,
      now: now.iso,
    },
  );
  const outcome = await deps.store.bindCertificate(
    provisionBinding({
      decision: { serial, thingName: event.thingName, binding: decision.binding },
      device: facts.device,
      certificate: record,
      publicKeyHash: certificate.publicKeyHash,
      now,
      provisioningWindowSeconds: deps.config.provisioningWindowSeconds,
      history: { id: deps.newId(), actor: ACTOR, detail: { source: 'JITP', thingName: event.thingName } },
    }),
  );
  if (outcome.status === 'conflict') {
    if (outcome.reason === 'CERTIFICATE_IN_USE' || outcome.reason === 'PUBLIC_KEY_IN_USE') {
      return [await suspicion(outcome.reason, 'bound to another device concurrently')];
    }
    throw new TransientError(`device changed while recording the JITP thing (${outcome.reason})`);
  }
  if (outcome.status === 'illegal') throw new TransientError(`device moved on: ${outcome.reason}`);
  const outcomes: LifecycleOutcome[] = [
    { kind: 'recorded', serial, thingName: event.thingName, certificateId },
  ];
  // JITP devices connect right after provisioning; that connected event may have come first.
  if (outcome.status === 'applied') {
    outcomes.push(
      ...(await verifyIfConnected(outcome.device, certificateId, event.thingName, record, deps, now)),
    );
  }
  return outcomes;
}

/** Verifies `device` when its client id's newest presence is a connection with `certificateId`. */
async function verifyIfConnected(
  device: DeviceRecord,
  certificateId: string,
  clientId: string,
  certificate: CertificateRecord | undefined,
  deps: LifecycleDeps,
  now: Instant,
): Promise<LifecycleOutcome[]> {
  const presence = await deps.registrations.presenceOf(clientId);
  if (!presence?.connected || presence.principalIdentifier !== certificateId) return [];
  return verify(
    device,
    'ACTIVATE',
    certificateId,
    certificate,
    { sessionIdentifier: presence.sessionIdentifier, clientId },
    deps,
    now,
  );
}

async function verify(
  device: DeviceRecord,
  event: 'ACTIVATE' | 'COMMIT_ROTATION',
  certificateId: string,
  certificate: CertificateRecord | undefined,
  presence: { sessionIdentifier: string; clientId: string },
  deps: LifecycleDeps,
  now: Instant,
): Promise<LifecycleOutcome[]> {
  // The commit retires the old certificate in the same transaction (see RotationCommitted).
  const retirement: Retirement | undefined =
    event === 'COMMIT_ROTATION' &&
    device.certificateId !== undefined &&
    device.certificateId !== certificateId
      ? {
          step: 'DEACTIVATE',
          dueAt: now.iso,
          deleteAfter: new Date(now.epochMs + deps.config.rotationGraceSeconds * 1000).toISOString(),
          serial: device.serial,
          ...(device.thingName !== undefined ? { thingName: device.thingName } : {}),
          reason: 'ROTATED',
        }
      : undefined;
  const outcome = await deps.store.transition({
    serial: device.serial,
    event,
    device,
    transitionKey: `${event}:${certificateId}`,
    now: now.iso,
    history: {
      id: deps.newId(),
      actor: ACTOR,
      detail: { certificateId, clientId: presence.clientId, sessionIdentifier: presence.sessionIdentifier },
    },
    set: { certificateId },
    remove:
      event === 'ACTIVATE'
        ? ['pendingCertificateId', 'provisioningDeadline']
        : ['pendingCertificateId', 'rotationDeadline'],
    dedup: {
      // Not the event's own identity: that one is marked only after every effect below.
      identity: `verify:${presence.sessionIdentifier}`,
      ttlSeconds: deps.config.sessionTtlSeconds,
    },
    ...(retirement && device.certificateId !== undefined
      ? { retire: { certificateId: device.certificateId, status: 'RETIRED' as const, retirement } }
      : {}),
  });
  switch (outcome.status) {
    case 'applied':
      if (certificate?.status !== 'ACTIVE')
        await deps.store.updateCertificateStatus(certificateId, 'ACTIVE', now.iso);
      if (event === 'COMMIT_ROTATION') {
        await deps.onRotationCommitted({
          serial: device.serial,
          certificateId,
          ...(device.certificateId !== undefined ? { previousCertificateId: device.certificateId } : {}),
          ...(retirement ? { retirement } : {}),
        });
      }
      return [{ kind: 'verified', serial: device.serial, event, certificateId }];
    case 'already-done':
      return [];
    case 'conflict':
      throw new TransientError('device changed while verifying; deciding again');
    default:
      return [{ kind: 'noted', detail: outcome.reason }];
  }
}

async function suspect(
  input: {
    reason: string;
    identity: string;
    serial?: string;
    certificateId?: string;
    claimedSerial?: string;
    /** `certificate`: deactivate the named certificate only, never its device (a foreign principal). */
    scope?: 'certificate';
    evidence: Record<string, unknown>;
    ttlSeconds?: number;
  },
  owner: string,
  deps: LifecycleDeps,
  now: Instant,
): Promise<LifecycleOutcome> {
  const serial = input.serial;
  const certificateId = input.certificateId;
  const sent = await requestQuarantineOnce(
    { claims: deps.registrations, queue: deps.quarantine },
    {
      identity: input.identity,
      owner,
      now: now.iso,
      leaseSeconds: deps.config.registrationLeaseSeconds,
      ttlSeconds: input.ttlSeconds ?? deps.config.suspicionTtlSeconds,
      request: {
        requestId: `${ACTOR}:${input.identity}`.slice(0, 256),
        ...(serial !== undefined ? { serial } : {}),
        ...(certificateId !== undefined ? { certificateId } : {}),
        ...(serial === undefined && certificateId === undefined && input.claimedSerial
          ? { serial: input.claimedSerial }
          : {}),
        ...(input.scope ? { scope: input.scope } : {}),
        reason: input.reason,
        evidence: {
          ...input.evidence,
          ...(input.claimedSerial ? { claimedSerial: input.claimedSerial } : {}),
        },
        source: ACTOR,
        at: now.iso,
      },
    },
  );
  return { kind: 'suspicion', reason: input.reason, identity: input.identity, sent };
}

/**
 * The certificate record and the device of a presence event in one read when the client id is
 * the thing name of the certificate's device (the usual case), two otherwise.
 */
async function loadDeviceFor(
  clientId: string,
  certificateId: string,
  deps: LifecycleDeps,
): Promise<{ certificate?: CertificateRecord; device?: DeviceRecord }> {
  const guess = serialFromName(clientId, deps.config);
  if (guess === undefined) {
    const certificate = await deps.store.getCertificate(certificateId);
    const device = certificate?.serial ? await deps.store.getDevice(certificate.serial) : undefined;
    return { ...(certificate ? { certificate } : {}), ...(device ? { device } : {}) };
  }
  const facts = await deps.store.loadProvisioningFacts({ serial: guess, certificateId });
  const certificate = facts.certificate;
  const serial = certificate?.kind === 'DEVICE' ? certificate.serial : undefined;
  const device = serial === undefined || serial === guess ? facts.device : await deps.store.getDevice(serial);
  return { ...(certificate ? { certificate } : {}), ...(device ? { device } : {}) };
}

/** The serial a thing name or client id stands for (thing name = prefix + serial), if it does. */
export function serialFromName(
  name: string,
  config: Pick<Config, 'thingNamePrefix' | 'serialPattern'>,
): string | undefined {
  if (!name.startsWith(config.thingNamePrefix)) return undefined;
  const serial = name.slice(config.thingNamePrefix.length);
  return config.serialPattern.test(serial) ? serial : undefined;
}
