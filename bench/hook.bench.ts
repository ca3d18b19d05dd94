import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { type DynamoDBClient, TransactWriteItemsCommand } from '@aws-sdk/client-dynamodb';
import { createHandler } from '../functions/pre-provision-hook/create-handler';
import { createCertificateAuthority, createDeviceCertificate } from '../local/pki';
import { parsePreProvisionHookEvent, preProvisionHookEventSchema } from '../schemas/pre-provision-hook';
import { parseCertificatePem } from '../shared/certificates';
import { configFor } from '../shared/config';
import { decideProvisioning, type Instant, instantAt } from '../shared/domain/provisioning-rules';
import { provisionBinding } from '../shared/store/bind-certificate';
import type { ProvisioningStore } from '../shared/store/provisioning-store';
import { deviceCertificateRecord } from '../shared/store/records';
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

  // The hook at concurrency 16 against DynamoDB Local's own ceilings, on the same table and in the
  // same run: the hook's throughput as a share of them says what the hook adds, whatever the JVM does.
  // 1. `raw`: the hook's own binding transaction (the same items, built and sent by the store), the
  //    device read beforehand, untimed: no read, no parsing, no rules, no logging.
  // 2. `rawWithRead`: the same with the hook's read first (its consistent BatchGetItem): the two
  //    round trips a new binding needs, since the answer's thing name and overrides come from the
  //    device record.
  // The three run alternately, in rounds (hook, raw, raw + read, hook, …): whichever ran first
  // would otherwise pay for the JIT warming up and the table growing (measured: the same work cost
  // this process 12.6 ms of CPU per operation first and 9.2 ms second).
  const raw = await prepareRawBindings(store, ca, now, CONCURRENT);
  const rawWithRead = await prepareRawBindings(store, ca, now, CONCURRENT, { read: true });
  const concurrent: number[] = [];
  const alternating = await alternately(store, CONCURRENT, {
    hook: async (i) => {
      concurrent.push(await timed(events[SEQUENTIAL + i]));
    },
    raw,
    rawWithRead,
  });
  const decisionsPerSecond = alternating.hook.perSecond;
  latencyRows(`concurrency ${CONCURRENCY}`, concurrent);
  // 3. A minimal hand-written 5-item transaction (small items, no index keys): the JVM's floor.
  const minimalTps = await rawTransactionsPerSecond(client, tableName, CONCURRENT, CONCURRENCY);
  rows.push(
    {
      name: `hook decisions/s (new bindings, concurrency ${CONCURRENCY}, one claim)`,
      value: decisionsPerSecond,
      unit: '/s',
    },
    {
      name: `raw TransactWriteItems ceiling (the hook's 5 items, concurrency ${CONCURRENCY})`,
      value: alternating.raw.perSecond,
      unit: 'tx/s',
    },
    share('hook decisions/s ÷ raw transactions/s', decisionsPerSecond, alternating.raw.perSecond),
    {
      name: `raw read + transaction ceiling (the hook's 2 round trips, concurrency ${CONCURRENCY})`,
      value: alternating.rawWithRead.perSecond,
      unit: '/s',
    },
    share(
      'hook decisions/s ÷ raw read + transaction/s',
      decisionsPerSecond,
      alternating.rawWithRead.perSecond,
    ),
    {
      name: `this process's CPU per decision (hook, concurrency ${CONCURRENCY})`,
      value: alternating.hook.cpuMs,
      unit: 'ms',
    },
    {
      name: "this process's CPU per raw read + transaction",
      value: alternating.rawWithRead.cpuMs,
      unit: 'ms',
    },
    { name: "this process's CPU per raw transaction", value: alternating.raw.cpuMs, unit: 'ms' },
    {
      name: `round trips per decision (hook, concurrency ${CONCURRENCY}, conflicts retried)`,
      value: alternating.hook.roundTrips,
      unit: 'calls',
    },
    {
      name: 'round trips per raw read + transaction (conflicts retried)',
      value: alternating.rawWithRead.roundTrips,
      unit: 'calls',
    },
    {
      name: 'round trips per raw transaction (conflicts retried)',
      value: alternating.raw.roundTrips,
      unit: 'calls',
    },
    {
      name: `minimal 5-item TransactWriteItems (small items, no index keys, concurrency ${CONCURRENCY})`,
      value: minimalTps,
      unit: 'tx/s',
    },
  );

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

/** `part ÷ whole` as a ratio row against the 0.8 goal. */
function share(name: string, part: number, whole: number): BenchRow {
  return { name, value: part / whole, unit: 'ratio', target: '≥ 0.8', ratio: part / whole / 0.8 };
}

/** Per kind of operation: operations/s, and this process's CPU and store round trips per operation. */
interface Throughput {
  perSecond: number;
  cpuMs: number;
  roundTrips: number;
}

const ROUNDS = 3;

/**
 * Runs `count` operations of each kind (`op(i)`, i from 0 to count − 1), CONCURRENCY in flight, in
 * ROUNDS rounds that take the kinds in turn, and adds up each kind's time, CPU and round trips.
 */
async function alternately<K extends string>(
  store: ProvisioningStore,
  count: number,
  kinds: Record<K, (i: number) => Promise<void>>,
): Promise<Record<K, Throughput>> {
  const names = Object.keys(kinds) as K[];
  const totals = new Map<K, { ms: number; cpuMs: number; trips: number }>(
    names.map((name) => [name, { ms: 0, cpuMs: 0, trips: 0 }]),
  );
  const perRound = Math.ceil(count / ROUNDS);
  for (let round = 0; round < ROUNDS; round += 1) {
    const from = round * perRound;
    const to = Math.min(count, from + perRound);
    for (const name of names) {
      const total = totals.get(name) as { ms: number; cpuMs: number; trips: number };
      const op = kinds[name];
      const trips = store.stats.roundTrips;
      const cpu = process.cpuUsage();
      const started = performance.now();
      let next = from;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < to) {
            const i = next;
            next += 1;
            await op(i);
          }
        }),
      );
      total.ms += performance.now() - started;
      total.cpuMs += cpuMsSince(cpu);
      total.trips += store.stats.roundTrips - trips;
    }
  }
  return Object.fromEntries(
    names.map((name) => {
      const total = totals.get(name) as { ms: number; cpuMs: number; trips: number };
      return [
        name,
        { perSecond: count / (total.ms / 1000), cpuMs: total.cpuMs / count, roundTrips: total.trips / count },
      ];
    }),
  ) as Record<K, Throughput>;
}

/**
 * One binding with the store's own binding transaction — exactly what the hook writes for a new
 * device (device transition, certificate, public key, history, claim counter) — per call, for `count`
 * fresh allowlisted serials. The serials are imported, the certificates made and (without `read`)
 * the devices read here, before any clock starts; with `read`, each binding first does the hook's
 * read (`loadProvisioningFacts`, one consistent BatchGetItem) and binds the device it returned.
 */
async function prepareRawBindings(
  store: ProvisioningStore,
  ca: Awaited<ReturnType<typeof createCertificateAuthority>>,
  now: string,
  count: number,
  options: { read?: boolean } = {},
): Promise<(i: number) => Promise<void>> {
  const prefix = options.read ? 'RAW-READ' : 'RAW';
  const serials = Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(5, '0')}`);
  for (let start = 0; start < serials.length; start += 100) {
    await store.importAllowlistEntries(
      serials.slice(start, start + 100).map((serial) => ({ serial, allowedClaim: CLAIM, attributes: {} })),
      { now, actor: 'bench', idFor: (serial) => `import-${serial}` },
    );
  }
  const certificates = await Promise.all(
    serials.map(async () =>
      parseCertificatePem(
        (await createDeviceCertificate(ca, { subject: { commonName: 'AWS IoT Certificate' } }))
          .certificatePem,
      ),
    ),
  );
  const claim = { claimCertificateId: CLAIM, now };
  const devices = options.read
    ? []
    : await Promise.all(
        serials.map(async (serial) => (await store.loadProvisioningFacts({ serial })).device),
      );
  return async (i: number) => {
    const serial = serials[i] as string;
    const certificate = certificates[i] as ReturnType<typeof parseCertificatePem>;
    const device = options.read
      ? (
          await store.loadProvisioningFacts({
            serial,
            certificateId: certificate.certificateId,
            publicKeyHash: certificate.publicKeyHash,
            claim,
          })
        ).device
      : devices[i];
    if (!device) throw new Error(`bench: ${serial} was not imported`);
    const instant = instantAt(Date.now());
    const outcome = await store.bindCertificate(
      provisionBinding({
        decision: { serial, thingName: serial, binding: 'new' },
        device,
        certificate: deviceCertificateRecord(certificate, {
          status: 'PENDING',
          source: 'FLEET_PROVISIONING',
          serial,
          thingName: serial,
          now: instant.iso,
        }),
        publicKeyHash: certificate.publicKeyHash,
        now: instant,
        provisioningWindowSeconds: 3600,
        history: { id: `raw-${serial}`, actor: 'bench', detail: { claimCertificateId: CLAIM } },
        claim: { claimCertificateId: CLAIM, limitPerMinute: 100_000 },
      }),
    );
    if (outcome.status !== 'applied') throw new Error(`bench: raw binding of ${serial}: ${outcome.status}`);
  };
}

/** CPU time (user + system) of this process since `start`, in ms. */
function cpuMsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
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
