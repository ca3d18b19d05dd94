/**
 * Streams an allowlist CSV into the store: one physical line at a time (`csv-lines.ts`: a malformed
 * line — stray quote, line break inside a field, NUL, bare CR, BOM after the start, over-long — is
 * rejected with its line number and the rule, and the rest of the file is still read) → validate per
 * row → chunks of 100 → store. Memory stays flat whatever the file size (an over-long line is not
 * buffered). Duplicates within the file: with `reopen` (the CLI, reading a file) the serials seen are
 * kept as 64-bit hashes (`serial-set.ts`, 8–16 bytes a row) and a hash hit is held back, then
 * confirmed or cleared by comparing the serials themselves in a second read of the rows whose hash
 * was hit; without `reopen` (a stream that cannot be read twice) the serials themselves are kept.
 */
import type { Readable } from 'node:stream';
import type { ProvisioningStore } from '../store/provisioning-store';
import { csvLines, type SplitLine, splitCsvLine } from './csv-lines';
import { type AllowlistEntry, checkHeader, parseRow } from './rows';
import { type SerialHasher, SerialHashSet, serialHash64 } from './serial-set';

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
  /**
   * The same input from its start again (a file: `() => createReadStream(file)`). Given, in-file
   * duplicates are detected by 64-bit hashes (flat memory) and each hash hit is confirmed by a
   * second read of the file; absent, every serial is kept in memory.
   */
  reopen?: () => Readable;
  /** The serials' hash with `reopen` (default `serialHash64`); a test forces collisions with it. */
  serialHash?: SerialHasher;
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

type ParsedRow =
  | { line: number; entry: AllowlistEntry; reason?: undefined }
  | { line: number; entry?: undefined; reason: string };

/**
 * The data rows of `input` in order, each an entry or its rejection reason (line, field, rule); the
 * header is checked first (a bad or missing header throws `AllowlistFileError`). Empty lines are
 * skipped.
 */
async function* parsedRows(
  input: Readable,
  serialPattern: RegExp,
  maxBytes: number,
  onBytes: (n: number) => void,
): AsyncGenerator<ParsedRow> {
  let first = true;
  let columns: string[] | undefined;
  for await (const physical of csvLines(input, maxBytes, onBytes)) {
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
      columns = headerColumns(split, line);
      continue;
    }
    if (!split.ok) {
      const where = split.field === undefined ? 'row' : (columns[split.field] ?? `column ${split.field + 1}`);
      yield { line, reason: `${where}: ${split.rule}` };
      continue;
    }
    const result = parseRow(columns, split.fields.map(decode), serialPattern);
    yield result.ok ? { line, entry: result.entry } : { line, reason: result.reason };
  }
  if (!columns)
    throw new AllowlistFileError('the file is empty: a header row with a "serial" column is required');
}

/** The header decides how every row is read: a header that breaks a rule stops the import. */
function headerColumns(split: SplitLine, line: number): string[] {
  if (!split.ok) {
    throw new AllowlistFileError(
      `header: ${split.rule}${split.field !== undefined ? ` (column ${split.field + 1})` : ''}`,
      line,
    );
  }
  const header = checkHeader(split.fields.map((field) => decode(field) ?? '\uFFFD'));
  if (!header.ok) throw new AllowlistFileError(header.reason, line);
  return header.columns;
}

function duplicateReason(serial: string): string {
  return `serial: duplicate of an earlier row (${serial})`;
}

/**
 * Serials accepted so far. `add` answers `new` (accepted), `duplicate` (certainly seen before:
 * exact mode) or `suspect` (its hash was seen before: held back until `confirm`).
 */
interface SeenSerials {
  add(line: number, entry: AllowlistEntry): 'new' | 'duplicate' | 'suspect';
  /** The held-back rows, each either a duplicate (its line and reason) or new after all (its entry). */
  confirm(): Promise<{ duplicates: Array<{ line: number; reason: string }>; fresh: AllowlistEntry[] }>;
}

function exactSerials(): SeenSerials {
  const seen = new Set<string>();
  return {
    add(_line, entry) {
      if (seen.has(entry.serial)) return 'duplicate';
      seen.add(entry.serial);
      return 'new';
    },
    confirm: async () => ({ duplicates: [], fresh: [] }),
  };
}

/**
 * Hashes of the serials accepted so far; a hash hit is held back (`suspects`, as many as the file
 * has duplicates and collisions) and confirmed by a second read of the rows whose hash was hit:
 * in line order, a held-back row is a duplicate exactly when an earlier accepted row (or an earlier
 * held-back row found new) has the same serial.
 */
function hashedSerials(
  reopen: () => Readable,
  hash: SerialHasher,
  serialPattern: RegExp,
  maxBytes: number,
): SeenSerials {
  const seen = new SerialHashSet();
  const suspects = new Map<number, AllowlistEntry>();
  const hashKey = (serial: string) => hash(serial).join(':');
  return {
    add(line, entry) {
      if (seen.add(hash(entry.serial))) return 'new';
      suspects.set(line, entry);
      return 'suspect';
    },
    async confirm() {
      const duplicates: Array<{ line: number; reason: string }> = [];
      const fresh: AllowlistEntry[] = [];
      if (suspects.size === 0) return { duplicates, fresh };
      const hit = new Set([...suspects.values()].map((entry) => hashKey(entry.serial)));
      const accepted = new Set<string>();
      let confirmed = 0;
      for await (const row of parsedRows(reopen(), serialPattern, maxBytes, () => {})) {
        if (!row.entry || !hit.has(hashKey(row.entry.serial))) continue;
        const serial = row.entry.serial;
        const suspect = suspects.get(row.line);
        if (suspect === undefined) {
          accepted.add(serial); // a row accepted in the first read
          continue;
        }
        if (suspect.serial !== serial) break; // the file changed between the reads
        confirmed += 1;
        if (accepted.has(serial)) duplicates.push({ line: row.line, reason: duplicateReason(serial) });
        else {
          accepted.add(serial);
          fresh.push(suspect);
        }
      }
      if (confirmed !== suspects.size) {
        throw new AllowlistFileError('the file changed while it was being imported (second read differs)');
      }
      return { duplicates, fresh };
    },
  };
}

export async function importAllowlistCsv(input: Readable, options: ImportOptions): Promise<ImportSummary> {
  const summary: ImportSummary = { rows: 0, imported: 0, updated: 0, unchanged: 0, rejected: [] };
  const concurrency = options.concurrency ?? 4;
  const maxBytes = options.maxRecordBytes ?? 64 * 1024;
  let bytes = 0;

  const seen = options.reopen
    ? hashedSerials(options.reopen, options.serialHash ?? serialHash64, options.serialPattern, maxBytes)
    : exactSerials();
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
  const accept = async (entry: AllowlistEntry) => {
    chunk.push(entry);
    if (chunk.length === 100) {
      await flush(chunk);
      chunk = [];
    }
  };

  const rows = parsedRows(input, options.serialPattern, maxBytes, (n) => {
    bytes += n;
  });
  for await (const row of rows) {
    summary.rows += 1;
    if (!row.entry) {
      summary.rejected.push({ line: row.line, reason: row.reason });
      continue;
    }
    const verdict = seen.add(row.line, row.entry);
    if (verdict === 'duplicate')
      summary.rejected.push({ line: row.line, reason: duplicateReason(row.entry.serial) });
    if (verdict === 'new') await accept(row.entry);
  }
  const held = await seen.confirm();
  if (held.duplicates.length > 0) {
    summary.rejected.push(...held.duplicates);
    summary.rejected.sort((a, b) => a.line - b.line);
  }
  for (const entry of held.fresh) await accept(entry);
  if (chunk.length > 0) await flush(chunk);
  await Promise.all(inFlight);
  if (failure) throw failure;
  report({ rows: summary.rows, bytes });
  return summary;
}
