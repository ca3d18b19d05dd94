import {
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { tableDefinition } from './serverless-config';

/**
 * Creates the provisioning table exactly as serverless.yml defines it (idempotent), enables TTL,
 * and waits until it is ACTIVE.
 */
export async function ensureTable(client: DynamoDBClient, tableName: string): Promise<void> {
  const { create, ttlAttribute } = tableDefinition(tableName);
  try {
    await client.send(new CreateTableCommand(create));
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
  }
  for (let i = 0; i < 100; i += 1) {
    const out = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (out.Table?.TableStatus === 'ACTIVE') break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (ttlAttribute) {
    try {
      await client.send(
        new UpdateTimeToLiveCommand({
          TableName: tableName,
          TimeToLiveSpecification: { AttributeName: ttlAttribute, Enabled: true },
        }),
      );
    } catch (error) {
      // Already enabled on a re-run.
      if ((error as { name?: string }).name !== 'ValidationException') throw error;
    }
  }
}
