/**
 * `npm run bench`: runs every `bench/*.bench.ts` (or those named on the command line), prints one
 * table (name, value, unit, target, ratio) and saves the rows as JSON under bench/results/.
 */

import { randomUUID } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { type DynamoDbLocal, startDynamoDbLocal } from '../local/dynamodb-local';
import { ensureTable } from '../local/table';
import { ProvisioningStore } from '../shared/store/provisioning-store';
import type { BenchContext, BenchRow } from './types';

const here = fileURLToPath(new URL('.', import.meta.url));

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const files = (await readdir(here))
    .filter((file) => file.endsWith('.bench.ts'))
    .filter((file) => only.length === 0 || only.some((name) => file.includes(name)))
    .sort();
  process.env.AWS_ACCESS_KEY_ID ??= 'local';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'local';
  process.env.AWS_REGION ??= 'us-east-1';
  process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
  process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
  let ddb: DynamoDbLocal | undefined;
  const dynamodb = async () => {
    ddb ??= await startDynamoDbLocal();
    return ddb.endpoint;
  };
  const context: BenchContext = {
    dynamodb,
    table: async (prefix) => {
      const endpoint = await dynamodb();
      const client = new DynamoDBClient({
        endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      });
      const tableName = `bench-${prefix}-${randomUUID().slice(0, 8)}`;
      await ensureTable(client, tableName);
      const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
      return { endpoint, client, tableName, store: new ProvisioningStore(doc, tableName) };
    },
  };
  const rows: Array<BenchRow & { suite: string }> = [];
  try {
    for (const file of files) {
      const suite = file.replace('.bench.ts', '');
      process.stderr.write(`bench: ${suite}…\n`);
      const module = (await import(join(here, file))) as {
        run: (context: BenchContext) => Promise<BenchRow[]>;
      };
      for (const row of await module.run(context)) rows.push({ suite, ...row });
    }
  } finally {
    await ddb?.stop();
  }
  printTable(rows);
  const dir = join(here, 'results');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${new Date().toISOString().replaceAll(':', '-')}.json`);
  await writeFile(
    file,
    `${JSON.stringify({ at: new Date().toISOString(), node: process.version, rows }, null, 2)}\n`,
  );
  process.stdout.write(`\nsaved ${file}\n`);
}

function printTable(rows: Array<BenchRow & { suite: string }>): void {
  const header = ['suite', 'name', 'value', 'unit', 'target', 'ratio'];
  const body = rows.map((row) => [
    row.suite,
    row.name,
    formatNumber(row.value),
    row.unit,
    row.target ?? '',
    row.ratio === undefined ? '' : `${formatNumber(row.ratio)}×`,
  ]);
  const widths = header.map((title, i) =>
    Math.max(title.length, ...body.map((cells) => (cells[i] ?? '').length)),
  );
  const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  process.stdout.write(`${line(header)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n`);
  for (const cells of body) process.stdout.write(`${line(cells)}\n`);
}

function formatNumber(value: number): string {
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2);
}

await main();
