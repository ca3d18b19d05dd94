/**
 * Store benchmarks: DynamoDB round trips per device operation, and allowlist import throughput
 * and memory on a generated CSV (100,000 rows by default; BENCH_IMPORT_ROWS to change).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DeviceRecord } from '../shared/store/records';
import type { BenchContext, BenchRow } from './types';

const root = fileURLToPath(new URL('..', import.meta.url));

export async function run(context: BenchContext): Promise<BenchRow[]> {
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

  // Allowlist import through the real command, in its own process, so its peak RSS is its own.
  const count = Number(process.env.BENCH_IMPORT_ROWS ?? 100_000);
  const dir = await mkdtemp(join(tmpdir(), 'fleetgate-bench-'));
  const file = join(dir, 'allowlist.csv');
  const out = createWriteStream(file);
  out.write('serial,productLine,batch,color\n');
  for (let i = 0; i < count; i += 1) {
    if (!out.write(`BENCH-${String(i).padStart(7, '0')},gateway-x1,B${i % 100},blue\n`))
      await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  const result = await runImport(file, { AWS_ENDPOINT_URL_DYNAMODB: endpoint, TABLE_NAME: tableName });
  rows.push({
    name: `allowlist import ${count} rows`,
    value: count / result.seconds,
    unit: 'rows/s',
    target: '≥ 1000',
    ratio: count / result.seconds / 1000,
  });
  rows.push({
    name: `allowlist import ${count} rows peak RSS`,
    value: result.maxRssMb,
    unit: 'MB',
    target: '≤ 256',
    ratio: 256 / result.maxRssMb,
  });
  const again = await runImport(file, { AWS_ENDPOINT_URL_DYNAMODB: endpoint, TABLE_NAME: tableName });
  rows.push({
    name: `allowlist re-import ${count} rows (unchanged)`,
    value: count / again.seconds,
    unit: 'rows/s',
  });
  await rm(dir, { recursive: true, force: true });
  client.destroy();
  return rows;
}

/** Runs `fleetgate allowlist import` under GNU time-like accounting (peak RSS from /proc via getrusage of the child). */
async function runImport(
  file: string,
  env: Record<string, string>,
): Promise<{ seconds: number; maxRssMb: number }> {
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [join(root, 'bin', 'fleetgate.mjs'), 'allowlist', 'import', file, '--json'],
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
