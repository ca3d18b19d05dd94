/**
 * The quarantine side of the provisioning table: exactly-once markers of quarantine requests,
 * evidence added to a device that cannot move, and certificates quarantined without a known
 * device (listed through the StateIndex, in their own `QUARANTINED_CERT#<shard>` partitions).
 * Device transitions themselves go through `ProvisioningStore.transition` (QUARANTINE / RELEASE /
 * REJECT), which writes the dedup marker in the same transaction.
 */
import { type Page, type StoreAccess, type StoreClient, storeClient, type WriteItem } from './client';
import { certificateFromItem, readCertificate } from './entities/certificate';
import { dedupPut } from './entities/dedup';
import { historyPut } from './entities/history';
import { keys, quarantinedCertificatePartition, SHARDS, STATE_INDEX } from './keys';
import type { CertificateRecord, HistoryEntry, QuarantineInfo } from './records';
import { conditionally } from './retry';

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
  private readonly db: StoreClient;

  constructor(access: StoreAccess) {
    this.db = storeClient(access);
  }

  /** True when the request's effects were recorded (its marker exists). */
  async isDone(requestId: string): Promise<boolean> {
    return (await this.db.read(keys.dedup(quarantineIdentity(requestId)))) !== undefined;
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
    const failed = await this.db.transact([
      historyPut({ serial: input.serial, ...input.entry }),
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
    const failed = await this.db.transact([
      {
        Update: {
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
    const failed = await this.db.transact([
      {
        Update: {
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
  closeCertificateQuarantine(input: {
    certificateId: string;
    status: CertificateRecord['status'];
    decision: { action: 'RELEASE' | 'REJECT'; actor: string; reason: string; at: string };
  }): Promise<boolean> {
    return conditionally(
      this.db.update({
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
  }

  /** A quarantined certificate of an unknown device, or undefined. */
  async getQuarantinedCertificate(certificateId: string): Promise<QuarantinedCertificate | undefined> {
    return quarantined(await readCertificate(this.db, certificateId));
  }

  /** Quarantined certificates of unknown devices, one page at a time across the index shards. */
  async listQuarantinedCertificates(options: { limit?: number } = {}): Promise<Page<QuarantinedCertificate>> {
    const page = await this.db.queryShards(
      SHARDS,
      (shard) => ({
        IndexName: STATE_INDEX,
        KeyConditionExpression: 'GSI2PK = :pk',
        ExpressionAttributeValues: { ':pk': quarantinedCertificatePartition(shard) },
      }),
      { limit: options.limit ?? 1000 },
    );
    const items: QuarantinedCertificate[] = [];
    for (const item of page.items) {
      const certificate = quarantined(certificateFromItem(item));
      if (certificate) items.push(certificate);
    }
    return { items };
  }

  private markerPut(requestId: string, now: string): WriteItem {
    return dedupPut(quarantineIdentity(requestId), QUARANTINE_DEDUP_TTL_SECONDS, now);
  }
}

/** The certificate, when it carries a quarantine. */
function quarantined(certificate: CertificateRecord | undefined): QuarantinedCertificate | undefined {
  const quarantine = certificate?.quarantine;
  return certificate && quarantine ? { ...certificate, quarantine } : undefined;
}
