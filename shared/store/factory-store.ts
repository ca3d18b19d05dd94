/**
 * The store side of `fleetgate factory import`: the reservation of one batch row, built from the
 * entity modules like every other binding. A serial nobody allowlisted yet is created and bound in
 * one transaction (device ALLOWLISTED → PROVISIONING with the pending certificate, both moves in the
 * history; certificate record PENDING with the import run's lease; public-key owner); an allowlisted
 * device is bound with the shared `bindCertificate`. Either commits wholly or not at all: a row that
 * loses a race leaves nothing behind and is decided again from what the store now says.
 */
import { transition } from '../domain/device-state';
import { type BindOutcome, bindCertificate } from './bind-certificate';
import { type StoreAccess, type StoreClient, storeClient } from './client';
import { certificateCreate } from './entities/certificate';
import { deviceCreate } from './entities/device';
import { type HistoryInput, historyEntry, historyPut } from './entities/history';
import { publicKeyClaim } from './entities/public-key';
import { keys } from './keys';
import type { CertificateRecord, DeviceRecord } from './records';
import { conditionally } from './retry';

export interface FactoryReservation {
  serial: string;
  thingName: string;
  /** The certificate record to write: status PENDING, source FACTORY, with the run's lease. */
  certificate: CertificateRecord;
  publicKeyHash: string;
  /** The device as read, when the serial is allowlisted already (ALLOWLISTED). */
  device?: DeviceRecord;
  /** Device fields a new serial gets (the allowlist entry the import writes). */
  allowlist: { batch?: string; productLine?: string; attributes: Record<string, string> };
  /** The factory certificate holds the serial until this instant (its notAfter). */
  provisioningDeadline: string;
  now: string;
  history: HistoryInput;
}

export type ReservationOutcome =
  | { status: 'applied' }
  /** A concurrent writer got there first (or the device moved): decide the row again. */
  | { status: 'changed'; detail: string };

export class FactoryStore {
  private readonly db: StoreClient;

  constructor(access: StoreAccess) {
    this.db = storeClient(access);
  }

  /** Reserves one row: a new device created and bound, or an allowlisted device bound. */
  async reserve(input: FactoryReservation): Promise<ReservationOutcome> {
    if (input.device) return fromBind(await this.bindExisting(input, input.device));
    const move = transition('ALLOWLISTED', 'PROVISION');
    if (!move.legal) throw new Error(move.reason);
    const certificateId = input.certificate.certificateId;
    const device: DeviceRecord = {
      serial: input.serial,
      state: move.to,
      version: 2,
      ...(input.allowlist.batch !== undefined ? { batch: input.allowlist.batch } : {}),
      ...(input.allowlist.productLine !== undefined ? { productLine: input.allowlist.productLine } : {}),
      attributes: input.allowlist.attributes,
      thingName: input.thingName,
      pendingCertificateId: certificateId,
      provisioningDeadline: input.provisioningDeadline,
      factoryImportedAt: input.now,
      lastTransitionKey: `bind:${certificateId}`,
      createdAt: input.now,
      updatedAt: input.now,
    };
    const failed = await this.db.transact([
      deviceCreate(device),
      certificateCreate({ ...input.certificate, serial: input.serial, thingName: input.thingName }),
      publicKeyClaim({
        publicKeyHash: input.publicKeyHash,
        serial: input.serial,
        certificateId,
        createdAt: input.now,
      }),
      historyPut(
        historyEntry(
          input.serial,
          input.now,
          // `-a` and `-b`: one instant, so the ids order CREATED before PROVISION in the history.
          { ...input.history, id: `${input.history.id}-a`, reason: 'allowlisted by factory import' },
          'CREATED',
          { to: 'ALLOWLISTED' },
        ),
      ),
      historyPut(
        historyEntry(
          input.serial,
          input.now,
          { ...input.history, id: `${input.history.id}-b` },
          'PROVISION',
          { from: 'ALLOWLISTED', to: move.to },
          {
            certificateId,
          },
        ),
      ),
    ]);
    if (!failed) return { status: 'applied' };
    return { status: 'changed', detail: `conditions failed on ${Object.keys(failed).join(', ')}` };
  }

  /**
   * Gives up this run's lease on a row it could not finish (an IoT failure), so the next run resumes
   * it at once instead of after the lease. A lease held by someone else is left alone.
   */
  async releaseLease(certificateId: string, owner: string): Promise<void> {
    await conditionally(
      this.db.update({
        Key: keys.certificate(certificateId),
        UpdateExpression: 'REMOVE leaseOwner, leaseUntil',
        ConditionExpression: 'leaseOwner = :owner',
        ExpressionAttributeValues: { ':owner': owner },
      }),
    );
  }

  private bindExisting(input: FactoryReservation, device: DeviceRecord): Promise<BindOutcome> {
    return bindCertificate(this.db, {
      serial: input.serial,
      event: 'PROVISION',
      device,
      certificate: input.certificate,
      publicKeyHash: input.publicKeyHash,
      now: input.now,
      history: input.history,
      set: {
        thingName: input.thingName,
        provisioningDeadline: input.provisioningDeadline,
        factoryImportedAt: input.now,
      },
    });
  }
}

function fromBind(outcome: BindOutcome): ReservationOutcome {
  if (outcome.status === 'applied') return { status: 'applied' };
  return {
    status: 'changed',
    detail: outcome.status === 'already-done' ? 'already bound' : outcome.reason,
  };
}
