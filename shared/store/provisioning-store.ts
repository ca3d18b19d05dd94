/**
 * The DynamoDB adapter for the provisioning state store. Nothing outside this folder sees PK/SK.
 *
 * Invariants are enforced by DynamoDB, not by hope: one-time facts use `attribute_not_exists`,
 * transitions are conditional on `state` and `version`, and changes to several items are one
 * `TransactWriteItems`. A failed condition becomes a domain answer here ("already done" vs
 * "conflict"), told apart with `ReturnValuesOnConditionCheckFailure`.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandOutput,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { type AllowlistEntry, sameEntry } from '../allowlist/rows';
import { type DeviceEvent, type DeviceState, transition } from '../domain/device-state';
import { TransientError } from '../errors';
import {
  daysBetween,
  EXPIRY_INDEX,
  expiryPartition,
  type Key,
  keys,
  minuteBucket,
  SHARDS,
  STATE_INDEX,
  statePartition,
} from './keys';
import type { CertificateRecord, DeviceRecord, HistoryEntry, PublicKeyRecord, Retirement } from './records';

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

/** Round trips and capacity consumed, for benchmarks and tests. */
export interface StoreStats {
  roundTrips: number;
  readUnits: number;
  writeUnits: number;
}

export interface HistoryInput {
  id: string;
  actor: string;
  reason?: string;
  detail?: Record<string, unknown>;
}

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

export interface BindCertificateInput {
  serial: string;
  event: Extract<DeviceEvent, 'PROVISION' | 'START_ROTATION'>;
  /** The device as the caller read it; the write fails if its state or version moved. */
  device: DeviceRecord;
  certificate: CertificateRecord;
  publicKeyHash: string;
  now: string;
  history: HistoryInput;
  set?: TransitionInput['set'];
  /** Count this binding against a claim certificate's per-minute budget, in the same transaction. */
  claim?: { claimCertificateId: string; limitPerMinute: number };
  /**
   * The device is PROVISIONING and its window has passed (the caller checked `provisioningDeadline`
   * on the record it read): apply EXPIRE_PROVISIONING and PROVISION as one move, PROVISIONING →
   * PROVISIONING with the new certificate, both recorded in the history.
   */
  afterExpiredProvisioning?: boolean;
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

/** Everything the provisioning rules need about one request, read in one round trip. */
export interface ProvisioningFacts {
  device?: DeviceRecord;
  certificate?: CertificateRecord;
  publicKeyOwner?: PublicKeyRecord;
  /** Bindings counted against the claim certificate in the current minute (when asked for). */
  claimCount?: number;
}

export interface Page<T> {
  items: T[];
  cursor?: string;
}

const DEVICE_KEY_ATTRIBUTES = ['PK', 'SK', 'GSI2PK', 'GSI2SK', 'ttl'] as const;
const TRANSACTION_RETRIES = 8;

export class ProvisioningStore {
  readonly stats: StoreStats = { roundTrips: 0, readUnits: 0, writeUnits: 0 };

  constructor(
    /** The document client this store talks through (other adapters of the same table share it). */
    readonly client: DynamoDBDocumentClient,
    readonly tableName: string,
  ) {}

  // ---- reads -------------------------------------------------------------------------------

  /** The device record for `serial`, or undefined when the serial was never allowlisted. */
  async getDevice(serial: string): Promise<DeviceRecord | undefined> {
    const item = await this.getItem(keys.device(serial));
    return item ? toDevice(item) : undefined;
  }

  async getCertificate(certificateId: string): Promise<CertificateRecord | undefined> {
    const item = await this.getItem(keys.certificate(certificateId));
    return item ? toCertificate(item) : undefined;
  }

  async getPublicKeyOwner(publicKeyHash: string): Promise<PublicKeyRecord | undefined> {
    const item = await this.getItem(keys.publicKey(publicKeyHash));
    return item ? toPublicKey(item) : undefined;
  }

  /** One strongly consistent GetItem. */
  private async getItem(key: Key): Promise<Record<string, unknown> | undefined> {
    const out = await this.count(
      this.client.send(
        new GetCommand({
          TableName: this.tableName,
          Key: key,
          ConsistentRead: true,
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
    return out.Item;
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
      wanted.push(keys.claimWindow(input.claim.claimCertificateId, minuteBucket(input.claim.now)));
    }
    const facts: ProvisioningFacts = {};
    let pending: Array<Record<string, unknown>> = wanted;
    for (let attempt = 0; pending.length > 0; attempt += 1) {
      if (attempt > 0) await backoff(attempt);
      if (attempt > TRANSACTION_RETRIES)
        throw new TransientError('BatchGetItem kept returning unprocessed keys');
      const out = await this.count(
        this.client.send(
          new BatchGetCommand({
            RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: true } },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      );
      for (const item of out.Responses?.[this.tableName] ?? []) {
        if (item.SK === 'DEVICE') facts.device = toDevice(item);
        else if (item.SK === 'CERT') facts.certificate = toCertificate(item);
        else if (item.SK === 'PUBKEY') facts.publicKeyOwner = toPublicKey(item);
        else if (item.SK === 'CLAIM' && typeof item.count === 'number') facts.claimCount = item.count;
      }
      pending =
        (out.UnprocessedKeys?.[this.tableName]?.Keys as Array<Record<string, unknown>> | undefined) ?? [];
    }
    return facts;
  }

  /** The device's audit trail, oldest first. */
  async history(serial: string, options: { limit?: number } = {}): Promise<HistoryEntry[]> {
    const entries: HistoryEntry[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const out: QueryCommandOutput = await this.count(
        this.client.send(
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: 'PK = :pk AND begins_with(SK, :prefix)',
            ExpressionAttributeValues: { ':pk': keys.device(serial).PK, ':prefix': keys.historyPrefix },
            ExclusiveStartKey: startKey,
            ConsistentRead: true,
          }),
        ),
      );
      for (const item of out.Items ?? []) entries.push(toHistory(item));
      startKey = out.LastEvaluatedKey;
    } while (startKey && (options.limit === undefined || entries.length < options.limit));
    return options.limit === undefined ? entries : entries.slice(0, options.limit);
  }

  /**
   * Devices in `state`, one page at a time across the index shards. The cursor is opaque.
   * Index reads are eventually consistent.
   */
  async listDevicesByState(
    state: DeviceState,
    options: { limit?: number; cursor?: string } = {},
  ): Promise<Page<DeviceRecord>> {
    const limit = options.limit ?? 100;
    let { shard, startKey } = decodeCursor(options.cursor);
    const items: DeviceRecord[] = [];
    while (shard < SHARDS && items.length < limit) {
      const out: QueryCommandOutput = await this.count(
        this.client.send(
          new QueryCommand({
            TableName: this.tableName,
            IndexName: STATE_INDEX,
            KeyConditionExpression: 'GSI2PK = :pk',
            ExpressionAttributeValues: { ':pk': statePartition(state, shard) },
            ExclusiveStartKey: startKey,
            Limit: limit - items.length,
          }),
        ),
      );
      for (const item of out.Items ?? []) items.push(toDevice(item));
      startKey = out.LastEvaluatedKey;
      if (!startKey) shard += 1;
    }
    const cursor = shard < SHARDS ? encodeCursor({ shard, startKey }) : undefined;
    return cursor ? { items, cursor } : { items };
  }

  /**
   * Certificates whose `notAfter` lies in [from, to), read from the sharded expiry index: one
   * Query per (day, shard), so the cost grows with what expires, not with the fleet.
   */
  async *certificatesExpiringBetween(fromIso: string, toIso: string): AsyncGenerator<CertificateRecord> {
    const from = normalizeIso(fromIso);
    const to = normalizeIso(toIso);
    if (from >= to) return;
    for (const day of daysBetween(from, to)) {
      for (let shard = 0; shard < SHARDS; shard += 1) {
        let startKey: Record<string, unknown> | undefined;
        do {
          const out: QueryCommandOutput = await this.count(
            this.client.send(
              new QueryCommand({
                TableName: this.tableName,
                IndexName: EXPIRY_INDEX,
                // GSI1SK is `<notAfter>#<id>`: BETWEEN from AND to is exactly [from, to).
                KeyConditionExpression: 'GSI1PK = :pk AND GSI1SK BETWEEN :from AND :to',
                ExpressionAttributeValues: { ':pk': expiryPartition(day, shard), ':from': from, ':to': to },
                ExclusiveStartKey: startKey,
                ReturnConsumedCapacity: 'TOTAL',
              }),
            ),
          );
          for (const item of out.Items ?? []) yield toCertificate(item);
          startKey = out.LastEvaluatedKey;
        } while (startKey);
      }
    }
  }

  // ---- writes ------------------------------------------------------------------------------

  /**
   * Creates a device record with its first history entry; false when the serial already exists.
   */
  async createDevice(device: DeviceRecord, history: HistoryInput): Promise<boolean> {
    const failed = await this.transact([
      {
        Put: {
          TableName: this.tableName,
          Item: deviceItem(device),
          ConditionExpression: 'attribute_not_exists(PK)',
        },
      },
      this.historyPut(device.serial, device.createdAt, history, 'CREATED', undefined, device.state),
    ]);
    return failed === undefined;
  }

  /**
   * Imports up to 100 allowlist entries: one BatchGetItem to compare with what is stored, then
   * BatchWriteItem for new serials (device + history, UnprocessedItems retried with backoff) and a
   * conditional transaction per changed serial (only the allowlist fields; state is never touched).
   */
  async importAllowlistEntries(
    entries: readonly AllowlistEntry[],
    context: { now: string; actor: string; idFor: (serial: string) => string },
  ): Promise<{ imported: number; updated: number; unchanged: number }> {
    if (entries.length > 100) throw new RangeError('importAllowlistEntries takes at most 100 entries');
    const existing = new Map<string, DeviceRecord>();
    let pending: Array<Record<string, unknown>> = entries.map((entry) => keys.device(entry.serial));
    for (let attempt = 0; pending.length > 0; attempt += 1) {
      if (attempt > 0) await backoff(attempt);
      const out = await this.count(
        this.client.send(
          new BatchGetCommand({
            RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: true } },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      );
      for (const item of out.Responses?.[this.tableName] ?? []) {
        const device = toDevice(item);
        existing.set(device.serial, device);
      }
      pending =
        (out.UnprocessedKeys?.[this.tableName]?.Keys as Array<Record<string, unknown>> | undefined) ?? [];
    }
    const fresh: Array<Record<string, unknown>> = [];
    const changed: Array<{ entry: AllowlistEntry; device: DeviceRecord }> = [];
    let unchanged = 0;
    for (const entry of entries) {
      const device = existing.get(entry.serial);
      if (!device) {
        const record: DeviceRecord = {
          ...entry,
          state: 'ALLOWLISTED',
          version: 1,
          createdAt: context.now,
          updatedAt: context.now,
        };
        fresh.push(deviceItem(record));
        const history: HistoryEntry = {
          serial: entry.serial,
          at: context.now,
          id: context.idFor(entry.serial),
          event: 'CREATED',
          to: 'ALLOWLISTED',
          actor: context.actor,
        };
        fresh.push({ ...keys.history(entry.serial, context.now, history.id), ...history });
      } else if (sameEntry(device, entry)) {
        unchanged += 1;
      } else {
        changed.push({ entry, device });
      }
    }
    await this.batchPut(fresh);
    let updated = 0;
    for (const { entry, device } of changed) {
      if (await this.updateAllowlistFields(entry, device, context)) updated += 1;
      else unchanged += 1;
    }
    return { imported: fresh.length / 2, updated, unchanged };
  }

  private async updateAllowlistFields(
    entry: AllowlistEntry,
    read: DeviceRecord,
    context: { now: string; actor: string; idFor: (serial: string) => string },
  ): Promise<boolean> {
    let device: DeviceRecord | undefined = read;
    for (let attempt = 0; attempt < TRANSACTION_RETRIES && device; attempt += 1) {
      if (sameEntry(device, entry)) return false;
      const fields = ['productLine', 'batch', 'allowedClaim'] as const;
      const present = fields.filter((field) => entry[field] !== undefined);
      const absent = fields.filter((field) => entry[field] === undefined);
      const names: Record<string, string> = { '#version': 'version', '#attributes': 'attributes' };
      const values: Record<string, unknown> = {
        ':attributes': entry.attributes,
        ':one': 1,
        ':now': context.now,
        ':v': device.version,
      };
      for (const field of fields) names[`#${field}`] = field;
      for (const field of present) values[`:${field}`] = entry[field];
      const failed = await this.transact([
        {
          Update: {
            TableName: this.tableName,
            Key: keys.device(entry.serial),
            UpdateExpression:
              `SET #attributes = :attributes, #version = #version + :one, updatedAt = :now${present.map((f) => `, #${f} = :${f}`).join('')}` +
              (absent.length ? ` REMOVE ${absent.map((f) => `#${f}`).join(', ')}` : ''),
            ConditionExpression: 'attribute_exists(PK) AND #version = :v',
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
          },
        },
        this.historyPut(
          entry.serial,
          context.now,
          { id: context.idFor(entry.serial), actor: context.actor },
          'ALLOWLIST_UPDATED',
          undefined,
          undefined,
          {
            productLine: entry.productLine,
            batch: entry.batch,
            allowedClaim: entry.allowedClaim,
          },
        ),
      ]);
      if (!failed) return true;
      device = await this.getDevice(entry.serial);
    }
    return false;
  }

  /** BatchWriteItem in groups of 25, retrying UnprocessedItems with jittered backoff. */
  private async batchPut(items: ReadonlyArray<Record<string, unknown>>): Promise<void> {
    for (let start = 0; start < items.length; start += 25) {
      let requests: Array<{ PutRequest: { Item: Record<string, unknown> } }> = items
        .slice(start, start + 25)
        .map((Item) => ({ PutRequest: { Item } }));
      for (let attempt = 0; requests.length > 0; attempt += 1) {
        if (attempt > 0) await backoff(attempt);
        if (attempt > 12) throw new TransientError('BatchWriteItem kept returning unprocessed items');
        const out = await this.count(
          this.client.send(
            new BatchWriteCommand({
              RequestItems: { [this.tableName]: requests },
              ReturnConsumedCapacity: 'TOTAL',
            }),
          ),
        );
        requests = (out.UnprocessedItems?.[this.tableName] ?? []) as typeof requests;
      }
    }
  }

  /** Writes a certificate record that must not exist yet; returns false when it already did. */
  async putCertificateIfAbsent(record: CertificateRecord): Promise<boolean> {
    try {
      await this.count(
        this.client.send(
          new PutCommand({
            TableName: this.tableName,
            Item: certificateItem(record),
            ConditionExpression: 'attribute_not_exists(PK)',
          }),
        ),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /** Changes a certificate's status, optionally only from an expected status. False if it moved. */
  async updateCertificateStatus(
    certificateId: string,
    status: CertificateRecord['status'],
    now: string,
    options: { expectedStatus?: CertificateRecord['status'] } = {},
  ): Promise<boolean> {
    try {
      await this.count(
        this.client.send(
          new UpdateCommand({
            TableName: this.tableName,
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
        ),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /**
   * Records that the effect identified by `identity` happened. True the first time, false on
   * every repeat until the TTL removes the marker.
   */
  async markOnce(identity: string, options: { ttlSeconds: number; now: string }): Promise<boolean> {
    try {
      await this.count(
        this.client.send(
          new PutCommand({
            TableName: this.tableName,
            Item: dedupItem(identity, options.ttlSeconds, options.now),
            ConditionExpression: 'attribute_not_exists(PK)',
          }),
        ),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
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
    const set = { ...input.set };
    if (input.event === 'QUARANTINE') set.previousState = expected.state;
    const remove = new Set<string>(input.remove ?? []);
    if (input.event === 'RELEASE') {
      remove.add('previousState');
      remove.add('quarantine');
    }
    const items: TransactItem[] = [
      this.deviceUpdate(input.serial, expected, to, set, [...remove], input.transitionKey, input.now),
      this.historyPut(input.serial, input.now, input.history, input.event, expected.state, to),
    ];
    if (input.dedup) items.push(this.dedupPut(input.dedup.identity, input.dedup.ttlSeconds, input.now));
    // Last, so the dedup item keeps its place (index 2) in a cancellation's reasons.
    if (input.retire) items.push(this.retirementUpdate(input.retire, input.now));
    const failed = await this.transact(items);
    if (!failed) {
      return {
        status: 'applied',
        device: applied(expected, input.transitionKey, input.now, to, set, remove),
      };
    }
    const current = failed[0] ? toDeviceOrUndefined(failed[0]) : await this.getDevice(input.serial);
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
  async bindCertificate(input: BindCertificateInput): Promise<BindOutcome> {
    const expected = input.device;
    const expiring = input.afterExpiredProvisioning === true && input.event === 'PROVISION';
    const rule = expiring ? expireThenProvision(expected.state) : transition(expected.state, input.event);
    const transitionKey = `bind:${input.certificate.certificateId}`;
    if (!rule.legal) {
      const device = await this.getDevice(input.serial);
      if (device && isBoundTo(device, input.certificate.certificateId))
        return { status: 'already-done', device };
      return device
        ? { status: 'illegal', device, reason: rule.reason }
        : { status: 'conflict', reason: 'DEVICE_CHANGED' };
    }
    const set = { ...input.set, pendingCertificateId: input.certificate.certificateId };
    const items: TransactItem[] = [
      this.deviceUpdate(input.serial, expected, rule.to, set, [], transitionKey, input.now),
      {
        Put: {
          TableName: this.tableName,
          Item: certificateItem({ ...input.certificate, serial: input.serial }),
          ConditionExpression: 'attribute_not_exists(PK)',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        },
      },
      {
        Put: {
          TableName: this.tableName,
          Item: {
            ...keys.publicKey(input.publicKeyHash),
            publicKeyHash: input.publicKeyHash,
            serial: input.serial,
            certificateId: input.certificate.certificateId,
            createdAt: input.now,
          },
          // One key = one device: the same device may bind the same key again (same-key reprovisioning).
          ConditionExpression: 'attribute_not_exists(PK) OR #serial = :serial',
          ExpressionAttributeNames: { '#serial': 'serial' },
          ExpressionAttributeValues: { ':serial': input.serial },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        },
      },
      this.historyPut(input.serial, input.now, input.history, input.event, expected.state, rule.to, {
        certificateId: input.certificate.certificateId,
      }),
    ];
    let claimIndex: number | undefined;
    if (input.claim) {
      const minute = minuteBucket(input.now);
      claimIndex = items.length;
      items.push({
        Update: {
          TableName: this.tableName,
          Key: keys.claimWindow(input.claim.claimCertificateId, minute),
          // Atomic counter: the condition keeps the count at or below the limit under any concurrency.
          UpdateExpression: 'ADD #count :one SET #ttl = if_not_exists(#ttl, :ttl)',
          ConditionExpression: 'attribute_not_exists(#count) OR #count < :limit',
          ExpressionAttributeNames: { '#count': 'count', '#ttl': 'ttl' },
          ExpressionAttributeValues: {
            ':one': 1,
            ':limit': input.claim.limitPerMinute,
            ':ttl': epochSeconds(input.now) + 180,
          },
        },
      });
    }
    if (expiring) {
      // Last, so the indexes of the items above (read back from the cancellation) do not move.
      items.push(
        this.historyPut(
          input.serial,
          input.now,
          { ...input.history, id: `${input.history.id}-expire`, reason: 'provisioning window passed' },
          'EXPIRE_PROVISIONING',
          expected.state,
          'ALLOWLISTED',
          { certificateId: expected.pendingCertificateId },
        ),
      );
    }
    const failed = await this.transact(items);
    if (!failed) {
      return {
        status: 'applied',
        device: applied(expected, transitionKey, input.now, rule.to, set, new Set()),
      };
    }
    const [deviceOld, certOld, keyOld] = failed;
    const claimFailed = claimIndex !== undefined && failed[claimIndex] !== undefined;
    const certificateId = input.certificate.certificateId;
    // A concurrent request for the same certificate may have won: that is "already done". The old
    // image of the device says so; without one (DynamoDB may omit it), read the device once.
    let current = deviceOld ? toDeviceOrUndefined(deviceOld) : undefined;
    if (current && isBoundTo(current, certificateId)) return { status: 'already-done', device: current };
    current ??= await this.getDevice(input.serial);
    if (current && isBoundTo(current, certificateId)) return { status: 'already-done', device: current };
    if (certOld) {
      const owner = certOld.SK === 'CERT' ? toCertificate(certOld) : await this.getCertificate(certificateId);
      return owner
        ? { status: 'conflict', reason: 'CERTIFICATE_IN_USE', owner }
        : { status: 'conflict', reason: 'CERTIFICATE_IN_USE' };
    }
    if (keyOld) {
      const owner =
        keyOld.SK === 'PUBKEY' ? toPublicKey(keyOld) : await this.getPublicKeyOwner(input.publicKeyHash);
      return owner
        ? { status: 'conflict', reason: 'PUBLIC_KEY_IN_USE', owner }
        : { status: 'conflict', reason: 'PUBLIC_KEY_IN_USE' };
    }
    if (claimFailed) return { status: 'conflict', reason: 'CLAIM_RATE_EXCEEDED' };
    return current
      ? { status: 'conflict', reason: 'DEVICE_CHANGED', device: current }
      : { status: 'conflict', reason: 'DEVICE_CHANGED' };
  }

  // ---- building blocks -----------------------------------------------------------------------

  private deviceUpdate(
    serial: string,
    expected: { state: DeviceState; version: number },
    to: DeviceState,
    set: Record<string, unknown>,
    remove: readonly string[],
    transitionKey: string,
    now: string,
  ): TransactItem {
    const names: Record<string, string> = { '#state': 'state', '#version': 'version' };
    const values: Record<string, unknown> = {
      ':from': expected.state,
      ':v': expected.version,
      ':to': to,
      ':one': 1,
      ':now': now,
      ':key': transitionKey,
      ':gsi2pk': keys.stateIndex(to, serial).GSI2PK,
    };
    const assignments = [
      '#state = :to',
      '#version = #version + :one',
      'updatedAt = :now',
      'lastTransitionKey = :key',
      'GSI2PK = :gsi2pk',
    ];
    let index = 0;
    for (const [name, value] of Object.entries(set)) {
      if (value === undefined || (DEVICE_KEY_ATTRIBUTES as readonly string[]).includes(name)) continue;
      index += 1;
      names[`#a${index}`] = name;
      values[`:a${index}`] = value;
      assignments.push(`#a${index} = :a${index}`);
    }
    const removals = remove.map((name, i) => {
      names[`#r${i}`] = name;
      return `#r${i}`;
    });
    return {
      Update: {
        TableName: this.tableName,
        Key: keys.device(serial),
        UpdateExpression: `SET ${assignments.join(', ')}${removals.length ? ` REMOVE ${removals.join(', ')}` : ''}`,
        ConditionExpression: '#state = :from AND #version = :v',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      },
    };
  }

  private historyPut(
    serial: string,
    now: string,
    history: HistoryInput,
    event: string,
    from?: DeviceState,
    to?: DeviceState,
    extra?: Record<string, unknown>,
  ): TransactItem {
    const entry: HistoryEntry = {
      serial,
      at: now,
      id: history.id,
      event,
      actor: history.actor,
      ...(from ? { from } : {}),
      ...(to ? { to } : {}),
      ...(history.reason ? { reason: history.reason } : {}),
      ...(history.detail || extra ? { detail: { ...extra, ...history.detail } } : {}),
    };
    return {
      Put: {
        TableName: this.tableName,
        Item: { ...keys.history(serial, now, history.id), ...entry },
        ConditionExpression: 'attribute_not_exists(PK)',
      },
    };
  }

  /** Puts retirement work on a certificate record (status, work item, StateIndex keys). */
  retirementUpdate(retire: NonNullable<TransitionInput['retire']>, now: string): TransactItem {
    const index = keys.retirementIndex(retire.retirement.dueAt, retire.certificateId);
    return {
      Update: {
        TableName: this.tableName,
        Key: keys.certificate(retire.certificateId),
        UpdateExpression:
          'SET #status = :status, retirement = :retirement, GSI2PK = :g2pk, GSI2SK = :g2sk, updatedAt = :now',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: {
          ':status': retire.status,
          ':retirement': retire.retirement,
          ':g2pk': index.GSI2PK,
          ':g2sk': index.GSI2SK,
          ':now': now,
        },
      },
    };
  }

  private dedupPut(identity: string, ttlSeconds: number, now: string): TransactItem {
    return {
      Put: {
        TableName: this.tableName,
        Item: dedupItem(identity, ttlSeconds, now),
        ConditionExpression: 'attribute_not_exists(PK)',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      },
    };
  }

  /**
   * Runs a transaction. Returns undefined on success, or per item the old image of each item whose
   * condition failed (`{}` when the failed item had no old image). Transaction conflicts with
   * concurrent writers are retried with jittered backoff; the retried write re-checks every
   * condition, so a lost race surfaces as a failed condition, never as a double write.
   */
  async transact(items: TransactItem[]): Promise<Array<Record<string, unknown> | undefined> | undefined> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        await this.count(
          this.client.send(
            new TransactWriteCommand({ TransactItems: items, ReturnConsumedCapacity: 'TOTAL' }),
          ),
        );
        return undefined;
      } catch (error) {
        const reasons = cancellationReasons(error);
        if (!reasons) throw error;
        if (reasons.some((reason) => reason.Code === 'ConditionalCheckFailed')) {
          return reasons.map((reason) =>
            reason.Code === 'ConditionalCheckFailed'
              ? reason.Item
                ? unmarshall(reason.Item)
                : {}
              : undefined,
          );
        }
        if (attempt >= TRANSACTION_RETRIES) {
          throw new TransientError('transaction kept conflicting with concurrent writers', { cause: error });
        }
        await backoff(attempt + 1);
      }
    }
  }

  private async count<T extends { ConsumedCapacity?: unknown }>(promise: Promise<T>): Promise<T> {
    this.stats.roundTrips += 1;
    const out = await promise;
    const consumed = out.ConsumedCapacity;
    for (const entry of Array.isArray(consumed) ? consumed : consumed ? [consumed] : []) {
      const capacity = entry as {
        ReadCapacityUnits?: number;
        WriteCapacityUnits?: number;
        CapacityUnits?: number;
      };
      if (capacity.ReadCapacityUnits) this.stats.readUnits += capacity.ReadCapacityUnits;
      if (capacity.WriteCapacityUnits) this.stats.writeUnits += capacity.WriteCapacityUnits;
    }
    return out;
  }
}

// ---- item mapping ------------------------------------------------------------------------------

/** The full item written for a new device (allowlist import). */
export function deviceItem(device: DeviceRecord): Record<string, unknown> {
  return {
    ...keys.device(device.serial),
    ...keys.stateIndex(device.state, device.serial),
    ...stripUndefined(device),
  };
}

/** The full certificate item: record, expiry index and issued index keys. */
export function certificateItem(record: CertificateRecord): Record<string, unknown> {
  const notAfter = normalizeIso(record.notAfter);
  const notBefore = normalizeIso(record.notBefore);
  return {
    ...keys.certificate(record.certificateId),
    ...keys.expiryIndex(notAfter, record.certificateId),
    ...keys.issuedIndex(notBefore, record.certificateId, record.kind),
    ...stripUndefined({ ...record, notAfter, notBefore }),
  };
}

function dedupItem(identity: string, ttlSeconds: number, now: string): Record<string, unknown> {
  return { ...keys.dedup(identity), identity, createdAt: now, ttl: epochSeconds(now) + ttlSeconds };
}

function withoutKeys(item: Record<string, unknown>): Record<string, unknown> {
  const {
    PK: _pk,
    SK: _sk,
    GSI1PK: _g1,
    GSI1SK: _g1s,
    GSI2PK: _g2,
    GSI2SK: _g2s,
    GSI3PK: _g3,
    GSI3SK: _g3s,
    ttl: _ttl,
    ...rest
  } = item;
  return rest;
}

export function toDevice(item: Record<string, unknown>): DeviceRecord {
  const rest = withoutKeys(item) as unknown as DeviceRecord;
  return { ...rest, attributes: rest.attributes ?? {} };
}

function toDeviceOrUndefined(item: Record<string, unknown>): DeviceRecord | undefined {
  return item.SK === 'DEVICE' ? toDevice(item) : undefined;
}

export function toCertificate(item: Record<string, unknown>): CertificateRecord {
  return withoutKeys(item) as unknown as CertificateRecord;
}

function toPublicKey(item: Record<string, unknown>): PublicKeyRecord {
  return withoutKeys(item) as unknown as PublicKeyRecord;
}

function toHistory(item: Record<string, unknown>): HistoryEntry {
  return withoutKeys(item) as unknown as HistoryEntry;
}

function applied(
  before: DeviceRecord,
  transitionKey: string,
  now: string,
  to: DeviceState,
  set: Record<string, unknown>,
  remove: Set<string>,
): DeviceRecord {
  // The condition proved the record was exactly `before`; what we wrote is known, so the record
  // as it now stands needs no second round trip.
  const device = {
    ...before,
    ...stripUndefined(set),
    state: to,
    version: before.version + 1,
    lastTransitionKey: transitionKey,
    updatedAt: now,
  } as DeviceRecord;
  for (const name of remove) delete (device as unknown as Record<string, unknown>)[name];
  return device;
}

/** EXPIRE_PROVISIONING then PROVISION, checked against the state machine as two moves. */
function expireThenProvision(from: DeviceState): ReturnType<typeof transition> {
  const expire = transition(from, 'EXPIRE_PROVISIONING');
  if (!expire.legal) return expire;
  const provision = transition(expire.to, 'PROVISION');
  return provision.legal ? { legal: true, from, to: provision.to } : provision;
}

function isBoundTo(device: DeviceRecord, certificateId: string): boolean {
  return device.pendingCertificateId === certificateId || device.certificateId === certificateId;
}

function stripUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

export function normalizeIso(value: string): string {
  const time = Date.parse(value);
  if (Number.isNaN(time)) throw new TypeError(`not an ISO-8601 time: ${value}`);
  return new Date(time).toISOString();
}

function epochSeconds(iso: string): number {
  return Math.floor(Date.parse(iso) / 1000);
}

function isConditionFailure(error: unknown): boolean {
  return (error as { name?: string } | null)?.name === 'ConditionalCheckFailedException';
}

function cancellationReasons(
  error: unknown,
): Array<{ Code?: string; Item?: Record<string, AttributeValue> }> | undefined {
  const candidate = error as {
    name?: string;
    CancellationReasons?: Array<{ Code?: string; Item?: Record<string, AttributeValue> }>;
  };
  return candidate?.name === 'TransactionCanceledException'
    ? (candidate.CancellationReasons ?? [])
    : undefined;
}

async function backoff(attempt: number): Promise<void> {
  // Full jitter: spreads concurrent retriers apart.
  const cap = Math.min(1000, 20 * 2 ** attempt);
  await new Promise((resolve) => setTimeout(resolve, Math.random() * cap));
}

function encodeCursor(cursor: { shard: number; startKey?: Record<string, unknown> }): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function decodeCursor(cursor: string | undefined): { shard: number; startKey?: Record<string, unknown> } {
  if (!cursor) return { shard: 0 };
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as {
      shard?: unknown;
      startKey?: Record<string, unknown>;
    };
    if (typeof parsed.shard !== 'number' || parsed.shard < 0 || parsed.shard > SHARDS)
      throw new Error('bad shard');
    return parsed.startKey ? { shard: parsed.shard, startKey: parsed.startKey } : { shard: parsed.shard };
  } catch (error) {
    throw new TypeError('cursor: not a cursor this store issued', { cause: error });
  }
}
