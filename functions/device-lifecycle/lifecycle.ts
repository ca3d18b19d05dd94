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
  type CloneReason,
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
      sent: 'sent' | 'already-sent' | 'in-flight';
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

  if (boundSerial !== undefined) {
    await deps.registrations.recordSession({
      certificateId: principal,
      sessionIdentifier: event.sessionIdentifier,
      clientId: event.clientId,
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
    if (event.disconnectReason === 'DUPLICATE_CLIENTID') {
      const windowMs = deps.config.duplicateClientIdWindowSeconds * 1000;
      // Later disconnects count too: handled concurrently or out of order, the last one handled sees all.
      const storm = await deps.registrations.recordDuplicateClientId({
        clientId: event.clientId,
        atMs: event.timestamp,
        fromMs: event.timestamp - windowMs,
        toMs: event.timestamp + windowMs,
        sessionIdentifier: event.sessionIdentifier,
        ttlSeconds: deps.config.duplicateClientIdWindowSeconds * 2,
      });
      if (
        isDuplicateClientIdStorm(
          storm.map((disconnect) => disconnect.atMs),
          event.timestamp,
          windowMs,
          deps.config.duplicateClientIdThreshold,
        )
      ) {
        outcomes.push(
          await suspect(
            {
              reason: 'CLONE_DUPLICATE_CLIENTID',
              identity: suspicionIdentity.duplicateClientId(event.clientId),
              serial: device?.serial,
              certificateId: isCertificate ? principal : undefined,
              ttlSeconds: deps.config.duplicateClientIdWindowSeconds,
              evidence: {
                clientId: event.clientId,
                windowSeconds: deps.config.duplicateClientIdWindowSeconds,
                threshold: deps.config.duplicateClientIdThreshold,
                disconnects: storm,
              },
            },
            owner,
            deps,
            now,
          ),
        );
      }
    }
    return outcomes;
  }

  if (boundSerial !== undefined) {
    const pair = findConcurrentSessions(await deps.registrations.sessionsOf(principal));
    if (pair) {
      outcomes.push(
        await suspect(
          {
            reason: 'CLONE_CONCURRENT_SESSIONS',
            identity: suspicionIdentity.concurrentSessions(principal),
            serial: boundSerial,
            certificateId: principal,
            evidence: { sessions: pair, detectedBy: event.sessionIdentifier },
          },
          owner,
          deps,
          now,
        ),
      );
    }
  }

  if (boundSerial === undefined) {
    // A certificate fleetgate never bound, used with the client id of a device that has (or had)
    // its own: a takeover. A quarantined or revoked device's thing already exists, so JITP raises
    // no CREATED event for it and this connect is the only signal that its certificate must go.
    if (isCertificate && certificate === undefined && device && hasOwnCertificate(device)) {
      outcomes.push(
        await mismatch(
          device,
          principal,
          event,
          owner,
          deps,
          now,
          `certificate unknown to the store (device is ${device.state})`,
        ),
      );
    }
    return outcomes;
  }

  // The new certificate of a rotation that was aborted while this connect was on its way (the abort
  // won the race and revoked it): the device's own certificate, not a clone's. IoT refuses it from
  // now on and the device falls back to its current certificate.
  if (
    certificate?.status === 'REVOKED' &&
    certificate.source === 'ROTATION' &&
    device?.state === 'ACTIVE' &&
    device.serial === boundSerial &&
    device.certificateId !== principal
  ) {
    outcomes.push({ kind: 'noted', detail: 'connected with the certificate of an aborted rotation' });
    return outcomes;
  }
  const decision = decideConnected(device, principal);
  switch (decision.kind) {
    case 'verify':
      if (device)
        outcomes.push(...(await verify(device, decision.event, principal, certificate, event, deps, now)));
      break;
    case 'mismatch':
      if (device) outcomes.push(await mismatch(device, principal, event, owner, deps, now, decision.detail));
      break;
    case 'ignore':
      outcomes.push({ kind: 'noted', detail: decision.detail });
      break;
    default:
      break;
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
  const outcome = await deps.store.bindCertificate({
    serial,
    event: 'PROVISION',
    device: facts.device,
    certificate: record,
    publicKeyHash: certificate.publicKeyHash,
    now: now.iso,
    history: {
      id: deps.newId(),
      actor: ACTOR,
      reason: decision.binding,
      detail: { source: 'JITP', thingName: event.thingName },
    },
    set: {
      thingName: event.thingName,
      provisioningDeadline: new Date(
        now.epochMs + deps.config.provisioningWindowSeconds * 1000,
      ).toISOString(),
    },
    afterExpiredProvisioning: decision.binding === 'after-expired-provisioning',
  });
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

function mismatch(
  device: DeviceRecord,
  certificateId: string,
  event: PresenceEvent,
  owner: string,
  deps: LifecycleDeps,
  now: Instant,
  detail: string,
): Promise<LifecycleOutcome> {
  return suspect(
    {
      reason: 'CLONE_CERTIFICATE_MISMATCH',
      identity: suspicionIdentity.certificateMismatch(device.serial, certificateId),
      serial: device.serial,
      certificateId,
      evidence: {
        detail,
        clientId: event.clientId,
        sessionIdentifier: event.sessionIdentifier,
        ipAddress: event.ipAddress,
        at: event.timestamp,
        deviceState: device.state,
        currentCertificateId: device.certificateId,
        pendingCertificateId: device.pendingCertificateId,
      },
    },
    owner,
    deps,
    now,
  );
}

async function suspect(
  input: {
    reason: string;
    identity: string;
    serial?: string;
    certificateId?: string;
    claimedSerial?: string;
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
