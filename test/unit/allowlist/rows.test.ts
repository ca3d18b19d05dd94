import { describe, expect, it } from 'vitest';
import { checkHeader, DEFAULT_SERIAL_PATTERN, parseRow, sameEntry } from '../../../shared/allowlist/rows';

const COLUMNS = ['serial', 'productLine', 'batch', 'allowedClaim', 'color'];
const PATTERN = new RegExp(DEFAULT_SERIAL_PATTERN, 'u');
const CLAIM = 'a'.repeat(64);

describe('checkHeader', () => {
  it.each([
    [['productLine'], 'header: a "serial" column is required'],
    [['serial', 'batch', 'batch'], 'header: column "batch" appears twice'],
    [['serial', 'bad name!'], 'header: "bad name!" is not a valid attribute name'],
  ])('rejects %j', (columns, reason) => {
    const result = checkHeader(columns);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toContain(reason);
  });

  it('accepts known columns and attributes, trimming spaces', () => {
    expect(checkHeader([' serial', 'color '])).toEqual({ ok: true, columns: ['serial', 'color'] });
  });

  it('limits attribute columns to 50', () => {
    const columns = ['serial', ...Array.from({ length: 51 }, (_, i) => `a${i}`)];
    expect(checkHeader(columns)).toMatchObject({ ok: false });
  });
});

describe('parseRow', () => {
  it('turns a valid row into an entry', () => {
    expect(parseRow(COLUMNS, ['SN-0001', 'gateway', 'B1', CLAIM, 'red'], PATTERN)).toEqual({
      ok: true,
      entry: {
        serial: 'SN-0001',
        productLine: 'gateway',
        batch: 'B1',
        allowedClaim: CLAIM,
        attributes: { color: 'red' },
      },
    });
  });

  it('leaves empty optional fields out', () => {
    expect(parseRow(COLUMNS, ['SN-0001', '', '', '', ''], PATTERN)).toEqual({
      ok: true,
      entry: { serial: 'SN-0001', attributes: {} },
    });
  });

  it.each([
    ['missing serial', ['', 'p', 'b', '', ''], 'serial: required'],
    ['bad serial', ['bad serial!', 'p', 'b', '', ''], 'serial: must match'],
    ['unicode serial', ['SN-ÄÖÜ1', 'p', 'b', '', ''], 'serial: must match'],
    ['injection serial', ["SN'; DROP TABLE", 'p', 'b', '', ''], 'serial: must match'],
    ['overlong serial', ['S'.repeat(65), 'p', 'b', '', ''], 'serial: at most 64 characters'],
    ['overlong batch', ['SN-0001', 'p', 'b'.repeat(129), '', ''], 'batch: at most 128 characters'],
    ['overlong attribute', ['SN-0001', 'p', 'b', '', 'x'.repeat(801)], 'color: at most 800 characters'],
    ['formula in attribute', ['SN-0001', 'p', 'b', '', '=cmd()'], 'color: must not start with ='],
    ['formula with plus', ['SN-0001', '+1+1', 'b', '', ''], 'productLine: must not start with'],
    ['formula with at', ['SN-0001', 'p', '@SUM(A1)', '', ''], 'batch: must not start with'],
    ['bad claim', ['SN-0001', 'p', 'b', 'not-a-claim', ''], 'allowedClaim: must be a 64-hex'],
    ['bad attribute chars', ['SN-0001', 'p', 'b', '', 'a b'], 'color: must match'],
    [
      'space in product line (not a valid thing attribute value)',
      ['SN-0001', 'gateway x1', 'b', '', ''],
      'productLine: must match',
    ],
    ['invalid UTF-8', ['SN-0001', undefined, 'b', '', ''], 'productLine: not valid UTF-8'],
    ['missing column', ['SN-0001', 'p'], 'row: expected 5 columns, found 2'],
    ['extra column', ['SN-0001', 'p', 'b', '', '', 'extra'], 'row: expected 5 columns, found 6'],
  ])('rejects %s', (_name, fields, reason) => {
    const result = parseRow(COLUMNS, fields, PATTERN);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toContain(reason);
  });

  it('reports every problem of a row at once', () => {
    const result = parseRow(COLUMNS, ['', '=x', 'b', 'bad', ''], PATTERN);
    expect(!result.ok && result.reason.split('; ')).toHaveLength(3);
  });
});

describe('sameEntry', () => {
  it('compares allowlist fields and attributes', () => {
    const entry = { serial: 'S1', batch: 'B', attributes: { a: '1' } };
    expect(sameEntry({ batch: 'B', attributes: { a: '1' } }, entry)).toBe(true);
    expect(sameEntry({ batch: 'B', attributes: { a: '2' } }, entry)).toBe(false);
    expect(sameEntry({ batch: 'C', attributes: { a: '1' } }, entry)).toBe(false);
    expect(sameEntry({ batch: 'B', attributes: { a: '1', b: '2' } }, entry)).toBe(false);
  });
});
