/**
 * Reading a factory batch (`fleetgate factory import`): a row whose manifest cell names a file that
 * is not there says so with the path as the manifest wrote it, so the operator can find the line.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readBatch } from '../../shared/factory/batch';

const dir = mkdtempSync(join(tmpdir(), 'fg-factory-batch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('readBatch (manifest)', () => {
  it("names a missing certificate file by the manifest's own path", () => {
    mkdirSync(join(dir, 'certs'));
    writeFileSync(
      join(dir, 'certs', 'present.pem'),
      '-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n',
    );
    const manifest = join(dir, 'batch.csv');
    writeFileSync(manifest, 'serial,certificate\nSN-1,certs/present.pem\nSN-2,certs/missing.pem\n');

    const batch = readBatch(manifest, { maxPemBytes: 8192 });

    expect(batch.rows.map((row) => row.unreadable)).toEqual([
      undefined,
      'certificate: certs/missing.pem is not a file',
    ]);
  });
});
