/**
 * What the expiry sweep reads besides the indexes, and where it keeps its baseline:
 * - the devices behind the certificates at risk (state and thing name), one BatchGetItem per 100
 *   serials, so every report row says what the device is (a quarantined device is no rotation
 *   candidate);
 * - the table's newest completed run (`SWEEP#` / `LATEST`), the next run's "since previous"
 *   baseline. It lives in the table the run read, so a report is only ever compared with an
 *   earlier run of the same table (and so of the same stack and stage), never with a report
 *   another stack left in a shared destination.
 */
import { BatchGetCommand, type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { TransientError } from '../errors';
import { keys } from './keys';

/** A device as far as a report row cares. */
export interface DeviceFacts {
  serial: string;
  state: string;
  thingName?: string;
}

/** The newest completed run of a table, and the run it was compared with. */
export interface LatestSweep {
  runId: string;
  previousRunId?: string;
  at: string;
}

const BATCH_RETRIES = 8;

export class SweepFacts {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    readonly tableName: string,
  ) {}

  /** The device records of these serials (those the store has), by serial. */
  async devices(serials: readonly string[]): Promise<Map<string, DeviceFacts>> {
    const unique = [...new Set(serials)];
    const found = new Map<string, DeviceFacts>();
    for (let start = 0; start < unique.length; start += 100) {
      let pending: Array<Record<string, unknown>> = unique.slice(start, start + 100).map(keys.device);
      for (let attempt = 0; pending.length > 0; attempt += 1) {
        if (attempt > BATCH_RETRIES) throw new TransientError('BatchGetItem kept returning unprocessed keys');
        if (attempt > 0) await backoff(attempt);
        const out = await this.client.send(
          new BatchGetCommand({
            RequestItems: {
              [this.tableName]: {
                Keys: pending,
                ProjectionExpression: 'serial, #state, thingName',
                ExpressionAttributeNames: { '#state': 'state' },
              },
            },
          }),
        );
        for (const item of out.Responses?.[this.tableName] ?? []) {
          const device = item as unknown as DeviceFacts;
          found.set(device.serial, device);
        }
        pending =
          (out.UnprocessedKeys?.[this.tableName]?.Keys as Array<Record<string, unknown>> | undefined) ?? [];
      }
    }
    return found;
  }

  /** The table's newest completed run, or undefined before the first one. */
  async latest(): Promise<LatestSweep | undefined> {
    const out = await this.client.send(
      new GetCommand({ TableName: this.tableName, Key: keys.sweepLatest(), ConsistentRead: true }),
    );
    if (!out.Item || typeof out.Item.runId !== 'string') return undefined;
    return {
      runId: out.Item.runId,
      ...(typeof out.Item.previousRunId === 'string' ? { previousRunId: out.Item.previousRunId } : {}),
      at: String(out.Item.at),
    };
  }

  /** Makes `latest` the table's newest completed run (the last writer wins, as runs finish). */
  async setLatest(latest: LatestSweep): Promise<void> {
    await this.client.send(
      new PutCommand({ TableName: this.tableName, Item: { ...keys.sweepLatest(), ...latest } }),
    );
  }
}

async function backoff(attempt: number): Promise<void> {
  const cap = Math.min(1000, 20 * 2 ** attempt);
  await new Promise((resolve) => setTimeout(resolve, Math.random() * cap));
}
