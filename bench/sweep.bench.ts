/**
 * Expiry sweep benchmark: 100,000 certificates in DynamoDB Local (BENCH_SWEEP_CERTIFICATES to
 * change), 1 % of them expiring within 30 days and the rest 91 days to 2 years out. Reports what
 * the sweep reads from the indexes (items, read capacity) against a full Scan of the same table,
 * and the IoT API calls made (an HTTP endpoint set as AWS_ENDPOINT_URL_IOT counts them).
 * A second round adds what a uniform spread would put in the chart's 30–90-day band and runs again.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { ensureTable } from '../local/table';
import { DAY_MS, formatIso } from '../shared/domain/expiry';
import { runExpirySweep } from '../shared/expiry/expiry-sweep';
import { createReportSink } from '../shared/reports/report-sink';
import { StoreClient } from '../shared/store/client';
import { certificateItem } from '../shared/store/entities/certificate';
import type { CertificateRecord } from '../shared/store/records';
import { SweepFacts } from '../shared/store/sweep-facts';
import { readUnitsOf, SweepStore } from '../shared/store/sweep-store';
import { DEFAULT_EXPIRY_POLICY } from '../test/support/expiry';
import type { BenchContext, BenchRow } from './types';

const NOW = Date.parse('2026-11-24T06:00:00.000Z');
const POLICY = DEFAULT_EXPIRY_POLICY;

export async function run(context: BenchContext): Promise<BenchRow[]> {
  const total = Number(process.env.BENCH_SWEEP_CERTIFICATES ?? 100_000);
  const endpoint = await context.dynamodb();
  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  const tableName = `bench-sweep-${randomUUID().slice(0, 8)}`;
  await ensureTable(client, tableName);
  const iot = await countingIotEndpoint();
  const previousIotEndpoint = process.env.AWS_ENDPOINT_URL_IOT;
  process.env.AWS_ENDPOINT_URL_IOT = iot.url;
  const dir = await mkdtemp(join(tmpdir(), 'fleetgate-bench-sweep-'));
  const rows: BenchRow[] = [];
  try {
    const soon = Math.round(total / 100);
    const started = performance.now();
    await load(doc, tableName, certificates(total, soon));
    const seconds = (performance.now() - started) / 1000;
    rows.push({
      name: `load ${total} certificates (BatchWriteItem ×16)`,
      value: Math.round(total / seconds),
      unit: 'items/s',
    });

    const db = new StoreClient(doc, tableName);
    const sweepStore = new SweepStore(db);
    const facts = new SweepFacts(db);
    const sweep = async (runId: string) => {
      const outcome = await runExpirySweep(
        { runId, now: formatIso(NOW), policy: POLICY },
        {
          sweepStore,
          facts,
          sink: createReportSink(`file://${dir}`),
          remainingMs: () => Number.POSITIVE_INFINITY,
          safetyMarginMs: 0,
          pageSize: 500,
          clock: Date.now,
        },
      );
      if (outcome.status !== 'complete') throw new Error('sweep did not complete');
      return outcome.summary;
    };

    const first = await sweep('bench-1');
    const scan1 = await scan(doc, tableName);
    const atRisk = first.counts.EXPIRING_7D ?? 0;
    const within30 = atRisk + (first.counts.EXPIRING_30D ?? 0);
    rows.push(
      {
        name: 'certificates expiring within 30 d (found)',
        value: within30,
        unit: 'certs',
        target: `= ${soon}`,
      },
      { name: 'sweep: index items read', value: first.itemsRead, unit: 'items' },
      { name: 'sweep: read capacity', value: first.readUnits, unit: 'RCU' },
      { name: 'full Scan: items read', value: scan1.items, unit: 'items' },
      { name: 'full Scan: read capacity', value: scan1.readUnits, unit: 'RCU' },
      {
        name: 'read capacity, Scan ÷ sweep',
        value: scan1.readUnits / first.readUnits,
        unit: '×',
        target: '≥ 50×',
        ratio: scan1.readUnits / first.readUnits / 50,
      },
    );

    // What a uniform spread would also put in the chart's 30–90-day band (~5.5 % of the fleet).
    const band = Math.round(total * 0.055);
    await load(doc, tableName, bandCertificates(band));
    const second = await sweep('bench-2');
    const scan2 = await scan(doc, tableName);
    rows.push(
      { name: `+${band} expiring in 30–90 d: sweep items read`, value: second.itemsRead, unit: 'items' },
      { name: `+${band} expiring in 30–90 d: sweep read capacity`, value: second.readUnits, unit: 'RCU' },
      {
        name: `+${band} expiring in 30–90 d: Scan ÷ sweep`,
        value: scan2.readUnits / second.readUnits,
        unit: '×',
      },
      {
        name: 'IoT API calls (both sweeps)',
        value: iot.count(),
        unit: 'calls',
        target: '= 0',
        ratio: iot.count() === 0 ? 1 : 0,
      },
    );
  } finally {
    if (previousIotEndpoint === undefined) delete process.env.AWS_ENDPOINT_URL_IOT;
    else process.env.AWS_ENDPOINT_URL_IOT = previousIotEndpoint;
    await iot.close();
    await rm(dir, { recursive: true, force: true });
    client.destroy();
  }
  return rows;
}

function hex(i: number, salt: string): string {
  return `${salt}${i.toString(16)}`.padStart(64, '0');
}

/** `soon` expiring within 30 days, the rest 91 days to 2 years out; two-year certificates. */
function* certificates(total: number, soon: number): Generator<Record<string, unknown>> {
  for (let i = 0; i < total; i += 1) {
    const offset =
      i < soon ? (i / soon) * 30 * DAY_MS : (91 + ((i * 7919) % 639)) * DAY_MS + (i % 86_400) * 1000;
    yield certificateItem(record(i, 'a', NOW + offset));
  }
}

function* bandCertificates(count: number): Generator<Record<string, unknown>> {
  for (let i = 0; i < count; i += 1) {
    yield certificateItem(record(i, 'b', NOW + (30 + (i / count) * 60) * DAY_MS));
  }
}

function record(i: number, salt: string, notAfter: number): CertificateRecord {
  const serial = `SN-${salt}${String(i).padStart(7, '0')}`;
  return {
    certificateId: hex(i, salt),
    kind: 'DEVICE',
    status: 'ACTIVE',
    source: 'FLEET_PROVISIONING',
    serial,
    thingName: `fleetgate-${serial}`,
    issuer: 'CN=fleetgate Device CA,O=Example Corp,C=US',
    subject: `CN=${serial}`,
    notBefore: formatIso(notAfter - 730 * DAY_MS),
    notAfter: formatIso(notAfter),
    publicKeyHash: hex(i, `${salt}f`),
    createdAt: formatIso(NOW - 30 * DAY_MS),
    updatedAt: formatIso(NOW - 30 * DAY_MS),
  };
}

async function load(
  doc: DynamoDBDocumentClient,
  tableName: string,
  items: Iterable<Record<string, unknown>>,
): Promise<void> {
  const iterator = items[Symbol.iterator]();
  const worker = async () => {
    for (;;) {
      const batch: Array<{ PutRequest: { Item: Record<string, unknown> } }> = [];
      for (let next = iterator.next(); !next.done; next = iterator.next()) {
        batch.push({ PutRequest: { Item: next.value } });
        if (batch.length === 25) break;
      }
      if (batch.length === 0) return;
      let pending = batch;
      while (pending.length > 0) {
        const out = await withRetries(() =>
          doc.send(new BatchWriteCommand({ RequestItems: { [tableName]: pending } })),
        );
        pending = (out.UnprocessedItems?.[tableName] ?? []) as typeof pending;
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

async function scan(
  doc: DynamoDBDocumentClient,
  tableName: string,
): Promise<{ items: number; readUnits: number }> {
  let items = 0;
  let readUnits = 0;
  let startKey: Record<string, unknown> | undefined;
  do {
    // Pages of 1,000 items: DynamoDB Local fails 1 MB pages of a large in-memory table. Capacity is
    // the summed item sizes rounded up per page, so smaller pages change it by well under 1 %.
    const out = await withRetries(() =>
      doc.send(
        new ScanCommand({
          TableName: tableName,
          ExclusiveStartKey: startKey,
          Limit: 1000,
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
    items += out.Count ?? 0;
    readUnits += readUnitsOf(out.ConsumedCapacity);
    startKey = out.LastEvaluatedKey;
  } while (startKey);
  return { items, readUnits };
}

async function withRetries<T>(operation: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await operation();
    } catch (error) {
      if (attempt >= 6) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
    }
  }
}

/** An HTTP endpoint standing in for AWS IoT that only counts what reaches it. */
async function countingIotEndpoint(): Promise<{ url: string; count(): number; close(): Promise<void> }> {
  let calls = 0;
  const server = createServer((_request, response) => {
    calls += 1;
    response.writeHead(500).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    count: () => calls,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
