/**
 * The JITP follow-up: a thing CREATED event records the thing a template created and checks it
 * against the allowlist (`decideThingCreated`, `decideJitpThing`, `decideProvisioning`); the rest
 * of the registry events are noted.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/registry-events.html
 */
import type { ThingEvent } from '../../schemas/iot-events';
import { parseCertificatePem } from '../../shared/certificates';
import {
  decideJitpThing,
  decideThingCreated,
  jitpSuspicions,
  serialFromName,
} from '../../shared/domain/lifecycle-rules';
import { decideOnFacts, decideProvisioning, type Instant } from '../../shared/domain/provisioning-rules';
import { TransientError, ValidationError } from '../../shared/errors';
import { provisionBinding } from '../../shared/store/bind-certificate';
import { deviceCertificateRecord } from '../../shared/store/records';
import { ACTOR, type LifecycleDeps, type LifecycleOutcome } from './deps';
import { suspect, verifyIfConnected } from './effects';

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
  return recordJitpThing(event.thingName, thing.serial, thing.certificateId, suspicion, deps, now);
}

/** Asks for the quarantine of a suspicious JITP thing's certificates (one request per certificate). */
type JitpSuspicion = (reason: string, detail: string) => Promise<LifecycleOutcome>;

/**
 * The thing's one certificate, checked with the shared provisioning rules and bound to the serial
 * (PROVISION, like the hook and JITR); then verified at once when the device already connected.
 */
async function recordJitpThing(
  thingName: string,
  serial: string,
  certificateId: string,
  suspicion: JitpSuspicion,
  deps: LifecycleDeps,
  now: Instant,
): Promise<LifecycleOutcome[]> {
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
  // A suspicion quarantines the device and the certificate: never from a torn read. One BatchGetItem
  // is not a snapshot, and a duplicate of this event can meet the binding below, made by the first
  // delivery, half-committed; such a denial is read again (`decideOnFacts`).
  const { facts, decision } = await decideOnFacts(
    () =>
      deps.store.loadProvisioningFacts({ serial, certificateId, publicKeyHash: certificate.publicKeyHash }),
    (facts) => decideProvisioning({ serial, certificateId, certificate }, facts, deps.config, now),
  );
  if (!decision.allow) return [await suspicion(decision.reason, decision.detail)];
  if (decision.alreadyBound || !facts.device) {
    return [{ kind: 'recorded', serial, thingName: thingName, certificateId }];
  }
  const record = deviceCertificateRecord(
    { ...certificate, certificateId },
    {
      status: description.status === 'ACTIVE' ? 'ACTIVE' : 'PENDING',
      source: 'JITP',
      serial,
      thingName: thingName,
      now: now.iso,
    },
  );
  const outcome = await deps.store.bindCertificate(
    provisionBinding({
      decision: { serial, thingName: thingName, binding: decision.binding },
      device: facts.device,
      certificate: record,
      publicKeyHash: certificate.publicKeyHash,
      now,
      provisioningWindowSeconds: deps.config.provisioningWindowSeconds,
      history: { id: deps.newId(), actor: ACTOR, detail: { source: 'JITP', thingName: thingName } },
    }),
  );
  if (outcome.status === 'conflict') {
    if (outcome.reason === 'CERTIFICATE_IN_USE' || outcome.reason === 'PUBLIC_KEY_IN_USE') {
      return [await suspicion(outcome.reason, 'bound to another device concurrently')];
    }
    throw new TransientError(`device changed while recording the JITP thing (${outcome.reason})`);
  }
  if (outcome.status === 'illegal') throw new TransientError(`device moved on: ${outcome.reason}`);
  const outcomes: LifecycleOutcome[] = [{ kind: 'recorded', serial, thingName: thingName, certificateId }];
  // JITP devices connect right after provisioning; that connected event may have come first.
  if (outcome.status === 'applied') {
    outcomes.push(...(await verifyIfConnected(outcome.device, certificateId, thingName, record, deps, now)));
  }
  return outcomes;
}
