/**
 * A small PKI toolkit for local development and tests: certificate authorities, device certificates,
 * key pairs, PKCS#10 CSRs and the AWS IoT certificate id. Built on `@peculiar/x509` with Node's WebCrypto.
 *
 * EC P-256 is the default everywhere (what ESP32-class devices use and ~100x faster to generate than RSA);
 * RSA-2048 is available for CAs and devices that need it. Nothing here keeps module-level mutable state
 * apart from registering Node's WebCrypto as the x509 crypto provider, which is idempotent.
 *
 * @module
 */
import 'reflect-metadata';
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** A WebCrypto key (Node's `webcrypto.CryptoKey`). */
export type CryptoKey = webcrypto.CryptoKey;
/** A WebCrypto key pair (Node's `webcrypto.CryptoKeyPair`). */
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
type Algorithm = webcrypto.Algorithm;
type EcdsaParams = webcrypto.EcdsaParams;

/** Key algorithms supported for CAs and devices. */
export type KeyAlgorithm = 'EC-P256' | 'EC-P384' | 'RSA-2048';

/** Subject fields, named as in X.500 / RFC 4519; `serialNumber` is the subject serialNumber (2.5.4.5). */
export interface SubjectFields {
  commonName?: string;
  serialNumber?: string;
  organization?: string;
  organizationalUnit?: string;
  country?: string;
  state?: string;
  locality?: string;
}

/** A subject given either as fields or as a distinguished-name string (`CN=dev-1, O=Acme`). */
export type Subject = SubjectFields | string;

/** A certificate with the key pair that owns it. */
export interface KeyedCertificate {
  certificate: x509.X509Certificate;
  /** PEM of the certificate. */
  certificatePem: string;
  /** AWS IoT certificate id: lowercase hex SHA-256 of the DER. */
  certificateId: string;
  keys: CryptoKeyPair;
}

/** A certificate authority: its certificate and the key that signs with it. */
export type CertificateAuthority = KeyedCertificate;

/** An issued certificate (the caller already owns the private key, or none is known). */
export interface IssuedCertificate {
  certificate: x509.X509Certificate;
  certificatePem: string;
  certificateId: string;
}

/** Validity window; `notBefore` defaults to one minute ago (tolerates small clock skew). */
export interface ValidityOptions {
  notBefore?: Date;
  notAfter?: Date;
  /** Used when `notAfter` is absent; default 365 days for devices, 3650 for CAs. */
  validityDays?: number;
}

const SUBJECT_OIDS: Record<keyof SubjectFields, string> = {
  commonName: 'CN',
  serialNumber: '2.5.4.5',
  organization: 'O',
  organizationalUnit: 'OU',
  country: 'C',
  state: 'ST',
  locality: 'L',
};

const DAY_MS = 86_400_000;

function algorithmParams(
  algorithm: KeyAlgorithm,
): webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams {
  switch (algorithm) {
    case 'EC-P256':
      return { name: 'ECDSA', namedCurve: 'P-256' };
    case 'EC-P384':
      return { name: 'ECDSA', namedCurve: 'P-384' };
    case 'RSA-2048':
      return {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      };
  }
}

/** The signature algorithm matching a signing key (ECDSA with SHA-256/384, or RSA PKCS#1 v1.5 SHA-256). */
function signingAlgorithmFor(key: CryptoKey): Algorithm | EcdsaParams {
  if (key.algorithm.name === 'ECDSA') {
    const curve = (key.algorithm as webcrypto.EcKeyAlgorithm).namedCurve;
    return { name: 'ECDSA', hash: curve === 'P-384' ? 'SHA-384' : 'SHA-256' } as EcdsaParams;
  }
  return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as Algorithm;
}

/** Generates an extractable key pair (EC P-256 unless told otherwise). */
export async function generateKeyPair(algorithm: KeyAlgorithm = 'EC-P256'): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(algorithmParams(algorithm), true, [
    'sign',
    'verify',
  ])) as unknown as CryptoKeyPair;
}

/** Renders subject fields as a distinguished-name string; a string subject is returned unchanged. */
export function toDistinguishedName(subject: Subject): string {
  if (typeof subject === 'string') return subject;
  const parts: string[] = [];
  for (const [field, oid] of Object.entries(SUBJECT_OIDS) as [keyof SubjectFields, string][]) {
    const value = subject[field];
    if (value !== undefined) parts.push(`${oid}=${escapeDnValue(value)}`);
  }
  if (parts.length === 0) throw new Error('pki: a subject needs at least one field');
  return parts.join(', ');
}

function escapeDnValue(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, '\\$1');
}

/** Random positive 128-bit serial number, as hex. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  if (bytes[0] === 0) bytes[0] = 1;
  return bytes.toString('hex');
}

function validityWindow(options: ValidityOptions, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const notBefore = options.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter =
    options.notAfter ?? new Date(notBefore.getTime() + (options.validityDays ?? defaultDays) * DAY_MS);
  return { notBefore, notAfter };
}

/** Options for {@link createCertificateAuthority}. */
export interface CreateCaOptions extends ValidityOptions {
  /** Default `CN=fleetgate test CA`. */
  subject?: Subject;
  /** Default `EC-P256`. */
  algorithm?: KeyAlgorithm;
  /** When set, the new CA is an intermediate signed by this one. */
  issuer?: CertificateAuthority;
  /** basicConstraints pathLenConstraint; default unlimited. */
  pathLength?: number;
}

/**
 * Creates a CA certificate (self-signed, or an intermediate when `issuer` is given) with basicConstraints
 * cA=true and keyUsage keyCertSign|cRLSign.
 */
export async function createCertificateAuthority(
  options: CreateCaOptions = {},
): Promise<CertificateAuthority> {
  const keys = await generateKeyPair(options.algorithm);
  const { notBefore, notAfter } = validityWindow(options, 3650);
  const name = toDistinguishedName(options.subject ?? { commonName: 'fleetgate test CA' });
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, options.pathLength, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  let certificate: x509.X509Certificate;
  if (options.issuer) {
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(options.issuer.keys.publicKey));
    certificate = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: name,
      issuer: options.issuer.certificate.subjectName,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: options.issuer.keys.privateKey,
      signingAlgorithm: signingAlgorithmFor(options.issuer.keys.privateKey),
      extensions,
    });
  } else {
    certificate = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name,
      keys,
      notBefore,
      notAfter,
      signingAlgorithm: signingAlgorithmFor(keys.privateKey),
      extensions,
    });
  }
  return withPem(certificate, keys);
}

/** Options for {@link issueCertificate}. */
export interface IssueOptions extends ValidityOptions {
  /** The public key the certificate certifies. */
  publicKey: CryptoKey | x509.PublicKey;
  subject: Subject;
  /** Hex certificate serial number; random 128-bit when absent. */
  certificateSerial?: string;
  /** Extra extensions (keyUsage digitalSignature and extKeyUsage clientAuth are always added). */
  extensions?: x509.Extension[];
}

/**
 * Issues an end-entity (device) certificate signed by `ca` for the given public key.
 * The certificate carries keyUsage digitalSignature, extKeyUsage clientAuth and an authority key id.
 */
export async function issueCertificate(
  ca: CertificateAuthority,
  options: IssueOptions,
): Promise<IssuedCertificate> {
  const { notBefore, notAfter } = validityWindow(options, 365);
  const publicKey =
    options.publicKey instanceof x509.PublicKey ? await options.publicKey.export() : options.publicKey;
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: options.certificateSerial ?? randomSerial(),
    subject: toDistinguishedName(options.subject),
    issuer: ca.certificate.subjectName,
    notBefore,
    notAfter,
    publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: signingAlgorithmFor(ca.keys.privateKey),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
      ...(options.extensions ?? []),
    ],
  });
  return {
    certificate,
    certificatePem: certificate.toString('pem'),
    certificateId: certificateId(certificate),
  };
}

/** Options for {@link createDeviceCertificate}. */
export interface DeviceCertificateOptions extends ValidityOptions {
  subject: Subject;
  /** Default `EC-P256`. */
  algorithm?: KeyAlgorithm;
}

/** Generates a key pair and a certificate for it signed by `ca`: a complete device identity. */
export async function createDeviceCertificate(
  ca: CertificateAuthority,
  options: DeviceCertificateOptions,
): Promise<KeyedCertificate> {
  const keys = await generateKeyPair(options.algorithm);
  const issued = await issueCertificate(ca, { ...options, publicKey: keys.publicKey });
  return { ...issued, keys };
}

/** A CSR with the key pair that signed it. */
export interface CsrWithKeys {
  csr: x509.Pkcs10CertificateRequest;
  csrPem: string;
  keys: CryptoKeyPair;
}

/** Creates a PKCS#10 CSR for `subject`, generating a key pair unless `keys` is given. */
export async function createCsr(options: {
  subject: Subject;
  keys?: CryptoKeyPair;
  algorithm?: KeyAlgorithm;
}): Promise<CsrWithKeys> {
  const keys = options.keys ?? (await generateKeyPair(options.algorithm));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: toDistinguishedName(options.subject),
    keys,
    signingAlgorithm: signingAlgorithmFor(keys.privateKey),
  });
  return { csr, csrPem: csr.toString('pem'), keys };
}

/** Thrown when a CSR cannot be parsed or its self-signature does not verify. */
export class InvalidCsrError extends Error {
  readonly code = 'INVALID_CSR';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvalidCsrError';
  }
}

/** Longest CSR PEM accepted (AWS accepts up to 4 KiB; leave room for RSA-4096). */
export const MAX_CSR_PEM_LENGTH = 8192;

/** Parses a PEM CSR and verifies its self-signature; throws {@link InvalidCsrError}. */
export async function parseCsr(csrPem: string): Promise<x509.Pkcs10CertificateRequest> {
  if (csrPem.length > MAX_CSR_PEM_LENGTH) throw new InvalidCsrError('CSR is too large');
  // Exactly one PEM block and nothing around it: a second request (or text) is not silently ignored.
  const blocks = csrPem.match(/-----BEGIN [A-Z0-9 ]+-----/g) ?? [];
  const trimmed = csrPem.trim();
  if (
    blocks.length !== 1 ||
    !trimmed.startsWith('-----BEGIN CERTIFICATE REQUEST-----') ||
    !trimmed.endsWith('-----END CERTIFICATE REQUEST-----')
  ) {
    throw new InvalidCsrError('CSR must be exactly one PEM CERTIFICATE REQUEST block');
  }
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (cause) {
    throw new InvalidCsrError('CSR is not a valid PEM PKCS#10 request', { cause });
  }
  if (!(await csr.verify())) throw new InvalidCsrError('CSR signature does not verify');
  return csr;
}

/**
 * Signs a CSR with `ca`: verifies the CSR's signature and issues a certificate for its public key and
 * subject (or `options.subject` when given). Throws {@link InvalidCsrError} on a bad CSR.
 */
export async function signCsr(
  ca: CertificateAuthority,
  csrPem: string,
  options: ValidityOptions & { subject?: Subject } = {},
): Promise<IssuedCertificate> {
  const csr = await parseCsr(csrPem);
  const subject = options.subject ?? (csr.subject || 'CN=device');
  return issueCertificate(ca, { ...options, subject, publicKey: csr.publicKey });
}

/** Parses a PEM (or DER) certificate. Throws on malformed input. */
export function parseCertificate(pemOrDer: string | Uint8Array | ArrayBuffer): x509.X509Certificate {
  return new x509.X509Certificate(pemOrDer as string);
}

/** The DER bytes of a certificate given as PEM, DER or a parsed certificate. */
export function certificateDer(certificate: string | Uint8Array | x509.X509Certificate): Uint8Array {
  if (certificate instanceof x509.X509Certificate) return new Uint8Array(certificate.rawData);
  if (typeof certificate === 'string') return new Uint8Array(new x509.X509Certificate(certificate).rawData);
  return certificate;
}

/**
 * The AWS IoT certificate id: lowercase hex SHA-256 of the certificate's DER encoding.
 * Synchronous (node:crypto) so it is cheap to call anywhere.
 */
export function certificateId(certificate: string | Uint8Array | x509.X509Certificate): string {
  return createHash('sha256').update(certificateDer(certificate)).digest('hex');
}

/** Lowercase hex SHA-256 of the certificate's SubjectPublicKeyInfo: one key, one fingerprint. */
export function publicKeyFingerprint(certificate: string | x509.X509Certificate): string {
  const cert = typeof certificate === 'string' ? parseCertificate(certificate) : certificate;
  return createHash('sha256').update(new Uint8Array(cert.publicKey.rawData)).digest('hex');
}

/** Subject fields of a parsed certificate (first value of each attribute). */
export function subjectFields(certificate: x509.X509Certificate): SubjectFields {
  const out: SubjectFields = {};
  for (const [field, oid] of Object.entries(SUBJECT_OIDS) as [keyof SubjectFields, string][]) {
    const [value] = certificate.subjectName.getField(oid);
    if (value !== undefined) out[field] = value;
  }
  return out;
}

/** True when `certificate`'s signature verifies with `issuer`'s public key (and the names chain). */
export async function isSignedBy(
  certificate: x509.X509Certificate,
  issuer: x509.X509Certificate,
): Promise<boolean> {
  if (certificate.issuer !== issuer.subject) return false;
  try {
    return await certificate.verify({ publicKey: issuer.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

/** True when the certificate has basicConstraints cA=true. */
export function isCaCertificate(certificate: x509.X509Certificate): boolean {
  const bc = certificate.getExtension(x509.BasicConstraintsExtension);
  return bc?.ca === true;
}

/** PKCS#8 PEM of a private key. */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** SPKI PEM of a public key. */
export async function exportPublicKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('spki', key);
  return x509.PemConverter.encode(der, 'PUBLIC KEY');
}

function withPem(certificate: x509.X509Certificate, keys: CryptoKeyPair): KeyedCertificate {
  return {
    certificate,
    certificatePem: certificate.toString('pem'),
    certificateId: certificateId(certificate),
    keys,
  };
}

export { x509 };
