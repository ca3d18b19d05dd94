/**
 * The quarantine side of the provisioning table: exactly-once markers of quarantine requests,
 * evidence added to a device that cannot move, and certificates quarantined without a known
 * device (listed through the StateIndex, in their own `QUARANTINED_CERT#<shard>` partitions).
 * Device transitions themselves go through `ProvisioningStore.transition` (QUARANTINE / RELEASE /
 * REJECT), which writes the dedup marker in the same transaction.
 */
import { GetCommand, QueryCommand, type QueryCommandOutput, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { keys, quarantinedCertificatePartition, SHARDS, STATE_INDEX } from './keys';
import { type Page, type ProvisioningStore, toCertificate } from './provisioning-store';
import type { CertificateRecord, HistoryEntry, QuarantineInfo } from './records';

/**
 * Markers outlive the DLQ's 14-day retention, so a message replayed from a DLQ on its last day is
 * still recognised as done.
 */
export const QUARANTINE_DEDUP_TTL_SECONDS = 15 * 86_400;

/** The dedup identity of one quarantine request. */
export function quarantineIdentity(requestId: string): string {
  return `quarantine:${requestId}`;
}

export interface QuarantinedCertificate extends CertificateRecord {
  quarantine: QuarantineInfo;
}

export class QuarantineStore {
  constructor(private readonly store: ProvisioningStore) {}

  private get tableName(): string {
    return this.store.tableName;
  }

  /** True when the request's effects were recorded (its marker exists). */
  async isDone(requestId: string): Promise<boolean> {
    const out = await this.store.client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: keys.dedup(quarantineIdentity(requestId)),
        ConsistentRead: true,
      }),
    );
    return out.Item !== undefined;
  }

  /**
   * Appends a history entry (no state change) and the request's marker in one transaction.
   * `already-done` when the marker was there.
   */
  async recordEvidence(input: {
    serial: string;
    entry: Omit<HistoryEntry, 'serial'>;
    requestId: string;
    now: string;
  }): Promise<'applied' | 'already-done'> {
    const failed = await this.store.transact([
      {
        Put: {
          TableName: this.tableName,
          Item: {
            ...keys.history(input.serial, input.entry.at, input.entry.id),
            serial: input.serial,
            ...input.entry,
          },
          ConditionExpression: 'attribute_not_exists(PK)',
        },
      },
      this.markerPut(input.requestId, input.now),
    ]);
    return failed ? 'already-done' : 'applied';
  }

  /**
   * Quarantines a certificate that belongs to no known device: its record (created when fleetgate
   * never saw it) gets status INACTIVE, the quarantine facts and the index keys `quarantine list`
   * reads, in one transaction with the request's marker. `already-done` when the marker was there.
   */
  async quarantineCertificate(input: {
    certificateId: string;
    info: QuarantineInfo;
    requestId: string;
    now: string;
    /** What IoT says about the certificate, for a record fleetgate did not have. */
    facts?: { issuer?: string; notBefore?: string; notAfter?: string };
  }): Promise<'applied' | 'already-done'> {
    const index = keys.quarantinedCertificateIndex(input.certificateId);
    const failed = await this.store.transact([
      {
        Update: {
          TableName: this.tableName,
          Key: keys.certificate(input.certificateId),
          UpdateExpression:
            'SET #status = :inactive, quarantine = :info, GSI2PK = :pk, GSI2SK = :sk, updatedAt = :now, ' +
            'certificateId = :id, kind = if_not_exists(kind, :kind), #source = if_not_exists(#source, :source), ' +
            'issuer = if_not_exists(issuer, :issuer), notBefore = if_not_exists(notBefore, :notBefore), ' +
            'notAfter = if_not_exists(notAfter, :notAfter), createdAt = if_not_exists(createdAt, :now)',
          ExpressionAttributeNames: { '#status': 'status', '#source': 'source' },
          ExpressionAttributeValues: {
            ':inactive': 'INACTIVE',
            ':info': input.info,
            ':pk': index.GSI2PK,
            ':sk': index.GSI2SK,
            ':now': input.now,
            ':id': input.certificateId,
            ':kind': 'DEVICE',
            ':source': 'JITR',
            ':issuer': input.facts?.issuer ?? 'unknown',
            ':notBefore': input.facts?.notBefore ?? input.now,
            ':notAfter': input.facts?.notAfter ?? input.now,
          },
        },
      },
      this.markerPut(input.requestId, input.now),
    ]);
    return failed ? 'already-done' : 'applied';
  }

  /**
   * Records a suspicion about a claim certificate without deactivating it (only an operator may:
   * one claim certificate serves a whole product line): the last suspicion and a count on its
   * record, with the request's marker, in one transaction. `already-done` when the marker was there.
   */
  async flagClaimCertificate(input: {
    certificateId: string;
    suspicion: Record<string, unknown>;
    requestId: string;
    now: string;
  }): Promise<'applied' | 'already-done'> {
    const failed = await this.store.transact([
      {
        Update: {
          TableName: this.tableName,
          Key: keys.certificate(input.certificateId),
          UpdateExpression: 'SET lastSuspicion = :suspicion, updatedAt = :now ADD suspicionCount :one',
          ConditionExpression: 'attribute_exists(PK) AND #kind = :claim',
          ExpressionAttributeNames: { '#kind': 'kind' },
          ExpressionAttributeValues: {
            ':suspicion': input.suspicion,
            ':now': input.now,
            ':one': 1,
            ':claim': 'CLAIM',
          },
        },
      },
      this.markerPut(input.requestId, input.now),
    ]);
    return failed ? 'already-done' : 'applied';
  }

  /**
   * Ends the quarantine of a certificate of an unknown device: sets its status and removes it from
   * the quarantine listing. False when it was not quarantined.
   */
  async closeCertificateQuarantine(input: {
    certificateId: string;
    status: CertificateRecord['status'];
    decision: { action: 'RELEASE' | 'REJECT'; actor: string; reason: string; at: string };
  }): Promise<boolean> {
    try {
      await this.store.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.certificate(input.certificateId),
          UpdateExpression:
            'SET #status = :status, updatedAt = :now, lastQuarantineDecision = :decision REMOVE quarantine, GSI2PK, GSI2SK',
          ConditionExpression: 'attribute_exists(quarantine)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':status': input.status,
            ':now': input.decision.at,
            ':decision': input.decision,
          },
        }),
      );
      return true;
    } catch (error) {
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }

  /** A quarantined certificate of an unknown device, or undefined. */
  async getQuarantinedCertificate(certificateId: string): Promise<QuarantinedCertificate | undefined> {
    const certificate = await this.store.getCertificate(certificateId);
    return certificate?.quarantine ? (certificate as QuarantinedCertificate) : undefined;
  }

  /** Quarantined certificates of unknown devices, one page at a time across the index shards. */
  async listQuarantinedCertificates(options: { limit?: number } = {}): Promise<Page<QuarantinedCertificate>> {
    const limit = options.limit ?? 1000;
    const items: QuarantinedCertificate[] = [];
    for (let shard = 0; shard < SHARDS && items.length < limit; shard += 1) {
      let startKey: Record<string, unknown> | undefined;
      do {
        const out: QueryCommandOutput = await this.store.client.send(
          new QueryCommand({
            TableName: this.tableName,
            IndexName: STATE_INDEX,
            KeyConditionExpression: 'GSI2PK = :pk',
            ExpressionAttributeValues: { ':pk': quarantinedCertificatePartition(shard) },
            ExclusiveStartKey: startKey,
            Limit: limit - items.length,
          }),
        );
        for (const item of out.Items ?? []) items.push(toCertificate(item) as QuarantinedCertificate);
        startKey = out.LastEvaluatedKey;
      } while (startKey && items.length < limit);
    }
    return { items };
  }

  private markerPut(requestId: string, now: string) {
    return {
      Put: {
        TableName: this.tableName,
        Item: {
          ...keys.dedup(quarantineIdentity(requestId)),
          identity: quarantineIdentity(requestId),
          createdAt: now,
          ttl: Math.floor(Date.parse(now) / 1000) + QUARANTINE_DEDUP_TTL_SECONDS,
        },
        ConditionExpression: 'attribute_not_exists(PK)',
      },
    };
  }
}
