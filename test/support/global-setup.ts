import type { TestProject } from 'vitest/node';
import { type DynamoDbLocal, startDynamoDbLocal } from '../../local/dynamodb-local';

declare module 'vitest' {
  export interface ProvidedContext {
    dynamodbEndpoint: string;
  }
}

let ddb: DynamoDbLocal | undefined;

/**
 * One DynamoDB Local for the whole run (each test file creates its own table, so files stay
 * independent). Integration tests are never skipped: if Java is missing this fails loudly.
 */
export async function setup(project: TestProject): Promise<void> {
  ddb = await startDynamoDbLocal();
  project.provide('dynamodbEndpoint', ddb.endpoint);
  const stop = () => {
    void ddb?.stop();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

export async function teardown(): Promise<void> {
  await ddb?.stop();
}
