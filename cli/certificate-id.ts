/**
 * Certificate ids as operators type them: the full 64-hex id, or — like git's short ids — a unique
 * prefix of at least 8 hex characters (what `quarantine list` and `devices list` show, `3f9a1b2c4d5e…`,
 * trailing ellipsis included). The CLI resolves a prefix to the full id here, against the
 * certificates the store records and, where a command acts on the IoT registry, the ones the registry
 * lists; the store, the queues and the Lambdas only ever see full ids.
 */
import { type IoTClient, ListCertificatesCommand } from '@aws-sdk/client-iot';
import { type DynamoDBDocumentClient, paginateScan } from '@aws-sdk/lib-dynamodb';
import { NotFoundError } from '../shared/errors';
import { CommandFailure, UsageError } from './io';

export const CERTIFICATE_ID_LENGTH = 64;
export const MIN_CERTIFICATE_PREFIX = 8;
const HEX = /^[0-9a-f]+$/;
/** The rule, as every error about a certificate id states it. */
export const CERTIFICATE_ID_RULE = `a certificate id is ${CERTIFICATE_ID_LENGTH} hex characters, or a unique prefix of at least ${MIN_CERTIFICATE_PREFIX}`;

export type CertificateIdInput =
  | { kind: 'full'; id: string }
  | { kind: 'prefix'; prefix: string }
  | { kind: 'invalid'; problem: string };

/** What `value` is as a certificate id (lower-cased; a trailing `…` or `...` from a table is dropped). */
export function parseCertificateId(value: string): CertificateIdInput {
  const text = value
    .trim()
    .replace(/(…|\.\.\.)$/u, '')
    .toLowerCase();
  if (text === '') return { kind: 'invalid', problem: 'empty' };
  if (!HEX.test(text)) return { kind: 'invalid', problem: `"${value}" is not hexadecimal` };
  if (text.length > CERTIFICATE_ID_LENGTH)
    return { kind: 'invalid', problem: `"${value}" is longer than ${CERTIFICATE_ID_LENGTH} characters` };
  if (text.length === CERTIFICATE_ID_LENGTH) return { kind: 'full', id: text };
  if (text.length < MIN_CERTIFICATE_PREFIX)
    return {
      kind: 'invalid',
      problem: `"${value}" is ${text.length} hex character${text.length === 1 ? '' : 's'}, too short for a prefix`,
    };
  return { kind: 'prefix', prefix: text };
}

/** Where certificate ids come from: each lists the full ids starting with a prefix. */
export interface CertificateSource {
  /** Named in the "unknown" error: `the store (table t)`, `the IoT registry`. */
  name: string;
  find(prefix: string): Promise<string[]>;
}

/** Certificates the store records (`CERT#<id>` items): a Scan of the table for the prefix. */
export function storeCertificates(client: DynamoDBDocumentClient, tableName: string): CertificateSource {
  return {
    name: `the store (${tableName})`,
    async find(prefix) {
      const ids = new Set<string>();
      const pages = paginateScan(
        { client },
        {
          TableName: tableName,
          FilterExpression: 'begins_with(PK, :pk) AND SK = :sk',
          ProjectionExpression: 'PK',
          ExpressionAttributeValues: { ':pk': `CERT#${prefix}`, ':sk': 'CERT' },
        },
      );
      for await (const page of pages) {
        for (const item of page.Items ?? []) ids.add(String(item.PK).slice('CERT#'.length));
      }
      return [...ids];
    },
  };
}

/** Certificates the IoT registry lists (the emulator's, or the account's with `--target aws`). */
export function registryCertificates(iot: IoTClient): CertificateSource {
  return {
    name: 'the IoT registry',
    async find(prefix) {
      const ids: string[] = [];
      let marker: string | undefined;
      do {
        const page = await iot.send(
          new ListCertificatesCommand({ pageSize: 250, ...(marker ? { marker } : {}) }),
        );
        for (const certificate of page.certificates ?? []) {
          if (certificate.certificateId?.startsWith(prefix)) ids.push(certificate.certificateId);
        }
        marker = page.nextMarker;
      } while (marker);
      return ids;
    },
  };
}

/**
 * The full id for `value` (a full id is returned as it is, lower-cased). A prefix is looked up in
 * `sources` in order until one knows it (the store first: one Scan, where the registry would be
 * paged through), and must name exactly one certificate there.
 * @throws UsageError when `value` breaks the rule (not hex, too short, too long); NotFoundError
 *   when no certificate starts with the prefix; CommandFailure (with the candidates) when several do.
 */
export async function resolveCertificateId(
  value: string,
  sources: readonly CertificateSource[],
  what = 'certificate id',
): Promise<string> {
  const parsed = parseCertificateId(value);
  if (parsed.kind === 'invalid') throw new UsageError(`${what}: ${parsed.problem}; ${CERTIFICATE_ID_RULE}`);
  if (parsed.kind === 'full') return parsed.id;
  for (const source of sources) {
    const found = [...new Set(await source.find(parsed.prefix))].sort();
    if (found.length === 1) return found[0] as string;
    if (found.length > 1) {
      throw new CommandFailure(
        `${what}: ${parsed.prefix} is ambiguous, ${found.length} certificates in ${source.name} start with it: ${found.join(', ')}; give more characters`,
        { prefix: parsed.prefix, candidates: found },
      );
    }
  }
  throw new NotFoundError(
    `${what}: no certificate starting with ${parsed.prefix} in ${sources.map((source) => source.name).join(' or ')}`,
  );
}
