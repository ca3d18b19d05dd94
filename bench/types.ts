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
}
