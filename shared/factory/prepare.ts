/**
 * The batch read once before any row is imported: each certificate parsed, the serial taken from it
 * (or the manifest), its signature checked against the batch CA, and — in batch order — what earlier
 * rows already hold (serial, certificate, key), so later rows are the duplicates. Pure; no I/O.
 */
import { X509Certificate } from 'node:crypto';
import { type ParsedCertificate, parseCertificatePem } from '../certificates';
import type { Config } from '../config';
import type { FactoryRow } from '../domain/factory-rules';
import { ValidationError } from '../errors';
import type { BatchRow } from './batch';

/** A row after its certificate was parsed and the batch-level facts were gathered. */
export interface PreparedRow {
  input: BatchRow;
  certificate?: ParsedCertificate;
  pem?: string;
  factory?: FactoryRow;
  unreadable?: string;
}

/** Parses every row and records, in batch order, what earlier rows already hold. */
export function prepareRows(
  rows: readonly BatchRow[],
  ca: X509Certificate | undefined,
  config: Config,
): PreparedRow[] {
  const seen: Seen = { serials: new Set(), certificates: new Set(), keys: new Map() };
  return rows.map((input) => prepareRow(input, ca, config, seen));
}

/** What earlier rows of the batch hold: serials, certificate ids, key hash → first holder. */
interface Seen {
  serials: Set<string>;
  certificates: Set<string>;
  keys: Map<string, string>;
}

function prepareRow(
  input: BatchRow,
  ca: X509Certificate | undefined,
  config: Config,
  seen: Seen,
): PreparedRow {
  if (input.pem === undefined) return { input, unreadable: input.unreadable ?? 'certificate: missing' };
  let certificate: ParsedCertificate;
  try {
    certificate = parseCertificatePem(input.pem, {
      maxBytes: config.maxCertificatePemBytes,
      field: 'certificate',
    });
  } catch (error) {
    if (error instanceof ValidationError) return { input, unreadable: error.message };
    throw error;
  }
  const serial = serialOf(certificate, config) ?? input.manifestSerial;
  const keyOwner = seen.keys.get(certificate.publicKeyHash);
  const factory: FactoryRow = {
    ...(input.manifestSerial !== undefined ? { manifestSerial: input.manifestSerial } : {}),
    certificate,
    ...(ca ? { signedByCa: signedBy(certificate, ca) } : {}),
    batch: {
      serialSeen: serial !== undefined && seen.serials.has(serial),
      certificateSeen: seen.certificates.has(certificate.certificateId),
      ...(keyOwner !== undefined && keyOwner !== serial ? { keyOwner } : {}),
    },
  };
  // Only the first holder of a serial, certificate or key counts: later rows are the duplicates.
  if (serial !== undefined) seen.serials.add(serial);
  seen.certificates.add(certificate.certificateId);
  if (keyOwner === undefined) seen.keys.set(certificate.publicKeyHash, serial ?? input.source);
  return { input, certificate, pem: input.pem, factory };
}

/** The serial the configuration reads from a certificate (CN pattern or certificate serial number). */
function serialOf(certificate: ParsedCertificate, config: Config): string | undefined {
  return config.serialSource === 'cn'
    ? config.serialCnPattern.exec(certificate.commonName ?? '')?.[1]
    : certificate.serialNumber;
}

function signedBy(certificate: ParsedCertificate, ca: X509Certificate): boolean {
  try {
    const leaf = new X509Certificate(certificate.der);
    return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
  } catch {
    return false;
  }
}
