import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAY_MS, formatIso } from '../../shared/domain/expiry';
import { fleetgate } from '../support/cli';
import { createTestTable, type TestTable } from '../support/dynamo';

const NOW = '2026-11-24T06:00:00.000Z';
let table: TestTable;
let dir: string;
let env: Record<string, string>;
beforeAll(async () => {
  table = await createTestTable('e2e-sweep');
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-e2e-sweep-'));
  env = { AWS_ENDPOINT_URL_DYNAMODB: table.endpoint, TABLE_NAME: table.tableName, EXPIRY_LOOKBACK_DAYS: '3' };
  const at = (days: number) => formatIso(Date.parse(NOW) + days * DAY_MS);
  for (const [id, days] of [
    ['e2e-expired', -1],
    ['e2e-soon', 2],
    ['e2e-month', 20],
  ] as const) {
    await table.store.putCertificateIfAbsent({
      certificateId: id,
      kind: 'DEVICE',
      status: 'ACTIVE',
      source: 'JITR',
      serial: `SN-${id}`,
      issuer: 'CN=Test CA',
      notBefore: at(-300),
      notAfter: at(days),
      createdAt: NOW,
      updatedAt: NOW,
    });
  }
});
afterAll(async () => {
  await table.drop();
});

describe('fleetgate sweep', () => {
  it('sweeps the store target, writes the three files and prints one JSON summary', async () => {
    const result = await fleetgate(['sweep', '--now', NOW, '--out', dir, '--json'], env);
    expect(result.code).toBe(0);
    const summary = result.json<{
      summary: { counts: Record<string, number> };
      files: Record<string, string>;
    }>();
    expect(summary.summary.counts).toEqual({ EXPIRED: 1, EXPIRING_7D: 1, EXPIRING_30D: 1, TOO_OLD: 0 });
    const csv = await readFile(summary.files.csv ?? '', 'utf8');
    expect(csv.trim().split('\r\n')).toHaveLength(4);
    expect(await readFile(summary.files.html ?? '', 'utf8')).toContain('<svg');
  });

  it('answers a bad --now with a usage error (exit 2)', async () => {
    const result = await fleetgate(['sweep', '--now', 'soon', '--json'], env);
    expect(result.code).toBe(2);
    expect(result.json()).toMatchObject({ ok: false, error: { code: 'USAGE' } });
  });
});
