/**
 * Streams an allowlist CSV into the store: parse → validate per row (with line numbers) →
 * chunks of 100 → store. Memory stays flat whatever the file size, apart from the set of serials
 * seen (needed to reject duplicates within the file: ~60 bytes a row).
 */
import type { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import type { ProvisioningStore } from '../store/provisioning-store';
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
  /** Upper bound on one CSV record, so a runaway quote cannot eat memory. */
  maxRecordBytes?: number;
  /** After each chunk is written: rows read up to the end of the chunks written so far, and bytes read. */
  onProgress?: (progress: { rows: number; bytes: number }) => void;
}

/** Thrown when the file cannot be read as an allowlist at all (header, CSV syntax). */
export class AllowlistFileError extends Error {
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(line === undefined ? message : `line ${line}: ${message}`);
    this.name = 'AllowlistFileError';
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

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
  const parser = parse({
    encoding: null,
    info: true,
    bom: true,
    relax_column_count: true,
    skip_empty_lines: true,
    max_record_size: options.maxRecordBytes ?? 64 * 1024,
  });
  let bytes = 0;
  input.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  input.on('error', (error) => parser.destroy(error));
  input.pipe(parser);

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

  try {
    for await (const { record, info } of parser as AsyncIterable<{
      record: Buffer[];
      info: { lines: number };
    }>) {
      const fields = record.map(decode);
      if (!columns) {
        const header = checkHeader(fields.map((field) => field ?? '\uFFFD'));
        if (!header.ok) throw new AllowlistFileError(header.reason, info.lines);
        columns = header.columns;
        continue;
      }
      summary.rows += 1;
      const result = parseRow(columns, fields, options.serialPattern);
      if (!result.ok) {
        summary.rejected.push({ line: info.lines, reason: result.reason });
        continue;
      }
      if (seen.has(result.entry.serial)) {
        summary.rejected.push({
          line: info.lines,
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
  } catch (error) {
    if (error instanceof AllowlistFileError) throw error;
    const csv = error as { code?: string; lines?: number; message?: string };
    if (typeof csv.code === 'string' && csv.code.startsWith('CSV_')) {
      throw new AllowlistFileError(`not valid CSV (${csv.code}): ${csv.message ?? ''}`.trim(), csv.lines);
    }
    throw error;
  }
  if (!columns)
    throw new AllowlistFileError('the file is empty: a header row with a "serial" column is required');
  if (chunk.length > 0) await flush(chunk);
  await Promise.all(inFlight);
  if (failure) throw failure;
  report({ rows: summary.rows, bytes });
  return summary;
}
