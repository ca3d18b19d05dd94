/**
 * Streams an allowlist CSV into the store: one physical line at a time (`csv-lines.ts`: a malformed
 * line — stray quote, line break inside a field, NUL, bare CR, BOM after the start, over-long — is
 * rejected with its line number and the rule, and the rest of the file is still read) → validate per
 * row → chunks of 100 → store. Memory stays flat whatever the file size (an over-long line is not
 * buffered), apart from the set of serials seen (needed to reject duplicates within the file: ~60
 * bytes a row).
 */
import type { Readable } from 'node:stream';
import type { ProvisioningStore } from '../store/provisioning-store';
import { csvLines, type SplitLine, splitCsvLine } from './csv-lines';
import { type AllowlistEntry, checkHeader, parseRow } from './rows';

export interface ImportSummary {
  rows: number;
  imported: number;
  updated: number;
  unchanged: number;
  rejected: Array<{ line: number; reason: string }>;
}

export interface ImportOptions {
  store: ProvisioningStore;
  serialPattern: RegExp;
  now: string;
  actor: string;
  /** Ids of history entries; injected so the import itself stays deterministic in tests. */
  newId: () => string;
  /** Chunks written at once (each one BatchGet + BatchWrite round trips). */
  concurrency?: number;
  /** Upper bound on one line in bytes (default 64 KiB): a longer line is rejected, not buffered. */
  maxRecordBytes?: number;
  /** After each chunk is written: rows read up to the end of the chunks written so far, and bytes read. */
  onProgress?: (progress: { rows: number; bytes: number }) => void;
}

/** Thrown when the file cannot be read as an allowlist at all (no header, a malformed header). */
export class AllowlistFileError extends Error {
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(line === undefined ? message : `line ${line}: ${message}`);
    this.name = 'AllowlistFileError';
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

function decode(field: Buffer): string | undefined {
  try {
    return strictUtf8.decode(field);
  } catch {
    return undefined;
  }
}

export async function importAllowlistCsv(input: Readable, options: ImportOptions): Promise<ImportSummary> {
  const summary: ImportSummary = { rows: 0, imported: 0, updated: 0, unchanged: 0, rejected: [] };
  const concurrency = options.concurrency ?? 4;
  const maxBytes = options.maxRecordBytes ?? 64 * 1024;
  let bytes = 0;

  const seen = new Set<string>();
  let columns: string[] | undefined;
  let chunk: AllowlistEntry[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;

  // Chunks in the order they were read, each with the row count where it ends: progress is the end
  // of the longest run of written chunks from the start (reading runs ahead of writing, and
  // chunks written concurrently finish in any order).
  const pending: Array<{ rows: number; bytes: number; written: boolean }> = [];
  let reported = -1;
  const report = (position: { rows: number; bytes: number }) => {
    if (position.rows <= reported) return;
    reported = position.rows;
    options.onProgress?.({ rows: position.rows, bytes: position.bytes });
  };
  const flush = async (entries: AllowlistEntry[]) => {
    const position = { rows: summary.rows, bytes, written: false };
    pending.push(position);
    const write = options.store
      .importAllowlistEntries(entries, {
        now: options.now,
        actor: options.actor,
        idFor: () => options.newId(),
      })
      .then((result) => {
        summary.imported += result.imported;
        summary.updated += result.updated;
        summary.unchanged += result.unchanged;
        position.written = true;
        let done: { rows: number; bytes: number } | undefined;
        while (pending[0]?.written) done = pending.shift();
        if (done) report(done);
      })
      .catch((error: unknown) => {
        failure ??= error;
      })
      .finally(() => inFlight.delete(write));
    inFlight.add(write);
    if (inFlight.size >= concurrency) await Promise.race(inFlight);
    if (failure) throw failure;
  };

  let first = true;
  for await (const physical of csvLines(input, maxBytes, (n) => {
    bytes += n;
  })) {
    const line = physical.line;
    const split: SplitLine =
      'tooLong' in physical
        ? { ok: false, rule: `longer than ${maxBytes} bytes (${physical.tooLong} bytes)` }
        : physical.bytes.length === 0 || (first && physical.bytes.equals(UTF8_BOM))
          ? { ok: true, fields: [] }
          : splitCsvLine(physical.bytes, { first, maxBytes });
    if ('bytes' in physical && physical.bytes.length > 0) first = false;
    if (split.ok && split.fields.length === 0) continue; // an empty line
    if (!columns) {
      // The header decides how every row is read: a header that breaks a rule stops the import.
      if (!split.ok) {
        throw new AllowlistFileError(
          `header: ${split.rule}${split.field !== undefined ? ` (column ${split.field + 1})` : ''}`,
          line,
        );
      }
      const header = checkHeader(split.fields.map((field) => decode(field) ?? '\uFFFD'));
      if (!header.ok) throw new AllowlistFileError(header.reason, line);
      columns = header.columns;
      continue;
    }
    summary.rows += 1;
    if (!split.ok) {
      const where = split.field === undefined ? 'row' : (columns[split.field] ?? `column ${split.field + 1}`);
      summary.rejected.push({ line, reason: `${where}: ${split.rule}` });
      continue;
    }
    const result = parseRow(columns, split.fields.map(decode), options.serialPattern);
    if (!result.ok) {
      summary.rejected.push({ line, reason: result.reason });
      continue;
    }
    if (seen.has(result.entry.serial)) {
      summary.rejected.push({
        line,
        reason: `serial: duplicate of an earlier row (${result.entry.serial})`,
      });
      continue;
    }
    seen.add(result.entry.serial);
    chunk.push(result.entry);
    if (chunk.length === 100) {
      await flush(chunk);
      chunk = [];
    }
  }
  if (!columns)
    throw new AllowlistFileError('the file is empty: a header row with a "serial" column is required');
  if (chunk.length > 0) await flush(chunk);
  await Promise.all(inFlight);
  if (failure) throw failure;
  report({ rows: summary.rows, bytes });
  return summary;
}
