/**
 * Carries out one quarantine request (schemas/quarantine-request.ts) against IoT and the store.
 *
 * Side effects, in this order, each safe to repeat:
 * 1. marker check — a request already recorded is done (a release in between must not be undone
 *    by a late redelivery of the request that caused the quarantine);
 * 2. UpdateCertificate → INACTIVE for every certificate concerned (the device is cut off first;
 *    already INACTIVE / REVOKED is success);
 * 3. AddThingToThingGroup (quarantine group, whose policy explicitly denies all but remediation;
 *    already a member is success);
 * 4. one transaction: device QUARANTINED (conditional on state and version, previousState kept) +
 *    history entry + the request's marker.
 * The store is written last, so a crash anywhere before it leaves the message to be redelivered
 * and finished; once the transaction committed, every IoT effect had already happened.
 */
import type { QuarantineRequest } from '../../schemas/quarantine-request';
import { crashPoint } from '../../shared/chaos';
import type { Config } from '../../shared/config';
import { certificatesToDeactivate, planQuarantine } from '../../shared/domain/quarantine';
import { IllegalTransitionError, InvalidMessageError, TransientError } from '../../shared/errors';
import type { IotQuarantineActions, StatusOutcome } from '../../shared/iot/quarantine-actions';
import type { ProvisioningStore } from '../../shared/store/provisioning-store';
import {
  QUARANTINE_DEDUP_TTL_SECONDS,
  type QuarantineStore,
  quarantineIdentity,
} from '../../shared/store/quarantine-store';
import type { DeviceRecord, QuarantineInfo } from '../../shared/store/records';

/** How often one request decides again when its device changed under it before SQS retries it. */
const DEVICE_CHANGED_ATTEMPTS = 4;

/** The device moved between the read and the conditional write (retryable). */
class DeviceChangedError extends TransientError {}

export interface QuarantineWorkDeps {
  config: Pick<Config, 'quarantineGroupName'>;
  store: ProvisioningStore;
  quarantineStore: QuarantineStore;
  iot: IotQuarantineActions;
}

/** What one request came to; logged and counted by the handler. */
export type QuarantineOutcome =
  | {
      kind: 'device-quarantined';
      serial: string;
      from: DeviceRecord['state'];
      certificates: StatusOutcome[];
      thingName?: string;
    }
  | { kind: 'evidence-added'; serial: string; state: DeviceRecord['state']; certificates: StatusOutcome[] }
  | { kind: 'certificate-quarantined'; certificateId: string; certificates: StatusOutcome[] }
  /** A claim certificate is never deactivated by a request: an operator decides (recorded on it). */
  | { kind: 'claim-certificate-kept'; certificateId: string }
  | { kind: 'duplicate'; requestId: string };

/**
 * Quarantines what the request names.
 * @throws TransientError when the device moved under us or a dependency failed (retry);
 *   InvalidMessageError when the request names neither a known serial nor a certificate.
 */
export async function quarantine(
  request: QuarantineRequest,
  deps: QuarantineWorkDeps,
  context: { now: string; newId: () => string },
): Promise<QuarantineOutcome> {
  if (await deps.quarantineStore.isDone(request.requestId)) {
    return { kind: 'duplicate', requestId: request.requestId };
  }
  const { certificateId } = request;
  if (certificateId && (await namesClaimOnly(request, certificateId, deps))) {
    return flagClaimCertificate(request, certificateId, deps, context);
  }
  if (request.scope === 'certificate' && certificateId) {
    // Evidence from a principal that is not a device's own: that certificate only, no device.
    return quarantineCertificate(request, certificateId, deps, context, { restrictThings: false });
  }
  const device = await findDevice(request, deps);
  if (device) return quarantineDeviceRetrying(request, device, deps, context);
  if (certificateId) return quarantineCertificate(request, certificateId, deps, context);
  // Can never succeed as it is: no redelivery will make the serial known. Not dropped either: the
  // consumer sends it to the DLQ at once, from where it can be replayed once the serial is imported.
  throw unknownSerial(request);
}

function unknownSerial(request: QuarantineRequest): InvalidMessageError {
  return new InvalidMessageError([
    {
      field: 'serial',
      rule: `serial ${request.serial ?? '?'} is unknown and no certificateId was given`,
    },
  ]);
}

/** The request names a claim certificate and nothing a device could be found by instead. */
async function namesClaimOnly(
  request: QuarantineRequest,
  certificateId: string,
  deps: QuarantineWorkDeps,
): Promise<boolean> {
  const named = await deps.store.getCertificate(certificateId);
  return named?.kind === 'CLAIM' && (request.scope === 'certificate' || !request.serial);
}

/**
 * A claim certificate is shared by a whole product line: deactivating it stops every device of
 * the line from provisioning. No automatic flow may do that; the suspicion is recorded on the
 * certificate for an operator (`fleetgate certificates`, the history of the device concerned).
 */
async function flagClaimCertificate(
  request: QuarantineRequest,
  certificateId: string,
  deps: QuarantineWorkDeps,
  context: { now: string },
): Promise<QuarantineOutcome> {
  const flagged = await deps.quarantineStore.flagClaimCertificate({
    certificateId,
    requestId: request.requestId,
    now: context.now,
    suspicion: {
      reason: request.reason,
      source: request.source,
      at: context.now,
      requestId: request.requestId,
      evidence: { ...request.evidence, observedAt: request.at },
    },
  });
  return flagged === 'applied'
    ? { kind: 'claim-certificate-kept', certificateId }
    : { kind: 'duplicate', requestId: request.requestId };
}

/**
 * The device the request is about: by its serial, else (the serial unknown or absent) the known
 * device the certificate belongs to (the claimed serial stays in the evidence).
 */
async function findDevice(
  request: QuarantineRequest,
  deps: QuarantineWorkDeps,
): Promise<DeviceRecord | undefined> {
  const bySerial = request.serial ? await deps.store.getDevice(request.serial) : undefined;
  if (bySerial || !request.certificateId) return bySerial;
  const owner = (await deps.store.getCertificate(request.certificateId))?.serial;
  return owner ? deps.store.getDevice(owner) : undefined;
}

/**
 * Two suspicions about one device (a clone and a takeover at once) race for it; the loser
 * decides again on the device as it now stands (usually: add its evidence) instead of waiting
 * out the queue's visibility timeout. The device gone meanwhile: the certificate alone, if named.
 */
async function quarantineDeviceRetrying(
  request: QuarantineRequest,
  first: DeviceRecord,
  deps: QuarantineWorkDeps,
  context: { now: string; newId: () => string },
): Promise<QuarantineOutcome> {
  let device: DeviceRecord | undefined = first;
  for (let attempt = 1; device; attempt += 1) {
    try {
      return await quarantineDevice(request, device, deps, context);
    } catch (error) {
      if (!(error instanceof DeviceChangedError) || attempt >= DEVICE_CHANGED_ATTEMPTS) throw error;
      device = await deps.store.getDevice(device.serial);
    }
  }
  if (request.certificateId) return quarantineCertificate(request, request.certificateId, deps, context);
  throw unknownSerial(request);
}

/**
 * The device's certificates deactivated as the plan says (never a claim certificate named next to
 * it) and its thing put in the quarantine group.
 */
async function takeOffline(
  request: QuarantineRequest,
  device: DeviceRecord,
  plan: ReturnType<typeof planQuarantine>,
  deps: QuarantineWorkDeps,
): Promise<{ certificates: StatusOutcome[]; keptClaim?: string; thingName?: string; grouped: boolean }> {
  const certificates: StatusOutcome[] = [];
  // A claim certificate named next to a device is never deactivated (see `quarantine`).
  const named = request.certificateId ? await deps.store.getCertificate(request.certificateId) : undefined;
  const keptClaim = named?.kind === 'CLAIM' ? request.certificateId : undefined;
  for (const certificateId of certificatesToDeactivate(
    plan,
    keptClaim ? undefined : request.certificateId,
    device,
  )) {
    certificates.push(await deps.iot.deactivate(certificateId));
  }
  const thingName = device.thingName ?? (await thingOfCertificates(deps.iot, certificates));
  const grouped = thingName ? await deps.iot.addToGroup(thingName, deps.config.quarantineGroupName) : false;
  return { certificates, ...(keptClaim ? { keptClaim } : {}), ...(thingName ? { thingName } : {}), grouped };
}

async function quarantineDevice(
  request: QuarantineRequest,
  device: DeviceRecord,
  deps: QuarantineWorkDeps,
  context: { now: string; newId: () => string },
): Promise<QuarantineOutcome> {
  const plan = planQuarantine(device.state);
  const { certificates, keptClaim, thingName, grouped } = await takeOffline(request, device, plan, deps);
  crashPoint('quarantineDevice.afterIot', request.requestId);
  const historyDetail = {
    requestId: request.requestId,
    ...(request.serial && request.serial !== device.serial ? { claimedSerial: request.serial } : {}),
    source: request.source,
    evidence: request.evidence,
    observedAt: request.at,
    certificates: certificates.map(describeOutcome),
    ...(keptClaim ? { claimCertificateKept: keptClaim } : {}),
    ...(grouped && thingName ? { thingGroup: deps.config.quarantineGroupName, thingName } : {}),
  };

  if (plan.action === 'add-evidence') {
    await deps.quarantineStore.recordEvidence({
      serial: device.serial,
      requestId: request.requestId,
      now: context.now,
      entry: {
        at: context.now,
        id: context.newId(),
        event: 'QUARANTINE_EVIDENCE',
        actor: request.actor ?? request.source,
        reason: request.reason,
        detail: { ...historyDetail, note: plan.why },
      },
    });
    return { kind: 'evidence-added', serial: device.serial, state: plan.state, certificates };
  }

  const info: QuarantineInfo = {
    reason: request.reason,
    source: request.source,
    at: context.now,
    evidence: { ...request.evidence, observedAt: request.at },
    requestId: request.requestId,
    certificateIds: certificates.filter((c) => c.result !== 'missing').map((c) => c.certificateId),
    ...(grouped && thingName ? { thingName } : {}),
  };
  const outcome = await deps.store.transition({
    serial: device.serial,
    event: 'QUARANTINE',
    device,
    transitionKey: quarantineIdentity(request.requestId),
    now: context.now,
    history: {
      id: context.newId(),
      actor: request.actor ?? request.source,
      reason: request.reason,
      detail: historyDetail,
    },
    set: { quarantine: info },
    dedup: { identity: quarantineIdentity(request.requestId), ttlSeconds: QUARANTINE_DEDUP_TTL_SECONDS },
  });
  switch (outcome.status) {
    case 'applied':
      return {
        kind: 'device-quarantined',
        serial: device.serial,
        from: plan.from,
        certificates,
        ...(info.thingName ? { thingName: info.thingName } : {}),
      };
    case 'already-done':
      return { kind: 'duplicate', requestId: request.requestId };
    case 'conflict':
      // The device moved between our read and our write (e.g. it was activated): retry on fresh facts.
      throw new DeviceChangedError(`device ${device.serial} changed while being quarantined`);
    case 'illegal':
      throw new IllegalTransitionError(outcome.reason);
  }
}

async function quarantineCertificate(
  request: QuarantineRequest,
  certificateId: string,
  deps: QuarantineWorkDeps,
  context: { now: string },
  options: { restrictThings: boolean } = { restrictThings: true },
): Promise<QuarantineOutcome> {
  const facts = await deps.iot.describeCertificate(certificateId);
  const certificates = [await deps.iot.deactivate(certificateId)];
  let thingName: string | undefined;
  // A certificate-scoped request names a certificate that is not its thing's device's own (e.g. a
  // JITP takeover attached to a real device's thing): the thing is the device's and stays unrestricted.
  for (const thing of facts && options.restrictThings ? await deps.iot.thingsOf(facts.certificateArn) : []) {
    if (await deps.iot.addToGroup(thing, deps.config.quarantineGroupName)) thingName ??= thing;
  }
  const result = await deps.quarantineStore.quarantineCertificate({
    certificateId,
    requestId: request.requestId,
    now: context.now,
    info: certificateQuarantineInfo(request, certificateId, context.now, {
      known: facts !== undefined,
      thingName,
    }),
    ...(facts ? { facts: issuerFacts(facts) } : {}),
  });
  return result === 'applied'
    ? { kind: 'certificate-quarantined', certificateId, certificates }
    : { kind: 'duplicate', requestId: request.requestId };
}

function certificateQuarantineInfo(
  request: QuarantineRequest,
  certificateId: string,
  now: string,
  found: { known: boolean; thingName: string | undefined },
): QuarantineInfo {
  return {
    reason: request.reason,
    source: request.source,
    at: now,
    evidence: {
      ...request.evidence,
      observedAt: request.at,
      ...(request.serial ? { claimedSerial: request.serial } : {}),
    },
    requestId: request.requestId,
    certificateIds: found.known ? [certificateId] : [],
    ...(found.thingName ? { thingName: found.thingName } : {}),
  };
}

function issuerFacts(facts: { caCertificateId?: string; notBefore?: string; notAfter?: string }): {
  issuer?: string;
  notBefore?: string;
  notAfter?: string;
} {
  return {
    ...(facts.caCertificateId ? { issuer: facts.caCertificateId } : {}),
    ...(facts.notBefore ? { notBefore: facts.notBefore } : {}),
    ...(facts.notAfter ? { notAfter: facts.notAfter } : {}),
  };
}

async function thingOfCertificates(
  iot: IotQuarantineActions,
  certificates: readonly StatusOutcome[],
): Promise<string | undefined> {
  for (const certificate of certificates) {
    if (certificate.result === 'missing') continue;
    const facts = await iot.describeCertificate(certificate.certificateId);
    const [thing] = facts ? await iot.thingsOf(facts.certificateArn) : [];
    if (thing) return thing;
  }
  return undefined;
}

function describeOutcome(outcome: StatusOutcome): Record<string, string> {
  return outcome.result === 'missing'
    ? { certificateId: outcome.certificateId, result: 'missing' }
    : { certificateId: outcome.certificateId, result: outcome.result, from: outcome.from };
}
