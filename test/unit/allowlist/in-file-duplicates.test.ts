import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AllowlistFileError, importAllowlistCsv } from '../../../shared/allowlist/import-csv';
import { DEFAULT_SERIAL_PATTERN } from '../../../shared/allowlist/rows';
import { type SerialHash, SerialHashSet, serialHash64 } from '../../../shared/allowlist/serial-set';
import { recordingStore } from '../../support/allowlist';

const HEADER = 'serial,productLine';
/** Lines 2..: A1 B1 A1 (dup of 2) C1 B1 (dup of 3) bad! D1 C1 (dup of 5) A1 (dup of 2) */
const ROWS = ['A-001', 'B-001', 'A-001', 'C-001', 'B-001', 'bad serial!', 'D-001', 'C-001', 'A-001'];
const CSV = [HEADER, ...ROWS.map((serial) => `${serial},gateway`)].join('\n');
const EXPECTED_REJECTED = [
  { line: 4, reason: 'serial: duplicate of an earlier row (A-001)' },
  { line: 6, reason: 'serial: duplicate of an earlier row (B-001)' },
  { line: 7, reason: expect.stringContaining('serial') },
  { line: 9, reason: 'serial: duplicate of an earlier row (C-001)' },
  { line: 10, reason: 'serial: duplicate of an earlier row (A-001)' },
];

async function importCsv(
  csv: string,
  options: { reopen: boolean; serialHash?: (serial: string) => SerialHash },
) {
  const { store, written } = recordingStore();
  let reads = 0;
  const open = () => {
    reads += 1;
    return Readable.from([Buffer.from(csv)]);
  };
  const summary = await importAllowlistCsv(open(), {
    store,
    serialPattern: new RegExp(DEFAULT_SERIAL_PATTERN, 'u'),
    now: '2026-12-07T00:00:00.000Z',
    actor: 'test',
    newId: () => 'id',
    reopen: options.reopen ? open : undefined,
    serialHash: options.serialHash,
  });
  return { summary, serials: written.map((entry) => entry.serial).sort(), reads };
}

describe('SerialHashSet', () => {
  it('answers false for a hash already added, across growth from a small table', () => {
    const set = new SerialHashSet(2);
    for (let i = 0; i < 5000; i += 1) expect(set.add(serialHash64(`SN-${i}`))).toBe(true);
    expect(set.size).toBe(5000);
    for (let i = 0; i < 5000; i += 1) {
      expect(set.has(serialHash64(`SN-${i}`))).toBe(true);
      expect(set.add(serialHash64(`SN-${i}`))).toBe(false);
    }
    expect(set.has(serialHash64('SN-5000'))).toBe(false);
    expect(set.size).toBe(5000);
  });

  it('works the same without the up-front reservation (segments as arrays of their own)', () => {
    const set = new SerialHashSet(2, { reserve: false });
    for (let i = 0; i < 5000; i += 1) expect(set.add(serialHash64(`SN-${i}`))).toBe(true);
    for (let i = 0; i < 5000; i += 1) expect(set.add(serialHash64(`SN-${i}`))).toBe(false);
    expect(set.has(serialHash64('SN-5000'))).toBe(false);
    expect(set.size).toBe(5000);
  });

  it('stores the (0, 0) hash (the empty-slot marker) as another value', () => {
    const set = new SerialHashSet();
    expect(set.add([0, 0])).toBe(true);
    expect(set.add([0, 0])).toBe(false);
    expect(set.has([0, 0])).toBe(true);
  });

  it('keeps 40 bits of a hash: one sharing its top 8 and low 32 bits is taken as added (a suspect), others are not', () => {
    const set = new SerialHashSet();
    expect(set.add([0xab00_0001, 0x1234_5678])).toBe(true);
    // Same segment (top 8 bits), same low word, other middle bits: reported as seen, for the import
    // to confirm by comparing the serials.
    expect(set.has([0xab12_3456, 0x1234_5678])).toBe(true);
    expect(set.add([0xabff_ffff, 0x1234_5678])).toBe(false);
    // Another segment or another low word: not seen.
    expect(set.add([0xac00_0001, 0x1234_5678])).toBe(true);
    expect(set.add([0xab00_0001, 0x1234_5679])).toBe(true);
    expect(set.size).toBe(3);
  });

  it('never misses a hash it holds: 200,000 random hashes, all found after growth', () => {
    const set = new SerialHashSet(2);
    const hashes: Array<[number, number]> = [];
    let x = 12345;
    const next = () => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x;
    };
    for (let i = 0; i < 200_000; i += 1) hashes.push([next(), next()]);
    for (const hash of hashes) set.add(hash);
    expect(hashes.filter((hash) => !set.has(hash))).toEqual([]);
  });

  it('gives distinct 64-bit hashes to 100,000 similar serials', () => {
    const set = new SerialHashSet();
    for (let i = 0; i < 100_000; i += 1) set.add(serialHash64(`SN-${String(i).padStart(8, '0')}`));
    expect(set.size).toBe(100_000);
  });
});

describe('in-file duplicates of the allowlist import', () => {
  it('by hash with a second read: the same rejections (line, field, rule) as keeping every serial', async () => {
    const exact = await importCsv(CSV, { reopen: false });
    const hashed = await importCsv(CSV, { reopen: true });
    expect(exact.summary.rejected).toEqual(EXPECTED_REJECTED);
    expect(hashed.summary).toEqual(exact.summary);
    expect(hashed.serials).toEqual(['A-001', 'B-001', 'C-001', 'D-001']);
    expect(exact.serials).toEqual(hashed.serials);
    expect(hashed.reads).toBe(2); // duplicates were held back, so the file was read again
  });

  it('a forced hash collision is confirmed, not assumed: no false "duplicate", true duplicates still exact', async () => {
    // Every serial has the same hash: every row after the first is a suspect.
    const { summary, serials, reads } = await importCsv(CSV, { reopen: true, serialHash: () => [7, 7] });
    expect(summary.rejected).toEqual(EXPECTED_REJECTED);
    expect(summary).toMatchObject({ rows: 9, imported: 4 });
    expect(serials).toEqual(['A-001', 'B-001', 'C-001', 'D-001']);
    expect(reads).toBe(2);
  });

  it('a collision between two different serials and no duplicate: both imported, nothing rejected', async () => {
    const csv = [HEADER, 'A-001,gateway', 'B-001,gateway'].join('\n');
    const { summary, serials } = await importCsv(csv, { reopen: true, serialHash: () => [1, 2] });
    expect(summary.rejected).toEqual([]);
    expect(serials).toEqual(['A-001', 'B-001']);
  });

  it('reads the file once when no hash was hit', async () => {
    const csv = [HEADER, 'A-001,gateway', 'B-001,gateway'].join('\n');
    expect((await importCsv(csv, { reopen: true })).reads).toBe(1);
  });

  it('a file that changed between the two reads fails the import', async () => {
    const { store } = recordingStore();
    let reads = 0;
    const open = () => {
      reads += 1;
      const rows = reads === 1 ? ['A-001', 'A-001'] : ['A-001', 'Z-001'];
      return Readable.from([Buffer.from([HEADER, ...rows.map((s) => `${s},gateway`)].join('\n'))]);
    };
    await expect(
      importAllowlistCsv(open(), {
        store,
        serialPattern: new RegExp(DEFAULT_SERIAL_PATTERN, 'u'),
        now: '2026-12-07T00:00:00.000Z',
        actor: 'test',
        newId: () => 'id',
        reopen: open,
      }),
    ).rejects.toBeInstanceOf(AllowlistFileError);
  });
});
