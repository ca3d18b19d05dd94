/**
 * The store's side of certificate rotation (keys in `keys.ts`):
 * - the rotation request item (`ROTATION#<serial>` / `REQUEST#<sha256(SPKI)>`): claimed with a lease
 *   before CreateCertificateFromCsr, then holds the issued certificate id and, once answered, the
 *   answer. A duplicate delivery finds it held or done and issues nothing; a retry after a crash finds
 *   the certificate id and continues from there.
 * - retirement work items on certificate records (written by `ProvisioningStore.transition` with the
 *   commit or abort, listed here through the StateIndex partitions `RETIRING_CERT#<shard>`).
 */
import {
  DeleteCommand,
  GetCommand,
  QueryCommand,
  type QueryCommandOutput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { keys, retirementPartition, SHARDS, STATE_INDEX } from './keys';
import { type ProvisioningStore, toCertificate } from './provisioning-store';
import type { CertificateRecord, Retirement } from './records';

/** The answer a rotation request got (re-published as is on a repeat). */
export type RotationAnswer =
  | { accepted: true; certificateId: string; rotationDeadline: string }
  | { accepted: false; reason: string; message: string };

export interface RotationRequestRecord {
  serial: string;
  publicKeyHash: string;
  owner: string;
  leaseUntil: string;
  done: boolean;
  /** Set as soon as CreateCertificateFromCsr returned (before anything else is done with it). */
  certificateId?: string;
  answer?: RotationAnswer;
  createdAt: string;
}

export type RotationClaim =
  | { status: 'acquired'; request: RotationRequestRecord }
  | { status: 'held'; request?: RotationRequestRecord }
  | { status: 'done'; request: RotationRequestRecord };

export class RotationStore {
  constructor(readonly store: ProvisioningStore) {}

  private get table(): string {
    return this.store.tableName;
  }

  private async send<T>(command: GetCommand | UpdateCommand | QueryCommand | DeleteCommand): Promise<T> {
    this.store.stats.roundTrips += 1;
    const client = this.store.client as unknown as { send(command: unknown): Promise<unknown> };
    return (await client.send(command)) as T;
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
      const out = await this.send<{ Attributes?: Record<string, unknown> }>(
        new UpdateCommand({
          TableName: this.table,
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
            ':ttl': Math.floor(Date.parse(input.now) / 1000) + input.ttlSeconds,
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { status: 'acquired', request: toRequest(out.Attributes ?? {}) };
    } catch (error) {
      if ((error as { name?: string }).name !== 'ConditionalCheckFailedException') throw error;
      const request = await this.getRequest(input.serial, input.publicKeyHash);
      if (request?.done) return { status: 'done', request };
      return request ? { status: 'held', request } : { status: 'held' };
    }
  }

  async getRequest(serial: string, publicKeyHash: string): Promise<RotationRequestRecord | undefined> {
    const out = await this.send<{ Item?: Record<string, unknown> }>(
      new GetCommand({
        TableName: this.table,
        Key: keys.rotationRequest(serial, publicKeyHash),
        ConsistentRead: true,
      }),
    );
    return out.Item ? toRequest(out.Item) : undefined;
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
    try {
      await this.send(
        new UpdateCommand({
          TableName: this.table,
          Key: keys.rotationRequest(input.serial, input.publicKeyHash),
          UpdateExpression: 'SET certificateId = :id',
          ConditionExpression: '#owner = :owner AND attribute_not_exists(certificateId)',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': input.owner, ':id': input.certificateId },
        }),
      );
      return input.certificateId;
    } catch (error) {
      if ((error as { name?: string }).name !== 'ConditionalCheckFailedException') throw error;
      return (await this.getRequest(input.serial, input.publicKeyHash))?.certificateId;
    }
  }

  /** Stores the answer and marks the request done (a repeat re-publishes this answer). */
  async completeRequest(input: {
    serial: string;
    publicKeyHash: string;
    now: string;
    answer: RotationAnswer;
  }): Promise<void> {
    await this.send(
      new UpdateCommand({
        TableName: this.table,
        Key: keys.rotationRequest(input.serial, input.publicKeyHash),
        UpdateExpression: 'SET done = :true, answer = :answer, completedAt = :now',
        ConditionExpression: 'attribute_exists(PK)',
        ExpressionAttributeValues: { ':true': true, ':answer': input.answer, ':now': input.now },
      }),
    );
  }

  /**
   * Gives up a claim that ended in a rejection (nothing issued is left), so a repeat of the request is
   * judged afresh rather than answered with a stale rejection. Only `owner`'s unfinished claim goes.
   */
  async releaseRequest(input: { serial: string; publicKeyHash: string; owner: string }): Promise<void> {
    try {
      await this.send(
        new DeleteCommand({
          TableName: this.table,
          Key: keys.rotationRequest(input.serial, input.publicKeyHash),
          ConditionExpression: '#owner = :owner AND done = :false',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': input.owner, ':false': false },
        }),
      );
    } catch (error) {
      if ((error as { name?: string }).name !== 'ConditionalCheckFailedException') throw error;
    }
  }

  /**
   * Certificates whose retirement work is due at `now`, oldest first per shard, at most `limit`
   * (read from the StateIndex: eventually consistent, so each step re-checks its condition).
   */
  async dueRetirements(now: string, limit: number): Promise<CertificateRecord[]> {
    const due: CertificateRecord[] = [];
    for (let shard = 0; shard < SHARDS && due.length < limit; shard += 1) {
      let startKey: Record<string, unknown> | undefined;
      do {
        const out: QueryCommandOutput = await this.send(
          new QueryCommand({
            TableName: this.table,
            IndexName: STATE_INDEX,
            // GSI2SK is `<dueAt>#<id>`; `~` sorts after every hex digit.
            KeyConditionExpression: 'GSI2PK = :pk AND GSI2SK <= :bound',
            ExpressionAttributeValues: { ':pk': retirementPartition(shard), ':bound': `${now}#~` },
            ExclusiveStartKey: startKey,
            Limit: limit - due.length,
          }),
        );
        for (const item of out.Items ?? []) due.push(toCertificate(item));
        startKey = out.LastEvaluatedKey;
      } while (startKey && due.length < limit);
    }
    return due;
  }

  /**
   * Moves retirement work on from `expectedStep`: to the next step (due at `next.dueAt`), or done
   * (`next` undefined: the work item and its index keys are removed). `status` is the certificate
   * record's new status. False when the step had already moved on (another run did it).
   */
  async advanceRetirement(input: {
    certificateId: string;
    expectedStep: Retirement['step'];
    next?: Retirement;
    status: CertificateRecord['status'];
    now: string;
  }): Promise<boolean> {
    const names = { '#status': 'status', '#retirement': 'retirement', '#step': 'step' };
    const common = { ':expected': input.expectedStep, ':status': input.status, ':now': input.now };
    const command = input.next
      ? new UpdateCommand({
          TableName: this.table,
          Key: keys.certificate(input.certificateId),
          UpdateExpression:
            'SET #status = :status, #retirement = :next, GSI2PK = :g2pk, GSI2SK = :g2sk, updatedAt = :now',
          ConditionExpression: '#retirement.#step = :expected',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: {
            ...common,
            ':next': input.next,
            ...prefixed(keys.retirementIndex(input.next.dueAt, input.certificateId)),
          },
        })
      : new UpdateCommand({
          TableName: this.table,
          Key: keys.certificate(input.certificateId),
          UpdateExpression: 'SET #status = :status, updatedAt = :now REMOVE #retirement, GSI2PK, GSI2SK',
          ConditionExpression: '#retirement.#step = :expected',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: common,
        });
    try {
      await this.send(command);
      return true;
    } catch (error) {
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }
}

function prefixed(index: { GSI2PK: string; GSI2SK: string }): Record<string, string> {
  return { ':g2pk': index.GSI2PK, ':g2sk': index.GSI2SK };
}

function toRequest(item: Record<string, unknown>): RotationRequestRecord {
  const { PK: _pk, SK: _sk, ttl: _ttl, ...rest } = item;
  return rest as unknown as RotationRequestRecord;
}

function plusSeconds(iso: string, seconds: number): string {
  return new Date(Date.parse(iso) + seconds * 1000).toISOString();
}
