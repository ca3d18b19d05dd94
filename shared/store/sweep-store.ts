/**
 * The expiry sweep's view of the provisioning table: one page of an index partition at a time,
 * and the sweep's checkpoint and per-page results (`SWEEP#<runId>` items, TTL'd).
 *
 * Every page is committed together with the checkpoint that moves past it, in one transaction
 * conditional on the checkpoint's sequence number, so a resumed or concurrent run can never count
 * a page twice or skip one.
 */
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandOutput,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { AtRiskCertificate, ExpiryPolicy } from '../domain/expiry';
import {
  anchorPartition,
  daysBetween,
  EXPIRY_INDEX,
  expiryPartition,
  ISSUED_INDEX,
  issuedPartition,
  keys,
  monthsBetween,
  SHARDS,
} from './keys';
import { normalizeIso, toCertificate } from './provisioning-store';
import type { CertificateRecord } from './records';

/** One index partition the sweep reads, with the sort-key range it wants from it. */
export type SweepSource =
  | { index: 'anchor'; kind: 'CA' | 'CLAIM' }
  | { index: 'expiry'; day: string; shard: number; from: string; to: string }
  | { index: 'issued'; month: string; shard: number; from: string; to: string };

export interface IndexPage {
  items: CertificateRecord[];
  /** Where the next page of the same source starts; absent when the source is exhausted. */
  nextKey?: Record<string, unknown>;
  readUnits: number;
}

export interface SweepCheckpoint {
  runId: string;
  /** The instant the run classifies against (kept, so a resumed run sees the same `now`). */
  now: string;
  policy: ExpiryPolicy;
  status: 'RUNNING' | 'COMPLETE';
  /** Pages committed so far. */
  seq: number;
  /** Index into the run's source list, and where in that source the next page starts. */
  step: number;
  startKey?: Record<string, unknown>;
  itemsRead: number;
  readUnits: number;
  invocations: number;
  result?: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

/** What one committed page found. */
export interface SweepPage {
  seq: number;
  step: number;
  atRisk: AtRiskCertificate[];
  /** Live certificates expiring per chart week, for this page only. */
  chart: number[];
  itemsRead: number;
  readUnits: number;
}

export type CommitOutcome = 'committed' | 'conflict';

/** Sweep items are kept this long after their run started. */
const SWEEP_TTL_SECONDS = 30 * 86_400;

export class SweepStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    readonly tableName: string,
  ) {}

  /**
   * The partitions a run reads, in a fixed order: CA and claim certificates (all of them), the
   * expiry index for notAfter in [expiryFrom, expiryTo), then the issued index for notBefore in
   * [issuedFrom, issuedTo). The order only depends on the arguments, so a checkpoint's `step`
   * means the same partition on every resume.
   */
  sources(ranges: {
    expiryFrom: string;
    expiryTo: string;
    issuedFrom: string;
    issuedTo: string;
  }): SweepSource[] {
    const out: SweepSource[] = [
      { index: 'anchor', kind: 'CA' },
      { index: 'anchor', kind: 'CLAIM' },
    ];
    const expiryFrom = normalizeIso(ranges.expiryFrom);
    const expiryTo = normalizeIso(ranges.expiryTo);
    if (expiryFrom < expiryTo) {
      for (const day of daysBetween(expiryFrom, expiryTo)) {
        for (let shard = 0; shard < SHARDS; shard += 1)
          out.push({ index: 'expiry', day, shard, from: expiryFrom, to: expiryTo });
      }
    }
    const issuedFrom = normalizeIso(ranges.issuedFrom);
    const issuedTo = normalizeIso(ranges.issuedTo);
    if (issuedFrom < issuedTo) {
      for (const month of monthsBetween(issuedFrom, issuedTo)) {
        for (let shard = 0; shard < SHARDS; shard += 1)
          out.push({ index: 'issued', month, shard, from: issuedFrom, to: issuedTo });
      }
    }
    return out;
  }

  /** One page (at most `limit` items) of a source; eventually consistent, like every index read. */
  async readPage(
    source: SweepSource,
    startKey: Record<string, unknown> | undefined,
    limit: number,
  ): Promise<IndexPage> {
    const query =
      source.index === 'anchor'
        ? {
            IndexName: ISSUED_INDEX,
            KeyConditionExpression: 'GSI3PK = :pk',
            ExpressionAttributeValues: { ':pk': anchorPartition(source.kind) },
          }
        : source.index === 'expiry'
          ? {
              IndexName: EXPIRY_INDEX,
              // GSI1SK is `<notAfter>#<id>`: BETWEEN from AND to is exactly [from, to).
              KeyConditionExpression: 'GSI1PK = :pk AND GSI1SK BETWEEN :from AND :to',
              ExpressionAttributeValues: {
                ':pk': expiryPartition(source.day, source.shard),
                ':from': source.from,
                ':to': source.to,
              },
            }
          : {
              IndexName: ISSUED_INDEX,
              // GSI3SK is `<notBefore>#<id>`: the same half-open range on notBefore.
              KeyConditionExpression: 'GSI3PK = :pk AND GSI3SK BETWEEN :from AND :to',
              ExpressionAttributeValues: {
                ':pk': issuedPartition(source.month, source.shard),
                ':from': source.from,
                ':to': source.to,
              },
            };
    const out: QueryCommandOutput = await this.client.send(
      new QueryCommand({
        TableName: this.tableName,
        ...query,
        ExclusiveStartKey: startKey,
        Limit: limit,
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    const page: IndexPage = {
      items: (out.Items ?? []).map((item) => toCertificate(item)),
      readUnits: readUnitsOf(out.ConsumedCapacity),
    };
    return out.LastEvaluatedKey ? { ...page, nextKey: out.LastEvaluatedKey } : page;
  }

  async getCheckpoint(runId: string): Promise<SweepCheckpoint | undefined> {
    const out = await this.client.send(
      new GetCommand({ TableName: this.tableName, Key: keys.sweepCheckpoint(runId), ConsistentRead: true }),
    );
    return out.Item ? toCheckpoint(out.Item) : undefined;
  }

  /** Starts a run, or returns the checkpoint of the run already started under the same id. */
  async startRun(input: {
    runId: string;
    now: string;
    policy: ExpiryPolicy;
    at: string;
  }): Promise<SweepCheckpoint> {
    const checkpoint: SweepCheckpoint = {
      runId: input.runId,
      now: input.now,
      policy: input.policy,
      status: 'RUNNING',
      seq: 0,
      step: 0,
      itemsRead: 0,
      readUnits: 0,
      invocations: 0,
      createdAt: input.at,
      updatedAt: input.at,
    };
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.sweepCheckpoint(input.runId), ...checkpoint, ttl: ttlFrom(input.at) },
          ConditionExpression: 'attribute_not_exists(PK)',
        }),
      );
      return checkpoint;
    } catch (error) {
      if ((error as { name?: string }).name !== 'ConditionalCheckFailedException') throw error;
      const existing = await this.getCheckpoint(input.runId);
      if (!existing) throw error;
      return existing;
    }
  }

  /** Counts one more invocation working on the run (for the summary; not a lock). */
  async touchRun(runId: string, at: string): Promise<void> {
    await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.sweepCheckpoint(runId),
        UpdateExpression: 'ADD invocations :one SET updatedAt = :at',
        ConditionExpression: 'attribute_exists(PK)',
        ExpressionAttributeValues: { ':one': 1, ':at': at },
      }),
    );
  }

  /**
   * Writes a page's results and moves the checkpoint past it, in one transaction conditional on
   * the checkpoint still being at `page.seq`. `conflict` means another invocation got there first:
   * reload the checkpoint and continue from it.
   */
  async commitPage(
    runId: string,
    page: SweepPage,
    next: { step: number; startKey?: Record<string, unknown> },
    at: string,
  ): Promise<CommitOutcome> {
    const values: Record<string, unknown> = {
      ':expected': page.seq,
      ':seq': page.seq + 1,
      ':step': next.step,
      ':items': page.itemsRead,
      ':units': page.readUnits,
      ':at': at,
      ':running': 'RUNNING',
    };
    let update =
      'SET seq = :seq, step = :step, updatedAt = :at, itemsRead = itemsRead + :items, readUnits = readUnits + :units';
    if (next.startKey) {
      update += ', startKey = :startKey';
      values[':startKey'] = next.startKey;
    } else {
      update += ' REMOVE startKey';
    }
    try {
      await this.client.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.tableName,
                Item: { ...keys.sweepPage(runId, page.seq), ...page, ttl: ttlFrom(at) },
                ConditionExpression: 'attribute_not_exists(PK)',
              },
            },
            {
              Update: {
                TableName: this.tableName,
                Key: keys.sweepCheckpoint(runId),
                UpdateExpression: update,
                ConditionExpression: 'seq = :expected AND #status = :running',
                ExpressionAttributeNames: { '#status': 'status' },
                ExpressionAttributeValues: values,
              },
            },
          ],
        }),
      );
      return 'committed';
    } catch (error) {
      if ((error as { name?: string }).name === 'TransactionCanceledException') return 'conflict';
      throw error;
    }
  }

  /** Every committed page of a run, in order. */
  async pages(runId: string): Promise<SweepPage[]> {
    const pages: SweepPage[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const out: QueryCommandOutput = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'PK = :pk AND begins_with(SK, :prefix)',
          ExpressionAttributeValues: {
            ':pk': keys.sweepCheckpoint(runId).PK,
            ':prefix': keys.sweepPagePrefix,
          },
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
      );
      for (const item of out.Items ?? []) pages.push(toPage(item));
      startKey = out.LastEvaluatedKey;
    } while (startKey);
    return pages;
  }

  /** Marks the run complete with its result; false when it was already complete. */
  async completeRun(runId: string, result: Record<string, unknown>, at: string): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.sweepCheckpoint(runId),
          UpdateExpression: 'SET #status = :complete, #result = :result, updatedAt = :at',
          ConditionExpression: '#status = :running',
          ExpressionAttributeNames: { '#status': 'status', '#result': 'result' },
          ExpressionAttributeValues: {
            ':complete': 'COMPLETE',
            ':running': 'RUNNING',
            ':result': result,
            ':at': at,
          },
        }),
      );
      return true;
    } catch (error) {
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }
}

/** Read units of a Query: `ReadCapacityUnits` in AWS, `CapacityUnits` in DynamoDB Local. */
export function readUnitsOf(consumed: unknown): number {
  const capacity = consumed as { ReadCapacityUnits?: number; CapacityUnits?: number } | undefined;
  return capacity?.ReadCapacityUnits ?? capacity?.CapacityUnits ?? 0;
}

function ttlFrom(iso: string): number {
  return Math.floor(Date.parse(iso) / 1000) + SWEEP_TTL_SECONDS;
}

function toCheckpoint(item: Record<string, unknown>): SweepCheckpoint {
  const { PK: _pk, SK: _sk, ttl: _ttl, ...rest } = item;
  return rest as unknown as SweepCheckpoint;
}

function toPage(item: Record<string, unknown>): SweepPage {
  const { PK: _pk, SK: _sk, ttl: _ttl, ...rest } = item;
  return rest as unknown as SweepPage;
}
