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
  let line = 1;
  let parts: Buffer[] = [];
  let length = 0;
  let overflow = false;
  const end = (): CsvLine => {
    let bytes = overflow ? Buffer.alloc(0) : Buffer.concat(parts, length);
    const tooLong = overflow ? length : 0;
    if (!overflow && bytes.length > 0 && bytes[bytes.length - 1] === CR) bytes = bytes.subarray(0, -1);
    parts = [];
    length = 0;
    overflow = false;
    const out: CsvLine = tooLong > 0 ? { line, tooLong } : { line, bytes };
    line += 1;
    return out;
  };
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    onBytes?.(buffer.length);
    let start = 0;
    for (;;) {
      const at = buffer.indexOf(LF, start);
      const piece = buffer.subarray(start, at === -1 ? buffer.length : at);
      length += piece.length;
      if (!overflow && length > maxBytes + 1) {
        // +1: a CRLF line of exactly maxBytes carries its CR until the line ends.
        overflow = true;
        parts = [];
      }
      if (!overflow && piece.length > 0) parts.push(Buffer.from(piece));
      if (at === -1) break;
      yield end();
      start = at + 1;
    }
  }
  if (length > 0 || parts.length > 0 || overflow) yield end();
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
  if (options.maxBytes !== undefined && data.length > options.maxBytes) {
    return { ok: false, rule: `longer than ${options.maxBytes} bytes (${data.length} bytes)` };
  }
  const nul = data.indexOf(0x00);
  if (nul !== -1) return { ok: false, rule: `NUL byte (0x00) at byte ${nul + 1}` };
  const cr = data.indexOf(CR);
  if (cr !== -1) {
    return {
      ok: false,
      rule: `carriage return (\\r) at byte ${cr + 1}: line endings must be LF or CRLF, never a bare CR`,
    };
  }
  const bom = data.indexOf(BOM);
  if (bom !== -1) {
    return {
      ok: false,
      rule: `byte order mark (U+FEFF) at byte ${bom + 1}: allowed only at the very start of the file`,
    };
  }
  const fields: Buffer[] = [];
  let i = 0;
  for (let field = 0; ; field += 1) {
    if (data[i] === QUOTE) {
      // Quoted: up to the closing quote; "" is one quote.
      const parts: Buffer[] = [];
      let from = i + 1;
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
          field,
          rule: 'quoted field not closed on its line (a line break inside a field is not allowed)',
        };
      }
      parts.push(data.subarray(from, closed));
      fields.push(Buffer.concat(parts));
      i = closed + 1;
      if (i === data.length) return { ok: true, fields };
      if (data[i] !== COMMA) {
        return {
          ok: false,
          field,
          rule: 'text after the closing quote (a quoted field must end at the next comma)',
        };
      }
      i += 1;
      continue;
    }
    const comma = data.indexOf(COMMA, i);
    const value = data.subarray(i, comma === -1 ? data.length : comma);
    const quote = value.indexOf(QUOTE);
    if (quote !== -1) {
      return {
        ok: false,
        field,
        rule: 'stray quote (") inside an unquoted field (a field containing " must be quoted and its quotes doubled)',
      };
    }
    fields.push(value);
    if (comma === -1) return { ok: true, fields };
    i = comma + 1;
  }
}
