/**
 * Device-initiated certificate rotation: a CSR published on `fleetgate/<thingName>/rotate/request`
 * (RotationRequestRule adds `principal()`, `clientid()` and the thing name) becomes a new certificate
 * for the same thing and policy, returned on `fleetgate/<thingName>/rotate/accepted`; anything
 * refused is answered on `.../rotate/rejected` with `{reason, message}`.
 *
 * Order of work, each step safe to repeat:
 * 1. decide (pure, `decideRotation`) from the device, the sender's certificate and the parsed CSR;
 * 2. claim the request in the store (one device, one new key) before CreateCertificateFromCsr, which
 *    IoT does not de-duplicate: a concurrent duplicate finds the claim held and does nothing, a repeat
 *    of an answered request re-publishes the same answer;
 * 3. CreateCertificateFromCsr INACTIVE and record its id on the claim at once (a certificate issued
 *    by a delivery that lost the claim is deleted); a retry after a crash continues with that id;
 * 4. attach the device policy and the thing principal; bind (device ACTIVE → ROTATING with the new
 *    certificate pending and a rotation deadline, certificate record, public key, history: one
 *    transaction); activate the certificate last; publish; store the answer.
 * The old certificate stays ACTIVE until the device connects with the new one (`deviceLifecycle`
 * commits the rotation); no connect before the deadline aborts it (`sweepRotations`).
 */
import type { RotationRequest } from '../../schemas/iot-events';
import {
  type ParsedCertificate,
  type ParsedCsr,
  parseCertificatePem,
  parseCsrPem,
} from '../../shared/certificates';
import type { Config } from '../../shared/config';
import type { Instant } from '../../shared/domain/provisioning-rules';
import { decideRotation, type RotationRejectReason } from '../../shared/domain/rotation-rules';
import { TransientError, ValidationError } from '../../shared/errors';
import {
  type DeviceMessenger,
  type RotationAccepted,
  rotationTopics,
} from '../../shared/iot/device-messages';
import { type IotRegistry, IotRequestError } from '../../shared/iot/iot-registry';
import type { ProvisioningStore } from '../../shared/store/provisioning-store';
import { type DeviceRecord, deviceCertificateRecord } from '../../shared/store/records';
import type { RotationAnswer, RotationStore } from '../../shared/store/rotation-store';

export const ACTOR = 'rotateCertificate';
/** Rotation request items outlive any redelivery (SQS keeps messages 4 days). */
const REQUEST_TTL_SECONDS = 30 * 86_400;

export interface RotationDeps {
  config: Config;
  store: Pick<ProvisioningStore, 'loadProvisioningFacts' | 'bindCertificate'>;
  rotations: Pick<
    RotationStore,
    'claimRequest' | 'getRequest' | 'recordIssued' | 'completeRequest' | 'releaseRequest'
  >;
  iot: Pick<
    IotRegistry,
    | 'createCertificateFromCsr'
    | 'describeCertificate'
    | 'attachPolicy'
    | 'attachThingPrincipal'
    | 'updateCertificateStatus'
    | 'detachThingPrincipal'
    | 'deleteCertificate'
  >;
  messenger: DeviceMessenger;
  newId: () => string;
}

export type RotationOutcome =
  | { status: 'accepted'; serial: string; thingName: string; certificateId: string; repeat: boolean }
  | { status: 'rejected'; thingName: string; serial?: string; reason: RotationRejectReason; detail: string }
  | { status: 'in-progress'; serial: string; thingName: string };

/** Handles one parsed rotation request; `owner` is the SQS message id (the claim's lease owner). */
export async function rotateCertificate(
  request: RotationRequest,
  owner: string,
  deps: RotationDeps,
  now: Instant,
): Promise<RotationOutcome> {
  const { thingName } = request;
  const reject = (reason: RotationRejectReason, detail: string, serial?: string) =>
    answerRejected(thingName, reason, detail, deps, serial);

  const serial = serialOfThing(thingName, deps.config);
  if (serial === undefined) return reject('UNKNOWN_DEVICE', `thing ${thingName} names no serial`);
  const csr = await parseRequestCsr(request.csr, deps.config);
  if (csr instanceof ValidationError) return reject('INVALID_CSR', csr.message, serial);
  const principal = request.principal.toLowerCase();
  const facts = await deps.store.loadProvisioningFacts({ serial, certificateId: principal });
  const current = facts.certificate?.serial === serial ? facts.certificate : undefined;
  const decision = decideRotation(
    { thingName, principal, csr },
    facts.device,
    current?.publicKeyHash,
    deps.config,
  );
  if (!decision.allow) return reject(decision.reason, decision.detail, serial);
  const device = facts.device as DeviceRecord;
  // ROTATING: only the request that started this rotation may continue (or be answered again).
  if (decision.resume && !(await startedThisRotation(serial, csr, device, deps))) {
    return reject(
      'ROTATION_IN_PROGRESS',
      `another rotation of this device waits for its commit or its deadline${device.rotationDeadline ? ` (${device.rotationDeadline})` : ''}`,
      serial,
    );
  }

  const claim = await deps.rotations.claimRequest({
    serial,
    publicKeyHash: csr.publicKeyHash,
    owner,
    now: now.iso,
    leaseSeconds: deps.config.rotationLeaseSeconds,
    ttlSeconds: REQUEST_TTL_SECONDS,
  });
  if (claim.status === 'held') return { status: 'in-progress', serial, thingName };
  if (claim.status === 'done') return answerAgain(claim.request.answer, device, serial, thingName, deps);

  // Acquired: issue a certificate unless an earlier delivery did.
  const key: RequestKey = { serial, thingName, csr, owner };
  const issued = await issueCertificate(request.csr, key, claim.request.certificateId, deps);
  if ('status' in issued) return issued;
  return bindAndActivate(issued, key, { device, principal, clientId: request.clientId }, deps, now);
}

/** One rotation request: the device, its thing, the new key and the delivery holding the claim. */
interface RequestKey {
  serial: string;
  thingName: string;
  csr: ParsedCsr;
  owner: string;
}

interface IssuedCertificate {
  certificateId: string;
  certificateArn: string;
  certificatePem: string;
}

/** The request's CSR parsed, or why it is not one. */
async function parseRequestCsr(pem: string, config: Config): Promise<ParsedCsr | ValidationError> {
  try {
    return await parseCsrPem(pem, { maxBytes: config.maxCertificatePemBytes });
  } catch (error) {
    if (error instanceof ValidationError) return error;
    throw error;
  }
}

/** Whether this key's request is the one that started the device's pending rotation. */
async function startedThisRotation(
  serial: string,
  csr: ParsedCsr,
  device: DeviceRecord,
  deps: RotationDeps,
): Promise<boolean> {
  const started = await deps.rotations.getRequest(serial, csr.publicKeyHash);
  return Boolean(started?.certificateId) && started?.certificateId === device.pendingCertificateId;
}

/** A request already answered: the same answer again, unless the rotation it started was aborted. */
async function answerAgain(
  answer: RotationAnswer | undefined,
  device: DeviceRecord,
  serial: string,
  thingName: string,
  deps: RotationDeps,
): Promise<RotationOutcome> {
  if (!answer) throw new TransientError('rotation request is done without an answer');
  if (
    answer.accepted &&
    answer.certificateId !== device.pendingCertificateId &&
    answer.certificateId !== device.certificateId
  ) {
    // The rotation this key started was aborted: its certificate is revoked for good.
    return answerRejected(
      thingName,
      'KEY_REVOKED',
      'the certificate issued for this key was revoked; use a new key',
      deps,
      serial,
    );
  }
  return republish(answer, serial, thingName, deps);
}

/**
 * The request's certificate: the one an earlier delivery recorded on the claim, else a new one from
 * the CSR (INACTIVE), recorded at once; IoT refusing the CSR is answered to the device.
 */
async function issueCertificate(
  csrPem: string,
  key: RequestKey,
  recordedId: string | undefined,
  deps: RotationDeps,
): Promise<IssuedCertificate | RotationOutcome> {
  if (recordedId !== undefined) return describeIssued(recordedId, key, deps);
  let created: IssuedCertificate;
  try {
    created = await deps.iot.createCertificateFromCsr(csrPem, false);
  } catch (error) {
    // Only IoT refusing the CSR itself is the device's to hear about. AccessDenied, throttling, a
    // 5xx are ours or AWS's: thrown, so the record is retried and then dead-lettered.
    if (!(error instanceof IotRequestError) || error.awsCode !== 'InvalidRequestException') throw error;
    return finishRejected(
      key.serial,
      key.thingName,
      key.csr,
      key.owner,
      'CERTIFICATE_REJECTED',
      error.message,
      deps,
    );
  }
  const recorded = await deps.rotations.recordIssued({
    serial: key.serial,
    publicKeyHash: key.csr.publicKeyHash,
    owner: key.owner,
    certificateId: created.certificateId,
  });
  if (recorded === created.certificateId) return created;
  // Another delivery recorded its certificate first: ours is an unused, INACTIVE orphan.
  await deps.iot.deleteCertificate(created.certificateId);
  if (recorded === undefined) throw new TransientError('rotation claim was lost while issuing');
  return describeIssued(recorded, key, deps);
}

/** A certificate issued by an earlier delivery, as IoT has it. */
async function describeIssued(
  certificateId: string,
  key: RequestKey,
  deps: RotationDeps,
): Promise<IssuedCertificate> {
  const description = await deps.iot.describeCertificate(certificateId);
  if (!description) {
    // Deleted after an earlier delivery's refusal that crashed before releasing the claim: start over.
    await deps.rotations.releaseRequest({
      serial: key.serial,
      publicKeyHash: key.csr.publicKeyHash,
      owner: key.owner,
    });
    throw new TransientError(`issued certificate ${certificateId} is no longer in IoT; deciding again`);
  }
  return {
    certificateId,
    certificateArn: description.certificateArn,
    certificatePem: description.certificatePem,
  };
}

/** Policy and thing attached, the rotation bound in the store, the certificate activated, answered. */
async function bindAndActivate(
  issued: IssuedCertificate,
  key: RequestKey,
  sender: { device: DeviceRecord; principal: string; clientId: string },
  deps: RotationDeps,
  now: Instant,
): Promise<RotationOutcome> {
  const { serial, thingName, csr, owner } = key;
  const { certificateId } = issued;
  const certificate = parseCertificatePem(issued.certificatePem, {
    maxBytes: deps.config.maxCertificatePemBytes,
    field: 'issued certificate',
  });
  await deps.iot.attachPolicy(deps.config.devicePolicyName, issued.certificateArn);
  await deps.iot.attachThingPrincipal(thingName, issued.certificateArn);
  const bound = await bind(
    sender.device,
    certificate,
    csr,
    thingName,
    sender.principal,
    sender.clientId,
    deps,
    now,
  );
  if (bound.status === 'rejected') {
    await discard(certificateId, issued.certificateArn, thingName, deps);
    return finishRejected(serial, thingName, csr, owner, bound.reason, bound.detail, deps);
  }
  await deps.iot.updateCertificateStatus(certificateId, 'ACTIVE');
  const answer: RotationAnswer = { accepted: true, certificateId, rotationDeadline: bound.rotationDeadline };
  const accepted: RotationAccepted = {
    certificateId,
    certificatePem: issued.certificatePem,
    rotationDeadline: bound.rotationDeadline,
  };
  await deps.messenger.publish(rotationTopics.accepted(thingName), accepted);
  await deps.rotations.completeRequest({ serial, publicKeyHash: csr.publicKeyHash, now: now.iso, answer });
  return { status: 'accepted', serial, thingName, certificateId, repeat: false };
}

async function bind(
  device: DeviceRecord,
  certificate: ParsedCertificate,
  csr: ParsedCsr,
  thingName: string,
  previousCertificateId: string,
  clientId: string,
  deps: RotationDeps,
  now: Instant,
): Promise<
  | { status: 'bound'; rotationDeadline: string }
  | { status: 'rejected'; reason: RotationRejectReason; detail: string }
> {
  // The device must connect with the new certificate before this, or the rotation is aborted.
  const deadline = new Date(now.epochMs + deps.config.rotationDeadlineSeconds * 1000).toISOString();
  const outcome = await deps.store.bindCertificate({
    serial: device.serial,
    event: 'START_ROTATION',
    device,
    certificate: deviceCertificateRecord(certificate, {
      status: 'PENDING',
      source: 'ROTATION',
      serial: device.serial,
      thingName,
      now: now.iso,
    }),
    publicKeyHash: csr.publicKeyHash,
    now: now.iso,
    history: {
      id: deps.newId(),
      actor: ACTOR,
      detail: { previousCertificateId, clientId, rotationDeadline: deadline },
    },
    set: { rotationDeadline: deadline },
  });
  switch (outcome.status) {
    case 'applied':
      return { status: 'bound', rotationDeadline: deadline };
    case 'already-done':
      return { status: 'bound', rotationDeadline: outcome.device.rotationDeadline ?? deadline };
    case 'illegal':
      return { status: 'rejected', reason: 'DEVICE_NOT_ACTIVE', detail: outcome.reason };
    default:
      if (outcome.reason === 'PUBLIC_KEY_IN_USE' || outcome.reason === 'CERTIFICATE_IN_USE') {
        return {
          status: 'rejected',
          reason: 'PUBLIC_KEY_IN_USE',
          detail: 'the CSR key belongs to another device',
        };
      }
      throw new TransientError(`device changed while starting the rotation (${outcome.reason})`);
  }
}

/** Detaches and deletes a certificate issued for a request that was then refused. */
async function discard(
  certificateId: string,
  certificateArn: string,
  thingName: string,
  deps: RotationDeps,
): Promise<void> {
  await deps.iot.detachThingPrincipal(thingName, certificateArn);
  await deps.iot.deleteCertificate(certificateId);
}

/** Answers a request refused after its claim, and releases the claim (rejections are not cached). */
async function finishRejected(
  serial: string,
  thingName: string,
  csr: ParsedCsr,
  owner: string,
  reason: RotationRejectReason,
  detail: string,
  deps: RotationDeps,
): Promise<RotationOutcome> {
  const outcome = await answerRejected(thingName, reason, detail, deps, serial);
  await deps.rotations.releaseRequest({ serial, publicKeyHash: csr.publicKeyHash, owner });
  return outcome;
}

async function answerRejected(
  thingName: string,
  reason: RotationRejectReason,
  detail: string,
  deps: RotationDeps,
  serial?: string,
): Promise<RotationOutcome> {
  await deps.messenger.publish(rotationTopics.rejected(thingName), { reason, message: detail });
  return { status: 'rejected', thingName, ...(serial !== undefined ? { serial } : {}), reason, detail };
}

async function republish(
  answer: RotationAnswer,
  serial: string,
  thingName: string,
  deps: RotationDeps,
): Promise<RotationOutcome> {
  if (!answer.accepted) {
    await deps.messenger.publish(rotationTopics.rejected(thingName), {
      reason: answer.reason,
      message: answer.message,
    });
    return {
      status: 'rejected',
      thingName,
      serial,
      reason: answer.reason as RotationRejectReason,
      detail: answer.message,
    };
  }
  const description = await deps.iot.describeCertificate(answer.certificateId);
  if (!description) {
    return answerRejected(
      thingName,
      'CERTIFICATE_REJECTED',
      'the certificate issued for this request no longer exists',
      deps,
      serial,
    );
  }
  const accepted: RotationAccepted = {
    certificateId: answer.certificateId,
    certificatePem: description.certificatePem,
    rotationDeadline: answer.rotationDeadline,
  };
  await deps.messenger.publish(rotationTopics.accepted(thingName), accepted);
  return { status: 'accepted', serial, thingName, certificateId: answer.certificateId, repeat: true };
}

/** The serial a thing name stands for (thing name = prefix + serial), if it does. */
export function serialOfThing(
  thingName: string,
  config: Pick<Config, 'thingNamePrefix' | 'serialPattern'>,
): string | undefined {
  if (!thingName.startsWith(config.thingNamePrefix)) return undefined;
  const serial = thingName.slice(config.thingNamePrefix.length);
  return config.serialPattern.test(serial) ? serial : undefined;
}
