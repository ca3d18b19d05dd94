/**
 * `fleetgate factory import` through the CLI: one JSON document with a row per certificate, the
 * exit codes of the contract (0 when every row is registered or already registered, 3 when a row was
 * rejected or failed — the report is the same document —, 2 on a usage error), a re-run that
 * reports everything already registered, and no PEM anywhere in the output.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreatePolicyCommand } from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CertificateAuthority, createCertificateAuthority } from '../../local/pki';
import { fleetgate } from '../support/cli';
import { registerTrustedCa } from '../support/device-ca';
import type { TestTable } from '../support/dynamo';
import { deviceCertificate } from '../support/jitr';
import { type ReconcileRig, startReconcileRig } from '../support/reconcile';

let table: TestTable;
let rig: ReconcileRig;
let ca: CertificateAuthority;
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  rig = await startReconcileRig('e2e-factory');
  table = rig.table;
  ca = await createCertificateAuthority({ subject: { commonName: 'Factory CA' } });
  await registerTrustedCa(rig.iot, table.store, ca);
  await rig.iot.send(
    new CreatePolicyCommand({
      policyName: 'fleetgate-e2e-device',
      policyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
      }),
    }),
  );
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-e2e-factory-'));
  await writeFile(join(dir, 'ca.pem'), ca.certificatePem);
  const good = await Promise.all(['E2E-F-1', 'E2E-F-2'].map((serial) => deviceCertificate(ca, serial)));
  const rogue = await deviceCertificate(
    await createCertificateAuthority({ subject: { commonName: 'Other CA' } }),
    'E2E-F-3',
  );
  const rows = [...good, rogue];
  for (const [i, certificate] of rows.entries())
    await writeFile(join(dir, `${i}.pem`), certificate.certificatePem);
  await writeFile(
    join(dir, 'batch.csv'),
    `serial,certificate\nE2E-F-1,0.pem\nE2E-F-2,1.pem\nE2E-F-3,2.pem\n`,
  );
  const clean = await Promise.all(['E2E-F-4', 'E2E-F-5'].map((serial) => deviceCertificate(ca, serial)));
  for (const [i, certificate] of clean.entries())
    await writeFile(join(dir, `clean-${i}.pem`), certificate.certificatePem);
  await writeFile(join(dir, 'clean.csv'), `serial,certificate\nE2E-F-4,clean-0.pem\nE2E-F-5,clean-1.pem\n`);
  const failing = await deviceCertificate(ca, 'E2E-F-6');
  await writeFile(join(dir, 'failing-0.pem'), failing.certificatePem);
  await writeFile(join(dir, 'failing.csv'), `serial,certificate\nE2E-F-6,failing-0.pem\n`);
  env = {
    AWS_ENDPOINT_URL_DYNAMODB: table.endpoint,
    TABLE_NAME: table.tableName,
    AWS_ENDPOINT_URL_IOT: rig.emulator.endpoint,
    AWS_REGION: 'us-east-1',
    DEVICE_POLICY_NAME: 'fleetgate-e2e-device',
  };
}, 60_000);
afterAll(async () => {
  await rig?.stop();
});

interface Report {
  counts: Record<string, number>;
  rows: Array<{ serial?: string; status: string; reason?: string; detail?: string }>;
}

describe('fleetgate factory import', () => {
  it('imports a manifest whose rows all register, exits 0', async () => {
    // Act
    const result = await fleetgate(
      ['factory', 'import', join(dir, 'clean.csv'), '--ca', join(dir, 'ca.pem'), '--json'],
      env,
    );

    // Assess
    expect(result.code, result.stderr).toBe(0);
    expect(result.json<Report>().counts).toMatchObject({ registered: 2, rejected: 0, failed: 0 });
  });

  it('imports a manifest, reports each row, exits 3 for its rejected row; a re-run reports everything already done, exit 3 again', async () => {
    // Act
    const first = await fleetgate(
      ['factory', 'import', join(dir, 'batch.csv'), '--ca', join(dir, 'ca.pem'), '--json'],
      env,
    );
    const second = await fleetgate(
      ['factory', 'import', join(dir, 'batch.csv'), '--ca', join(dir, 'ca.pem'), '--json'],
      env,
    );

    // Assess
    expect(first.code, first.stderr).toBe(3);
    expect(first.stderr).toContain('1 row rejected (exit 3)');
    const report = first.json<Report>();
    expect(report.rows.map((row) => `${row.serial}:${row.status}:${row.reason ?? ''}`)).toEqual([
      'E2E-F-1:registered:',
      'E2E-F-2:registered:',
      'E2E-F-3:rejected:WRONG_CA',
    ]);
    expect(second.code).toBe(3);
    expect(second.json<Report>().counts).toMatchObject({
      registered: 0,
      'already-registered': 2,
      rejected: 1,
    });
    expect(await table.store.getDevice('E2E-F-1')).toMatchObject({ state: 'PROVISIONING', batch: 'batch' });
    for (const result of [first, second]) expect(`${result.stdout}${result.stderr}`).not.toContain('BEGIN');
  });

  it('exits 3 with the report when a row failed (the device policy does not exist)', async () => {
    // Act
    const result = await fleetgate(
      ['factory', 'import', join(dir, 'failing.csv'), '--ca', join(dir, 'ca.pem'), '--json'],
      { ...env, DEVICE_POLICY_NAME: 'fleetgate-e2e-no-such-policy' },
    );

    // Assess
    expect(result.code, result.stderr).toBe(3);
    const report = result.json<Report>();
    expect(report.counts).toMatchObject({ registered: 0, failed: 1 });
    expect(report.rows[0]).toMatchObject({ serial: 'E2E-F-6', status: 'failed' });
    expect(result.stderr).toContain('1 row failed');
  });

  it('exits 2 on a usage error (both --ca and --without-ca)', async () => {
    const result = await fleetgate(
      ['factory', 'import', join(dir, 'batch.csv'), '--ca', join(dir, 'ca.pem'), '--without-ca', '--json'],
      env,
    );
    expect(result.code).toBe(2);
    expect(result.json<{ error: { code: string } }>().error.code).toBe('USAGE');
  });
});
