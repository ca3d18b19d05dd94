/**
 * The store's side of certificate rotation (keys in `keys.ts`):
 * - the rotation request item (`ROTATION#<serial>` / `REQUEST#<sha256(SPKI)>`): claimed with a lease
 *   before CreateCertificateFromCsr, then holds the issued certificate id and, once answered, the
 *   answer. A duplicate delivery finds it held or done and issues nothing; a retry after a crash finds
 *   the certificate id and continues from there.
 * - retirement work items on certificate records (written by `ProvisioningStore.transition` with the
 *   commit or abort, listed here through the StateIndex partitions `RETIRING_CERT#<shard>`).
 */
import { type StoreAccess, type StoreClient, storeClient } from './client';
import { certificateFromItem } from './entities/certificate';
import {
  type RotationAnswer,
  type RotationRequestRecord,
  rotationRequestFromItem,
} from './entities/rotation-request';
import { epochSeconds, plusSeconds } from './item';
import { keys, retirementPartition, SHARDS, STATE_INDEX } from './keys';
import type { CertificateRecord, Retirement } from './records';
import { conditionally, isConditionFailure } from './retry';

export type { RotationAnswer, RotationRequestRecord } from './entities/rotation-request';

export type RotationClaim =
  | { status: 'acquired'; request: RotationRequestRecord }
  | { status: 'held'; request?: RotationRequestRecord }
  | { status: 'done'; request: RotationRequestRecord };

export class RotationStore {
  private readonly db: StoreClient;

  constructor(access: StoreAccess) {
    this.db = storeClient(access);
  }

  /**
   * Claims the request for `owner` (the SQS message id) for `leaseSeconds`: acquired when new, when
   * the previous owner's lease ran out, or when `owner` already held it (its own retry). An acquired
   * claim keeps a certificate id recorded by an earlier owner.
   */
  async claimRequest(input: {
    serial: string;
    publicKeyHash: string;
    owner: string;
    now: string;
    leaseSeconds: number;
    ttlSeconds: number;
  }): Promise<RotationClaim> {
    try {
      const out = await this.db.update({
        Key: keys.rotationRequest(input.serial, input.publicKeyHash),
        UpdateExpression:
          'SET #owner = :owner, leaseUntil = :until, done = if_not_exists(done, :false), serial = :serial, ' +
          'publicKeyHash = :pkh, createdAt = if_not_exists(createdAt, :now), #ttl = :ttl',
        ConditionExpression:
          'attribute_not_exists(PK) OR (done = :false AND (leaseUntil <= :now OR #owner = :owner))',
        ExpressionAttributeNames: { '#owner': 'owner', '#ttl': 'ttl' },
        ExpressionAttributeValues: {
          ':owner': input.owner,
          ':until': plusSeconds(input.now, input.leaseSeconds),
          ':false': false,
          ':serial': input.serial,
          ':pkh': input.publicKeyHash,
          ':now': input.now,
          ':ttl': epochSeconds(input.now) + input.ttlSeconds,
        },
        ReturnValues: 'ALL_NEW',
      });
      return { status: 'acquired', request: rotationRequestFromItem(out.Attributes ?? {}) };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const request = await this.getRequest(input.serial, input.publicKeyHash);
      if (request?.done) return { status: 'done', request };
      return request ? { status: 'held', request } : { status: 'held' };
    }
  }

  getRequest(serial: string, publicKeyHash: string): Promise<RotationRequestRecord | undefined> {
    return this.db.readAs(keys.rotationRequest(serial, publicKeyHash), rotationRequestFromItem);
  }

  /**
   * Records the certificate CreateCertificateFromCsr issued, while `owner` still holds the claim and
   * no certificate was recorded. Returns the certificate id the request now has (an earlier one wins;
   * undefined when the claim was lost): when it differs, the caller's certificate is an orphan.
   */
  async recordIssued(input: {
    serial: string;
    publicKeyHash: string;
    owner: string;
    certificateId: string;
  }): Promise<string | undefined> {
    const recorded = await conditionally(
      this.db.update({
        Key: keys.rotationRequest(input.serial, input.publicKeyHash),
        UpdateExpression: 'SET certificateId = :id',
        ConditionExpression: '#owner = :owner AND attribute_not_exists(certificateId)',
        ExpressionAttributeNames: { '#owner': 'owner' },
        ExpressionAttributeValues: { ':owner': input.owner, ':id': input.certificateId },
      }),
    );
    if (recorded) return input.certificateId;
    return (await this.getRequest(input.serial, input.publicKeyHash))?.certificateId;
  }

  /** Stores the answer and marks the request done (a repeat re-publishes this answer). */
  async completeRequest(input: {
    serial: string;
    publicKeyHash: string;
    now: string;
    answer: RotationAnswer;
  }): Promise<void> {
    await this.db.update({
      Key: keys.rotationRequest(input.serial, input.publicKeyHash),
      UpdateExpression: 'SET done = :true, answer = :answer, completedAt = :now',
      ConditionExpression: 'attribute_exists(PK)',
      ExpressionAttributeValues: { ':true': true, ':answer': input.answer, ':now': input.now },
    });
  }

  /**
   * Gives up a claim that ended in a rejection (nothing issued is left), so a repeat of the request is
   * judged afresh rather than answered with a stale rejection. Only `owner`'s unfinished claim goes.
   */
  async releaseRequest(input: { serial: string; publicKeyHash: string; owner: string }): Promise<void> {
    await conditionally(
      this.db.delete({
        Key: keys.rotationRequest(input.serial, input.publicKeyHash),
        ConditionExpression: '#owner = :owner AND done = :false',
        ExpressionAttributeNames: { '#owner': 'owner' },
        ExpressionAttributeValues: { ':owner': input.owner, ':false': false },
      }),
    );
  }

  /**
   * Certificates whose retirement work is due at `now`, oldest first per shard, at most `limit`
   * (read from the StateIndex: eventually consistent, so each step re-checks its condition).
   */
  async dueRetirements(now: string, limit: number): Promise<CertificateRecord[]> {
    const page = await this.db.queryShards(
      SHARDS,
      (shard) => ({
        IndexName: STATE_INDEX,
        // GSI2SK is `<dueAt>#<id>`; `~` sorts after every hex digit.
        KeyConditionExpression: 'GSI2PK = :pk AND GSI2SK <= :bound',
        ExpressionAttributeValues: { ':pk': retirementPartition(shard), ':bound': `${now}#~` },
      }),
      { limit },
    );
    return page.items.map((item) => certificateFromItem(item));
  }

  /**
   * Moves retirement work on from `expectedStep`: to the next step (due at `next.dueAt`), or done
   * (`next` undefined: the work item and its index keys are removed). `status` is the certificate
   * record's new status. False when the step had already moved on (another run did it).
   */
  advanceRetirement(input: {
    certificateId: string;
    expectedStep: Retirement['step'];
    next?: Retirement;
    status: CertificateRecord['status'];
    now: string;
  }): Promise<boolean> {
    const names = { '#status': 'status', '#retirement': 'retirement', '#step': 'step' };
    const common = { ':expected': input.expectedStep, ':status': input.status, ':now': input.now };
    const key = keys.certificate(input.certificateId);
    const condition = '#retirement.#step = :expected';
    if (!input.next) {
      return conditionally(
        this.db.update({
          Key: key,
          UpdateExpression: 'SET #status = :status, updatedAt = :now REMOVE #retirement, GSI2PK, GSI2SK',
          ConditionExpression: condition,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: common,
        }),
      );
    }
    const index = keys.retirementIndex(input.next.dueAt, input.certificateId);
    return conditionally(
      this.db.update({
        Key: key,
        UpdateExpression:
          'SET #status = :status, #retirement = :next, GSI2PK = :g2pk, GSI2SK = :g2sk, updatedAt = :now',
        ConditionExpression: condition,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: {
          ...common,
          ':next': input.next,
          ':g2pk': index.GSI2PK,
          ':g2sk': index.GSI2SK,
        },
      }),
    );
  }
}
