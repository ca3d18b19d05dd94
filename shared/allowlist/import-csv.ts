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
import { type CsvLine, csvLines, type SplitLine, splitCsvLine } from './csv-lines';
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
  const maxBytes = options.maxRecordBytes ?? 64 * 1024;
  const writer = new ChunkWriter(summary, options);
  const seen = new Set<string>();
  let columns: string[] | undefined;
  let first = true;
  for await (const physical of csvLines(input, maxBytes, (n) => writer.read(n))) {
    const split = splitPhysical(physical, first, maxBytes);
    if ('bytes' in physical && physical.bytes.length > 0) first = false;
    if (split.ok && split.fields.length === 0) continue; // an empty line
    if (!columns) {
      columns = readHeader(split, physical.line);
      continue;
    }
    summary.rows += 1;
    const row = rowEntry(split, columns, seen, options.serialPattern);
    if (!row.ok) {
      summary.rejected.push({ line: physical.line, reason: row.reason });
      continue;
    }
    seen.add(row.entry.serial);
    await writer.add(row.entry);
  }
  if (!columns)
    throw new AllowlistFileError('the file is empty: a header row with a "serial" column is required');
  await writer.finish();
  return summary;
}

/** A physical line as fields: an empty line (or a lone BOM first) has none. */
function splitPhysical(physical: CsvLine, first: boolean, maxBytes: number): SplitLine {
  if ('tooLong' in physical) {
    return { ok: false, rule: `longer than ${maxBytes} bytes (${physical.tooLong} bytes)` };
  }
  if (physical.bytes.length === 0 || (first && physical.bytes.equals(UTF8_BOM)))
    return { ok: true, fields: [] };
  return splitCsvLine(physical.bytes, { first, maxBytes });
}

/** The header decides how every row is read: a header that breaks a rule stops the import. */
function readHeader(split: SplitLine, line: number): string[] {
  if (!split.ok) {
    const column = split.field !== undefined ? ` (column ${split.field + 1})` : '';
    throw new AllowlistFileError(`header: ${split.rule}${column}`, line);
  }
  const header = checkHeader(split.fields.map((field) => decode(field) ?? '\uFFFD'));
  if (!header.ok) throw new AllowlistFileError(header.reason, line);
  return header.columns;
}

/** One data row as an entry, or why it is rejected (a malformed line, a bad value, a repeated serial). */
function rowEntry(
  split: SplitLine,
  columns: string[],
  seen: ReadonlySet<string>,
  serialPattern: RegExp,
): { ok: true; entry: AllowlistEntry } | { ok: false; reason: string } {
  if (!split.ok) {
    const where = split.field === undefined ? 'row' : (columns[split.field] ?? `column ${split.field + 1}`);
    return { ok: false, reason: `${where}: ${split.rule}` };
  }
  const result = parseRow(columns, split.fields.map(decode), serialPattern);
  if (!result.ok) return result;
  if (seen.has(result.entry.serial)) {
    return { ok: false, reason: `serial: duplicate of an earlier row (${result.entry.serial})` };
  }
  return result;
}

/**
 * Writes chunks to the store, `concurrency` at once, adding their counts to the summary. Progress
 * is the end of the longest run of written chunks from the start (reading runs ahead of writing,
 * and chunks written concurrently finish in any order).
 */
class ChunkWriter {
  private bytes = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown;
  private readonly pending: Array<{ rows: number; bytes: number; written: boolean }> = [];
  private reported = -1;
  private readonly concurrency: number;

  constructor(
    private readonly summary: ImportSummary,
    private readonly options: ImportOptions,
  ) {
    this.concurrency = options.concurrency ?? 4;
  }

  private chunk: AllowlistEntry[] = [];

  /** Adds a row to the chunk being filled; a full chunk (100 rows) is written. */
  async add(entry: AllowlistEntry): Promise<void> {
    this.chunk.push(entry);
    if (this.chunk.length < 100) return;
    const full = this.chunk;
    this.chunk = [];
    await this.write(full);
  }

  read(count: number): void {
    this.bytes += count;
  }

  private async write(entries: AllowlistEntry[]): Promise<void> {
    const position = { rows: this.summary.rows, bytes: this.bytes, written: false };
    this.pending.push(position);
    const write = this.options.store
      .importAllowlistEntries(entries, {
        now: this.options.now,
        actor: this.options.actor,
        idFor: () => this.options.newId(),
      })
      .then((result) => {
        this.summary.imported += result.imported;
        this.summary.updated += result.updated;
        this.summary.unchanged += result.unchanged;
        position.written = true;
        let done: { rows: number; bytes: number } | undefined;
        while (this.pending[0]?.written) done = this.pending.shift();
        if (done) this.report(done);
      })
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => this.inFlight.delete(write));
    this.inFlight.add(write);
    if (this.inFlight.size >= this.concurrency) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
  }

  /** Writes the last chunk and waits for every write; the last progress is the whole file. */
  async finish(): Promise<void> {
    if (this.chunk.length > 0) await this.write(this.chunk);
    await Promise.all(this.inFlight);
    if (this.failure) throw this.failure;
    this.report({ rows: this.summary.rows, bytes: this.bytes });
  }

  private report(position: { rows: number; bytes: number }): void {
    if (position.rows <= this.reported) return;
    this.reported = position.rows;
    this.options.onProgress?.({ rows: position.rows, bytes: position.bytes });
  }
}
