/**
 * JITR for one `$aws/events/certificates/registered/<caCertificateId>` event: describe → verify →
 * decide (the shared provisioning rules) → act, in an order that any redelivery can resume.
 *
 * Order of effects, and why:
 * 1. **Reserve in the store** (one transaction: device PROVISIONING with the pending certificate,
 *    certificate record PENDING with this delivery's lease, public-key owner, history). This is
 *    where competing certificates for one serial or one key are decided, by DynamoDB conditions,
 *    before anything in IoT can make a loser usable; and no certificate ever becomes ACTIVE in
 *    IoT without the store knowing it.
 * 2. **AttachPolicy** — the ONE shared device policy on the certificate, first: it is the step that
 *    depends on the account's configuration (the policy must exist), so a missing policy fails the
 *    delivery before anything is created in IoT (retried, then dead-lettered; never acknowledged).
 *    Then **CreateThing** (ResourceAlreadyExists with other attributes → verify and merge), the
 *    optional thing group, AttachThingPrincipal: each idempotent, so a redelivery repeats them
 *    harmlessly.
 * 3. **UpdateCertificate ACTIVE, last**: the device can connect only once everything it needs is
 *    in place.
 * 4. **Commit** the certificate record ACTIVE (lease released). A redelivery after the commit
 *    costs one read and no IoT call; before it, the lease owner (the same SQS message) resumes
 *    from step 2, and other deliveries of the same certificate stand back while the lease holds.
 *
 * A rejection sends the quarantine request, leaves the certificate INACTIVE (REVOKED for a revoked
 * serial) and commits a certificate record without serial plus one history entry: in that order,
 * so a crash repeats the request (same `requestId`) rather than losing it.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/auto-register-device-cert.html
 */
import type { CertificateRegisteredEvent } from '../../schemas/iot-events';
import { type ParsedCertificate, parseCertificatePem } from '../../shared/certificates';
import { crashPoint } from '../../shared/chaos';
import type { Config } from '../../shared/config';
import { suspicionIdentity } from '../../shared/domain/presence-rules';
import { decideOnFacts, type Instant } from '../../shared/domain/provisioning-rules';
import {
  decideRegistration,
  decideRegistrationEntry,
  type IssuerCheck,
  isActivatable,
  planRejection,
  type RegistrationDecision,
  type Rejection,
  reject,
  serialFromSubject,
} from '../../shared/domain/registration-rules';
import { TransientError, ValidationError } from '../../shared/errors';
import type { CertificateDescription, IotRegistry } from '../../shared/iot/iot-registry';
import { type QuarantineSender, requestQuarantineOnce } from '../../shared/quarantine-sender';
import { provisionBinding } from '../../shared/store/bind-certificate';
import type { ProvisioningFacts, ProvisioningStore } from '../../shared/store/provisioning-store';
import {
  type CertificateRecord,
  type DeviceRecord,
  deviceCertificateRecord,
} from '../../shared/store/records';
import { RegistrationStore } from '../../shared/store/registration-store';
import type { CaTrust } from './ca-trust';

export const ACTOR = 'registerCertificate';

export interface RegistrationDeps {
  config: Config;
  store: Pick<ProvisioningStore, 'getCertificate' | 'loadProvisioningFacts' | 'bindCertificate'>;
  registrations: Pick<
    RegistrationStore,
    'acquireRegistrationLease' | 'completeRegistration' | 'recordRejection' | 'claimEffect' | 'completeEffect'
  >;
  iot: Pick<
    IotRegistry,
    | 'describeCertificate'
    | 'ensureThing'
    | 'addThingToThingGroup'
    | 'attachPolicy'
    | 'attachThingPrincipal'
    | 'updateCertificateStatus'
  >;
  caTrust: Pick<CaTrust, 'check'>;
  quarantine: QuarantineSender;
  newId: () => string;
}

export type RegistrationOutcome =
  | { status: 'registered'; certificateId: string; serial: string; thingName: string; resumed: boolean }
  | {
      status: 'rejected';
      certificateId: string;
      reason: Rejection['reason'];
      detail: string;
      serial?: string;
    }
  | { status: 'duplicate'; certificateId: string; detail: string }
  | { status: 'ignored'; certificateId: string; reason: IgnoreReason; detail: string };

/** Events that need no action: the certificate is gone, or not fleetgate's to register. */
export type IgnoreReason = 'CERTIFICATE_NOT_FOUND' | 'CERTIFICATE_NOT_PENDING';

/**
 * Registers (or rejects) the certificate of one event. `owner` is the SQS message id: the lease
 * holder of the registration. Whatever it throws — a `TransientError` (lost race, throttling), an
 * `IotRequestError` (AccessDenied, the device policy missing) — fails the record: the SQS consumer
 * retries it and the queue's redrive policy dead-letters it; nothing is acknowledged half-done.
 */
export async function registerCertificate(
  event: CertificateRegisteredEvent,
  owner: string,
  deps: RegistrationDeps,
  now: Instant,
): Promise<RegistrationOutcome> {
  const { certificateId } = event;
  // A repeat of a finished registration or rejection costs one read and no IoT call.
  const entry = await checkEntry(certificateId, owner, deps, now);
  if ('status' in entry) return entry;
  const { known } = entry;

  const read = await readCertificate(event, owner, deps, now);
  if ('status' in read) return read;
  const { description, certificate } = read;

  const issuer = await checkIssuer(event, description, certificate, deps);
  const serial = serialFromSubject(certificate, deps.config);
  const readFacts = (): Promise<ProvisioningFacts> =>
    issuer.trusted && serial !== undefined
      ? deps.store.loadProvisioningFacts({
          serial,
          certificateId,
          publicKeyHash: certificate.publicKeyHash,
        })
      : Promise.resolve({});
  // A rejection deactivates the certificate and asks for a quarantine: never from a torn read. One
  // BatchGetItem is not a snapshot, and a duplicate delivery can meet this certificate's own
  // reservation half-committed; such a rejection is read again (`decideOnFacts`).
  const { facts, decision } = await decideOnFacts(readFacts, (facts) =>
    decideRegistration({ certificateId, certificate, issuer }, facts, deps.config, now),
  );
  const context = {
    event,
    description,
    owner,
    certificate,
    device: facts.device,
    publicKeyOwner: facts.publicKeyOwner,
  };
  if (!decision.allow) return rejectCertificate(decision, context, deps, now);

  // Reserved by an earlier delivery (possibly after this one read the store above).
  const ours =
    known !== undefined ||
    (facts.certificate?.source === 'JITR' && facts.certificate.serial === decision.serial);
  if (!isActivatable(description.status, ours)) {
    // Somebody else (an operator) changed the certificate: fleetgate never re-activates it.
    return ignored(certificateId, 'CERTIFICATE_NOT_PENDING', `certificate is ${description.status} in IoT`);
  }

  const reserved = await reserve(decision, facts, certificate, context, deps, now);
  if ('status' in reserved) return reserved;
  const { resumed } = reserved;
  if (resumed) {
    const held = await resumeRegistration(certificateId, owner, deps, now);
    if (held) return held;
  }

  const device = facts.device as DeviceRecord;
  await activate(decision.thingName, thingAttributes(device, decision.serial), description, deps);
  crashPoint('registerCertificate.afterIot', certificateId);
  await deps.registrations.completeRegistration(certificateId, now.iso);
  return {
    status: 'registered',
    certificateId,
    serial: decision.serial,
    thingName: decision.thingName,
    resumed,
  };
}

/** The store's record of the certificate, and whether the event needs work (`decideRegistrationEntry`). */
async function checkEntry(
  certificateId: string,
  owner: string,
  deps: RegistrationDeps,
  now: Instant,
): Promise<{ known: CertificateRecord | undefined } | RegistrationOutcome> {
  const known = await deps.store.getCertificate(certificateId);
  const lease = RegistrationStore.leaseOf(known);
  const entry = decideRegistrationEntry(
    known ? { status: known.status, source: known.source, ...(lease ? { lease } : {}) } : undefined,
    owner,
    now,
  );
  if (entry.kind === 'duplicate') return { status: 'duplicate', certificateId, detail: entry.detail };
  if (entry.kind === 'ignored') return ignored(certificateId, entry.reason, entry.detail);
  return { known };
}

/** The certificate as IoT describes it, parsed; an outcome when it is gone or unreadable. */
async function readCertificate(
  event: CertificateRegisteredEvent,
  owner: string,
  deps: RegistrationDeps,
  now: Instant,
): Promise<{ description: CertificateDescription; certificate: ParsedCertificate } | RegistrationOutcome> {
  const description = await deps.iot.describeCertificate(event.certificateId);
  if (!description)
    return ignored(event.certificateId, 'CERTIFICATE_NOT_FOUND', 'IoT does not know the certificate');
  try {
    const certificate = parseCertificatePem(description.certificatePem, {
      maxBytes: deps.config.maxCertificatePemBytes,
    });
    return { description, certificate };
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    return rejectCertificate(
      reject('INVALID_CERTIFICATE', error.message),
      { event, description, owner },
      deps,
      now,
    );
  }
}

/** Where the certificate's issuer stands: the CA the event names must be the certificate's own and trusted. */
async function checkIssuer(
  event: CertificateRegisteredEvent,
  description: CertificateDescription,
  certificate: ParsedCertificate,
  deps: RegistrationDeps,
): Promise<IssuerCheck> {
  if (description.caCertificateId !== undefined && description.caCertificateId !== event.caCertificateId) {
    return { trusted: false, detail: 'caCertificateId: the event names another CA than the certificate' };
  }
  return deps.caTrust.check(event.caCertificateId, certificate.der);
}

/**
 * Step 1: reserves the certificate for the serial in the store (PROVISION with this delivery's
 * lease). `resumed`: an earlier delivery reserved it already. A conflict with another device is
 * a rejection; any other lost race is retried.
 */
async function reserve(
  decision: Extract<RegistrationDecision, { allow: true }>,
  facts: ProvisioningFacts,
  certificate: ParsedCertificate,
  context: RejectionContext,
  deps: RegistrationDeps,
  now: Instant,
): Promise<{ resumed: boolean } | RegistrationOutcome> {
  if (decision.alreadyBound || !facts.device) return { resumed: decision.alreadyBound };
  const outcome = await deps.store.bindCertificate(
    provisionBinding({
      decision,
      device: facts.device,
      certificate: RegistrationStore.withLease(
        certificateRecord(certificate, now, 'PENDING', decision.serial, decision.thingName),
        {
          leaseOwner: context.owner,
          leaseUntil: new Date(now.epochMs + deps.config.registrationLeaseSeconds * 1000).toISOString(),
        },
      ),
      publicKeyHash: certificate.publicKeyHash,
      now,
      provisioningWindowSeconds: deps.config.provisioningWindowSeconds,
      history: {
        id: deps.newId(),
        actor: ACTOR,
        detail: { caCertificateId: context.event.caCertificateId, source: 'JITR' },
      },
    }),
  );
  switch (outcome.status) {
    case 'applied':
      return { resumed: false };
    case 'already-done':
      return { resumed: true };
    case 'conflict':
      if (outcome.reason === 'CERTIFICATE_IN_USE' || outcome.reason === 'PUBLIC_KEY_IN_USE') {
        return rejectCertificate(
          reject(outcome.reason, 'bound to another device concurrently', decision.serial),
          context,
          deps,
          now,
        );
      }
      throw new TransientError(`device changed while binding (${outcome.reason}); deciding again`);
    default:
      throw new TransientError(`device moved on while binding (${outcome.reason}); deciding again`);
  }
}

/** A reserved registration resumed: only the lease holder goes on (an outcome when it may not). */
async function resumeRegistration(
  certificateId: string,
  owner: string,
  deps: RegistrationDeps,
  now: Instant,
): Promise<RegistrationOutcome | undefined> {
  const lease = await deps.registrations.acquireRegistrationLease(
    certificateId,
    owner,
    now.iso,
    deps.config.registrationLeaseSeconds,
  );
  if (lease === 'held') {
    return { status: 'duplicate', certificateId, detail: 'another delivery is registering this certificate' };
  }
  if (lease === 'done')
    return { status: 'duplicate', certificateId, detail: 'registration already committed' };
  if (lease === 'missing') throw new TransientError('reserved certificate record is not readable yet');
  return undefined;
}

/** Steps 2 and 3: every IoT side effect, each idempotent, the activation last. */
async function activate(
  thingName: string,
  attributes: Record<string, string>,
  description: CertificateDescription,
  deps: RegistrationDeps,
): Promise<void> {
  await deps.iot.attachPolicy(deps.config.devicePolicyName, description.certificateArn);
  await deps.iot.ensureThing(thingName, attributes);
  if (deps.config.deviceThingGroup)
    await deps.iot.addThingToThingGroup(deps.config.deviceThingGroup, thingName);
  await deps.iot.attachThingPrincipal(thingName, description.certificateArn);
  if (description.status !== 'ACTIVE')
    await deps.iot.updateCertificateStatus(description.certificateId, 'ACTIVE');
}

/** What a rejection reports and records. */
interface RejectionContext {
  event: CertificateRegisteredEvent;
  description: CertificateDescription;
  owner: string;
  certificate?: ParsedCertificate;
  device?: DeviceRecord;
  publicKeyOwner?: ProvisioningFacts['publicKeyOwner'];
}

async function rejectCertificate(
  rejection: Rejection,
  context: RejectionContext,
  deps: RegistrationDeps,
  now: Instant,
): Promise<RegistrationOutcome> {
  const { event, description, certificate } = context;
  const certificateId = event.certificateId;
  const plan = planRejection(rejection, {
    caCertificateId: event.caCertificateId,
    ...(context.device ? { device: context.device } : {}),
    ...(context.publicKeyOwner ? { publicKeyOwner: context.publicKeyOwner } : {}),
    ...(certificate ? { certificate } : {}),
  });
  await requestQuarantineOnce(
    { claims: deps.registrations, queue: deps.quarantine },
    {
      identity: suspicionIdentity.registration(certificateId),
      owner: context.owner,
      now: now.iso,
      leaseSeconds: deps.config.registrationLeaseSeconds,
      ttlSeconds: deps.config.suspicionTtlSeconds,
      request: {
        requestId: `${ACTOR}:${certificateId}`,
        ...(plan.serial !== undefined ? { serial: plan.serial } : { scope: 'certificate' as const }),
        certificateId,
        reason: plan.reason,
        evidence: plan.evidence,
        source: ACTOR,
        at: now.iso,
      },
    },
  );
  if (description.status !== rejection.certificateStatus && description.status !== 'REVOKED') {
    await deps.iot.updateCertificateStatus(certificateId, rejection.certificateStatus);
  }
  crashPoint('registerCertificate.afterReject', certificateId);
  await deps.registrations.recordRejection({
    certificate: {
      ...(certificate
        ? certificateRecord(certificate, now, rejection.certificateStatus)
        : {
            certificateId,
            kind: 'DEVICE',
            status: rejection.certificateStatus,
            source: 'JITR',
            issuer: 'unknown',
            notBefore: now.iso,
            notAfter: now.iso,
            createdAt: now.iso,
            updatedAt: now.iso,
          }),
    },
    rejectedReason: rejection.reason,
    ...(rejection.serial !== undefined ? { claimedSerial: rejection.serial } : {}),
    ...(plan.historySerial !== undefined
      ? {
          history: {
            serial: plan.historySerial,
            id: deps.newId(),
            actor: ACTOR,
            detail: { caCertificateId: event.caCertificateId },
          },
        }
      : {}),
  });
  return {
    status: 'rejected',
    certificateId,
    reason: rejection.reason,
    detail: rejection.detail,
    ...(rejection.serial !== undefined ? { serial: rejection.serial } : {}),
  };
}

function certificateRecord(
  certificate: ParsedCertificate,
  now: Instant,
  status: CertificateRecord['status'],
  serial?: string,
  thingName?: string,
): CertificateRecord {
  // The thing name travels with the record like in every other flow: the expiry sweep's
  // rotate/required notice goes to the thing the certificate record names.
  return deviceCertificateRecord(certificate, {
    status,
    source: 'JITR',
    now: now.iso,
    ...(serial !== undefined ? { serial } : {}),
    ...(thingName !== undefined ? { thingName } : {}),
  });
}

/** Thing attributes from the allowlist entry (AWS: at most 50; the serial first). */
export function thingAttributes(device: DeviceRecord, serial: string): Record<string, string> {
  const attributes: Record<string, string> = { serial };
  if (device.productLine !== undefined) attributes.productLine = device.productLine;
  if (device.batch !== undefined) attributes.batch = device.batch;
  for (const [name, value] of Object.entries(device.attributes ?? {})) {
    if (Object.keys(attributes).length >= 50) break;
    if (!(name in attributes) && value !== '') attributes[name] = value;
  }
  return attributes;
}

function ignored(certificateId: string, reason: IgnoreReason, detail: string): RegistrationOutcome {
  return { status: 'ignored', certificateId, reason, detail };
}
