import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { ProvisioningStore } from '../shared/store/provisioning-store';

/** One measured number. `ratio` is value/target or target/value, whichever reads "higher is better". */
export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  target?: string;
  ratio?: number;
}

export interface BenchContext {
  /** Endpoint of a DynamoDB Local shared by the benchmarks (started on first use). */
  dynamodb(): Promise<string>;
  /** A fresh provisioning table (from serverless.yml) on that DynamoDB Local, with a store on it. */
  table(prefix: string): Promise<BenchTable>;
}

export interface BenchTable {
  endpoint: string;
  client: DynamoDBClient;
  tableName: string;
  store: ProvisioningStore;
}
