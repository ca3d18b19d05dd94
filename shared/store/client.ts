/**
 * The one handle every store of the provisioning table talks through: the document client, the
 * table name and the round-trip and capacity counters, injected into each store (`StoreAccess`).
 * Each method is one DynamoDB operation of the table (batches and transactions retried here, with
 * `retry.ts`), so a store never names the table and every round trip is counted once.
 */
import {
  BatchGetCommand,
  BatchWriteCommand,
  DeleteCommand,
  type DeleteCommandInput,
  type DynamoDBDocumentClient,
  GetCommand,
  type GetCommandInput,
  PutCommand,
  type PutCommandInput,
  QueryCommand,
  type QueryCommandInput,
  type QueryCommandOutput,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
  type UpdateCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { TransientError } from '../errors';
import type { Key } from './keys';
import { backoff, cancellationReasons, type FailedConditions, failedConditions, RETRIES } from './retry';

/** Round trips and capacity consumed, for benchmarks and tests. */
export interface StoreStats {
  roundTrips: number;
  readUnits: number;
  writeUnits: number;
}

/** A command's input without the table name (the client adds it). */
export type TableInput<T> = Omit<T, 'TableName'>;

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

export type PutItem = TableInput<NonNullable<TransactItem['Put']>>;
export type UpdateItem = TableInput<NonNullable<TransactItem['Update']>>;

/** One item of a transaction on the table, built by an entity module (`entities/`). */
export type WriteItem =
  | { Put: PutItem }
  | { Update: UpdateItem }
  | { Delete: TableInput<NonNullable<TransactItem['Delete']>> }
  | { ConditionCheck: TableInput<NonNullable<TransactItem['ConditionCheck']>> };

export type Item = Record<string, unknown>;

/** A page of results and an opaque cursor to the next one. */
export interface Page<T> {
  items: T[];
  cursor?: string;
}

export class StoreClient {
  readonly stats: StoreStats = { roundTrips: 0, readUnits: 0, writeUnits: 0 };

  constructor(
    readonly doc: DynamoDBDocumentClient,
    readonly tableName: string,
  ) {}

  get(input: TableInput<GetCommandInput>) {
    return this.count(this.doc.send(new GetCommand({ TableName: this.tableName, ...input })));
  }

  /** One strongly consistent GetItem: the item at `key`, or undefined. */
  async read(key: Key, options: { projection?: string } = {}): Promise<Item | undefined> {
    const out = await this.get({
      Key: key,
      ConsistentRead: true,
      ...(options.projection ? { ProjectionExpression: options.projection } : {}),
      ReturnConsumedCapacity: 'TOTAL',
    });
    return out.Item;
  }

  /** The record at `key` (one strongly consistent GetItem), read with an entity's `fromItem`. */
  async readAs<T>(key: Key, fromItem: (item: Item) => T): Promise<T | undefined> {
    const item = await this.read(key);
    return item ? fromItem(item) : undefined;
  }

  put(input: TableInput<PutCommandInput>) {
    return this.count(this.doc.send(new PutCommand({ TableName: this.tableName, ...input })));
  }

  update(input: TableInput<UpdateCommandInput>) {
    return this.count(this.doc.send(new UpdateCommand({ TableName: this.tableName, ...input })));
  }

  delete(input: TableInput<DeleteCommandInput>) {
    return this.count(this.doc.send(new DeleteCommand({ TableName: this.tableName, ...input })));
  }

  query(input: TableInput<QueryCommandInput>): Promise<QueryCommandOutput> {
    return this.count(this.doc.send(new QueryCommand({ TableName: this.tableName, ...input })));
  }

  /** Every item of a query, one page (round trip) at a time; stop iterating to stop reading. */
  async *queryAll(input: TableInput<Omit<QueryCommandInput, 'ExclusiveStartKey'>>): AsyncGenerator<Item> {
    let startKey: Item | undefined;
    do {
      const out = await this.query({ ...input, ExclusiveStartKey: startKey });
      yield* out.Items ?? [];
      startKey = out.LastEvaluatedKey;
    } while (startKey);
  }

  /**
   * Up to `limit` items of the sharded index partitions `partition(0)` … `partition(SHARDS - 1)`,
   * in shard order, resuming at `cursor` (opaque; returned while shards remain).
   */
  async queryShards(
    shards: number,
    partition: (shard: number) => TableInput<Omit<QueryCommandInput, 'ExclusiveStartKey' | 'Limit'>>,
    options: { limit: number; cursor?: string },
  ): Promise<Page<Item>> {
    let { shard, startKey } = decodeCursor(options.cursor, shards);
    const items: Item[] = [];
    while (shard < shards && items.length < options.limit) {
      const out = await this.query({
        ...partition(shard),
        ExclusiveStartKey: startKey,
        Limit: options.limit - items.length,
      });
      items.push(...(out.Items ?? []));
      startKey = out.LastEvaluatedKey;
      if (!startKey) shard += 1;
    }
    return shard < shards ? { items, cursor: encodeCursor({ shard, startKey }) } : { items };
  }

  /**
   * BatchGetItem of `keys` (100 a call), unprocessed keys retried with backoff. Strongly
   * consistent unless told otherwise; `#name` placeholders of the projection are resolved.
   */
  async batchGet(
    keys: readonly Item[],
    options: { consistent?: boolean; projection?: string } = {},
  ): Promise<Item[]> {
    const found: Item[] = [];
    const request = batchGetRequest(options);
    for (let start = 0; start < keys.length; start += 100) {
      let pending: Item[] = keys.slice(start, start + 100);
      for (let attempt = 0; pending.length > 0; attempt += 1) {
        if (attempt > RETRIES) throw new TransientError('BatchGetItem kept returning unprocessed keys');
        if (attempt > 0) await backoff(attempt);
        const out = await this.count(
          this.doc.send(
            new BatchGetCommand({
              RequestItems: { [this.tableName]: { Keys: pending, ...request } },
              ReturnConsumedCapacity: 'TOTAL',
            }),
          ),
        );
        found.push(...(out.Responses?.[this.tableName] ?? []));
        pending = out.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
      }
    }
    return found;
  }

  /** BatchWriteItem puts of `items` (25 a call), unprocessed items retried with backoff. */
  async batchPut(items: readonly Item[]): Promise<void> {
    for (let start = 0; start < items.length; start += 25) {
      let requests: Array<{ PutRequest?: { Item: Item | undefined } }> = items
        .slice(start, start + 25)
        .map((item) => ({ PutRequest: { Item: item } }));
      for (let attempt = 0; requests.length > 0; attempt += 1) {
        if (attempt > RETRIES) throw new TransientError('BatchWriteItem kept returning unprocessed items');
        if (attempt > 0) await backoff(attempt);
        const out = await this.count(
          this.doc.send(
            new BatchWriteCommand({
              RequestItems: { [this.tableName]: requests },
              ReturnConsumedCapacity: 'TOTAL',
            }),
          ),
        );
        requests = out.UnprocessedItems?.[this.tableName] ?? [];
      }
    }
  }

  /**
   * Runs a transaction. Returns undefined on success, or per item the old image of each item whose
   * condition failed (`{}` when the failed item had no old image). Transaction conflicts with
   * concurrent writers are retried with jittered backoff; the retried write re-checks every
   * condition, so a lost race surfaces as a failed condition, never as a double write.
   */
  async transact(items: readonly WriteItem[]): Promise<FailedConditions | undefined> {
    const transactItems = items.map((item) => this.withTable(item));
    for (let attempt = 0; ; attempt += 1) {
      try {
        await this.count(
          this.doc.send(
            new TransactWriteCommand({ TransactItems: transactItems, ReturnConsumedCapacity: 'TOTAL' }),
          ),
        );
        return undefined;
      } catch (error) {
        const reasons = cancellationReasons(error);
        if (!reasons) throw error;
        const failed = failedConditions(reasons);
        if (failed) return failed;
        if (attempt >= RETRIES) {
          throw new TransientError('transaction kept conflicting with concurrent writers', { cause: error });
        }
        await backoff(attempt + 1);
      }
    }
  }

  private withTable(item: WriteItem): TransactItem {
    const TableName = this.tableName;
    if ('Put' in item) return { Put: { ...item.Put, TableName } };
    if ('Update' in item) return { Update: { ...item.Update, TableName } };
    if ('Delete' in item) return { Delete: { ...item.Delete, TableName } };
    return { ConditionCheck: { ...item.ConditionCheck, TableName } };
  }

  private async count<T extends { ConsumedCapacity?: unknown }>(promise: Promise<T>): Promise<T> {
    this.stats.roundTrips += 1;
    const out = await promise;
    const consumed = out.ConsumedCapacity;
    for (const entry of Array.isArray(consumed) ? consumed : consumed ? [consumed] : []) {
      const capacity = entry as { ReadCapacityUnits?: number; WriteCapacityUnits?: number };
      if (capacity.ReadCapacityUnits) this.stats.readUnits += capacity.ReadCapacityUnits;
      if (capacity.WriteCapacityUnits) this.stats.writeUnits += capacity.WriteCapacityUnits;
    }
    return out;
  }
}

/** A store built on the client, or the client itself: what every store's constructor takes. */
export type StoreAccess = StoreClient | { readonly db: StoreClient };

export function storeClient(access: StoreAccess): StoreClient {
  return 'db' in access ? access.db : access;
}

/** `#name` placeholders used in a projection, mapped to their attribute names. */
function namesIn(projection: string): Record<string, string> | undefined {
  const names = projection.match(/#\w+/g);
  return names ? Object.fromEntries(names.map((name) => [name, name.slice(1)])) : undefined;
}

function encodeCursor(cursor: { shard: number; startKey?: Item }): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function decodeCursor(cursor: string | undefined, shards: number): { shard: number; startKey?: Item } {
  if (!cursor) return { shard: 0 };
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as {
      shard?: unknown;
      startKey?: Item;
    };
    if (typeof parsed.shard !== 'number' || parsed.shard < 0 || parsed.shard > shards)
      throw new Error('bad shard');
    return parsed.startKey ? { shard: parsed.shard, startKey: parsed.startKey } : { shard: parsed.shard };
  } catch (error) {
    throw new TypeError('cursor: not a cursor this store issued', { cause: error });
  }
}

/** A BatchGetItem's table request but its keys: consistency, projection and its `#name` placeholders. */
function batchGetRequest(options: { consistent?: boolean; projection?: string }): {
  ConsistentRead?: boolean;
  ProjectionExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
} {
  const names = options.projection ? namesIn(options.projection) : undefined;
  return {
    ...(options.consistent === false ? {} : { ConsistentRead: true }),
    ...(options.projection ? { ProjectionExpression: options.projection } : {}),
    ...(names ? { ExpressionAttributeNames: names } : {}),
  };
}
