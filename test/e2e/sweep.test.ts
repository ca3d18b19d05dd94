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

describe('fleetgate sweep --now (a what-if run)', () => {
  let whatIfTable: TestTable;
  let whatIfEnv: Record<string, string>;
  beforeAll(async () => {
    whatIfTable = await createTestTable('e2e-sweep-what-if');
    whatIfEnv = {
      AWS_ENDPOINT_URL_DYNAMODB: whatIfTable.endpoint,
      TABLE_NAME: whatIfTable.tableName,
      EXPIRY_LOOKBACK_DAYS: '3',
    };
    // Real runs classify as of the clock: the certificate expires five days from now.
    const now = Date.now();
    await whatIfTable.store.putCertificateIfAbsent({
      certificateId: 'e2e-what-if-soon',
      kind: 'DEVICE',
      status: 'ACTIVE',
      source: 'JITR',
      serial: 'SN-e2e-what-if-soon',
      issuer: 'CN=Test CA',
      notBefore: formatIso(now - 300 * DAY_MS),
      notAfter: formatIso(now + 5 * DAY_MS),
      createdAt: formatIso(now),
      updatedAt: formatIso(now),
    });
  });
  afterAll(async () => {
    await whatIfTable.drop();
  });

  it('counts what expired by then as expired, and is never the baseline of the next real run', async () => {
    type Summary = { runId: string; simulated: boolean; change: Record<string, unknown> };
    // Prepare: a real run, then a what-if half a year on, written to another folder.
    const real = await fleetgate(['sweep', '--out', join(dir, 'real'), '--json'], whatIfEnv);
    expect(real.code).toBe(0);
    const first = real.json<Summary>();
    expect(first.change).toMatchObject({ newAtRisk: 1 });
    const later = formatIso(Date.now() + 180 * DAY_MS);
    const whatIf = await fleetgate(['sweep', '--now', later, '--out', join(dir, 'what-if')], whatIfEnv);
    expect(whatIf.code).toBe(0);
    // Act: the next real run.
    const next = await fleetgate(['sweep', '--out', join(dir, 'real'), '--json'], whatIfEnv);
    // Assess
    expect(next.code).toBe(0);
    expect(next.json<Summary>().change).toMatchObject({
      previousRunId: first.runId,
      newAtRisk: 0,
      resolved: 0,
      expired: 0,
    });
    expect(whatIf.stdout).toContain(
      `since ${first.runId} (the latest real run on this table before that instant): 0 new, 0 resolved, 1 expired, 0 reclassified, 0 left the look-back`,
    );
    expect(whatIf.stdout).toContain('what-if run, not the baseline of later runs');
    expect([first.simulated, next.json<Summary>().simulated]).toEqual([false, false]);
  });
});

describe('fleetgate sweep: devices not asked to rotate', () => {
  let devicesTable: TestTable;
  let devicesEnv: Record<string, string>;
  beforeAll(async () => {
    devicesTable = await createTestTable('e2e-sweep-not-asked');
    devicesEnv = {
      AWS_ENDPOINT_URL_DYNAMODB: devicesTable.endpoint,
      TABLE_NAME: devicesTable.tableName,
      EXPIRY_LOOKBACK_DAYS: '3',
    };
    const at = (days: number) => formatIso(Date.parse(NOW) + days * DAY_MS);
    // Two factory devices that never connected, a quarantined one and one that rotates.
    for (const [serial, state, status] of [
      ['SN-BOX-1', 'PROVISIONING', 'PENDING'],
      ['SN-BOX-2', 'PROVISIONING', 'PENDING'],
      ['SN-HELD', 'QUARANTINED', 'ACTIVE'],
      ['SN-LIVE', 'ACTIVE', 'ACTIVE'],
    ] as const) {
      const created = await devicesTable.store.createDevice(
        { serial, state, version: 1, attributes: {}, createdAt: NOW, updatedAt: NOW },
        { id: `h-${serial}`, actor: 'test' },
      );
      expect(created).toBe(true);
      await devicesTable.store.putCertificateIfAbsent({
        certificateId: `cert-${serial}`,
        kind: 'DEVICE',
        status,
        source: status === 'PENDING' ? 'FACTORY' : 'JITR',
        serial,
        issuer: 'CN=Test CA',
        notBefore: at(-300),
        notAfter: at(3),
        createdAt: NOW,
        updatedAt: NOW,
      });
    }
  });
  afterAll(async () => {
    await devicesTable.drop();
  });

  it('says how many devices, and why, in the CLI, the JSON summary and the HTML', async () => {
    // Act
    const human = await fleetgate(['sweep', '--now', NOW, '--out', join(dir, 'not-asked')], devicesEnv);
    const json = await fleetgate(
      ['sweep', '--now', NOW, '--out', join(dir, 'not-asked'), '--json'],
      devicesEnv,
    );
    // Assess
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(
      '  not asked to rotate: 2 devices never connected (PROVISIONING), 1 device held (QUARANTINED): listed in the report only\n',
    );
    expect(human.stdout).toContain('(1 device should rotate)');
    const summary = json.json<{
      summary: { notAskedToRotate: Record<string, number>; rotationCandidates: number };
      files: { html: string };
    }>();
    expect(summary.summary).toMatchObject({
      notAskedToRotate: { held: 1, neverConnected: 2 },
      rotationCandidates: 1,
    });
    const html = await readFile(summary.files.html, 'utf8');
    expect(html).toContain('<div class="delta">device within 30 d or too old;');
    expect(html).not.toContain('devices within');
  });
});
