/**
 * Inventory reconciliation's view of the provisioning table: its checkpoint and per-page findings
 * (`RECONCILE#<runId>` items, TTL'd), the certificates its IoT listing saw (one TTL'd item each, so
 * the store-side pass decides most devices without a DescribeCertificate), and batched reads of
 * certificate and device records by key (the existing GetItem access patterns, 100 keys a call).
 *
 * Every page is committed together with the checkpoint that moves past it, in one transaction
 * conditional on the checkpoint's sequence number: a duplicate continuation, or two invocations on
 * the same run, can never count a page twice or skip one.
 */
import {
  BatchGetCommand,
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandOutput,
  TransactWriteCommand,
} from '@aws-sdk/lib-dynamodb';
import type {
  Drift,
  IotCertificateStatus,
  StoreCertificateFact,
  StoreDeviceFact,
} from '../domain/reconciliation';
import { TransientError } from '../errors';
import { type Key, keys } from './keys';

/** Where a run stands. */
export type ReconcilePhase = 'CERTIFICATES' | 'DEVICES' | 'THINGS' | 'REPORT';

export interface ReconcileCheckpoint {
  runId: string;
  /** The instant the run is reported as of. */
  now: string;
  status: 'RUNNING' | 'COMPLETE';
  /** Units of work committed so far. */
  seq: number;
  phase: ReconcilePhase;
  /** DEVICES: index into the reconciled states. */
  stateIndex: number;
  /** Where the phase's next page starts (ListCertificates marker, store cursor, ListThings token). */
  cursor?: string;
  /** Running counts (certificates listed, by status, API calls, …). */
  totals: Record<string, number>;
  invocations: number;
  result?: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

export type CommitOutcome = 'committed' | 'conflict';

/** Reconciliation items are kept this long after their run started. */
export const RECONCILE_TTL_SECONDS = 30 * 86_400;
const BATCH_RETRIES = 8;

export class ReconcileStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    readonly tableName: string,
  ) {}

  async getCheckpoint(runId: string): Promise<ReconcileCheckpoint | undefined> {
    const out = await this.client.send(
      new GetCommand({
        TableName: this.tableName,
        Key: keys.reconcileCheckpoint(runId),
        ConsistentRead: true,
      }),
    );
    return out.Item ? toCheckpoint(out.Item) : undefined;
  }

  /** Creates the run's checkpoint; false when the run already exists. */
  async createCheckpoint(checkpoint: ReconcileCheckpoint): Promise<boolean> {
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: this.checkpointItem(checkpoint),
          ConditionExpression: 'attribute_not_exists(PK)',
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /**
   * Commits one unit of work: its findings (when there are any) and the checkpoint that moves past
   * it, only if the checkpoint is still at `expectedSeq`. `conflict` means another invocation
   * committed first; the caller stops.
   */
  async commit(
    expectedSeq: number,
    next: ReconcileCheckpoint,
    drift: readonly Drift[],
  ): Promise<CommitOutcome> {
    const items: NonNullable<ConstructorParameters<typeof TransactWriteCommand>[0]['TransactItems']> = [
      {
        Put: {
          TableName: this.tableName,
          Item: this.checkpointItem(next),
          ConditionExpression: '#seq = :expected AND #status = :running',
          ExpressionAttributeNames: { '#seq': 'seq', '#status': 'status' },
          ExpressionAttributeValues: { ':expected': expectedSeq, ':running': 'RUNNING' },
        },
      },
    ];
    if (drift.length > 0) {
      items.push({
        Put: {
          TableName: this.tableName,
          Item: {
            ...keys.reconcilePage(next.runId, next.seq),
            runId: next.runId,
            seq: next.seq,
            drift,
            ttl: this.ttl(next.createdAt),
          },
        },
      });
    }
    try {
      await this.client.send(new TransactWriteCommand({ TransactItems: items }));
      return 'committed';
    } catch (error) {
      if ((error as { name?: string }).name === 'TransactionCanceledException') {
        const reasons =
          (error as { CancellationReasons?: Array<{ Code?: string }> }).CancellationReasons ?? [];
        if (reasons[0]?.Code === 'ConditionalCheckFailed') return 'conflict';
        throw new TransientError('reconciliation commit was cancelled', { cause: error });
      }
      throw error;
    }
  }

  /** Every committed page's findings, in order. */
  async readPages(runId: string): Promise<Drift[][]> {
    const pages: Drift[][] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const out: QueryCommandOutput = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'PK = :pk AND begins_with(SK, :prefix)',
          ExpressionAttributeValues: {
            ':pk': keys.reconcileCheckpoint(runId).PK,
            ':prefix': keys.reconcilePagePrefix,
          },
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
      );
      for (const item of out.Items ?? []) pages.push((item.drift as Drift[] | undefined) ?? []);
      startKey = out.LastEvaluatedKey;
    } while (startKey);
    return pages;
  }

  /** Certificate records of these ids (those the store has), one BatchGetItem per 100. */
  async certificateRecords(certificateIds: readonly string[]): Promise<Map<string, StoreCertificateFact>> {
    const items = await this.batchGet(
      certificateIds.map((id) => keys.certificate(id)),
      'certificateId, kind, #status, serial',
    );
    const records = new Map<string, StoreCertificateFact>();
    for (const item of items) {
      const record: StoreCertificateFact = {
        certificateId: String(item.certificateId),
        kind: item.kind as StoreCertificateFact['kind'],
        status: String(item.status),
        ...(typeof item.serial === 'string' ? { serial: item.serial } : {}),
      };
      records.set(record.certificateId, record);
    }
    return records;
  }

  /** Device records of these serials (those the store has). */
  async devices(serials: readonly string[]): Promise<Map<string, StoreDeviceFact>> {
    const items = await this.batchGet(
      serials.map((serial) => keys.device(serial)),
      'serial, #state, thingName, certificateId, pendingCertificateId',
    );
    const devices = new Map<string, StoreDeviceFact>();
    for (const item of items) {
      const device = item as unknown as StoreDeviceFact;
      devices.set(device.serial, device);
    }
    return devices;
  }

  /** Records that the run's IoT listing saw these certificates with these statuses (idempotent puts). */
  async markSeen(
    run: Pick<ReconcileCheckpoint, 'runId' | 'createdAt'>,
    certificates: ReadonlyArray<{ certificateId: string; status: IotCertificateStatus }>,
  ): Promise<void> {
    const ttl = this.ttl(run.createdAt);
    const puts = certificates.map((certificate) => ({
      PutRequest: {
        Item: {
          ...keys.reconcileSeen(run.runId, certificate.certificateId),
          status: certificate.status,
          ttl,
        },
      },
    }));
    for (let start = 0; start < puts.length; start += 25) {
      let pending: Array<Record<string, unknown>> = puts.slice(start, start + 25);
      for (let attempt = 0; pending.length > 0; attempt += 1) {
        if (attempt > BATCH_RETRIES)
          throw new TransientError('BatchWriteItem kept returning unprocessed items');
        if (attempt > 0) await backoff(attempt);
        const out = await this.client.send(
          new BatchWriteCommand({ RequestItems: { [this.tableName]: pending as never } }),
        );
        pending =
          (out.UnprocessedItems?.[this.tableName] as Array<Record<string, unknown>> | undefined) ?? [];
      }
    }
  }

  /** The statuses the run's IoT listing saw for these certificates (absent: not listed). */
  async seen(runId: string, certificateIds: readonly string[]): Promise<Map<string, IotCertificateStatus>> {
    const wanted = new Map(certificateIds.map((id) => [keys.reconcileSeen(runId, id).PK, id]));
    const items = await this.batchGet(
      certificateIds.map((id) => keys.reconcileSeen(runId, id)),
      'PK, #status',
    );
    const statuses = new Map<string, IotCertificateStatus>();
    for (const item of items) {
      const id = wanted.get(String(item.PK));
      if (id !== undefined) statuses.set(id, String(item.status));
    }
    return statuses;
  }

  private async batchGet(
    wanted: readonly Key[],
    projection: string,
  ): Promise<Array<Record<string, unknown>>> {
    const unique = [...new Map(wanted.map((key) => [`${key.PK}\u0000${key.SK}`, key])).values()];
    const found: Array<Record<string, unknown>> = [];
    for (let start = 0; start < unique.length; start += 100) {
      let pending: Array<Record<string, unknown>> = unique.slice(start, start + 100);
      for (let attempt = 0; pending.length > 0; attempt += 1) {
        if (attempt > BATCH_RETRIES) throw new TransientError('BatchGetItem kept returning unprocessed keys');
        if (attempt > 0) await backoff(attempt);
        const out = await this.client.send(
          new BatchGetCommand({
            RequestItems: {
              [this.tableName]: {
                Keys: pending,
                ProjectionExpression: projection,
                ExpressionAttributeNames: namesIn(projection),
              },
            },
          }),
        );
        found.push(...(out.Responses?.[this.tableName] ?? []));
        pending =
          (out.UnprocessedKeys?.[this.tableName]?.Keys as Array<Record<string, unknown>> | undefined) ?? [];
      }
    }
    return found;
  }

  private checkpointItem(checkpoint: ReconcileCheckpoint): Record<string, unknown> {
    return {
      ...keys.reconcileCheckpoint(checkpoint.runId),
      ...stripUndefined(checkpoint),
      ttl: this.ttl(checkpoint.createdAt),
    };
  }

  private ttl(createdAt: string): number {
    return Math.floor(Date.parse(createdAt) / 1000) + RECONCILE_TTL_SECONDS;
  }
}

function toCheckpoint(item: Record<string, unknown>): ReconcileCheckpoint {
  const { PK: _pk, SK: _sk, ttl: _ttl, ...rest } = item;
  return rest as unknown as ReconcileCheckpoint;
}

/** `#name` placeholders used in a projection, mapped to their attribute names. */
function namesIn(projection: string): Record<string, string> | undefined {
  const names = projection.match(/#\w+/g);
  return names ? Object.fromEntries(names.map((name) => [name, name.slice(1)])) : undefined;
}

function stripUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function isConditionFailure(error: unknown): boolean {
  return (error as { name?: string } | null)?.name === 'ConditionalCheckFailedException';
}

async function backoff(attempt: number): Promise<void> {
  const cap = Math.min(1000, 20 * 2 ** attempt);
  await new Promise((resolve) => setTimeout(resolve, Math.random() * cap));
}
