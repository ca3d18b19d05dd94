/**
 * The DynamoDB adapter for the provisioning state store. Nothing outside this folder sees PK/SK.
 *
 * Invariants are enforced by DynamoDB, not by hope: one-time facts use `attribute_not_exists`,
 * transitions are conditional on `state` and `version`, and changes to several items are one
 * `TransactWriteItems`. A failed condition becomes a domain answer here ("already done" vs
 * "conflict"), told apart with `ReturnValuesOnConditionCheckFailure`.
 *
 * Each entity's item, checked reading and conditional writes live in `entities/`; this class
 * composes them into the operations the flows call, through the shared `StoreClient`.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { AllowlistEntry } from '../allowlist/rows';
import { type DeviceEvent, type DeviceState, transition } from '../domain/device-state';
import { type ImportContext, type ImportCounts, importAllowlistEntries } from './allowlist-import';
import { type BindCertificateInput, type BindOutcome, bindCertificate } from './bind-certificate';
import {
  StoreClient as Client,
  type Page,
  type StoreAccess,
  type StoreClient,
  type StoreStats,
  storeClient,
  type WriteItem,
} from './client';
import {
  certificateCreate,
  certificateFromItem,
  type IndexedCertificate,
  indexedCertificateFromItem,
  readCertificate,
  retirementUpdate,
} from './entities/certificate';
import { claimCountFromItem, claimWindowKey } from './entities/claim-window';
import { dedupItem, dedupPut } from './entities/dedup';
import {
  deviceCreate,
  deviceFromItem,
  deviceFromOldImage,
  deviceTransition,
  readDevice,
  transitionedDevice,
} from './entities/device';
import { type HistoryInput, historyEntry, historyFromItem, historyPut } from './entities/history';
import { type TemporaryClaimRecord, temporaryClaimFromItem } from './entities/installer';
import { publicKeyFromItem, readPublicKeyOwner } from './entities/public-key';
import { normalizeIso } from './item';
import {
  daysBetween,
  EXPIRY_INDEX,
  expiryPartition,
  keys,
  SHARDS,
  STATE_INDEX,
  statePartition,
} from './keys';
import type { CertificateRecord, DeviceRecord, HistoryEntry, PublicKeyRecord, Retirement } from './records';
import { conditionally, type FailedConditions } from './retry';

export type { BindCertificateInput, BindConflict, BindOutcome } from './bind-certificate';
export type { Page, StoreStats } from './client';
export type { HistoryInput } from './entities/history';

export interface TransitionInput {
  serial: string;
  event: DeviceEvent;
  /** The device as the caller read it; the write fails if its state or version moved. */
  device: DeviceRecord;
  /** Identity of this transition (e.g. `activate:<certificateId>`); a repeat is "already done". */
  transitionKey: string;
  now: string;
  history: HistoryInput;
  /** Attributes to set on the device record (never PK/SK/state/version). */
  set?: Partial<Omit<DeviceRecord, 'serial' | 'state' | 'version' | 'createdAt' | 'updatedAt'>>;
  /** Attributes to remove from the device record. */
  remove?: ReadonlyArray<keyof DeviceRecord>;
  /** A dedup identity written in the same transaction (exactly-once effects). */
  dedup?: { identity: string; ttlSeconds: number };
  /**
   * Retirement work on a certificate, written in the same transaction (a rotation's commit retires
   * the old certificate, its abort the new one): the certificate record gets `status`, the work item
   * and its StateIndex keys (`keys.retirementIndex`), so the work survives any crash after the commit.
   */
  retire?: { certificateId: string; status: CertificateRecord['status']; retirement: Retirement };
}

export type TransitionOutcome =
  | { status: 'applied'; device: DeviceRecord }
  | { status: 'already-done'; device: DeviceRecord }
  | { status: 'conflict'; device: DeviceRecord | undefined }
  | { status: 'illegal'; device: DeviceRecord; reason: string };

/** Everything the provisioning rules need about one request, read in one round trip. */
export interface ProvisioningFacts {
  device?: DeviceRecord;
  certificate?: CertificateRecord;
  publicKeyOwner?: PublicKeyRecord;
  /** Bindings counted against the claim certificate in the current minute (when asked for). */
  claimCount?: number;
  /** The claim certificate's record when the installer API issued it (a temporary claim). */
  temporaryClaim?: TemporaryClaimRecord;
}

export class ProvisioningStore {
  /** The client, table and counters this store talks through (the other stores of the table share it). */
  readonly db: StoreClient;

  constructor(access: StoreAccess);
  constructor(client: DynamoDBDocumentClient, tableName: string);
  constructor(client: StoreAccess | DynamoDBDocumentClient, tableName?: string) {
    this.db =
      client instanceof Client || 'db' in client ? storeClient(client) : new Client(client, tableName ?? '');
  }

  /** Round trips and capacity consumed through `db`, for benchmarks and tests. */
  get stats(): StoreStats {
    return this.db.stats;
  }

  /** The document client underneath. */
  get client(): DynamoDBDocumentClient {
    return this.db.doc;
  }

  get tableName(): string {
    return this.db.tableName;
  }

  // ---- reads -------------------------------------------------------------------------------

  /** The device record for `serial`, or undefined when the serial was never allowlisted. */
  getDevice(serial: string): Promise<DeviceRecord | undefined> {
    return readDevice(this.db, serial);
  }

  getCertificate(certificateId: string): Promise<CertificateRecord | undefined> {
    return readCertificate(this.db, certificateId);
  }

  getPublicKeyOwner(publicKeyHash: string): Promise<PublicKeyRecord | undefined> {
    return readPublicKeyOwner(this.db, publicKeyHash);
  }

  /**
   * Device, certificate, public-key owner and claim counter in one BatchGetItem round trip (each
   * item strongly consistent). Not a snapshot: the rules treat a certificate record of this serial
   * that the device does not reference as possibly a concurrent binding, and let the conditional
   * write decide. (TransactGetItems would be a snapshot, but it conflicts with every transaction
   * writing the hot claim counter.) Unprocessed keys are retried.
   */
  async loadProvisioningFacts(input: {
    serial: string;
    certificateId?: string;
    publicKeyHash?: string;
    /** Also read the claim certificate's counter for the minute of `now`. */
    claim?: { claimCertificateId: string; now: string };
  }): Promise<ProvisioningFacts> {
    const wanted = [keys.device(input.serial)];
    if (input.certificateId) wanted.push(keys.certificate(input.certificateId));
    if (input.publicKeyHash) wanted.push(keys.publicKey(input.publicKeyHash));
    if (input.claim) {
      wanted.push(claimWindowKey(input.claim.claimCertificateId, input.claim.now));
      wanted.push(keys.temporaryClaim(input.claim.claimCertificateId));
    }
    const facts: ProvisioningFacts = {};
    for (const item of await this.db.batchGet(wanted)) {
      if (item.SK === 'DEVICE') facts.device = deviceFromItem(item);
      else if (item.SK === 'CERT') facts.certificate = certificateFromItem(item);
      else if (item.SK === 'PUBKEY') facts.publicKeyOwner = publicKeyFromItem(item);
      else if (item.SK === 'CLAIM') facts.claimCount = claimCountFromItem(item);
      else if (item.SK === 'TEMPCLAIM') facts.temporaryClaim = temporaryClaimFromItem(item);
    }
    return facts;
  }

  /** The device's audit trail, oldest first. */
  async history(serial: string, options: { limit?: number } = {}): Promise<HistoryEntry[]> {
    const entries: HistoryEntry[] = [];
    const items = this.db.queryAll({
      KeyConditionExpression: 'PK = :pk AND begins_with(SK, :prefix)',
      ExpressionAttributeValues: { ':pk': keys.device(serial).PK, ':prefix': keys.historyPrefix },
      ConsistentRead: true,
    });
    for await (const item of items) {
      entries.push(historyFromItem(item));
      if (options.limit !== undefined && entries.length >= options.limit) break;
    }
    return entries;
  }

  /**
   * Devices in `state`, one page at a time across the index shards. The cursor is opaque.
   * Index reads are eventually consistent.
   */
  async listDevicesByState(
    state: DeviceState,
    options: { limit?: number; cursor?: string } = {},
  ): Promise<Page<DeviceRecord>> {
    const page = await this.db.queryShards(
      SHARDS,
      (shard) => ({
        IndexName: STATE_INDEX,
        KeyConditionExpression: 'GSI2PK = :pk',
        ExpressionAttributeValues: { ':pk': statePartition(state, shard) },
      }),
      { limit: options.limit ?? 100, ...(options.cursor ? { cursor: options.cursor } : {}) },
    );
    const items = page.items.map((item) => deviceFromItem(item));
    return page.cursor ? { items, cursor: page.cursor } : { items };
  }

  /**
   * Certificates whose `notAfter` lies in [from, to), read from the sharded expiry index: one
   * Query per (day, shard), so the cost grows with what expires, not with the fleet.
   */
  async *certificatesExpiringBetween(fromIso: string, toIso: string): AsyncGenerator<IndexedCertificate> {
    const from = normalizeIso(fromIso);
    const to = normalizeIso(toIso);
    if (from >= to) return;
    for (const day of daysBetween(from, to)) {
      for (let shard = 0; shard < SHARDS; shard += 1) {
        const items = this.db.queryAll({
          IndexName: EXPIRY_INDEX,
          // GSI1SK is `<notAfter>#<id>`: BETWEEN from AND to is exactly [from, to).
          KeyConditionExpression: 'GSI1PK = :pk AND GSI1SK BETWEEN :from AND :to',
          ExpressionAttributeValues: { ':pk': expiryPartition(day, shard), ':from': from, ':to': to },
          ReturnConsumedCapacity: 'TOTAL',
        });
        for await (const item of items) yield indexedCertificateFromItem(item);
      }
    }
  }

  // ---- writes ------------------------------------------------------------------------------

  /** Creates a device record with its first history entry; false when the serial already exists. */
  async createDevice(device: DeviceRecord, history: HistoryInput): Promise<boolean> {
    const entry = historyEntry(device.serial, device.createdAt, history, 'CREATED', { to: device.state });
    return (await this.db.transact([deviceCreate(device), historyPut(entry)])) === undefined;
  }

  /**
   * Imports up to 100 allowlist entries: one BatchGetItem to compare with what is stored, then
   * new serials created only if still absent (TransactWriteItems of up to 50 device + history puts,
   * `attribute_not_exists`; a serial created since the read is treated as existing) and a
   * conditional transaction per changed serial (only the allowlist fields; state is never touched).
   */
  importAllowlistEntries(entries: readonly AllowlistEntry[], context: ImportContext): Promise<ImportCounts> {
    return importAllowlistEntries(this.db, entries, context);
  }

  /** Writes a certificate record that must not exist yet; returns false when it already did. */
  putCertificateIfAbsent(record: CertificateRecord): Promise<boolean> {
    return conditionally(this.db.put(certificateCreate(record).Put));
  }

  /** Changes a certificate's status, optionally only from an expected status. False if it moved. */
  updateCertificateStatus(
    certificateId: string,
    status: CertificateRecord['status'],
    now: string,
    options: { expectedStatus?: CertificateRecord['status'] } = {},
  ): Promise<boolean> {
    return conditionally(
      this.db.update({
        Key: keys.certificate(certificateId),
        UpdateExpression: 'SET #status = :status, updatedAt = :now',
        ConditionExpression: options.expectedStatus
          ? 'attribute_exists(PK) AND #status = :expected'
          : 'attribute_exists(PK)',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: {
          ':status': status,
          ':now': now,
          ...(options.expectedStatus ? { ':expected': options.expectedStatus } : {}),
        },
      }),
    );
  }

  /**
   * Records that the effect identified by `identity` happened. True the first time, false on
   * every repeat until the TTL removes the marker.
   */
  markOnce(identity: string, options: { ttlSeconds: number; now: string }): Promise<boolean> {
    return conditionally(
      this.db.put({
        Item: dedupItem(identity, options.ttlSeconds, options.now),
        ConditionExpression: 'attribute_not_exists(PK)',
      }),
    );
  }

  /**
   * Moves a device along the state machine with one transaction: the conditional device update
   * (state and version as read), the history entry, and an optional dedup marker.
   */
  async transition(input: TransitionInput): Promise<TransitionOutcome> {
    const expected = input.device;
    const rule = transition(expected.state, input.event, expected.previousState);
    if (!rule.legal) {
      const device = await this.getDevice(input.serial);
      if (device?.lastTransitionKey === input.transitionKey) return { status: 'already-done', device };
      return device
        ? { status: 'illegal', device, reason: rule.reason }
        : { status: 'conflict', device: undefined };
    }
    const to = rule.to;
    const set: Record<string, unknown> = { ...input.set };
    if (input.event === 'QUARANTINE') set.previousState = expected.state;
    const remove = new Set<string>(input.remove ?? []);
    if (input.event === 'RELEASE') {
      remove.add('previousState');
      remove.add('quarantine');
    }
    const change = { transitionKey: input.transitionKey, now: input.now, to, set };
    const items: WriteItem[] = [
      deviceTransition({ serial: input.serial, expected, remove: [...remove], ...change }),
      historyPut(
        historyEntry(input.serial, input.now, input.history, input.event, { from: expected.state, to }),
      ),
    ];
    if (input.dedup) items.push(dedupPut(input.dedup.identity, input.dedup.ttlSeconds, input.now));
    // Last, so the dedup item keeps its place (index 2) in a cancellation's reasons.
    if (input.retire) items.push(retirementUpdate(input.retire, input.now));
    const failed = await this.db.transact(items);
    if (!failed) return { status: 'applied', device: transitionedDevice(expected, change, remove) };
    return this.explainTransitionFailure(input, failed);
  }

  /**
   * Why a transition's transaction failed: the same transition (its key on the device, or its dedup
   * marker taken) is "already done"; anything else, the device moved.
   */
  private async explainTransitionFailure(
    input: TransitionInput,
    failed: FailedConditions,
  ): Promise<TransitionOutcome> {
    const current = failed[0] ? deviceFromOldImage(failed[0]) : await this.getDevice(input.serial);
    if (current?.lastTransitionKey === input.transitionKey)
      return { status: 'already-done', device: current };
    if (input.dedup && failed[2]) {
      const device = current ?? (await this.getDevice(input.serial));
      if (device) return { status: 'already-done', device };
    }
    return { status: 'conflict', device: current ?? (await this.getDevice(input.serial)) };
  }

  /**
   * Binds a new certificate to a device in one transaction: device transition (PROVISIONING or
   * ROTATING with the pending certificate), certificate record, public-key ownership, the claim
   * counter and the history entry. A repeat of the same binding is "already done".
   */
  bindCertificate(input: BindCertificateInput): Promise<BindOutcome> {
    return bindCertificate(this.db, input);
  }
}
