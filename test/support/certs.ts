/**
 * Certificates for tests, generated on the fly (never pasted). The CA and CSRs come from the
 * project's PKI toolkit (`local/pki.ts`); this adds leaf certificates for any public key Node can
 * make, including weak or unsupported ones that WebCrypto refuses to generate.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { type CertificateAuthority, createCertificateAuthority, createCsr, x509 } from '../../local/pki';

export type KeyKind =
  | 'P-256'
  | 'P-384'
  | 'P-521'
  | 'secp256k1'
  | 'P-192'
  | 'RSA-1024'
  | 'RSA-2048'
  | 'Ed25519';

export interface TestCertificate {
  pem: string;
  der: Buffer;
  /** SHA-256 of the DER: the AWS IoT certificate id. */
  certificateId: string;
  /** SHA-256 of the SubjectPublicKeyInfo DER. */
  publicKeyHash: string;
  spki: Buffer;
}

export type { CertificateAuthority };

/** A self-signed P-256 CA. */
export function createCa(commonName = 'fleetgate test CA'): Promise<CertificateAuthority> {
  return createCertificateAuthority({ subject: { commonName } });
}

/** A new public key of `kind`, as SubjectPublicKeyInfo DER. */
export function publicKeySpki(kind: KeyKind = 'P-256'): Buffer {
  const pair = (() => {
    switch (kind) {
      case 'P-256':
        return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      case 'P-384':
        return generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
      case 'P-521':
        return generateKeyPairSync('ec', { namedCurve: 'secp521r1' });
      case 'P-192':
        return generateKeyPairSync('ec', { namedCurve: 'prime192v1' });
      case 'secp256k1':
        return generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
      case 'RSA-1024':
        return generateKeyPairSync('rsa', { modulusLength: 1024 });
      case 'RSA-2048':
        return generateKeyPairSync('rsa', { modulusLength: 2048 });
      case 'Ed25519':
        return generateKeyPairSync('ed25519');
    }
  })();
  return pair.publicKey.export({ type: 'spki', format: 'der' });
}

/** A leaf certificate signed by `ca` for a new key of `kind` (or the given `spki`). */
export async function issueTestCertificate(
  ca: CertificateAuthority,
  options: {
    kind?: KeyKind;
    spki?: Buffer;
    commonName?: string;
    serialNumber?: string;
    notBefore?: Date;
    notAfter?: Date;
  } = {},
): Promise<TestCertificate> {
  const spki = options.spki ?? publicKeySpki(options.kind ?? 'P-256');
  const subject: Array<Record<string, string[]>> = [
    { '2.5.4.3': [options.commonName ?? 'AWS IoT Certificate'] },
  ];
  if (options.serialNumber) subject.push({ '2.5.4.5': [options.serialNumber] });
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: createHash('sha1').update(spki).update(String(Math.random())).digest('hex').slice(0, 16),
    subject,
    issuer: ca.certificate.subject,
    notBefore: options.notBefore ?? new Date(Date.now() - 60_000),
    notAfter: options.notAfter ?? new Date(Date.now() + 365 * 86_400_000),
    publicKey: new Uint8Array(spki),
    signingKey: ca.keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  const der = Buffer.from(certificate.rawData);
  return {
    pem: certificate.toString('pem'),
    der,
    certificateId: sha256(der),
    publicKeyHash: sha256(spki),
    spki,
  };
}

/** A PKCS#10 CSR PEM for a new P-256 key. */
export async function createTestCsr(commonName = 'device'): Promise<string> {
  return (await createCsr({ subject: { commonName } })).csrPem;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
