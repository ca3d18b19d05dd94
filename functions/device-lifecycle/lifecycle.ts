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
import type { PresenceEvent } from '../../schemas/iot-events';
import {
  concurrentSessionsSuspicion,
  decideDuplicateClientIdStorm,
  decideForeignConnection,
  decideOtherConnection,
  needsThingCheck,
  ownCertificateIds,
  ownDevice,
  principalKindOf,
  type Suspicion,
  stormCandidates,
} from '../../shared/domain/lifecycle-rules';
import {
  type DuplicateDisconnectFacts,
  decideConnected,
  findConcurrentSessions,
  presenceRank,
} from '../../shared/domain/presence-rules';
import type { Instant } from '../../shared/domain/provisioning-rules';
import type { CertificateRecord, DeviceRecord } from '../../shared/store/records';
import { ACTOR, type LifecycleDeps, type LifecycleOutcome } from './deps';
import { loadDeviceFor, suspect, verify } from './effects';

const CERTIFICATE_ID = /^[0-9a-f]{64}$/;

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
