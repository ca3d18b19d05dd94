import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { type DynamoDBClient, TransactWriteItemsCommand } from '@aws-sdk/client-dynamodb';
import { createHandler } from '../functions/pre-provision-hook/create-handler';
import { createCertificateAuthority, createDeviceCertificate } from '../local/pki';
import { parsePreProvisionHookEvent, preProvisionHookEventSchema } from '../schemas/pre-provision-hook';
import { parseCertificatePem } from '../shared/certificates';
import { configFor } from '../shared/config';
import { decideProvisioning, type Instant } from '../shared/domain/provisioning-rules';
import type { BenchContext, BenchRow } from './types';

const CLAIM = 'b'.repeat(64);
const TEMPLATE_ARN = 'arn:aws:iot:us-east-1:123456789012:provisioningtemplate/fleetgate-bench-fleet';
const SEQUENTIAL = 200;
const CONCURRENT = 480;
const CONCURRENCY = 16;
const CPU_ITERATIONS = 3000;

export async function run(context: BenchContext): Promise<BenchRow[]> {
  const { client, tableName, store } = await context.table('hook');
  const config = configFor({
    TABLE_NAME: tableName,
    CLAIM_RATE_LIMIT_PER_MINUTE: '100000',
    HOOK_TIME_BUDGET_MS: '4500',
    // The spread run's serials name no claim: any claim may provision them.
    DEFAULT_ALLOWED_CLAIM: '*',
  });
  const hook = createHandler({
    config,
    store,
    logger: new Logger({ serviceName: 'fleetgate', logLevel: 'SILENT' }),
    // Real Metrics, silenced by POWERTOOLS_METRICS_DISABLED (bench/run.ts).
    metrics: new Metrics({ namespace: 'fleetgate-bench', serviceName: 'fleetgate' }),
  });
  const lambdaContext = {
    getRemainingTimeInMillis: () => 5_000,
    functionName: 'bench',
    awsRequestId: 'bench',
  } as unknown as Parameters<typeof hook>[1];

  const total = SEQUENTIAL + CONCURRENT;
  const serials = Array.from({ length: total }, (_, i) => `BENCH-${String(i).padStart(5, '0')}`);
  const now = new Date().toISOString();
  for (let start = 0; start < serials.length; start += 100) {
    await store.importAllowlistEntries(
      serials.slice(start, start + 100).map((serial) => ({ serial, allowedClaim: CLAIM, attributes: {} })),
      { now, actor: 'bench', idFor: (serial) => `import-${serial}` },
    );
  }
  // The same concurrent load spread over 16 claim certificates: tells the hot per-claim counter
  // (an item in every binding transaction) apart from DynamoDB Local's own transaction cost.
  const spreadSerials = Array.from({ length: CONCURRENT }, (_, i) => `BENCH-S-${String(i).padStart(5, '0')}`);
  for (let start = 0; start < spreadSerials.length; start += 100) {
    await store.importAllowlistEntries(
      spreadSerials.slice(start, start + 100).map((serial) => ({ serial, attributes: {} })),
      { now, actor: 'bench', idFor: (serial) => `import-${serial}` },
    );
  }
  const ca = await createCertificateAuthority();
  const certificates = await Promise.all(
    serials.map(() => createDeviceCertificate(ca, { subject: { commonName: 'AWS IoT Certificate' } })),
  );
  const events = serials.map((serial, i) => ({
    claimCertificateId: CLAIM,
    certificateId: certificates[i]?.certificateId,
    certificatePem: certificates[i]?.certificatePem,
    templateArn: TEMPLATE_ARN,
    clientId: serial,
    parameters: { SerialNumber: serial },
  }));

  const timed = async (event: unknown, expectAllow = true): Promise<number> => {
    const started = performance.now();
    const response = await hook(event, lambdaContext);
    if (response.allowProvisioning !== expectAllow) throw new Error('bench: unexpected decision');
    return performance.now() - started;
  };

  /** Times every event, CONCURRENCY requests in flight at once. */
  const timedConcurrently = async (batch: readonly unknown[], expectAllow = true): Promise<number[]> => {
    const samples: number[] = [];
    let next = 0;
    const worker = async () => {
      while (next < batch.length) {
        const event = batch[next];
        next += 1;
        samples.push(await timed(event, expectAllow));
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    return samples;
  };

  // Warm up connections and JIT on a few requests that are not measured.
  for (const event of events.slice(0, 10)) await timed(event);

  const rows: BenchRow[] = [];
  const latencyRows = (label: string, samples: number[]) => {
    const p50 = percentile(samples, 50);
    const p99 = percentile(samples, 99);
    rows.push({ name: `decision latency p50 (${label})`, value: p50, unit: 'ms' });
    rows.push({
      name: `decision latency p99 (${label})`,
      value: p99,
      unit: 'ms',
      target: '< 100',
      ratio: 100 / p99,
    });
  };

  const tripsBefore = store.stats.roundTrips;
  const sequential: number[] = [];
  for (const event of events.slice(10, SEQUENTIAL)) sequential.push(await timed(event));
  const tripsPerAllow = (store.stats.roundTrips - tripsBefore) / (SEQUENTIAL - 10);
  latencyRows('concurrency 1', sequential);

  const concurrentStarted = performance.now();
  const concurrent = await timedConcurrently(events.slice(SEQUENTIAL, total));
  const decisionsPerSecond = CONCURRENT / ((performance.now() - concurrentStarted) / 1000);
  latencyRows(`concurrency ${CONCURRENCY}`, concurrent);
  // DynamoDB Local's own ceiling for the binding transaction, right after, on the same table: the
  // hook's throughput as a share of it says what the hook adds, whatever the JVM does.
  const rawTps = await rawTransactionsPerSecond(client, tableName, CONCURRENT, CONCURRENCY);
  rows.push({
    name: `hook decisions/s (new bindings, concurrency ${CONCURRENCY}, one claim)`,
    value: decisionsPerSecond,
    unit: '/s',
  });
  rows.push({
    name: `raw TransactWriteItems ceiling (5 items, concurrency ${CONCURRENCY})`,
    value: rawTps,
    unit: 'tx/s',
  });
  rows.push({
    name: 'hook decisions/s ÷ raw transactions/s',
    value: decisionsPerSecond / rawTps,
    unit: 'ratio',
    target: '≥ 0.8',
    ratio: decisionsPerSecond / rawTps / 0.8,
  });

  const spreadCertificates = await Promise.all(
    spreadSerials.map(() => createDeviceCertificate(ca, { subject: { commonName: 'AWS IoT Certificate' } })),
  );
  const spreadEvents = spreadSerials.map((serial, i) => ({
    claimCertificateId: (i % CONCURRENCY).toString(16).padStart(2, '0').repeat(32),
    certificateId: spreadCertificates[i]?.certificateId,
    certificatePem: spreadCertificates[i]?.certificatePem,
    templateArn: TEMPLATE_ARN,
    clientId: serial,
    parameters: { SerialNumber: serial },
  }));
  const spread = await timedConcurrently(spreadEvents);
  latencyRows(`concurrency ${CONCURRENCY}, ${CONCURRENCY} claim certificates`, spread);

  // Denials of unknown serials: one read, no write, so DynamoDB Local's transaction cost is excluded.
  const unknown = events
    .slice(0, 200)
    .map((event, i) => ({ ...event, parameters: { SerialNumber: `NOBODY-${i}` } }));
  const denials: number[] = [];
  for (const event of unknown.slice(0, 100)) denials.push(await timed(event, false));
  latencyRows('read-only denial, concurrency 1', denials);
  const concurrentDenials = await timedConcurrently(unknown.slice(100), false);
  latencyRows(`read-only denial, concurrency ${CONCURRENCY}`, concurrentDenials);

  rows.push({
    name: 'round trips per decision (new binding)',
    value: tripsPerAllow,
    unit: 'calls',
    target: '≤ 2',
    ratio: 2 / tripsPerAllow,
  });
  const retryBefore = store.stats.roundTrips;
  for (const event of events.slice(10, 60)) await timed(event);
  const tripsPerRetry = (store.stats.roundTrips - retryBefore) / 50;
  rows.push({
    name: 'round trips per decision (retry)',
    value: tripsPerRetry,
    unit: 'calls',
    target: '≤ 2',
    ratio: 2 / tripsPerRetry,
  });

  // CPU per decision, I/O excluded: parse the event and the certificate, then decide on fixed facts.
  const schema = preProvisionHookEventSchema(config);
  const sample = events[0];
  const device = { serial: 'BENCH-00000', state: 'ALLOWLISTED' as const, allowedClaim: CLAIM };
  const cpuStart = process.cpuUsage();
  for (let i = 0; i < CPU_ITERATIONS; i += 1) {
    const parsed = parsePreProvisionHookEvent(schema, config, sample);
    if (!parsed.success) throw new Error('bench: sample event did not parse');
    const certificate = parseCertificatePem(parsed.event.certificatePem, {
      maxBytes: config.maxCertificatePemBytes,
    });
    const epochMs = Date.now();
    const instant: Instant = { iso: new Date(epochMs).toISOString(), epochMs };
    const decision = decideProvisioning(
      {
        serial: parsed.serial,
        certificateId: parsed.event.certificateId,
        claimCertificateId: parsed.event.claimCertificateId,
        certificate,
      },
      { device },
      config,
      instant,
    );
    if (!decision.allow) throw new Error('bench: sample decision was a denial');
  }
  const cpu = process.cpuUsage(cpuStart);
  const cpuMs = (cpu.user + cpu.system) / 1000 / CPU_ITERATIONS;
  rows.push({
    name: 'CPU per decision (parse + rules, no I/O)',
    value: cpuMs,
    unit: 'ms',
    target: '< 5',
    ratio: 5 / cpuMs,
  });

  client.destroy();
  return rows;
}

/**
 * Transactions/s of plain 5-item `TransactWriteItems` shaped like the hook's binding: the device
 * updated under a condition, a certificate, a public key and a history item put if absent, and one
 * claim's per-minute counter incremented (shared by every transaction, as with one claim
 * certificate) — `concurrency` in flight, nothing read first.
 */
async function rawTransactionsPerSecond(
  client: DynamoDBClient,
  tableName: string,
  count: number,
  concurrency: number,
): Promise<number> {
  const now = new Date().toISOString();
  const pem = 'x'.repeat(700);
  const absent = 'attribute_not_exists(PK)';
  // The devices the transactions update exist first (as allowlist rows do).
  for (let i = 0; i < count; i += 1) {
    await client.send(
      new TransactWriteItemsCommand({
        TransactItems: [
          {
            Put: {
              TableName: tableName,
              Item: {
                PK: { S: `DEVICE#RAW-${i}` },
                SK: { S: 'DEVICE' },
                state: { S: 'ALLOWLISTED' },
                version: { N: '1' },
              },
            },
          },
        ],
      }),
    );
  }
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < count) {
      const i = next;
      next += 1;
      await sendRetryingConflicts(
        client,
        () =>
          new TransactWriteItemsCommand({
            TransactItems: [
              {
                Update: {
                  TableName: tableName,
                  Key: { PK: { S: `DEVICE#RAW-${i}` }, SK: { S: 'DEVICE' } },
                  UpdateExpression: 'SET #state = :next, version = :v2, certificateId = :c, updatedAt = :now',
                  ConditionExpression: 'version = :v1',
                  ExpressionAttributeNames: { '#state': 'state' },
                  ExpressionAttributeValues: {
                    ':next': { S: 'PROVISIONING' },
                    ':v1': { N: '1' },
                    ':v2': { N: '2' },
                    ':c': { S: `cert-${i}` },
                    ':now': { S: now },
                  },
                },
              },
              {
                Put: {
                  TableName: tableName,
                  Item: {
                    PK: { S: `CERT#raw-${i}` },
                    SK: { S: 'CERT' },
                    pem: { S: pem },
                    createdAt: { S: now },
                  },
                  ConditionExpression: absent,
                },
              },
              {
                Put: {
                  TableName: tableName,
                  Item: { PK: { S: `PUBKEY#raw-${i}` }, SK: { S: 'PUBKEY' }, serial: { S: `RAW-${i}` } },
                  ConditionExpression: absent,
                },
              },
              {
                Put: {
                  TableName: tableName,
                  Item: {
                    PK: { S: `DEVICE#RAW-${i}` },
                    SK: { S: `EVENT#${now}#${i}` },
                    event: { S: 'PROVISION' },
                  },
                  ConditionExpression: absent,
                },
              },
              {
                Update: {
                  TableName: tableName,
                  Key: { PK: { S: 'CLAIM#raw#0' }, SK: { S: 'CLAIM' } },
                  UpdateExpression: 'ADD #count :one',
                  ExpressionAttributeNames: { '#count': 'count' },
                  ExpressionAttributeValues: { ':one': { N: '1' } },
                },
              },
            ],
          }),
      );
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return count / ((performance.now() - started) / 1000);
}

/** A transaction cancelled for a conflict (two on the claim counter at once) is sent again, as the store does. */
async function sendRetryingConflicts(
  client: DynamoDBClient,
  command: () => TransactWriteItemsCommand,
): Promise<void> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      await client.send(command());
      return;
    } catch (error) {
      const conflict =
        (error as { name?: string }).name === 'TransactionCanceledException' &&
        String((error as Error).message).includes('TransactionConflict');
      if (!conflict || attempt >= 20) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * 2 ** Math.min(attempt, 5)));
    }
  }
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)] ?? 0;
}
