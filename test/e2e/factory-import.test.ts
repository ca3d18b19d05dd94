/**
 * `fleetgate factory import` through the CLI: one JSON document with a row per certificate, the
 * exit codes of the contract (0 with rejected rows reported, 2 on a usage error), a re-run that
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
  it('imports a manifest, reports each row, exits 0; a re-run reports everything already done', async () => {
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
    expect(first.code, first.stderr).toBe(0);
    const report = first.json<Report>();
    expect(report.rows.map((row) => `${row.serial}:${row.status}:${row.reason ?? ''}`)).toEqual([
      'E2E-F-1:registered:',
      'E2E-F-2:registered:',
      'E2E-F-3:rejected:WRONG_CA',
    ]);
    expect(second.code).toBe(0);
    expect(second.json<Report>().counts).toMatchObject({
      registered: 0,
      'already-registered': 2,
      rejected: 1,
    });
    expect(await table.store.getDevice('E2E-F-1')).toMatchObject({ state: 'PROVISIONING', batch: 'batch' });
    for (const result of [first, second]) expect(`${result.stdout}${result.stderr}`).not.toContain('BEGIN');
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
