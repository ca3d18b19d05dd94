/**
 * Parsing of X.509 certificates and PKCS#10 CSRs, with limits checked before anything else looks at
 * the input: size, exactly one PEM block of the expected type, canonical base64, and a DER whose
 * outer SEQUENCE covers the bytes exactly (no truncation, no trailing garbage). Only then is the
 * DER handed to a real parser (Node's `X509Certificate`, or @peculiar/x509 for CSRs).
 *
 * @peculiar/x509 is imported lazily: only rotation reads CSRs, and the hook's cold start should not
 * pay for it.
 */
import { createHash, createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import type { KeyFacts } from './domain/certificate-rules';
import { ValidationError } from './errors';

export const DEFAULT_MAX_PEM_BYTES = 16_384;

/** What fleetgate reads from a device certificate. */
export interface ParsedCertificate {
  /** AWS IoT certificate id: SHA-256 of the DER, lower-case hex. */
  certificateId: string;
  subject: string;
  issuer: string;
  /** The subject's commonName, if any. */
  commonName?: string;
  /** The subject's serialNumber attribute (2.5.4.5), if any. */
  serialNumber?: string;
  /** The certificate's own serial number, hex. */
  certificateSerial: string;
  notBefore: string;
  notAfter: string;
  notBeforeMs: number;
  notAfterMs: number;
  key: KeyFacts;
  /** SHA-256 of the SubjectPublicKeyInfo DER, lower-case hex (the PUBKEY item of the store). */
  publicKeyHash: string;
  /** basicConstraints cA=TRUE: a CA certificate (never acceptable as a device certificate). */
  isCa: boolean;
  der: Buffer;
}

/** What fleetgate reads from a CSR (certificate rotation). */
export interface ParsedCsr {
  subject: string;
  commonName?: string;
  serialNumber?: string;
  key: KeyFacts;
  publicKeyHash: string;
  /** Whether the CSR is signed by the key it carries. */
  signatureValid: boolean;
  der: Buffer;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
const BASE64_BODY = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Parses one PEM-encoded X.509 certificate.
 * @throws ValidationError (`field: rule`) for anything that is not exactly one well-formed certificate.
 */
export function parseCertificatePem(
  pem: unknown,
  options: { maxBytes?: number; field?: string } = {},
): ParsedCertificate {
  const field = options.field ?? 'certificatePem';
  const der = pemToDer(pem, 'CERTIFICATE', field, options.maxBytes ?? DEFAULT_MAX_PEM_BYTES);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(der);
  } catch (error) {
    throw invalid(field, 'is not a parsable X.509 certificate', error);
  }
  const notBeforeMs = Date.parse(certificate.validFrom);
  const notAfterMs = Date.parse(certificate.validTo);
  if (Number.isNaN(notBeforeMs) || Number.isNaN(notAfterMs)) {
    throw invalid(field, 'has an unreadable validity period');
  }
  const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });
  const subject = readName(certificate.subject);
  return {
    certificateId: sha256(der),
    subject: subject.dn,
    issuer: readName(certificate.issuer).dn,
    ...(subject.commonName !== undefined ? { commonName: subject.commonName } : {}),
    ...(subject.serialNumber !== undefined ? { serialNumber: subject.serialNumber } : {}),
    certificateSerial: certificate.serialNumber.toLowerCase(),
    notBefore: new Date(notBeforeMs).toISOString(),
    notAfter: new Date(notAfterMs).toISOString(),
    notBeforeMs,
    notAfterMs,
    key: keyFacts(certificate.publicKey),
    publicKeyHash: sha256(spki),
    isCa: certificate.ca,
    der,
  };
}

/**
 * Parses one PEM-encoded PKCS#10 certificate signing request and verifies its self-signature.
 * @throws ValidationError for anything that is not exactly one well-formed CSR.
 */
export async function parseCsrPem(
  pem: unknown,
  options: { maxBytes?: number; field?: string } = {},
): Promise<ParsedCsr> {
  const field = options.field ?? 'csr';
  const der = pemToDer(pem, 'CERTIFICATE REQUEST', field, options.maxBytes ?? DEFAULT_MAX_PEM_BYTES);
  await import('reflect-metadata');
  const { Pkcs10CertificateRequest } = await import('@peculiar/x509');
  let csr: InstanceType<typeof Pkcs10CertificateRequest>;
  let spki: Buffer;
  let publicKey: KeyObject;
  try {
    csr = new Pkcs10CertificateRequest(der);
    spki = Buffer.from(csr.publicKey.rawData);
    publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch (error) {
    throw invalid(field, 'is not a parsable PKCS#10 request', error);
  }
  // A device asks for a device certificate: a CSR requesting basicConstraints cA=TRUE is refused
  // (stricter than IoT, which issues device certificates whatever the CSR asks for).
  const { BasicConstraintsExtension } = await import('@peculiar/x509');
  const basicConstraints = csr.getExtension('2.5.29.19');
  if (basicConstraints && new BasicConstraintsExtension(basicConstraints.rawData).ca) {
    throw invalid(
      field,
      'requests a CA certificate (basicConstraints cA=TRUE); a device certificate must not be one',
    );
  }
  let signatureValid = false;
  try {
    signatureValid = await csr.verify();
  } catch {
    signatureValid = false;
  }
  const commonName = csr.subjectName.getField('CN')[0];
  const serialNumber = csr.subjectName.getField('2.5.4.5')[0];
  return {
    subject: csr.subject,
    ...(commonName !== undefined ? { commonName } : {}),
    ...(serialNumber !== undefined ? { serialNumber } : {}),
    key: keyFacts(publicKey),
    publicKeyHash: sha256(spki),
    signatureValid,
    der,
  };
}

/** SHA-256 of `data`, lower-case hex. */
export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The DER inside exactly one PEM block labelled `label`, after every structural check that does
 * not need a parser.
 */
function pemToDer(pem: unknown, label: string, field: string, maxBytes: number): Buffer {
  if (typeof pem !== 'string') throw invalid(field, 'must be a string');
  // Size first: nothing below runs on an oversized input.
  const bytes = Buffer.byteLength(pem, 'utf8');
  if (bytes > maxBytes) throw invalid(field, `must be at most ${maxBytes} bytes (found ${bytes})`);
  const text = pem.trim();
  if (text === '') throw invalid(field, 'is empty');
  const blocks = [...text.matchAll(PEM_BLOCK)];
  if (blocks.length === 0) throw invalid(field, `must be a PEM ${label} block`);
  if (blocks.length > 1) throw invalid(field, `must hold exactly one PEM block (found ${blocks.length})`);
  const block = blocks[0];
  if (block === undefined || block.index !== 0 || block[0].length !== text.length) {
    throw invalid(field, 'must hold nothing but the PEM block');
  }
  const [, begin, body = '', end] = block;
  if (begin !== end) throw invalid(field, `BEGIN ${begin} does not match END ${end}`);
  if (begin !== label) throw invalid(field, `must be a ${label}, found a ${begin}`);
  const base64 = body.replace(/[\r\n\t ]/g, '');
  if (base64 === '' || base64.length % 4 !== 0 || !BASE64_BODY.test(base64)) {
    throw invalid(field, 'has a truncated or invalid base64 body');
  }
  const der = Buffer.from(base64, 'base64');
  if (der.toString('base64') !== base64) throw invalid(field, 'has a non-canonical base64 body');
  const length = derLength(der);
  if (length === undefined || length !== der.length) {
    throw invalid(field, 'DER length does not match its content (truncated or trailing data)');
  }
  return der;
}

/** Total length of the outer DER SEQUENCE (tag + length + content), or undefined if malformed. */
function derLength(der: Buffer): number | undefined {
  if (der.length < 2 || der[0] !== 0x30) return undefined;
  const first = der[1] ?? 0;
  if (first < 0x80) return 2 + first;
  const count = first & 0x7f;
  if (count === 0 || count > 4 || der.length < 2 + count) return undefined;
  let length = 0;
  for (let i = 0; i < count; i += 1) length = length * 256 + (der[2 + i] ?? 0);
  return 2 + count + length;
}

function keyFacts(key: KeyObject): KeyFacts {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') return { algorithm: 'EC', curve: curveName(details.namedCurve) };
  if (key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss') {
    return { algorithm: 'RSA', bits: details.modulusLength ?? 0 };
  }
  return { algorithm: 'OTHER', name: key.asymmetricKeyType ?? 'unknown' };
}

const CURVES: Record<string, string> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
  secp521r1: 'P-521',
};

function curveName(openssl: string | undefined): string {
  if (openssl === undefined) return 'unknown';
  return CURVES[openssl] ?? openssl;
}

/** Node prints names one attribute per line (`CN=x\nO=y`); a DN reads `CN=x, O=y`. */
function readName(lines: string): { dn: string; commonName?: string; serialNumber?: string } {
  const parts = lines.split('\n').filter((part) => part !== '');
  let commonName: string | undefined;
  let serialNumber: string | undefined;
  for (const part of parts) {
    const at = part.indexOf('=');
    const type = part.slice(0, at);
    const value = part.slice(at + 1);
    if (type === 'CN' && commonName === undefined) commonName = value;
    if (type === 'serialNumber' && serialNumber === undefined) serialNumber = value;
  }
  return {
    dn: parts.join(', '),
    ...(commonName !== undefined ? { commonName } : {}),
    ...(serialNumber !== undefined ? { serialNumber } : {}),
  };
}

function invalid(field: string, rule: string, cause?: unknown): ValidationError {
  return new ValidationError([{ field, rule }], cause === undefined ? undefined : { cause });
}
