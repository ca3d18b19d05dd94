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
import type { PresenceEvent, ThingEvent } from '../../schemas/iot-events';
import { parseCertificatePem } from '../../shared/certificates';
import type { Config } from '../../shared/config';
import {
  concurrentSessionsSuspicion,
  decideDuplicateClientIdStorm,
  decideForeignConnection,
  decideJitpThing,
  decideOtherConnection,
  decideThingCreated,
  decideVerification,
  jitpSuspicions,
  needsThingCheck,
  ownCertificateIds,
  ownDevice,
  principalKindOf,
  type Suspicion,
  serialFromName,
  stormCandidates,
} from '../../shared/domain/lifecycle-rules';
import {
  type CloneReason,
  type DuplicateDisconnectFacts,
  decideConnected,
  findConcurrentSessions,
  presenceRank,
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
  const own = ownDevice(principal, certificate, device);
  if (own) {
    await recordOwnSession(event, principal, deps);
    outcomes.push(...(await ownConnection(event, principal, own, certificate, owner, deps, now)));
    return outcomes;
  }
  if (event.eventType === 'disconnected' || !isCertificate || !device) return outcomes;
  const decision = decideOtherConnection(principal, certificate, device);
  if (decision.kind === 'noted') outcomes.push({ kind: 'noted', detail: decision.detail });
  if (decision.kind === 'foreign')
    outcomes.push(...(await foreignConnection(device, principal, certificate, event, owner, deps, now)));
  return outcomes;
}

async function recordOwnSession(event: PresenceEvent, principal: string, deps: LifecycleDeps): Promise<void> {
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

/** A presence event made with the device's own certificate (`ownDevice`). */
async function ownConnection(
  event: PresenceEvent,
  principal: string,
  own: DeviceRecord,
  certificate: CertificateRecord | undefined,
  owner: string,
  deps: LifecycleDeps,
  now: Instant,
): Promise<LifecycleOutcome[]> {
  const outcomes: LifecycleOutcome[] = [];
  if (event.eventType === 'disconnected') {
    if (event.disconnectReason !== 'DUPLICATE_CLIENTID') return outcomes;
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
    return outcomes;
  }
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
    const suspicion = concurrentSessionsSuspicion(own.serial, principal, pair, event.sessionIdentifier);
    outcomes.push(await suspect(suspicion, owner, deps, now));
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

/** The storm the disconnects around `anchorMs` make, if they do (`decideDuplicateClientIdStorm`). */
async function duplicateClientIdStorm(
  device: DeviceRecord,
  clientId: string,
  anchorMs: number,
  disconnects: readonly DuplicateDisconnectFacts[],
  deps: LifecycleDeps,
): Promise<Suspicion | undefined> {
  const candidates = stormCandidates(device, disconnects, deps.config);
  if (!candidates) return undefined;
  const sessions = (
    await Promise.all(ownCertificateIds(device).map((id) => deps.registrations.sessionsOf(id)))
  ).flat();
  return decideDuplicateClientIdStorm({ device, clientId, anchorMs, candidates, sessions }, deps.config);
}

/**
 * A connection on `device`'s client id (or with a certificate bound to it) made with a principal
 * that is not the device's own: recorded in its history, the principal quarantined alone when it
 * is attached to the device (`decideForeignConnection`).
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
  const kind = principalKindOf(certificate);
  const onThing = needsThingCheck(kind)
    ? (await deps.iot.listThingCertificateIds(device.thingName ?? event.clientId)).includes(principal)
    : false;
  const decision = decideForeignConnection(device, principal, kind, onThing, event);
  await deps.registrations.appendHistory({
    serial: device.serial,
    event: 'SUSPICIOUS_CONNECTION',
    actor: ACTOR,
    ...decision.history,
  });
  const outcomes: LifecycleOutcome[] = [
    {
      kind: 'suspicion',
      reason: decision.history.reason,
      identity: decision.recordedIdentity,
      sent: 'recorded',
    },
  ];
  if (decision.quarantine) outcomes.push(await suspect(decision.quarantine, owner, deps, now));
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
  const claimedSerial = event.attributes.serial ?? serialFromName(event.thingName, deps.config);
  const device = claimedSerial !== undefined ? await deps.store.getDevice(claimedSerial) : undefined;
  const created = decideThingCreated(event.thingName, device);
  if (created.kind === 'own-flow' && device) {
    // Created by fleetgate's own flows (hook or JITR), which bound the device first, or a repeat
    // of this event after the binding below: then the connect may still be waiting for it.
    const pending = created.pendingCertificateId;
    const verified = pending
      ? await verifyIfConnected(device, pending, event.thingName, undefined, deps, now)
      : [];
    return [{ kind: 'noted', detail: 'thing of a device fleetgate is provisioning' }, ...verified];
  }
  const certificateIds = await deps.iot.listThingCertificateIds(event.thingName);
  const suspicion = async (reason: string, detail: string): Promise<LifecycleOutcome> => {
    const requests = jitpSuspicions(
      { thingName: event.thingName, eventId: event.eventId, certificateIds },
      {
        ...(device ? { deviceSerial: device.serial } : {}),
        ...(claimedSerial !== undefined ? { claimedSerial } : {}),
      },
      reason,
      detail,
    );
    const sent = await Promise.all(requests.map((request) => suspect(request, owner, deps, now)));
    return sent[0] as LifecycleOutcome;
  };
  const thing = decideJitpThing(claimedSerial, device, certificateIds);
  if (thing.kind === 'suspect') return [await suspicion(thing.reason, thing.detail)];
  if (thing.kind === 'noted') return [{ kind: 'noted', detail: thing.detail }];
  const { serial, certificateId } = thing;
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
  const verification = decideVerification(device, event, certificateId, presence, deps.config, now);
  const { retire } = verification;
  const outcome = await deps.store.transition({
    serial: device.serial,
    event,
    device,
    transitionKey: verification.transitionKey,
    now: now.iso,
    history: { id: deps.newId(), actor: ACTOR, detail: verification.historyDetail },
    set: verification.set,
    remove: verification.remove,
    dedup: { identity: verification.dedupIdentity, ttlSeconds: deps.config.sessionTtlSeconds },
    ...(retire
      ? {
          retire: {
            certificateId: retire.certificateId,
            status: 'RETIRED' as const,
            retirement: retire.retirement,
          },
        }
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
          ...(retire ? { retirement: retire.retirement } : {}),
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
  input: Suspicion,
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
