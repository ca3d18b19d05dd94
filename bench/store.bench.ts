/**
 * Store benchmarks: DynamoDB round trips per device operation; allowlist import throughput against
 * DynamoDB Local's raw 25-item BatchWriteItem ceiling measured in the same run (same concurrency,
 * rows of the same shape, one item a row) and against the ceiling of the import's own writes (its
 * device + history items, its conditional transactions, nothing read first), and the import's peak RSS at 10,000, 100,000 and 1,000,000 rows
 * (BENCH_IMPORT_SIZES, comma-separated, to change) — flat memory means it does not grow with the file.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BatchWriteItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { AllowlistEntry } from '../shared/allowlist/rows';
import { createAbsent } from '../shared/store/allowlist-import';
import type { ProvisioningStore } from '../shared/store/provisioning-store';
import type { DeviceRecord } from '../shared/store/records';
import type { BenchContext, BenchRow } from './types';

const root = fileURLToPath(new URL('..', import.meta.url));

export async function run(context: BenchContext): Promise<BenchRow[]> {
  buildCli();
  const { endpoint, client, tableName, store } = await context.table('store');
  const rows: BenchRow[] = [];
  const now = new Date().toISOString();

  // Round trips of each device operation, counted by the store itself.
  const device: DeviceRecord = {
    serial: 'BENCH-0001',
    state: 'ALLOWLISTED',
    version: 1,
    attributes: {},
    createdAt: now,
    updatedAt: now,
  };
  const measure = async (name: string, target: number, op: () => Promise<unknown>) => {
    const before = store.stats.roundTrips;
    await op();
    const trips = store.stats.roundTrips - before;
    rows.push({
      name: `round trips: ${name}`,
      value: trips,
      unit: 'calls',
      target: `≤ ${target}`,
      ratio: target / trips,
    });
  };
  await measure('create device', 1, () => store.createDevice(device, { id: 'c', actor: 'bench' }));
  await measure('load provisioning facts', 1, () =>
    store.loadProvisioningFacts({ serial: device.serial, certificateId: 'c1', publicKeyHash: 'k1' }),
  );
  let bound: DeviceRecord = device;
  await measure('bind certificate', 1, async () => {
    const outcome = await store.bindCertificate({
      serial: device.serial,
      event: 'PROVISION',
      device,
      certificate: {
        certificateId: 'c1',
        kind: 'DEVICE',
        status: 'PENDING',
        source: 'FLEET_PROVISIONING',
        issuer: 'CN=bench',
        notBefore: now,
        notAfter: '2030-01-01T00:00:00.000Z',
        createdAt: now,
        updatedAt: now,
      },
      publicKeyHash: 'k1',
      now,
      history: { id: 'b', actor: 'bench' },
      claim: { claimCertificateId: 'claim', limitPerMinute: 100 },
    });
    if (outcome.status === 'applied') bound = outcome.device;
  });
  await measure('transition (activate)', 1, () =>
    store.transition({
      serial: device.serial,
      event: 'ACTIVATE',
      device: bound,
      transitionKey: 'a',
      now,
      history: { id: 'a', actor: 'bench' },
    }),
  );

  // Allowlist import through the real command, in its own process, so its peak RSS is its own;
  // each size on a fresh table.
  const sizes = (process.env.BENCH_IMPORT_SIZES ?? '10000,100000,1000000').split(',').map(Number);
  const dir = await mkdtemp(join(tmpdir(), 'fleetgate-bench-'));
  const peaks: Array<{ count: number; rssMb: number }> = [];
  let importRowsPerSecond: number | undefined;
  for (const count of sizes) {
    const file = join(dir, `allowlist-${count}.csv`);
    const out = createWriteStream(file);
    out.write('serial,productLine,batch,color\n');
    for (let i = 0; i < count; i += 1) {
      if (!out.write(`BENCH-${String(i).padStart(7, '0')},gateway-x1,B${i % 100},blue\n`))
        await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');
    const table = count === sizes[0] ? { endpoint, tableName } : await context.table(`store-${count}`);
    const env = { AWS_ENDPOINT_URL_DYNAMODB: table.endpoint, TABLE_NAME: table.tableName };
    const result = await runImport(file, env);
    const rowsPerSecond = count / result.seconds;
    if (count === 100_000 || importRowsPerSecond === undefined) importRowsPerSecond = rowsPerSecond;
    rows.push({
      name: `allowlist import ${count} rows (--concurrency ${IMPORT_CONCURRENCY})`,
      value: rowsPerSecond,
      unit: 'rows/s',
      ...(count === 100_000 ? { target: '≥ 1000', ratio: rowsPerSecond / 1000 } : {}),
    });
    rows.push({
      name: `allowlist import ${count} rows peak RSS`,
      value: result.maxRssMb,
      unit: 'MB',
      target: '≤ 256',
      ratio: 256 / result.maxRssMb,
    });
    peaks.push({ count, rssMb: result.maxRssMb });
    if (count === 100_000) {
      const again = await runImport(file, env);
      rows.push({
        name: `allowlist re-import ${count} rows (unchanged)`,
        value: count / again.seconds,
        unit: 'rows/s',
      });
    }
    await rm(file, { force: true });
  }
  const smallest = peaks[0];
  const largest = peaks[peaks.length - 1];
  if (smallest && largest && largest !== smallest) {
    rows.push({
      name: `allowlist import peak RSS growth, ${smallest.count} → ${largest.count} rows`,
      value: largest.rssMb / smallest.rssMb,
      unit: '× (flat = 1)',
      target: '≤ 1.25× (flat)',
      ratio: 1.25 / (largest.rssMb / smallest.rssMb),
    });
  }

  // DynamoDB Local's own ceiling for what the import writes: 25-item BatchWriteItem, same concurrency.
  const raw = await context.table('store-raw');
  const rawRowsPerSecond = await rawBatchWriteRowsPerSecond(raw.client, raw.tableName, RAW_BATCH_ROWS);
  rows.push({
    name: `raw BatchWriteItem ceiling (25 items, concurrency ${IMPORT_CONCURRENCY}, ${RAW_BATCH_ROWS} rows)`,
    value: rawRowsPerSecond,
    unit: 'rows/s',
  });
  if (importRowsPerSecond !== undefined) {
    rows.push({
      name: 'allowlist import ÷ raw BatchWriteItem ceiling',
      value: importRowsPerSecond / rawRowsPerSecond,
      unit: 'ratio',
      target: '≥ 0.8',
      ratio: importRowsPerSecond / rawRowsPerSecond / 0.8,
    });
  }
  // The same ceiling for the import's own items: the device and CREATED history item of each row,
  // built and written by the import's own write step (transactions of 50 serials, conditional), same
  // concurrency, nothing read first. The import writes twice the raw loop's items a row and reads
  // first, so its ratio to the raw BatchWriteItem row is capped near 0.5 by design; this one is not.
  const own = await context.table('store-own');
  const ownRowsPerSecond = await importWritesRowsPerSecond(own.store, RAW_BATCH_ROWS);
  rows.push({
    name: `raw ceiling of the import's own writes (device + history, conditional transactions of 50 rows, concurrency ${IMPORT_CONCURRENCY}, ${RAW_BATCH_ROWS} rows)`,
    value: ownRowsPerSecond,
    unit: 'rows/s',
  });
  if (importRowsPerSecond !== undefined) {
    rows.push({
      name: "allowlist import ÷ raw ceiling of the import's own writes",
      value: importRowsPerSecond / ownRowsPerSecond,
      unit: 'ratio',
    });
  }
  own.client.destroy();
  raw.client.destroy();
  await rm(dir, { recursive: true, force: true });
  client.destroy();
  return rows;
}

const IMPORT_CONCURRENCY = 8;
const RAW_BATCH_ROWS = 50_000;

/**
 * Rows/s of plain 25-item BatchWriteItem calls (UnprocessedItems retried), `IMPORT_CONCURRENCY` in
 * flight: device items of the import's shape (keys, state, allowlist fields, GSI key of the state
 * index), nothing read first.
 */
async function rawBatchWriteRowsPerSecond(
  client: DynamoDBClient,
  tableName: string,
  count: number,
): Promise<number> {
  const now = new Date().toISOString();
  const item = (i: number) => {
    const serial = `RAW-${String(i).padStart(7, '0')}`;
    return {
      PutRequest: {
        Item: {
          PK: { S: `DEVICE#${serial}` },
          SK: { S: 'DEVICE' },
          entity: { S: 'DEVICE' },
          serial: { S: serial },
          state: { S: 'ALLOWLISTED' },
          GSI2PK: { S: `STATE#ALLOWLISTED#${i % 16}` },
          GSI2SK: { S: serial },
          version: { N: '1' },
          productLine: { S: 'gateway-x1' },
          batch: { S: `B${i % 100}` },
          attributes: { M: { color: { S: 'blue' } } },
          createdAt: { S: now },
          updatedAt: { S: now },
        },
      },
    };
  };
  const batches = Math.ceil(count / 25);
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < batches) {
      const batch = next;
      next += 1;
      let requests = Array.from({ length: Math.min(25, count - batch * 25) }, (_, j) => item(batch * 25 + j));
      while (requests.length > 0) {
        const response = await client.send(
          new BatchWriteItemCommand({ RequestItems: { [tableName]: requests } }),
        );
        requests = (response.UnprocessedItems?.[tableName] ?? []) as typeof requests;
      }
    }
  };
  await Promise.all(Array.from({ length: IMPORT_CONCURRENCY }, worker));
  return count / ((performance.now() - started) / 1000);
}

/**
 * Rows/s of the import's write step alone (`createAbsent`: per 100-row chunk, transactions of 50
 * device + CREATED history puts conditional on `attribute_not_exists`), `IMPORT_CONCURRENCY` chunks
 * in flight as the CLI writes them, rows of the bench file's shape, nothing read first.
 */
async function importWritesRowsPerSecond(store: ProvisioningStore, count: number): Promise<number> {
  const now = new Date().toISOString();
  const context = { now, actor: 'bench', idFor: () => randomUUID() };
  const chunks = Math.ceil(count / 100);
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < chunks) {
      const chunk = next;
      next += 1;
      const entries: AllowlistEntry[] = Array.from({ length: Math.min(100, count - chunk * 100) }, (_, j) => {
        const i = chunk * 100 + j;
        return {
          serial: `OWN-${String(i).padStart(7, '0')}`,
          productLine: 'gateway-x1',
          batch: `B${i % 100}`,
          attributes: { color: 'blue' },
        };
      });
      const created = await createAbsent(store.db, entries, context);
      if (created.imported !== entries.length) throw new Error('bench: a raw row already existed');
    }
  };
  await Promise.all(Array.from({ length: IMPORT_CONCURRENCY }, worker));
  return count / ((performance.now() - started) / 1000);
}

/** Runs `fleetgate allowlist import` under GNU time-like accounting (peak RSS from /proc via getrusage of the child). */
async function runImport(
  file: string,
  env: Record<string, string>,
): Promise<{ seconds: number; maxRssMb: number }> {
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [
      join(root, 'bin', 'fleetgate.mjs'),
      ...['allowlist', 'import', file, '--concurrency', String(IMPORT_CONCURRENCY), '--json'],
    ],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`allowlist import exited ${code}: ${stdout.slice(0, 500)}`);
  const summary = JSON.parse(stdout) as {
    imported: number;
    unchanged: number;
    rejected: unknown[];
    peakRssMb?: number;
  };
  if (summary.rejected.length > 0) throw new Error('bench rows were rejected');
  return { seconds, maxRssMb: summary.peakRssMb ?? Number.NaN };
}

/**
 * The import is measured as users run it: the CLI bundle (bin/fleetgate.mjs falls back to the
 * TypeScript through tsx when a source is newer than the bundle, ~50 MB more RSS and slower).
 */
function buildCli(): void {
  const built = spawnSync(process.execPath, [join(root, 'scripts', 'build-cli.mjs')], {
    cwd: root,
    encoding: 'utf8',
  });
  if (built.status !== 0) throw new Error(`building the CLI bundle failed: ${built.stderr.slice(-500)}`);
}
