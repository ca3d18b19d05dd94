/**
 * Binding a new certificate to a device: one transaction of up to six items, each built by its
 * entity module — the device transition (PROVISIONING or ROTATING with the pending certificate),
 * the certificate record, the public key's ownership, the history entry, the claim counter, and
 * (after an expired provisioning window) a second history entry. A repeat of the same binding is
 * "already done"; a failed condition is told apart with the old images the transaction returns.
 */
import { type DeviceEvent, type DeviceState, transition } from '../domain/device-state';
import type { Binding, Instant } from '../domain/provisioning-rules';
import type { StoreClient, WriteItem } from './client';
import { certificateCreate, certificateFromItem, readCertificate } from './entities/certificate';
import { claimWindowIncrement } from './entities/claim-window';
import { deviceFromOldImage, deviceTransition, readDevice, transitionedDevice } from './entities/device';
import { type HistoryInput, historyEntry, historyPut } from './entities/history';
import { publicKeyClaim, publicKeyFromItem, readPublicKeyOwner } from './entities/public-key';
import type { CertificateRecord, DeviceRecord, PublicKeyRecord } from './records';
import type { FailedConditions } from './retry';

export interface BindCertificateInput {
  serial: string;
  event: Extract<DeviceEvent, 'PROVISION' | 'START_ROTATION'>;
  /** The device as the caller read it; the write fails if its state or version moved. */
  device: DeviceRecord;
  certificate: CertificateRecord;
  publicKeyHash: string;
  now: string;
  history: HistoryInput;
  /** Attributes to set on the device record (never PK/SK/state/version). */
  set?: Partial<Omit<DeviceRecord, 'serial' | 'state' | 'version' | 'createdAt' | 'updatedAt'>>;
  /** Count this binding against a claim certificate's per-minute budget, in the same transaction. */
  claim?: { claimCertificateId: string; limitPerMinute: number };
  /**
   * The device is PROVISIONING and its window has passed (the caller checked `provisioningDeadline`
   * on the record it read): apply EXPIRE_PROVISIONING and PROVISION as one move, PROVISIONING →
   * PROVISIONING with the new certificate, both recorded in the history.
   */
  afterExpiredProvisioning?: boolean;
}

/** What a provisioning flow (hook, JITR, JITP) knows when it binds an allowed certificate. */
export interface ProvisionBinding {
  /** The allowed decision: the serial, its thing and how the binding is written. */
  decision: { serial: string; thingName: string; binding: Binding };
  device: DeviceRecord;
  certificate: CertificateRecord;
  publicKeyHash: string;
  now: Instant;
  /** How long the device has to connect with the new certificate. */
  provisioningWindowSeconds: number;
  history: { id: string; actor: string; detail: Record<string, unknown> };
  claim?: BindCertificateInput['claim'];
}

/**
 * The one builder of a provisioning `bindCertificate` input (PROVISION with the pending
 * certificate, the thing name and the provisioning deadline), shared by the hook, JITR and JITP.
 */
export function provisionBinding(input: ProvisionBinding): BindCertificateInput {
  const { decision, now } = input;
  return {
    serial: decision.serial,
    event: 'PROVISION',
    device: input.device,
    certificate: input.certificate,
    publicKeyHash: input.publicKeyHash,
    now: now.iso,
    history: { ...input.history, reason: decision.binding },
    set: {
      thingName: decision.thingName,
      provisioningDeadline: new Date(now.epochMs + input.provisioningWindowSeconds * 1000).toISOString(),
    },
    ...(input.claim ? { claim: input.claim } : {}),
    afterExpiredProvisioning: decision.binding === 'after-expired-provisioning',
  };
}

export type BindConflict =
  | 'DEVICE_CHANGED'
  | 'CERTIFICATE_IN_USE'
  | 'PUBLIC_KEY_IN_USE'
  | 'CLAIM_RATE_EXCEEDED';

export type BindOutcome =
  | { status: 'applied'; device: DeviceRecord }
  | { status: 'already-done'; device: DeviceRecord }
  | {
      status: 'conflict';
      reason: BindConflict;
      device?: DeviceRecord;
      owner?: PublicKeyRecord | CertificateRecord;
    }
  | { status: 'illegal'; device: DeviceRecord; reason: string };

/** The move a binding makes, decided by the state machine before anything is written. */
interface Move {
  to: DeviceState;
  transitionKey: string;
  /** EXPIRE_PROVISIONING and PROVISION as one move. */
  expiring: boolean;
  set: Record<string, unknown>;
}

/** Where in the transaction the items whose failure means something different sit. */
const DEVICE = 0;
const CERTIFICATE = 1;
const PUBLIC_KEY = 2;

export async function bindCertificate(db: StoreClient, input: BindCertificateInput): Promise<BindOutcome> {
  const expiring = input.afterExpiredProvisioning === true && input.event === 'PROVISION';
  const from = input.device.state;
  const rule = expiring ? expireThenProvision(from) : transition(from, input.event);
  if (!rule.legal) return refused(db, input, rule.reason);
  const move: Move = {
    to: rule.to,
    transitionKey: `bind:${input.certificate.certificateId}`,
    expiring,
    set: { ...input.set, pendingCertificateId: input.certificate.certificateId },
  };
  const { items, claimIndex } = bindingTransaction(input, move);
  const failed = await db.transact(items);
  if (!failed) {
    return {
      status: 'applied',
      device: transitionedDevice(input.device, { ...move, now: input.now }, new Set()),
    };
  }
  return explainFailure(db, input, failed, claimIndex);
}

/** The state machine refused the move: already done when the device holds this certificate. */
async function refused(db: StoreClient, input: BindCertificateInput, reason: string): Promise<BindOutcome> {
  const device = await readDevice(db, input.serial);
  if (device && isBoundTo(device, input.certificate.certificateId)) return { status: 'already-done', device };
  return device ? { status: 'illegal', device, reason } : { status: 'conflict', reason: 'DEVICE_CHANGED' };
}

/** The binding's transaction; items whose position a cancellation's reasons are read by come first. */
function bindingTransaction(
  input: BindCertificateInput,
  move: Move,
): { items: WriteItem[]; claimIndex?: number } {
  const expected = input.device;
  const certificateId = input.certificate.certificateId;
  const items: WriteItem[] = [];
  items[DEVICE] = deviceTransition({
    serial: input.serial,
    expected,
    to: move.to,
    set: move.set,
    remove: [],
    transitionKey: move.transitionKey,
    now: input.now,
  });
  items[CERTIFICATE] = certificateCreate({ ...input.certificate, serial: input.serial });
  items[PUBLIC_KEY] = publicKeyClaim({
    publicKeyHash: input.publicKeyHash,
    serial: input.serial,
    certificateId,
    createdAt: input.now,
  });
  items.push(
    historyPut(
      historyEntry(
        input.serial,
        input.now,
        input.history,
        input.event,
        { from: expected.state, to: move.to },
        { certificateId },
      ),
    ),
  );
  let claimIndex: number | undefined;
  if (input.claim) {
    claimIndex = items.length;
    items.push(claimWindowIncrement(input.claim.claimCertificateId, input.now, input.claim.limitPerMinute));
  }
  if (move.expiring) {
    // Last, so the indexes of the items above (read back from the cancellation) do not move.
    items.push(
      historyPut(
        historyEntry(
          input.serial,
          input.now,
          { ...input.history, id: `${input.history.id}-expire`, reason: 'provisioning window passed' },
          'EXPIRE_PROVISIONING',
          { from: expected.state, to: 'ALLOWLISTED' },
          { certificateId: expected.pendingCertificateId },
        ),
      ),
    );
  }
  return claimIndex === undefined ? { items } : { items, claimIndex };
}

/**
 * Why the transaction failed. A concurrent request for the same certificate may have won: that is
 * "already done". The old image of the device says so; without one (DynamoDB may omit it), the
 * device is read once. Otherwise the first failed condition, in order of meaning, is the conflict.
 */
async function explainFailure(
  db: StoreClient,
  input: BindCertificateInput,
  failed: FailedConditions,
  claimIndex: number | undefined,
): Promise<BindOutcome> {
  const certificateId = input.certificate.certificateId;
  const deviceOld = failed[DEVICE];
  let current = deviceOld ? deviceFromOldImage(deviceOld) : undefined;
  if (current && isBoundTo(current, certificateId)) return { status: 'already-done', device: current };
  current ??= await readDevice(db, input.serial);
  if (current && isBoundTo(current, certificateId)) return { status: 'already-done', device: current };
  const inUse = await inUseConflict(db, input, failed);
  if (inUse) return inUse;
  if (claimIndex !== undefined && failed[claimIndex] !== undefined) {
    return { status: 'conflict', reason: 'CLAIM_RATE_EXCEEDED' };
  }
  return current
    ? { status: 'conflict', reason: 'DEVICE_CHANGED', device: current }
    : { status: 'conflict', reason: 'DEVICE_CHANGED' };
}

/** The certificate or the public key taken by another device (its owner, when it can be read). */
async function inUseConflict(
  db: StoreClient,
  input: BindCertificateInput,
  failed: FailedConditions,
): Promise<BindOutcome | undefined> {
  const certificateOld = failed[CERTIFICATE];
  if (certificateOld) {
    const owner =
      certificateOld.SK === 'CERT'
        ? certificateFromItem(certificateOld)
        : await readCertificate(db, input.certificate.certificateId);
    return owner
      ? { status: 'conflict', reason: 'CERTIFICATE_IN_USE', owner }
      : { status: 'conflict', reason: 'CERTIFICATE_IN_USE' };
  }
  const keyOld = failed[PUBLIC_KEY];
  if (keyOld) {
    const owner =
      keyOld.SK === 'PUBKEY' ? publicKeyFromItem(keyOld) : await readPublicKeyOwner(db, input.publicKeyHash);
    return owner
      ? { status: 'conflict', reason: 'PUBLIC_KEY_IN_USE', owner }
      : { status: 'conflict', reason: 'PUBLIC_KEY_IN_USE' };
  }
  return undefined;
}

/** EXPIRE_PROVISIONING then PROVISION, checked against the state machine as two moves. */
function expireThenProvision(from: DeviceState): ReturnType<typeof transition> {
  const expire = transition(from, 'EXPIRE_PROVISIONING');
  if (!expire.legal) return expire;
  const provision = transition(expire.to, 'PROVISION');
  return provision.legal ? { legal: true, from, to: provision.to } : provision;
}

export function isBoundTo(device: DeviceRecord, certificateId: string): boolean {
  return device.pendingCertificateId === certificateId || device.certificateId === certificateId;
}
