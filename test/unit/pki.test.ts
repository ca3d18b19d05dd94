import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  certificateId,
  createCertificateAuthority,
  createCsr,
  createDeviceCertificate,
  exportPrivateKeyPem,
  exportPublicKeyPem,
  InvalidCsrError,
  isCaCertificate,
  isSignedBy,
  parseCertificate,
  parseCsr,
  publicKeyFingerprint,
  signCsr,
  subjectFields,
  toDistinguishedName,
} from '../../local/pki';

describe('pki', () => {
  it('creates a self-signed EC P-256 CA with cA=true', async () => {
    // Act
    const ca = await createCertificateAuthority({
      subject: { commonName: 'Acme Root', organization: 'Acme' },
    });
    // Assess
    expect(ca.certificate.subject).toBe('CN=Acme Root, O=Acme');
    expect(isCaCertificate(ca.certificate)).toBe(true);
    expect(await ca.certificate.isSelfSigned()).toBe(true);
    expect(ca.certificate.publicKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' });
  });

  it('computes the AWS certificate id as the SHA-256 of the DER', async () => {
    const ca = await createCertificateAuthority();
    const der = Buffer.from(parseCertificate(ca.certificatePem).rawData);
    const expected = createHash('sha256').update(der).digest('hex');
    expect(certificateId(ca.certificatePem)).toBe(expected);
    expect(ca.certificateId).toBe(expected);
    expect(expected).toMatch(/^[0-9a-f]{64}$/);
  });

  it('issues a device certificate signed by the CA with the requested subject and validity', async () => {
    const ca = await createCertificateAuthority();
    const notBefore = new Date('2026-01-01T00:00:00Z');
    const notAfter = new Date('2027-01-01T00:00:00Z');
    const device = await createDeviceCertificate(ca, {
      subject: { commonName: 'dev-1', serialNumber: 'SN-000001' },
      notBefore,
      notAfter,
    });
    expect(subjectFields(device.certificate)).toEqual({ commonName: 'dev-1', serialNumber: 'SN-000001' });
    expect(device.certificate.notBefore.toISOString()).toBe(notBefore.toISOString());
    expect(device.certificate.notAfter.toISOString()).toBe(notAfter.toISOString());
    expect(isCaCertificate(device.certificate)).toBe(false);
    expect(await isSignedBy(device.certificate, ca.certificate)).toBe(true);
    const other = await createCertificateAuthority();
    expect(await isSignedBy(device.certificate, other.certificate)).toBe(false);
  });

  it('issues intermediates and RSA CAs', async () => {
    const root = await createCertificateAuthority({ algorithm: 'RSA-2048', subject: 'CN=RSA Root' });
    const intermediate = await createCertificateAuthority({ issuer: root, subject: 'CN=Intermediate' });
    expect(await isSignedBy(intermediate.certificate, root.certificate)).toBe(true);
    expect(isCaCertificate(intermediate.certificate)).toBe(true);
  });

  it('creates a CSR and signs it with a CA, keeping the CSR key and subject', async () => {
    const ca = await createCertificateAuthority();
    const { csrPem, keys } = await createCsr({ subject: { commonName: 'dev-2', serialNumber: 'SN-2' } });
    expect(csrPem).toContain('BEGIN CERTIFICATE REQUEST');
    const issued = await signCsr(ca, csrPem);
    expect(subjectFields(issued.certificate)).toEqual({ commonName: 'dev-2', serialNumber: 'SN-2' });
    expect(await exportPublicKeyPem(keys.publicKey)).toBe(issued.certificate.publicKey.toString('pem'));
    expect(await isSignedBy(issued.certificate, ca.certificate)).toBe(true);
  });

  it('rejects a malformed CSR with InvalidCsrError', async () => {
    await expect(parseCsr('not a csr')).rejects.toBeInstanceOf(InvalidCsrError);
    await expect(parseCsr('x'.repeat(9000))).rejects.toBeInstanceOf(InvalidCsrError);
  });

  it('exports PEM private keys and distinct public key fingerprints', async () => {
    const ca = await createCertificateAuthority();
    const a = await createDeviceCertificate(ca, { subject: { commonName: 'a' } });
    const b = await createDeviceCertificate(ca, { subject: { commonName: 'b' } });
    expect(await exportPrivateKeyPem(a.keys.privateKey)).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(publicKeyFingerprint(a.certificatePem)).not.toBe(publicKeyFingerprint(b.certificatePem));
    expect(publicKeyFingerprint(a.certificate)).toBe(publicKeyFingerprint(a.certificatePem));
  });

  it('renders and escapes distinguished names', () => {
    expect(toDistinguishedName({ commonName: 'a,b', country: 'DE' })).toBe('CN=a\\,b, C=DE');
    expect(() => toDistinguishedName({})).toThrow();
  });

  it('issues many device certificates concurrently, each distinct and signed by the CA', async () => {
    // Speed lives in the benchmarks, not in timed tests.
    const ca = await createCertificateAuthority();
    const devices = await Promise.all(
      Array.from({ length: 20 }, (_, i) => createDeviceCertificate(ca, { subject: { commonName: `d${i}` } })),
    );
    const ids = new Set(devices.map((device) => certificateId(device.certificatePem)));
    expect(ids.size).toBe(20);
    for (const device of devices) {
      expect(device.certificateId).toBe(certificateId(device.certificatePem));
      expect(await isSignedBy(device.certificate, ca.certificate)).toBe(true);
    }
  });
});
