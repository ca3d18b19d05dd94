import { beforeAll, describe, expect, it } from 'vitest';
import { parseCertificatePem, parseCsrPem } from '../../shared/certificates';
import { checkKeyPolicy, checkValidity, DEFAULT_KEY_POLICY } from '../../shared/domain/certificate-rules';
import { ValidationError } from '../../shared/errors';
import {
  type CertificateAuthority,
  createCa,
  createTestCsr,
  issueTestCertificate,
  type TestCertificate,
} from '../support/certs';

let ca: CertificateAuthority;
let leaf: TestCertificate;
let csrPem: string;

beforeAll(async () => {
  ca = await createCa('Unit CA');
  leaf = await issueTestCertificate(ca, {
    commonName: 'device-1',
    serialNumber: 'SN-0001',
    notBefore: new Date('2026-01-01T00:00:00Z'),
    notAfter: new Date('2027-01-01T00:00:00Z'),
  });
  csrPem = await createTestCsr('rotating-device');
});

function ruleOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof ValidationError)
      return error.issues.map((issue) => `${issue.field}: ${issue.rule}`).join('; ');
    throw error;
  }
  return 'accepted';
}

describe('parseCertificatePem', () => {
  it('reads ids, names, validity and key facts', () => {
    const parsed = parseCertificatePem(leaf.pem);
    expect(parsed).toMatchObject({
      certificateId: leaf.certificateId,
      publicKeyHash: leaf.publicKeyHash,
      subject: 'CN=device-1, serialNumber=SN-0001',
      issuer: 'CN=Unit CA',
      commonName: 'device-1',
      serialNumber: 'SN-0001',
      notBefore: '2026-01-01T00:00:00.000Z',
      notAfter: '2027-01-01T00:00:00.000Z',
      key: { algorithm: 'EC', curve: 'P-256' },
    });
    expect(parsed.certificateId).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each([
    ['P-384', { algorithm: 'EC', curve: 'P-384' }],
    ['secp256k1', { algorithm: 'EC', curve: 'secp256k1' }],
    ['P-192', { algorithm: 'EC', curve: 'prime192v1' }],
    ['RSA-1024', { algorithm: 'RSA', bits: 1024 }],
    ['Ed25519', { algorithm: 'OTHER', name: 'ed25519' }],
  ] as const)('reads a %s key', async (kind, key) => {
    const certificate = await issueTestCertificate(ca, { kind });
    expect(parseCertificatePem(certificate.pem).key).toEqual(key);
  });

  it('accepts CRLF line endings and surrounding whitespace', () => {
    expect(parseCertificatePem(`\n  ${leaf.pem.replaceAll('\n', '\r\n')}  \n`).certificateId).toBe(
      leaf.certificateId,
    );
  });

  const body = () => leaf.pem.split('\n').slice(1, -2).join('\n');
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['a non-string', () => 42, /must be a string/],
    ['an empty string', () => '   ', /is empty/],
    ['text without PEM', () => 'hello world', /must be a PEM CERTIFICATE block/],
    ['an oversized PEM', () => leaf.pem + ' '.repeat(20_000), /at most 16384 bytes/],
    ['two certificates', () => `${leaf.pem}\n${leaf.pem}`, /exactly one PEM block \(found 2\)/],
    ['a CSR', () => csrPem, /must be a CERTIFICATE, found a CERTIFICATE REQUEST/],
    ['a private-key label', () => leaf.pem.replaceAll('CERTIFICATE', 'PRIVATE KEY'), /found a PRIVATE KEY/],
    ['mismatched labels', () => leaf.pem.replace('END CERTIFICATE', 'END X509 CRL'), /does not match/],
    ['leading garbage', () => `junk${leaf.pem}`, /nothing but the PEM block/],
    ['trailing garbage', () => `${leaf.pem}junk`, /nothing but the PEM block/],
    [
      'a truncated body',
      () => `-----BEGIN CERTIFICATE-----\n${body().slice(0, 200)}\n-----END CERTIFICATE-----`,
      /truncated|DER length/,
    ],
    [
      'a body cut at a 4-character boundary',
      () =>
        `-----BEGIN CERTIFICATE-----\n${body().replaceAll('\n', '').slice(0, 200)}\n-----END CERTIFICATE-----`,
      /DER length/,
    ],
    [
      'DER with trailing bytes',
      () =>
        `-----BEGIN CERTIFICATE-----\n${Buffer.concat([leaf.der, Buffer.from([0, 0, 0])]).toString('base64')}\n-----END CERTIFICATE-----`,
      /DER length/,
    ],
    ['invalid base64 characters', () => leaf.pem.replace(/\n(.)/, '\n*'), /invalid base64/],
    ['an empty body', () => '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----', /invalid base64/],
    [
      'well-formed DER that is not a certificate',
      () =>
        `-----BEGIN CERTIFICATE-----\n${Buffer.from([0x30, 0x03, 0x02, 0x01, 0x05]).toString('base64')}\n-----END CERTIFICATE-----`,
      /not a parsable X.509 certificate/,
    ],
  ];
  it.each(cases)('rejects %s with a field and a rule', (_name, input, rule) => {
    const message = ruleOf(() => parseCertificatePem(input()));
    expect(message).toMatch(/^certificatePem: /);
    expect(message).toMatch(rule);
  });

  it('names the field it was told', () => {
    expect(ruleOf(() => parseCertificatePem('x', { field: 'pem', maxBytes: 2048 }))).toMatch(/^pem: /);
  });
});

describe('parseCsrPem', () => {
  it('reads the subject and key and verifies the signature', async () => {
    const parsed = await parseCsrPem(csrPem);
    expect(parsed).toMatchObject({
      commonName: 'rotating-device',
      key: { algorithm: 'EC', curve: 'P-256' },
      signatureValid: true,
    });
    expect(parsed.publicKeyHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('rejects a certificate where a CSR is expected', async () => {
    await expect(parseCsrPem(leaf.pem)).rejects.toThrow(
      /csr: must be a CERTIFICATE REQUEST, found a CERTIFICATE/,
    );
  });
});

describe('checkKeyPolicy', () => {
  it.each([
    [{ algorithm: 'EC', curve: 'P-256' }, true],
    [{ algorithm: 'EC', curve: 'P-384' }, true],
    [{ algorithm: 'EC', curve: 'P-521' }, false],
    [{ algorithm: 'EC', curve: 'secp256k1' }, false],
    [{ algorithm: 'RSA', bits: 2048 }, true],
    [{ algorithm: 'RSA', bits: 2047 }, false],
    [{ algorithm: 'OTHER', name: 'ed25519' }, false],
  ] as const)('%j → %s', (key, ok) => {
    expect(checkKeyPolicy(key, DEFAULT_KEY_POLICY).ok).toBe(ok);
  });
});

describe('checkValidity', () => {
  const validity = { notBeforeMs: 1_000, notAfterMs: 2_000 };
  it.each([
    [999, 0, 'CERTIFICATE_NOT_YET_VALID'],
    [999, 1, 'ok'],
    [1_000, 0, 'ok'],
    [1_999, 0, 'ok'],
    [2_000, 0, 'CERTIFICATE_EXPIRED'],
  ])('at %i with %i ms skew → %s', (now, skew, expected) => {
    const check = checkValidity(validity, now, skew);
    expect(check.ok ? 'ok' : check.reason).toBe(expected);
  });
});
