/**
 * Reading a factory batch: a directory of PEM files (one device certificate each; the serial is
 * the subject's), or a manifest CSV with the columns `serial,certificate` (the certificate a path to
 * a PEM file, relative to the manifest), where the manifest's serial must be the subject's too.
 * Every row is read on its own: an unreadable file, an over-long one or a malformed manifest line is
 * that row's rejection, never the batch's. Only a manifest whose header is wrong stops the import.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { splitCsvLine } from '../allowlist/csv-lines';

/** One row of the batch, before its certificate is parsed. */
export interface BatchRow {
  /** 1-based position in the batch (file order for a directory, line number for a manifest). */
  row: number;
  /** Where the row comes from: the file name, or `manifest.csv:<line>`. */
  source: string;
  manifestSerial?: string;
  /** The PEM text (never logged), or why the row could not be read. */
  pem?: string;
  unreadable?: string;
}

export interface Batch {
  kind: 'directory' | 'manifest';
  path: string;
  rows: BatchRow[];
}

export class BatchFileError extends Error {
  override name = 'BatchFileError';
}

const PEM_EXTENSIONS = /\.(pem|crt|cer)$/i;
const MAX_MANIFEST_LINE_BYTES = 4096;

/** Reads the batch at `path` (a directory or a manifest CSV). */
export function readBatch(path: string, options: { maxPemBytes: number }): Batch {
  if (!existsSync(path)) throw new BatchFileError(`${path}: no such file or directory`);
  if (statSync(path).isDirectory()) {
    const files = readdirSync(path)
      .filter((name) => PEM_EXTENSIONS.test(name))
      .sort();
    if (files.length === 0) throw new BatchFileError(`${path}: no .pem, .crt or .cer files`);
    return {
      kind: 'directory',
      path,
      rows: files.map((name, index) => ({
        row: index + 1,
        source: name,
        ...readPem(join(path, name), options.maxPemBytes),
      })),
    };
  }
  return { kind: 'manifest', path, rows: readManifest(path, options.maxPemBytes) };
}

function readManifest(path: string, maxPemBytes: number): BatchRow[] {
  // 'binary' keeps every byte as one code unit, so each line goes back to its exact bytes.
  const lines = readFileSync(path).toString('binary').split('\n');
  const name = basename(path);
  const header = splitCsvLine(Buffer.from((lines[0] ?? '').replace(/\r$/, ''), 'binary'), { first: true });
  const columns = header.ok ? header.fields.map((field) => field.toString('utf8').trim()) : [];
  const serialAt = columns.indexOf('serial');
  const certificateAt = columns.indexOf('certificate');
  if (!header.ok || serialAt === -1 || certificateAt === -1 || columns.length !== 2) {
    throw new BatchFileError(`${name}: line 1: the header must be the two columns serial,certificate`);
  }
  const rows: BatchRow[] = [];
  for (let index = 1; index < lines.length; index += 1) {
    const raw = (lines[index] ?? '').replace(/\r$/, '');
    if (raw.trim() === '') continue;
    const line = index + 1;
    rows.push(
      manifestRow(
        raw,
        { row: line, source: `${name}:${line}` },
        { serialAt, certificateAt },
        path,
        maxPemBytes,
      ),
    );
  }
  if (rows.length === 0) throw new BatchFileError(`${name}: no rows after the header`);
  return rows;
}

/** One manifest line (not blank) as a row: its serial and its certificate file read, or why not. */
function manifestRow(
  raw: string,
  at: { row: number; source: string },
  columns: { serialAt: number; certificateAt: number },
  manifestPath: string,
  maxPemBytes: number,
): BatchRow {
  const split = splitCsvLine(Buffer.from(raw, 'binary'), { maxBytes: MAX_MANIFEST_LINE_BYTES });
  if (!split.ok) return { ...at, unreadable: `line: ${split.rule}` };
  if (split.fields.length !== 2) {
    return { ...at, unreadable: `line: ${split.fields.length} fields, the header has 2` };
  }
  const serial = (split.fields[columns.serialAt] as Buffer).toString('utf8').trim();
  const file = (split.fields[columns.certificateAt] as Buffer).toString('utf8').trim();
  if (serial === '') return { ...at, unreadable: 'serial: is empty' };
  if (file === '') return { ...at, manifestSerial: serial, unreadable: 'certificate: is empty' };
  const certificatePath = isAbsolute(file) ? file : resolve(dirname(manifestPath), file);
  return { ...at, manifestSerial: serial, ...readPem(certificatePath, maxPemBytes, file) };
}

/**
 * The PEM text of one file, or why it cannot be read (never more than `maxBytes` are read); `shown`
 * is how the batch names the file (the manifest's cell as written, else the file's name).
 */
function readPem(
  file: string,
  maxBytes: number,
  shown: string = basename(file),
): { pem: string } | { unreadable: string } {
  if (!existsSync(file) || !statSync(file).isFile())
    return { unreadable: `certificate: ${shown} is not a file` };
  const size = statSync(file).size;
  if (size > maxBytes) return { unreadable: `certificate: ${size} bytes, longer than ${maxBytes}` };
  return { pem: readFileSync(file, 'utf8') };
}
