/**
 * The allowlist's CSV, read one physical line at a time so that one bad row can never take the
 * rest of the file with it (a stray quote read as an opening quote would otherwise swallow every
 * following line) and every rejection names the exact line of the file.
 *
 * Grammar (RFC 4180, one record per line): fields separated by `,`; a field is either unquoted
 * (no `"` in it at all) or quoted (`"…"`, a `"` inside written `""`). Line endings LF or CRLF; a
 * UTF-8 byte order mark is allowed at the very start of the file only. A line breaking any of
 * these rules is rejected with the line number and the rule, never parsed leniently:
 * - a stray quote inside an unquoted field (`=cmd|"/C calc"!A0`), text after a closing quote;
 * - a quoted field not closed on its line (a line break inside a field: no allowlist value may
 *   contain one — serials and thing attributes cannot);
 * - a NUL byte, a carriage return that is not part of CRLF, a byte order mark after the start;
 * - a line longer than the limit (read past without being kept: memory stays flat).
 * @see https://www.rfc-editor.org/rfc/rfc4180#section-2
 */
import type { Readable } from 'node:stream';

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** One physical line: its bytes (without the line ending), or how long it was when over the limit. */
export type CsvLine = { line: number; bytes: Buffer } | { line: number; tooLong: number };

/**
 * Splits a byte stream into lines (LF; a CR before it is dropped with it). A line over `maxBytes` is
 * reported by length, its bytes skipped without being buffered. Empty lines are yielded too.
 */
export async function* csvLines(
  input: Readable,
  maxBytes: number,
  onBytes?: (count: number) => void,
): AsyncGenerator<CsvLine> {
  const current = new LineBuffer(maxBytes);
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    onBytes?.(buffer.length);
    let start = 0;
    for (;;) {
      const at = buffer.indexOf(LF, start);
      current.add(buffer.subarray(start, at === -1 ? buffer.length : at));
      if (at === -1) break;
      yield current.end();
      start = at + 1;
    }
  }
  if (!current.isEmpty()) yield current.end();
}

/** The line being read: its pieces, or only its length once it is over the limit. */
class LineBuffer {
  private line = 1;
  private parts: Buffer[] = [];
  private length = 0;
  private overflow = false;

  constructor(private readonly maxBytes: number) {}

  add(piece: Buffer): void {
    this.length += piece.length;
    if (!this.overflow && this.length > this.maxBytes + 1) {
      // +1: a CRLF line of exactly maxBytes carries its CR until the line ends.
      this.overflow = true;
      this.parts = [];
    }
    if (!this.overflow && piece.length > 0) this.parts.push(Buffer.from(piece));
  }

  isEmpty(): boolean {
    return this.length === 0 && this.parts.length === 0 && !this.overflow;
  }

  end(): CsvLine {
    const out: CsvLine = this.overflow
      ? { line: this.line, tooLong: this.length }
      : { line: this.line, bytes: withoutTrailingCr(Buffer.concat(this.parts, this.length)) };
    this.parts = [];
    this.length = 0;
    this.overflow = false;
    this.line += 1;
    return out;
  }
}

function withoutTrailingCr(bytes: Buffer): Buffer {
  return bytes.length > 0 && bytes[bytes.length - 1] === CR ? bytes.subarray(0, -1) : bytes;
}

/** A line split into its fields' bytes, or the first rule it breaks and where. */
export type SplitLine = { ok: true; fields: Buffer[] } | { ok: false; field?: number; rule: string };

/**
 * Splits one line into fields. `first`: the file's first line, where a UTF-8 byte order mark is
 * allowed (and removed). `field` in a failure is the 0-based index of the offending field.
 */
export function splitCsvLine(bytes: Buffer, options: { first?: boolean; maxBytes?: number } = {}): SplitLine {
  let data = bytes;
  if (options.first && data.subarray(0, 3).equals(BOM)) data = data.subarray(3);
  const broken = lineRuleBroken(data, options.maxBytes);
  if (broken) return { ok: false, rule: broken };
  const fields: Buffer[] = [];
  let i = 0;
  for (let field = 0; ; field += 1) {
    const read = data[i] === QUOTE ? readQuoted(data, i) : readUnquoted(data, i);
    if (!read.ok) return { ok: false, field, rule: read.rule };
    fields.push(read.value);
    if (read.next === undefined) return { ok: true, fields };
    i = read.next;
  }
}

/** The first whole-line rule the line breaks (length, NUL, bare CR, BOM past the start), if any. */
function lineRuleBroken(data: Buffer, maxBytes: number | undefined): string | undefined {
  if (maxBytes !== undefined && data.length > maxBytes) {
    return `longer than ${maxBytes} bytes (${data.length} bytes)`;
  }
  const nul = data.indexOf(0x00);
  if (nul !== -1) return `NUL byte (0x00) at byte ${nul + 1}`;
  const cr = data.indexOf(CR);
  if (cr !== -1) {
    return `carriage return (\\r) at byte ${cr + 1}: line endings must be LF or CRLF, never a bare CR`;
  }
  const bom = data.indexOf(BOM);
  if (bom !== -1) {
    return `byte order mark (U+FEFF) at byte ${bom + 1}: allowed only at the very start of the file`;
  }
  return undefined;
}

/** One field read from `at`: its value and where the next one starts (none: the line ended). */
type FieldRead = { ok: true; value: Buffer; next?: number } | { ok: false; rule: string };

/** A quoted field from its opening quote at `at`: up to the closing quote; "" is one quote. */
function readQuoted(data: Buffer, at: number): FieldRead {
  const parts: Buffer[] = [];
  let from = at + 1;
  let closed = -1;
  for (let j = from; j < data.length; j += 1) {
    if (data[j] !== QUOTE) continue;
    if (data[j + 1] === QUOTE) {
      parts.push(data.subarray(from, j + 1));
      j += 1;
      from = j + 1;
      continue;
    }
    closed = j;
    break;
  }
  if (closed === -1) {
    return {
      ok: false,
      rule: 'quoted field not closed on its line (a line break inside a field is not allowed)',
    };
  }
  parts.push(data.subarray(from, closed));
  const value = Buffer.concat(parts);
  const after = closed + 1;
  if (after === data.length) return { ok: true, value };
  if (data[after] !== COMMA) {
    return { ok: false, rule: 'text after the closing quote (a quoted field must end at the next comma)' };
  }
  return { ok: true, value, next: after + 1 };
}

/** An unquoted field from `at` up to the next comma or the line's end. */
function readUnquoted(data: Buffer, at: number): FieldRead {
  const comma = data.indexOf(COMMA, at);
  const value = data.subarray(at, comma === -1 ? data.length : comma);
  if (value.indexOf(QUOTE) !== -1) {
    return {
      ok: false,
      rule: 'stray quote (") inside an unquoted field (a field containing " must be quoted and its quotes doubled)',
    };
  }
  return comma === -1 ? { ok: true, value } : { ok: true, value, next: comma + 1 };
}
