import { decideVerification, type Suspicion, serialFromName } from '../../shared/domain/lifecycle-rules';
import type { Instant } from '../../shared/domain/provisioning-rules';
import { TransientError } from '../../shared/errors';
import { requestQuarantineOnce } from '../../shared/quarantine-sender';
import type { CertificateRecord, DeviceRecord } from '../../shared/store/records';
import { ACTOR, type LifecycleDeps, type LifecycleOutcome } from './deps';

/** Verifies `device` when its client id's newest presence is a connection with `certificateId`. */
export async function verifyIfConnected(
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

export async function verify(
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

export async function suspect(
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
export async function loadDeviceFor(
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
