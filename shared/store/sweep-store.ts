/**
 * The expiry sweep's view of the provisioning table: one page of an index partition at a time,
 * and the sweep's checkpointed run (`SWEEP#<runId>` items, TTL'd; `RunStore`).
 *
 * Every page is committed together with the checkpoint that moves past it, in one transaction
 * conditional on the checkpoint's sequence number, so a resumed or concurrent run can never count
 * a page twice or skip one.
 */
import type { ExpiryPolicy } from '../domain/expiry';
import { type Item, type StoreAccess, type StoreClient, storeClient } from './client';
import { type IndexedCertificate, indexedCertificateFromItem } from './entities/certificate';
import { SWEEP_RUN, type SweepCheckpoint, type SweepPage } from './entities/run';
import { normalizeIso } from './item';
import {
  anchorPartition,
  daysBetween,
  EXPIRY_INDEX,
  expiryPartition,
  ISSUED_INDEX,
  issuedPartition,
  monthsBetween,
  SHARDS,
} from './keys';
import { type CommitOutcome, RunStore } from './run-store';

export type { IndexedCertificate } from './entities/certificate';
export type { SweepCheckpoint, SweepPage } from './entities/run';
export type { CommitOutcome } from './run-store';

/** One index partition the sweep reads, with the sort-key range it wants from it. */
export type SweepSource =
  | { index: 'anchor'; kind: 'CA' | 'CLAIM' }
  | { index: 'expiry'; day: string; shard: number; from: string; to: string }
  | { index: 'issued'; month: string; shard: number; from: string; to: string };

export interface IndexPage {
  items: IndexedCertificate[];
  /** Where the next page of the same source starts; absent when the source is exhausted. */
  nextKey?: Record<string, unknown>;
  readUnits: number;
}

export class SweepStore {
  private readonly db: StoreClient;
  private readonly runs: RunStore<SweepCheckpoint, SweepPage>;

  constructor(access: StoreAccess) {
    this.db = storeClient(access);
    this.runs = new RunStore(this.db, SWEEP_RUN);
  }

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
    const out = await this.db.query({
      ...query,
      ExclusiveStartKey: startKey,
      Limit: limit,
      ReturnConsumedCapacity: 'TOTAL',
    });
    const page: IndexPage = {
      items: (out.Items ?? []).map((item) => indexedCertificateFromItem(item)),
      readUnits: readUnitsOf(out.ConsumedCapacity),
    };
    return out.LastEvaluatedKey ? { ...page, nextKey: out.LastEvaluatedKey } : page;
  }

  getCheckpoint(runId: string): Promise<SweepCheckpoint | undefined> {
    return this.runs.get(runId);
  }

  /** Starts a run, or returns the checkpoint of the run already started under the same id. */
  startRun(input: {
    runId: string;
    now: string;
    policy: ExpiryPolicy;
    at: string;
    simulated?: boolean;
  }): Promise<SweepCheckpoint> {
    return this.runs.claim({
      runId: input.runId,
      now: input.now,
      ...(input.simulated ? { simulated: true } : {}),
      policy: input.policy,
      status: 'RUNNING',
      seq: 0,
      step: 0,
      itemsRead: 0,
      readUnits: 0,
      invocations: 0,
      createdAt: input.at,
      updatedAt: input.at,
    });
  }

  /** Counts one more invocation working on the run (for the summary; not a lock). */
  touchRun(runId: string, at: string): Promise<void> {
    return this.runs.touch(runId, at);
  }

  /**
   * Writes a page's results and moves the checkpoint past it, in one transaction conditional on
   * the checkpoint still being at `page.seq`. `conflict` means another invocation got there first:
   * reload the checkpoint and continue from it.
   */
  commitPage(
    runId: string,
    page: SweepPage,
    next: { step: number; startKey?: Item },
    at: string,
  ): Promise<CommitOutcome> {
    return this.runs.commit(
      runId,
      page.seq,
      {
        set: { step: next.step, updatedAt: at, startKey: next.startKey },
        add: { itemsRead: page.itemsRead, readUnits: page.readUnits },
      },
      { seq: page.seq, body: page, at },
    );
  }

  /** Every committed page of a run, in order. */
  pages(runId: string): Promise<SweepPage[]> {
    return this.runs.pages(runId);
  }

  /** Marks the run complete with its result; false when it was already complete. */
  completeRun(runId: string, result: Record<string, unknown>, at: string): Promise<boolean> {
    return this.runs.complete(runId, result, at);
  }
}

/** Read units of a Query: `ReadCapacityUnits` in AWS, `CapacityUnits` in DynamoDB Local. */
export function readUnitsOf(consumed: unknown): number {
  const capacity = consumed as { ReadCapacityUnits?: number; CapacityUnits?: number } | undefined;
  return capacity?.ReadCapacityUnits ?? capacity?.CapacityUnits ?? 0;
}
