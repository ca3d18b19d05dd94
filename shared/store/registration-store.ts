/**
 * The items automatic registration and the lifecycle function add to the provisioning table, next
 * to `ProvisioningStore` (whose `StoreClient` it shares). Keys come from `keys.ts`, items and their
 * checked reading from `entities/`; nothing outside this folder sees PK/SK.
 *
 * - Registration lease: the CERT item of a JITR certificate carries `leaseOwner` (the SQS message
 *   id that reserved it) and `leaseUntil`, so one delivery at a time does the IoT side effects and
 *   a redelivery of that same message resumes them.
 * - Effect claims: a DEDUP item with an owner, a lease and `done`, for effects outside DynamoDB
 *   (a quarantine request sent to SQS) that must happen once per identity.
 * - Presence: one item per (certificate, session) and one per client id with the newest event's
 *   rank, plus one item per DUPLICATE_CLIENTID disconnect. All TTL'd.
 */
import type { SessionFacts } from '../domain/presence-rules';
import { type StoreAccess, type StoreClient, storeClient, type WriteItem } from './client';
import { certificateCreate } from './entities/certificate';
import { dedupFromItem, effectClaimPut } from './entities/dedup';
import { historyItem, historyPut } from './entities/history';
import {
  type ClientPresence,
  clientPresenceFromItem,
  type DuplicateClientIdDisconnect,
  duplicateClientIdFromItem,
  duplicateClientIdItem,
  sessionFromItem,
} from './entities/presence';
import { plusSeconds } from './item';
import { keys } from './keys';
import type { CertificateRecord, HistoryEntry } from './records';
import { conditionally, conditionFailureItem } from './retry';

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
  private readonly db: StoreClient;

  constructor(access: StoreAccess) {
    this.db = storeClient(access);
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
      await this.db.update({
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
      });
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
    await this.db.update({
      Key: keys.certificate(certificateId),
      UpdateExpression: 'SET #status = :active, updatedAt = :now REMOVE leaseOwner, leaseUntil',
      ConditionExpression: 'attribute_exists(PK)',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: { ':active': 'ACTIVE', ':now': now },
    });
  }

  /**
   * The commit point of a rejection: the certificate record (status INACTIVE / REVOKED, no serial,
   * the reason and the serial it claimed) and, for a known device, one history entry, in one
   * transaction. False when the certificate was already recorded (a repeat).
   */
  async recordRejection(input: RejectionInput): Promise<boolean> {
    const { certificate } = input;
    const items: WriteItem[] = [
      certificateCreate(certificate, {
        rejectedReason: input.rejectedReason,
        ...(input.claimedSerial !== undefined ? { claimedSerial: input.claimedSerial } : {}),
      }),
    ];
    if (input.history) {
      const { serial, id, actor, detail } = input.history;
      items.push(
        historyPut({
          serial,
          at: certificate.createdAt,
          id,
          event: 'REGISTRATION_REJECTED',
          actor,
          reason: input.rejectedReason,
          detail: { certificateId: certificate.certificateId, ...detail },
        }),
      );
    }
    return (await this.db.transact(items)) === undefined;
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
      await this.db.put(effectClaimPut(identity, owner, options).Put);
      return 'acquired';
    } catch (error) {
      const old = conditionFailureItem(error);
      if (old === undefined) throw error;
      return old.PK !== undefined && dedupFromItem(old).done === true ? 'done' : 'held';
    }
  }

  /** Marks a claimed effect as done (it stays until its TTL). */
  async completeEffect(identity: string, now: string): Promise<void> {
    await this.db.update({
      Key: keys.dedup(identity),
      UpdateExpression: 'SET done = :true, completedAt = :now',
      ExpressionAttributeValues: { ':true': true, ':now': now },
    });
  }

  /** Whether a dedup marker for `identity` exists (written by `markOnce` or a transition's dedup). */
  async wasSeen(identity: string): Promise<boolean> {
    return (await this.db.read(keys.dedup(identity), { projection: 'PK' })) !== undefined;
  }

  /** Whether the effect `identity` was completed. */
  async isEffectDone(identity: string): Promise<boolean> {
    const item = await this.db.read(keys.dedup(identity));
    return item !== undefined && dedupFromItem(item).done === true;
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
    await this.db.update({
      Key: keys.principalSession(input.certificateId, input.sessionIdentifier),
      UpdateExpression: `SET ${sets.join(', ')}`,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    });
  }

  /** The sessions of a certificate still within their TTL. */
  async sessionsOf(certificateId: string): Promise<SessionFacts[]> {
    const sessions: SessionFacts[] = [];
    const items = this.db.queryAll({
      KeyConditionExpression: 'PK = :pk AND begins_with(SK, :prefix)',
      ExpressionAttributeValues: {
        ':pk': keys.principalSession(certificateId, '').PK,
        ':prefix': keys.principalSessionPrefix,
      },
      ConsistentRead: true,
    });
    for await (const item of items) sessions.push(sessionFromItem(item));
    return sessions;
  }

  /**
   * Records the newest presence of a client id. False when an event of higher rank is already
   * recorded: a late `disconnected` never overrides a newer `connected`.
   */
  recordPresence(input: {
    clientId: string;
    rank: string;
    eventType: 'connected' | 'disconnected';
    sessionIdentifier: string;
    principalIdentifier: string;
    timestamp: number;
    ttlSeconds: number;
  }): Promise<boolean> {
    return conditionally(
      this.db.update({
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
  }

  /** The newest presence recorded for a client id. */
  async presenceOf(clientId: string): Promise<ClientPresence | undefined> {
    return this.db.readAs(keys.clientPresence(clientId), clientPresenceFromItem);
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
    await this.db.put({ Item: duplicateClientIdItem(input) });
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
    const items = this.db.queryAll({
      KeyConditionExpression: 'PK = :pk AND SK BETWEEN :from AND :to',
      ExpressionAttributeValues: {
        ':pk': keys.clientPresence(input.clientId).PK,
        ':from': keys.duplicateClientIdBound(Math.max(0, input.fromMs)),
        // `~` sorts after `#<sessionId>`, so the upper bound includes every session at toMs.
        ':to': `${keys.duplicateClientIdBound(input.toMs)}~`,
      },
      ConsistentRead: true,
    });
    for await (const item of items) found.push(duplicateClientIdFromItem(item));
    return found;
  }

  /**
   * Appends a history entry that changes no state (e.g. a suspicious connection an operator should
   * see). Its key is derived from the event (`at`, `id`), so a redelivery writes nothing twice.
   * False when the entry was already there.
   */
  async appendHistory(entry: HistoryEntry): Promise<boolean> {
    return conditionally(
      this.db.put({ Item: historyItem(entry), ConditionExpression: 'attribute_not_exists(PK)' }),
    );
  }
}
