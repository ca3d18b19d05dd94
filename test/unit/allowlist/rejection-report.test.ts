import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importAllowlistCsv } from '../../../shared/allowlist/import-csv';
import {
  parseReportLine,
  REPORT_HEADER,
  type Rejection,
  RejectionReport,
  reportLine,
} from '../../../shared/allowlist/rejections';
import { DEFAULT_SERIAL_PATTERN } from '../../../shared/allowlist/rows';
import { recordingStore } from '../../support/allowlist';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-rejections-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function reportRows(file: string): Promise<Rejection[]> {
  const [header, ...lines] = (await readFile(file, 'utf8')).split('\n').filter((line) => line !== '');
  expect(header).toBe(REPORT_HEADER);
  return lines.map(parseReportLine);
}

async function importCsv(
  csv: string,
  options: { rejectedFile?: string; rejectedInMemory?: number; serialHash?: () => [number, number] },
) {
  const { store, written } = recordingStore();
  const open = () => Readable.from([Buffer.from(csv)]);
  const summary = await importAllowlistCsv(open(), {
    store,
    serialPattern: new RegExp(DEFAULT_SERIAL_PATTERN, 'u'),
    now: '2026-12-07T00:00:00.000Z',
    actor: 'test',
    newId: () => 'id',
    concurrency: 2,
    reopen: open,
    ...options,
  });
  return { summary, serials: written.map((entry) => entry.serial).sort() };
}

describe('RejectionReport', () => {
  it('a reason with quotes and commas survives the report line', () => {
    const rejection = { line: 12, reason: 'productLine: stray quote (") inside, "really"' };
    expect(parseReportLine(reportLine(rejection))).toEqual(rejection);
  });

  it('at most `limit`: everything in memory, no file written', async () => {
    const file = join(dir, 'few.csv');
    const report = new RejectionReport({ limit: 3, file });
    await report.add({ line: 2, reason: 'a' });
    await report.addLate({ line: 1, reason: 'dup' });
    await report.add({ line: 5, reason: 'b' });
    expect(await report.finish()).toEqual({
      rejected: [
        { line: 1, reason: 'dup' },
        { line: 2, reason: 'a' },
        { line: 5, reason: 'b' },
      ],
      rejectedCount: 3,
    });
    expect(existsSync(file)).toBe(false);
    expect(existsSync(`${file}.part-1`) || existsSync(`${file}.part-2`)).toBe(false);
  });

  it('past `limit`: the first `limit` in memory, all of them in the file in line order, both runs merged', async () => {
    const file = join(dir, 'many.csv');
    const report = new RejectionReport({ limit: 4, file });
    // Early run: every odd line from 1 to 19 (10 rejections, past the limit: spilled).
    for (let line = 1; line < 20; line += 2) await report.add({ line, reason: `bad ${line}` });
    // Late run: lines 4, 8, 12, 16, 20, 24 (6, past the limit: spilled too).
    for (let line = 4; line <= 24; line += 4) await report.addLate({ line, reason: `dup ${line}` });
    const result = await report.finish();
    const expected = [
      ...Array.from({ length: 10 }, (_, i) => ({ line: 2 * i + 1, reason: `bad ${2 * i + 1}` })),
      ...Array.from({ length: 6 }, (_, i) => ({ line: 4 * (i + 1), reason: `dup ${4 * (i + 1)}` })),
    ].sort((x, y) => x.line - y.line);
    expect(result).toEqual({ rejected: expected.slice(0, 4), rejectedCount: 16, rejectedFile: file });
    expect(await reportRows(file)).toEqual(expected);
    expect(existsSync(`${file}.part-1`) || existsSync(`${file}.part-2`)).toBe(false);
  });

  it('past `limit` only once both runs are counted: written from memory', async () => {
    const file = join(dir, 'together.csv');
    const report = new RejectionReport({ limit: 2, file });
    await report.add({ line: 3, reason: 'bad' });
    await report.addLate({ line: 2, reason: 'dup' });
    await report.addLate({ line: 9, reason: 'dup' });
    const result = await report.finish();
    expect(result).toMatchObject({ rejectedCount: 3, rejectedFile: file });
    expect(result.rejected.map((r) => r.line)).toEqual([2, 3]);
    expect((await reportRows(file)).map((r) => r.line)).toEqual([2, 3, 9]);
  });

  it('without a file, every rejection is kept in memory whatever the limit', async () => {
    const report = new RejectionReport({ limit: 1 });
    for (let line = 1; line <= 5; line += 1) await report.add({ line, reason: 'x' });
    const result = await report.finish();
    expect(result.rejected).toHaveLength(5);
    expect(result).toMatchObject({ rejectedCount: 5 });
    expect(result.rejectedFile).toBeUndefined();
  });
});

describe('the import with a bounded list of rejections', () => {
  // 3,000 rows: every 3rd one a bad serial, every 5th one a duplicate of the row before it (found
  // by hash while reading, confirmed by the second read): more than the in-memory bound.
  const lines = ['serial,productLine'];
  const expected: Rejection[] = [];
  for (let i = 0; i < 3000; i += 1) {
    const line = i + 2;
    if (i % 3 === 0) {
      lines.push(`bad serial ${i}!,gw`);
      expected.push({ line, reason: expect.stringContaining('serial') as unknown as string });
    } else if (i % 5 === 0 && (i - 1) % 3 !== 0) {
      lines.push(`DUP-${i - 1},gw`);
      expected.push({ line, reason: `serial: duplicate of an earlier row (DUP-${i - 1})` });
    } else lines.push(`DUP-${i},gw`);
  }
  const csv = lines.join('\n');

  it('reports every rejection in the file, in line order, and the first ones in the summary', async () => {
    const file = join(dir, 'import.rejected.csv');
    const { summary } = await importCsv(csv, { rejectedFile: file, rejectedInMemory: 100 });
    expect(summary.rejectedCount).toBe(expected.length);
    expect(summary.rejectedCount).toBeGreaterThan(1000);
    expect(summary.rejectedFile).toBe(file);
    expect(summary.rejected).toEqual(expected.slice(0, 100));
    expect(await reportRows(file)).toEqual(expected);
  });

  it('the same rejections as keeping them all in memory, also when every hash collides', async () => {
    const all = await importCsv(csv, {});
    expect(all.summary.rejected).toEqual(expected);
    expect(all.summary.rejectedFile).toBeUndefined();
    const file = join(dir, 'collide.rejected.csv');
    const collide = await importCsv(csv, {
      rejectedFile: file,
      rejectedInMemory: 10,
      serialHash: () => [3, 4],
    });
    expect(await reportRows(file)).toEqual(expected);
    expect(collide.serials).toEqual(all.serials);
    expect(collide.summary).toMatchObject({ rows: 3000, imported: all.serials.length });
  });
});
