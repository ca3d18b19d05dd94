import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetgate } from '../support/cli';
import type { TestTable } from '../support/dynamo';
import {
  PLANTED_DRIFT_COUNTS,
  type PlantedFleet,
  plantFleet,
  type ReconcileRig,
  startReconcileRig,
} from '../support/reconcile';

let table: TestTable;
let rig: ReconcileRig;
let fleet: PlantedFleet;
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  rig = await startReconcileRig('e2e-reconcile');
  table = rig.table;
  fleet = await plantFleet(table, rig.iot, 5);
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-e2e-reconcile-'));
  env = {
    AWS_ENDPOINT_URL_DYNAMODB: table.endpoint,
    TABLE_NAME: table.tableName,
    AWS_ENDPOINT_URL_IOT: rig.emulator.endpoint,
    AWS_REGION: 'us-east-1',
  };
}, 60_000);
afterAll(async () => {
  await rig?.stop();
});

describe('fleetgate reconcile', () => {
  it('reports the planted drift as one JSON document, writes JSON and CSV, exits 0', async () => {
    // Act
    const result = await fleetgate(['reconcile', '--out', dir, '--json'], env);
    // Assess
    expect(result.code).toBe(0);
    const summary = result.json<{
      summary: { counts: Record<string, number>; drift: number; certificatesListed: number };
      files: { json: string; csv: string };
    }>();
    expect(summary.summary.counts).toEqual(PLANTED_DRIFT_COUNTS);
    expect(summary.summary.certificatesListed).toBe(fleet.consistent + 6);
    const report = JSON.parse(await readFile(summary.files.json, 'utf8')) as {
      drift: Array<{ key: string }>;
    };
    expect(report.drift.map((drift) => drift.key).sort()).toEqual(fleet.expected);
    const csv = await readFile(summary.files.csv, 'utf8');
    expect(csv.trim().split('\r\n')).toHaveLength(1 + fleet.expected.length);
    expect(result.stderr).not.toContain('BEGIN');
  });

  it('exits 1 with the result when asked to fail on drift', async () => {
    const result = await fleetgate(['reconcile', '--out', dir, '--fail-on-drift', '--json'], env);
    expect(result.code).toBe(1);
    expect(result.json()).toMatchObject({
      ok: false,
      error: { code: 'FAILED' },
      result: { summary: { drift: 5 } },
    });
  });

  it('answers a bad --now with a usage error (exit 2)', async () => {
    const result = await fleetgate(['reconcile', '--now', 'soon', '--json'], env);
    expect(result.code).toBe(2);
    expect(result.json()).toMatchObject({ ok: false, error: { code: 'USAGE' } });
  });
});
