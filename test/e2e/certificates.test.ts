/**
 * `fleetgate certificates register`: claim and CA certificates recorded in the store (real PEMs),
 * idempotently, so the expiry sweep reports an expiring claim certificate.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issueTestCertificate } from '../support/certs';
import { fleetgate } from '../support/cli';
import { createTestTable, type TestTable } from '../support/dynamo';

const NOW_MS = Date.parse('2026-11-24T06:00:00.000Z');
let table: TestTable;
let dir: string;
let env: Record<string, string>;
let claim: { file: string; certificateId: string };

beforeAll(async () => {
  table = await createTestTable('e2e-certificates');
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-e2e-certificates-'));
  env = { AWS_ENDPOINT_URL_DYNAMODB: table.endpoint, TABLE_NAME: table.tableName };
  const ca = await createCa('Claim CA');
  const issued = await issueTestCertificate(ca, {
    notBefore: new Date(NOW_MS - 300 * 86_400_000),
    notAfter: new Date(NOW_MS + 5 * 86_400_000),
  });
  claim = { file: join(dir, 'claim.pem'), certificateId: issued.certificateId };
  await writeFile(claim.file, issued.pem);
  await writeFile(
    join(dir, 'not-a-certificate.pem'),
    '-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n',
  );
});
afterAll(async () => {
  await table.drop();
});

describe('fleetgate certificates register', () => {
  it('records a claim certificate once; the expiry sweep then reports it', async () => {
    // Act
    const first = await fleetgate(['certificates', 'register', claim.file, '--kind', 'claim', '--json'], env);
    const again = await fleetgate(['certificates', 'register', claim.file, '--kind', 'claim', '--json'], env);
    const sweep = await fleetgate(
      ['sweep', '--now', new Date(NOW_MS).toISOString(), '--out', dir, '--json'],
      env,
    );
    // Assess
    expect(first.code, first.stderr).toBe(0);
    expect(first.json()).toMatchObject({
      certificates: [{ certificateId: claim.certificateId, kind: 'CLAIM', result: 'registered' }],
    });
    expect(again.json()).toMatchObject({ certificates: [{ result: 'already-known' }] });
    expect(await table.store.getCertificate(claim.certificateId)).toMatchObject({
      kind: 'CLAIM',
      status: 'ACTIVE',
    });
    expect(sweep.code, sweep.stderr).toBe(0);
    expect(sweep.json<{ summary: { counts: Record<string, number> } }>().summary.counts).toMatchObject({
      EXPIRING_7D: 1,
    });
  });

  it('refuses a file that is not a certificate (exit 1, the reason) and a bad --kind (exit 2)', async () => {
    const bad = await fleetgate(
      ['certificates', 'register', join(dir, 'not-a-certificate.pem'), '--kind', 'ca', '--json'],
      env,
    );
    expect(bad.code).toBe(1);
    expect(bad.json()).toMatchObject({
      ok: false,
      error: { message: expect.stringContaining('not-a-certificate.pem') },
    });
    const usage = await fleetgate(
      ['certificates', 'register', claim.file, '--kind', 'device', '--json'],
      env,
    );
    expect(usage.code).toBe(2);
  });
});
