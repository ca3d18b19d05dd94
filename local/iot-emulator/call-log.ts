/** One control-plane or data-plane call as the emulator saw it. */
export interface CallRecord {
  /** AWS operation name, e.g. `DescribeCertificate`, `Publish`. */
  api: string;
  /** Short, PEM-free summary of the input (ids and names only). */
  input: Record<string, unknown>;
  /** `ok` or the AWS error code returned. */
  outcome: 'ok' | string;
  /** ISO-8601 time of the call (emulator clock). */
  at: string;
  /** Milliseconds spent, including injected latency. */
  durationMs: number;
}

const SUMMARY_KEYS = new Set([
  'certificateId',
  'caCertificateId',
  'thingName',
  'thingGroupName',
  'policyName',
  'templateName',
  'principal',
  'target',
  'newStatus',
  'newAutoRegistrationStatus',
  'status',
  'setAsActive',
  'allowAutoRegistration',
  'forceDelete',
  'pageSize',
  'maxResults',
  'marker',
  'nextToken',
  'expectedVersion',
  'topic',
  'qos',
  'endpointType',
]);

/** Keeps identifying, non-secret input fields only (never PEMs, CSRs, policy documents or payloads). */
export function summarizeInput(input: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input)) {
    if (SUMMARY_KEYS.has(key) && value !== undefined) out[key] = value;
  }
  return out;
}

/** Append-only log of calls with counting helpers; bounded so long-running stacks do not grow forever. */
export class CallLog {
  readonly records: CallRecord[] = [];

  constructor(private readonly limit = 100_000) {}

  add(record: CallRecord): void {
    this.records.push(record);
    if (this.records.length > this.limit) this.records.splice(0, this.records.length - this.limit);
  }

  /** Number of calls to `api`, optionally only those with `outcome` (`ok` or an error code). */
  count(api: string, outcome?: string): number {
    let n = 0;
    for (const record of this.records) {
      if (record.api === api && (outcome === undefined || record.outcome === outcome)) n += 1;
    }
    return n;
  }

  clear(): void {
    this.records.length = 0;
  }
}
