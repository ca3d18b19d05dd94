/**
 * Streams an allowlist CSV into the store: one physical line at a time (`csv-lines.ts`: a malformed
 * line — stray quote, line break inside a field, NUL, bare CR, BOM after the start, over-long — is
 * rejected with its line number and the rule, and the rest of the file is still read) → validate per
 * row → chunks of 100 → store. Memory stays flat whatever the file size (an over-long line is not
 * buffered). Duplicates within the file: with `reopen` (the CLI, reading a file) the serials seen are
 * kept as 40 bits of a 64-bit hash (`serial-set.ts`, 5–11 bytes a row) and a hash hit is held back, then
 * confirmed or cleared by comparing the serials themselves in a second read of the rows whose hash
 * was hit; without `reopen` (a stream that cannot be read twice) the serials themselves are kept.
 * Rejections (`rejections.ts`): with `rejectedFile`, the first 1000 in memory and, past them, the
 * complete list in that file, so neither they nor the rows held back grow with the file.
 */
import type { Readable } from 'node:stream';
import type { ProvisioningStore } from '../store/provisioning-store';
import { type CsvLine, csvLines, type SplitLine, splitCsvLine } from './csv-lines';
import { type Rejection, RejectionReport } from './rejections';
import { type AllowlistEntry, checkHeader, parseRow } from './rows';
import { type SerialHash, type SerialHasher, SerialHashSet, serialHash64 } from './serial-set';

export interface ImportSummary {
  rows: number;
  imported: number;
  updated: number;
  unchanged: number;
  /**
   * The rejected rows (line, field, rule) in line order: all of them, or with `rejectedFile` the
   * first `rejectedInMemory` when there were more (then every one is in `rejectedFile`).
   */
  rejected: Rejection[];
  /** How many rows were rejected in all. */
  rejectedCount: number;
  /** Where the complete list of rejections was written (CSV `line,reason`), when it was. */
  rejectedFile?: string;
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
  /**
   * A file for the complete list of rejections: given, at most `rejectedInMemory` rejections are
   * kept in memory and, once there are more, every one is written there (CSV `line,reason`, line
   * order). Absent, every rejection is kept in memory.
   */
  rejectedFile?: string;
  /** Rejections kept in memory with `rejectedFile` (default 1000). */
  rejectedInMemory?: number;
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
  /**
   * Settles the held-back rows in line order: each is either a duplicate (`duplicate`, with its line
   * and reason) or new after all (`fresh`, its entry).
   */
  confirm(settle: {
    duplicate: (rejection: { line: number; reason: string }) => Promise<void>;
    fresh: (entry: AllowlistEntry) => Promise<void>;
  }): Promise<void>;
}

function exactSerials(): SeenSerials {
  const seen = new Set<string>();
  return {
    add(_line, entry) {
      if (seen.has(entry.serial)) return 'duplicate';
      seen.add(entry.serial);
      return 'new';
    },
    confirm: async () => {},
  };
}

/**
 * The held-back rows of the hashed check, 12 bytes each: their lines (rising) and their serials'
 * hashes, in growable typed arrays — not the rows themselves, which the second read gives again.
 */
export class SuspectRows {
  private lines = new Uint32Array(64);
  private hashes = new Uint32Array(128);
  size = 0;

  add(line: number, [hi, lo]: SerialHash): void {
    if (this.size === this.lines.length) {
      const lines = new Uint32Array(this.lines.length * 2);
      lines.set(this.lines);
      this.lines = lines;
      const hashes = new Uint32Array(this.hashes.length * 2);
      hashes.set(this.hashes);
      this.hashes = hashes;
    }
    this.lines[this.size] = line;
    this.hashes[this.size * 2] = hi >>> 0;
    this.hashes[this.size * 2 + 1] = lo >>> 0;
    this.size += 1;
  }

  line(index: number): number | undefined {
    return index < this.size ? this.lines[index] : undefined;
  }

  hashIs(index: number, [hi, lo]: SerialHash): boolean {
    return this.hashes[index * 2] === hi >>> 0 && this.hashes[index * 2 + 1] === lo >>> 0;
  }
}

/**
 * Hashes of the serials accepted so far; a hash hit is held back (`SuspectRows`: its line and hash,
 * as many as the file has duplicates and collisions) and confirmed by a second read of the rows
 * whose hash was hit: in line order, a held-back row is a duplicate exactly when an earlier
 * accepted row (or an earlier held-back row found new) has the same serial.
 */
function hashedSerials(
  reopen: () => Readable,
  hash: SerialHasher,
  serialPattern: RegExp,
  maxBytes: number,
): SeenSerials {
  const seen = new SerialHashSet();
  const suspects = new SuspectRows();
  // The hashes that were hit, in a set of their own (no up-front reservation: it stays small).
  const hit = new SerialHashSet(16, { reserve: false });
  return {
    add(line, entry) {
      const h = hash(entry.serial);
      if (seen.add(h)) return 'new';
      suspects.add(line, h);
      hit.add(h);
      return 'suspect';
    },
    async confirm(settle) {
      if (suspects.size === 0) return;
      const rows = parsedRows(reopen(), serialPattern, maxBytes, () => {});
      await settleSuspects(rows, suspects, hash, (h) => hit.has(h), settle);
    },
  };
}

/**
 * The second read: in line order, a held-back row is a duplicate exactly when an earlier accepted
 * row (or an earlier held-back row found new) has the same serial; only rows whose hash was hit
 * are compared (their serials kept: as many distinct serials as were hit). A held-back line that
 * reads differently now (no entry, another hash) means the file changed: an error.
 */
async function settleSuspects(
  rows: AsyncIterable<ParsedRow>,
  suspects: SuspectRows,
  hash: SerialHasher,
  wasHit: (h: SerialHash) => boolean,
  settle: Parameters<SeenSerials['confirm']>[0],
): Promise<void> {
  const accepted = new Set<string>();
  let next = 0;
  for await (const row of rows) {
    if (next === suspects.size) break; // every held-back row settled
    const kind = secondReadRow(row, suspects, next, hash, wasHit);
    if (kind === 'changed') break;
    const serial = row.entry?.serial as string;
    if (kind === 'accepted') accepted.add(serial);
    if (kind !== 'suspect') continue;
    next += 1;
    if (accepted.has(serial)) await settle.duplicate({ line: row.line, reason: duplicateReason(serial) });
    else {
      accepted.add(serial);
      await settle.fresh(row.entry as AllowlistEntry);
    }
  }
  if (next !== suspects.size) {
    throw new AllowlistFileError('the file changed while it was being imported (second read differs)');
  }
}

/**
 * A row of the second read: the next held-back row (`suspect`), a row accepted in the first read
 * whose hash was hit (`accepted`: its serial is compared), another row (`other`), or the held-back
 * line reading differently now (`changed`: no entry, another hash).
 */
function secondReadRow(
  row: ParsedRow,
  suspects: SuspectRows,
  next: number,
  hash: SerialHasher,
  wasHit: (h: SerialHash) => boolean,
): 'suspect' | 'accepted' | 'other' | 'changed' {
  const held = row.line === suspects.line(next);
  if (!row.entry) return held ? 'changed' : 'other';
  const h = hash(row.entry.serial);
  if (held) return suspects.hashIs(next, h) ? 'suspect' : 'changed';
  return wasHit(h) ? 'accepted' : 'other';
}

export async function importAllowlistCsv(input: Readable, options: ImportOptions): Promise<ImportSummary> {
  const summary: ImportSummary = {
    rows: 0,
    imported: 0,
    updated: 0,
    unchanged: 0,
    rejected: [],
    rejectedCount: 0,
  };
  const maxBytes = options.maxRecordBytes ?? 64 * 1024;
  const writer = new ChunkWriter(summary, options);
  const report = new RejectionReport({ limit: options.rejectedInMemory, file: options.rejectedFile });
  const seen = options.reopen
    ? hashedSerials(options.reopen, options.serialHash ?? serialHash64, options.serialPattern, maxBytes)
    : exactSerials();
  try {
    for await (const row of parsedRows(input, options.serialPattern, maxBytes, (n) => writer.read(n))) {
      summary.rows += 1;
      if (!row.entry) {
        await report.add({ line: row.line, reason: row.reason });
        continue;
      }
      const verdict = seen.add(row.line, row.entry);
      if (verdict === 'duplicate')
        await report.add({ line: row.line, reason: duplicateReason(row.entry.serial) });
      if (verdict === 'new') await writer.add(row.entry);
    }
    await seen.confirm({
      duplicate: (rejection) => report.addLate(rejection),
      fresh: (entry) => writer.add(entry),
    });
    await writer.finish();
  } catch (error) {
    await report.discard();
    throw error;
  }
  const { rejected, rejectedCount, rejectedFile } = await report.finish();
  summary.rejected = rejected;
  summary.rejectedCount = rejectedCount;
  if (rejectedFile !== undefined) summary.rejectedFile = rejectedFile;
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
