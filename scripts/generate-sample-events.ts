/**
 * Writes the sample pre-provisioning hook events under events/hook/ (`npx tsx
 * scripts/generate-sample-events.ts`). Certificates are generated here, once, with fixed validity so
 * the samples stay usable; ids are fake but well-formed; no private key is ever written.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCertificateAuthority, createCsr, createDeviceCertificate } from '../local/pki';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = join(root, 'events', 'hook');

/** The claim certificate id of the samples; tests allowlist serials for it. */
const SAMPLE_CLAIM_ID = 'c1a100000000000000000000000000000000000000000000000000000000000f';
const TEMPLATE_ARN = 'arn:aws:iot:us-east-1:123456789012:provisioningtemplate/fleetgate-dev-fleet';

async function main(): Promise<void> {
  const validity = {
    notBefore: new Date('2026-01-01T00:00:00Z'),
    notAfter: new Date('2036-01-01T00:00:00Z'),
  };
  const ca = await createCertificateAuthority({ subject: { commonName: 'Sample AWS IoT CA' }, ...validity });
  const device = await createDeviceCertificate(ca, {
    subject: { commonName: 'AWS IoT Certificate' },
    ...validity,
  });
  const csr = await createCsr({ subject: { commonName: 'SN-000001' } });
  const event = (parameters: Record<string, unknown>, overrides: Record<string, unknown> = {}) => ({
    claimCertificateId: SAMPLE_CLAIM_ID,
    certificateId: device.certificateId,
    certificatePem: device.certificatePem,
    templateArn: TEMPLATE_ARN,
    clientId: '221a6d10-9c7f-42f1-9153-e52e6fc869c1',
    parameters,
    ...overrides,
  });
  const samples: Record<string, unknown> = {
    'allowed.json': event({ SerialNumber: 'SN-000001' }),
    'unknown-serial.json': event({ SerialNumber: 'SN-UNKNOWN-404' }),
    'invalid-serial.json': event({ SerialNumber: "SN-1'; DROP TABLE devices;--" }),
    'missing-serial.json': event({ DeviceLocation: 'line-4' }),
    'csr-instead-of-certificate.json': event({ SerialNumber: 'SN-000001' }, { certificatePem: csr.csrPem }),
  };
  await mkdir(dir, { recursive: true });
  for (const [name, sample] of Object.entries(samples)) {
    await writeFile(join(dir, name), `${JSON.stringify(sample, null, 2)}\n`);
  }
  process.stdout.write(`wrote ${Object.keys(samples).length} events to ${dir}\n`);
}

await main();
