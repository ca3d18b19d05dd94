import { randomUUID } from 'node:crypto';
import { DeleteTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, inject } from 'vitest';
import { ensureTable } from '../../local/table';
import { ProvisioningStore } from '../../shared/store/provisioning-store';

export interface TestTable {
  endpoint: string;
  tableName: string;
  client: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  store: ProvisioningStore;
  /** Every item of the table, ordered by key (to compare the whole table before and after). */
  dump(): Promise<Array<Record<string, unknown>>>;
  drop(): Promise<void>;
}

/** A fresh provisioning table on the run's DynamoDB Local, created from serverless.yml. */
export async function createTestTable(prefix = 'test'): Promise<TestTable> {
  const endpoint = inject('dynamodbEndpoint');
  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  const tableName = `${prefix}-${randomUUID().slice(0, 8)}`;
  await ensureTable(client, tableName);
  return {
    endpoint,
    tableName,
    client,
    doc,
    store: new ProvisioningStore(doc, tableName),
    dump: () => dumpTable(doc, tableName),
    drop: async () => {
      await client.send(new DeleteTableCommand({ TableName: tableName }));
      client.destroy();
    },
  };
}

/**
 * The test file's table: created before its tests (by the `beforeAll` hook this registers where it is
 * called), dropped after them. Its fields are there from that hook on: read them in hooks and tests.
 */
export function useTestTable(prefix: string): TestTable {
  const table = {} as TestTable;
  beforeAll(async () => {
    Object.assign(table, await createTestTable(prefix));
  });
  afterAll(async () => {
    await table.drop?.();
  });
  return table;
}

/** Every item of a table (a full Scan; tests only), ordered by PK then SK. */
export async function dumpTable(
  doc: DynamoDBDocumentClient,
  tableName: string,
): Promise<Array<Record<string, unknown>>> {
  const items: Array<Record<string, unknown>> = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await doc.send(
      new ScanCommand({ TableName: tableName, ConsistentRead: true, ExclusiveStartKey: start }),
    );
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  const key = (item: Record<string, unknown>) => `${String(item.PK)}\u0000${String(item.SK)}`;
  return items.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}
