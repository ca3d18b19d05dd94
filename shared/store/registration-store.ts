/**
 * The items automatic registration and the lifecycle function add to the provisioning table, next
 * to `ProvisioningStore` (whose client, table and transactions it shares). Keys come from
 * `keys.ts`; nothing outside this folder sees PK/SK.
 *
 * - Registration lease: the CERT item of a JITR certificate carries `leaseOwner` (the SQS message
 *   id that reserved it) and `leaseUntil`, so one delivery at a time does the IoT side effects and
 *   a redelivery of that same message resumes them.
 * - Effect claims: a DEDUP item with an owner, a lease and `done`, for effects outside DynamoDB
 *   (a quarantine request sent to SQS) that must happen once per identity.
 * - Presence: one item per (certificate, session) and one per client id with the newest event's
 *   rank, plus one item per DUPLICATE_CLIENTID disconnect. All TTL'd.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import {
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandOutput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { SessionFacts } from '../domain/presence-rules';
import { keys } from './keys';
import { certificateItem, type ProvisioningStore } from './provisioning-store';
import type { CertificateRecord, HistoryEntry } from './records';

export type LeaseOutcome = 'acquired' | 'held' | 'done' | 'missing';
export type ClaimOutcome = 'acquired' | 'held' | 'done';

/** A registration lease as stored on the certificate item. */
export interface RegistrationLease {
  leaseOwner: string;
  leaseUntil: string;
}

export interface RejectionInput {
  certificate: CertificateRecord;
  /** The reason code of the rejection and the serial the certificate claimed, if any. */
  rejectedReason: string;
  claimedSerial?: string;
  /** A history entry on the claimed device, when it exists. */
  history?: { serial: string; id: string; actor: string; detail?: Record<string, unknown> };
}

export class RegistrationStore {
  constructor(readonly store: ProvisioningStore) {}

  private get table(): string {
    return this.store.tableName;
  }

  private async send<T>(command: GetCommand | PutCommand | UpdateCommand | QueryCommand): Promise<T> {
    this.store.stats.roundTrips += 1;
    // The document client's overloads do not accept a union of commands; each is sent as itself.
    const client = this.store.client as unknown as { send(command: unknown): Promise<unknown> };
    return (await client.send(command)) as T;
  }

  /** The registration lease fields of a certificate record, if it has them. */
  static leaseOf(record: CertificateRecord | undefined): RegistrationLease | undefined {
    const candidate = record as (CertificateRecord & Partial<RegistrationLease>) | undefined;
    return candidate?.leaseOwner && candidate.leaseUntil
      ? { leaseOwner: candidate.leaseOwner, leaseUntil: candidate.leaseUntil }
      : undefined;
  }

  /** A certificate record carrying a fresh lease, to be written by the reservation. */
  static withLease(record: CertificateRecord, lease: RegistrationLease): CertificateRecord {
    return { ...record, ...lease } as CertificateRecord;
  }

  /**
   * Takes (or renews) the registration lease of a PENDING certificate for `owner`: granted when
   * nobody holds it, it expired, or `owner` already holds it. `done` when the certificate is no
   * longer PENDING (registered or rejected), `missing` when there is no record.
   */
  async acquireRegistrationLease(
    certificateId: string,
    owner: string,
    now: string,
    leaseSeconds: number,
  ): Promise<LeaseOutcome> {
    try {
      await this.send(
        new UpdateCommand({
          TableName: this.table,
          Key: keys.certificate(certificateId),
          UpdateExpression: 'SET leaseOwner = :owner, leaseUntil = :until',
          ConditionExpression:
            'attribute_exists(PK) AND #status = :pending AND (attribute_not_exists(leaseUntil) OR leaseUntil <= :now OR leaseOwner = :owner)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':owner': owner,
            ':until': plusSeconds(now, leaseSeconds),
            ':now': now,
            ':pending': 'PENDING',
          },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return 'acquired';
    } catch (error) {
      const old = conditionFailureItem(error);
      if (old === undefined) throw error;
      if (!old.PK) return 'missing';
      return old.status === 'PENDING' ? 'held' : 'done';
    }
  }

  /**
   * The commit point of a registration: the certificate is ACTIVE in IoT and now in the store;
   * the lease is released. Repeating it is harmless.
   */
  async completeRegistration(certificateId: string, now: string): Promise<void> {
    await this.send(
      new UpdateCommand({
        TableName: this.table,
        Key: keys.certificate(certificateId),
        UpdateExpression: 'SET #status = :active, updatedAt = :now REMOVE leaseOwner, leaseUntil',
        ConditionExpression: 'attribute_exists(PK)',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':active': 'ACTIVE', ':now': now },
      }),
    );
  }

  /**
   * The commit point of a rejection: the certificate record (status INACTIVE / REVOKED, no serial,
   * the reason and the serial it claimed) and, for a known device, one history entry, in one
   * transaction. False when the certificate was already recorded (a repeat).
   */
  async recordRejection(input: RejectionInput): Promise<boolean> {
    const { certificate } = input;
    const item = {
      ...certificateItem(certificate),
      rejectedReason: input.rejectedReason,
      ...(input.claimedSerial !== undefined ? { claimedSerial: input.claimedSerial } : {}),
    };
    const items: Parameters<ProvisioningStore['transact']>[0] = [
      { Put: { TableName: this.table, Item: item, ConditionExpression: 'attribute_not_exists(PK)' } },
    ];
    if (input.history) {
      const { serial, id, actor, detail } = input.history;
      items.push({
        Put: {
          TableName: this.table,
          Item: {
            ...keys.history(serial, certificate.createdAt, id),
            serial,
            at: certificate.createdAt,
            id,
            event: 'REGISTRATION_REJECTED',
            actor,
            reason: input.rejectedReason,
            detail: { certificateId: certificate.certificateId, ...detail },
          },
          ConditionExpression: 'attribute_not_exists(PK)',
        },
      });
    }
    const failed = await this.store.transact(items);
    return failed === undefined;
  }

  /**
   * Claims the effect `identity` for `owner` (an SQS message id): acquired when new, expired, or
   * already `owner`'s; `held` while another delivery owns it; `done` once completed.
   */
  async claimEffect(
    identity: string,
    owner: string,
    options: { now: string; leaseSeconds: number; ttlSeconds: number },
  ): Promise<ClaimOutcome> {
    try {
      await this.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            ...keys.dedup(identity),
            identity,
            owner,
            leaseUntil: plusSeconds(options.now, options.leaseSeconds),
            done: false,
            createdAt: options.now,
            ttl: epochSeconds(options.now) + options.ttlSeconds,
          },
          ConditionExpression:
            'attribute_not_exists(PK) OR (done = :false AND (leaseUntil <= :now OR #owner = :owner))',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':false': false, ':now': options.now, ':owner': owner },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return 'acquired';
    } catch (error) {
      const old = conditionFailureItem(error);
      if (old === undefined) throw error;
      return old.done === true ? 'done' : 'held';
    }
  }

  /** Marks a claimed effect as done (it stays until its TTL). */
  async completeEffect(identity: string, now: string): Promise<void> {
    await this.send(
      new UpdateCommand({
        TableName: this.table,
        Key: keys.dedup(identity),
        UpdateExpression: 'SET done = :true, completedAt = :now',
        ExpressionAttributeValues: { ':true': true, ':now': now },
      }),
    );
  }

  /** Whether a dedup marker for `identity` exists (written by `markOnce` or a transition's dedup). */
  async wasSeen(identity: string): Promise<boolean> {
    const out = await this.send<{ Item?: Record<string, unknown> }>(
      new GetCommand({
        TableName: this.table,
        Key: keys.dedup(identity),
        ConsistentRead: true,
        ProjectionExpression: 'PK',
      }),
    );
    return out.Item !== undefined;
  }

  /** Whether the effect `identity` was completed. */
  async isEffectDone(identity: string): Promise<boolean> {
    const out = await this.send<{ Item?: Record<string, unknown> }>(
      new GetCommand({ TableName: this.table, Key: keys.dedup(identity), ConsistentRead: true }),
    );
    return out.Item?.done === true;
  }

  /** Records one side of a presence session of a certificate; repeating an event changes nothing. */
  async recordSession(input: {
    certificateId: string;
    sessionIdentifier: string;
    clientId: string;
    /** The presence events' versionNumber: which connection of the client id this session was. */
    versionNumber?: number;
    connectedAt?: number;
    disconnectedAt?: number;
    disconnectReason?: string;
    ttlSeconds: number;
  }): Promise<void> {
    const names: Record<string, string> = { '#ttl': 'ttl' };
    const values: Record<string, unknown> = {
      ':clientId': input.clientId,
      ':sid': input.sessionIdentifier,
      ':ttl': Math.floor(Date.now() / 1000) + input.ttlSeconds,
    };
    const sets = ['clientId = :clientId', 'sessionIdentifier = :sid', '#ttl = :ttl'];
    if (input.connectedAt !== undefined) {
      values[':connectedAt'] = input.connectedAt;
      sets.push('connectedAt = :connectedAt');
    }
    if (input.disconnectedAt !== undefined) {
      values[':disconnectedAt'] = input.disconnectedAt;
      sets.push('disconnectedAt = :disconnectedAt');
    }
    if (input.disconnectReason !== undefined) {
      values[':reason'] = input.disconnectReason;
      sets.push('disconnectReason = :reason');
    }
    if (input.versionNumber !== undefined) {
      values[':version'] = input.versionNumber;
      sets.push('versionNumber = :version');
    }
    await this.send(
      new UpdateCommand({
        TableName: this.table,
        Key: keys.principalSession(input.certificateId, input.sessionIdentifier),
        UpdateExpression: `SET ${sets.join(', ')}`,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      }),
    );
  }

  /** The sessions of a certificate still within their TTL. */
  async sessionsOf(certificateId: string): Promise<SessionFacts[]> {
    const sessions: SessionFacts[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const out: QueryCommandOutput = await this.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'PK = :pk AND begins_with(SK, :prefix)',
          ExpressionAttributeValues: {
            ':pk': keys.principalSession(certificateId, '').PK,
            ':prefix': keys.principalSessionPrefix,
          },
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
      );
      for (const item of out.Items ?? []) {
        sessions.push({
          sessionIdentifier: String(item.sessionIdentifier),
          clientId: String(item.clientId),
          ...(typeof item.connectedAt === 'number' ? { connectedAt: item.connectedAt } : {}),
          ...(typeof item.disconnectedAt === 'number' ? { disconnectedAt: item.disconnectedAt } : {}),
          ...(typeof item.versionNumber === 'number' ? { versionNumber: item.versionNumber } : {}),
        });
      }
      startKey = out.LastEvaluatedKey;
    } while (startKey);
    return sessions;
  }

  /**
   * Records the newest presence of a client id. False when an event of higher rank is already
   * recorded: a late `disconnected` never overrides a newer `connected`.
   */
  async recordPresence(input: {
    clientId: string;
    rank: string;
    eventType: 'connected' | 'disconnected';
    sessionIdentifier: string;
    principalIdentifier: string;
    timestamp: number;
    ttlSeconds: number;
  }): Promise<boolean> {
    try {
      await this.send(
        new UpdateCommand({
          TableName: this.table,
          Key: keys.clientPresence(input.clientId),
          UpdateExpression:
            'SET #rank = :rank, connected = :connected, sessionIdentifier = :sid, principalIdentifier = :principal, #ts = :ts, #ttl = :ttl',
          ConditionExpression: 'attribute_not_exists(#rank) OR #rank < :rank',
          ExpressionAttributeNames: { '#rank': 'rank', '#ts': 'timestamp', '#ttl': 'ttl' },
          ExpressionAttributeValues: {
            ':rank': input.rank,
            ':connected': input.eventType === 'connected',
            ':sid': input.sessionIdentifier,
            ':principal': input.principalIdentifier,
            ':ts': input.timestamp,
            ':ttl': Math.floor(Date.now() / 1000) + input.ttlSeconds,
          },
        }),
      );
      return true;
    } catch (error) {
      if (conditionFailureItem(error) !== undefined) return false;
      throw error;
    }
  }

  /** The newest presence recorded for a client id. */
  async presenceOf(
    clientId: string,
  ): Promise<{ connected: boolean; sessionIdentifier: string; principalIdentifier: string } | undefined> {
    const out = await this.send<{ Item?: Record<string, unknown> }>(
      new GetCommand({ TableName: this.table, Key: keys.clientPresence(clientId), ConsistentRead: true }),
    );
    if (!out.Item) return undefined;
    return {
      connected: out.Item.connected === true,
      sessionIdentifier: String(out.Item.sessionIdentifier),
      principalIdentifier: String(out.Item.principalIdentifier),
    };
  }

  /**
   * Records a DUPLICATE_CLIENTID disconnect of a device's own certificate (idempotent per session)
   * and returns such disconnects of the client id within [fromMs, toMs] (toMs defaults to atMs).
   */
  async recordDuplicateClientId(input: {
    clientId: string;
    atMs: number;
    fromMs: number;
    toMs?: number;
    sessionIdentifier: string;
    principalIdentifier: string;
    versionNumber: number;
    ttlSeconds: number;
  }): Promise<DuplicateClientIdDisconnect[]> {
    await this.send(
      new PutCommand({
        TableName: this.table,
        Item: {
          ...keys.duplicateClientId(input.clientId, input.atMs, input.sessionIdentifier),
          clientId: input.clientId,
          sessionIdentifier: input.sessionIdentifier,
          principalIdentifier: input.principalIdentifier,
          versionNumber: input.versionNumber,
          atMs: input.atMs,
          ttl: Math.floor(input.atMs / 1000) + input.ttlSeconds,
        },
      }),
    );
    return this.duplicateClientIds({
      clientId: input.clientId,
      fromMs: input.fromMs,
      toMs: input.toMs ?? input.atMs,
    });
  }

  /** The recorded DUPLICATE_CLIENTID disconnects of a client id within [fromMs, toMs]. */
  async duplicateClientIds(input: {
    clientId: string;
    fromMs: number;
    toMs: number;
  }): Promise<DuplicateClientIdDisconnect[]> {
    const found: DuplicateClientIdDisconnect[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const out: QueryCommandOutput = await this.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'PK = :pk AND SK BETWEEN :from AND :to',
          ExpressionAttributeValues: {
            ':pk': keys.clientPresence(input.clientId).PK,
            ':from': keys.duplicateClientIdBound(Math.max(0, input.fromMs)),
            // `~` sorts after `#<sessionId>`, so the upper bound includes every session at toMs.
            ':to': `${keys.duplicateClientIdBound(input.toMs)}~`,
          },
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
      );
      for (const item of out.Items ?? []) {
        found.push({
          sessionIdentifier: String(item.sessionIdentifier),
          atMs: Number(item.atMs),
          ...(typeof item.principalIdentifier === 'string'
            ? { principalIdentifier: item.principalIdentifier }
            : {}),
          ...(typeof item.versionNumber === 'number' ? { versionNumber: item.versionNumber } : {}),
        });
      }
      startKey = out.LastEvaluatedKey;
    } while (startKey);
    return found;
  }

  /**
   * Appends a history entry that changes no state (e.g. a suspicious connection an operator should
   * see). Its key is derived from the event (`at`, `id`), so a redelivery writes nothing twice.
   * False when the entry was already there.
   */
  async appendHistory(entry: HistoryEntry): Promise<boolean> {
    try {
      await this.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...keys.history(entry.serial, entry.at, entry.id), ...entry },
          ConditionExpression: 'attribute_not_exists(PK)',
        }),
      );
      return true;
    } catch (error) {
      if (conditionFailureItem(error) !== undefined) return false;
      throw error;
    }
  }
}

/** One DUPLICATE_CLIENTID disconnect as recorded (older items lack principal and version). */
export interface DuplicateClientIdDisconnect {
  sessionIdentifier: string;
  atMs: number;
  principalIdentifier?: string;
  versionNumber?: number;
}

/** The old image of a failed condition (`{}` without one), or undefined for any other error. */
function conditionFailureItem(error: unknown): Record<string, unknown> | undefined {
  const candidate = error as { name?: string; Item?: Record<string, AttributeValue> } | null;
  if (candidate?.name !== 'ConditionalCheckFailedException') return undefined;
  // The document client does not unmarshall the item carried by the error.
  return candidate.Item ? unmarshall(candidate.Item) : {};
}

function plusSeconds(iso: string, seconds: number): string {
  return new Date(Date.parse(iso) + seconds * 1000).toISOString();
}

function epochSeconds(iso: string): number {
  return Math.floor(Date.parse(iso) / 1000);
}
