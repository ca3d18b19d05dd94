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
import { type CsvLine, csvLines, type SplitLine, splitCsvLine } from './csv-lines';
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
  /** Chunks written at once (each one BatchGetItem, then a transaction per 50 new serials). */
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
    const split = splitPhysical(physical, first, maxBytes);
    if ('bytes' in physical && physical.bytes.length > 0) first = false;
    if (split.ok && split.fields.length === 0) continue; // an empty line
    if (!columns) {
      columns = readHeader(split, line);
      continue;
    }
    yield rowOf(split, columns, line, serialPattern);
  }
  if (!columns)
    throw new AllowlistFileError('the file is empty: a header row with a "serial" column is required');
}

/** One data row as an entry, or why it is rejected (a malformed line, a bad value). */
function rowOf(split: SplitLine, columns: string[], line: number, serialPattern: RegExp): ParsedRow {
  if (!split.ok) {
    const where = split.field === undefined ? 'row' : (columns[split.field] ?? `column ${split.field + 1}`);
    return { line, reason: `${where}: ${split.rule}` };
  }
  const result = parseRow(columns, split.fields.map(decode), serialPattern);
  return result.ok ? { line, entry: result.entry } : { line, reason: result.reason };
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
      if (suspects.size === 0) return { duplicates: [], fresh: [] };
      const hit = new Set([...suspects.values()].map((entry) => hashKey(entry.serial)));
      const rows = parsedRows(reopen(), serialPattern, maxBytes, () => {});
      return settleSuspects(rows, suspects, (serial) => hit.has(hashKey(serial)));
    },
  };
}

/**
 * The second read: in line order, a held-back row is a duplicate exactly when an earlier accepted
 * row (or an earlier held-back row found new) has the same serial; only rows whose hash was hit
 * are compared. A held-back row that reads differently now means the file changed: an error.
 */
async function settleSuspects(
  rows: AsyncIterable<ParsedRow>,
  suspects: ReadonlyMap<number, AllowlistEntry>,
  wasHit: (serial: string) => boolean,
): Promise<{ duplicates: Array<{ line: number; reason: string }>; fresh: AllowlistEntry[] }> {
  const duplicates: Array<{ line: number; reason: string }> = [];
  const fresh: AllowlistEntry[] = [];
  const accepted = new Set<string>();
  let confirmed = 0;
  for await (const row of rows) {
    if (!row.entry || !wasHit(row.entry.serial)) continue;
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
}

export async function importAllowlistCsv(input: Readable, options: ImportOptions): Promise<ImportSummary> {
  const summary: ImportSummary = { rows: 0, imported: 0, updated: 0, unchanged: 0, rejected: [] };
  const maxBytes = options.maxRecordBytes ?? 64 * 1024;
  const writer = new ChunkWriter(summary, options);
  const seen = options.reopen
    ? hashedSerials(options.reopen, options.serialHash ?? serialHash64, options.serialPattern, maxBytes)
    : exactSerials();
  for await (const row of parsedRows(input, options.serialPattern, maxBytes, (n) => writer.read(n))) {
    summary.rows += 1;
    if (!row.entry) {
      summary.rejected.push({ line: row.line, reason: row.reason });
      continue;
    }
    const verdict = seen.add(row.line, row.entry);
    if (verdict === 'duplicate')
      summary.rejected.push({ line: row.line, reason: duplicateReason(row.entry.serial) });
    if (verdict === 'new') await writer.add(row.entry);
  }
  const held = await seen.confirm();
  if (held.duplicates.length > 0) {
    summary.rejected.push(...held.duplicates);
    summary.rejected.sort((x, y) => x.line - y.line);
  }
  for (const entry of held.fresh) await writer.add(entry);
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
