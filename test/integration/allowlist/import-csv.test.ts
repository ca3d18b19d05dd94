import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { progressText } from '../../../cli/commands/allowlist';
import { AllowlistFileError, importAllowlistCsv } from '../../../shared/allowlist/import-csv';
import { DEFAULT_SERIAL_PATTERN } from '../../../shared/allowlist/rows';
import { createTestTable, type TestTable } from '../../support/dynamo';

let table: TestTable;
beforeAll(async () => {
  table = await createTestTable('allowlist');
});
afterAll(async () => {
  await table.drop();
});

let ids = 0;
function run(csv: string | Buffer, now = '2026-11-24T12:00:00.000Z') {
  return importAllowlistCsv(Readable.from([Buffer.from(csv)]), {
    store: table.store,
    serialPattern: new RegExp(DEFAULT_SERIAL_PATTERN, 'u'),
    now,
    actor: 'test',
    newId: () => {
      ids += 1;
      return `id-${ids}`;
    },
  });
}

describe('importAllowlistCsv', () => {
  it('imports valid rows, reports each bad row with its line, and is idempotent', async () => {
    const csv = [
      'serial,productLine,batch,allowedClaim,color',
      'IMP-0001,gateway,B1,,red',
      'IMP-0002,gateway,B1,group:factory-a,blue',
      'bad serial!,gateway,B1,,red',
      'IMP-0001,gateway,B1,,red',
      'IMP-0003,gateway,B1,,=cmd()',
      'IMP-0004,gateway',
      `IMP-0005,${'x'.repeat(200)},B1,,red`,
      '"IMP-0006","quoted,with-comma",B1,,red',
    ].join('\n');
    const first = await run(csv);
    expect(first).toMatchObject({ rows: 8, imported: 3, updated: 0, unchanged: 0 });
    expect(first.rejected.map((r) => r.line)).toEqual([4, 5, 6, 7, 8]);
    expect(first.rejected[1]?.reason).toContain('duplicate');
    expect(await table.store.getDevice('IMP-0002')).toMatchObject({
      state: 'ALLOWLISTED',
      version: 1,
      productLine: 'gateway',
      batch: 'B1',
      allowedClaim: 'group:factory-a',
      attributes: { color: 'blue' },
    });
    expect(await table.store.getDevice('IMP-0006')).toMatchObject({ productLine: 'quoted,with-comma' });
    // Re-import: nothing changes, nothing is written twice.
    const second = await run(csv);
    expect(second).toMatchObject({ imported: 0, updated: 0, unchanged: 3 });
    expect(await table.store.history('IMP-0001')).toHaveLength(1);
  });

  it('updates changed rows without touching the device state', async () => {
    await run('serial,batch\nUPD-0001,B1\n');
    const changed = await run('serial,batch\nUPD-0001,B2\n');
    expect(changed).toMatchObject({ imported: 0, updated: 1, unchanged: 0 });
    expect(await table.store.getDevice('UPD-0001')).toMatchObject({
      batch: 'B2',
      version: 2,
      state: 'ALLOWLISTED',
    });
    expect((await table.store.history('UPD-0001')).map((e) => e.event)).toEqual([
      'CREATED',
      'ALLOWLIST_UPDATED',
    ]);
  });

  it('reports invalid UTF-8 with its line and still imports the valid rows', async () => {
    const csv = Buffer.concat([
      Buffer.from('serial,productLine\nUTF-0001,ok\nUTF-0002,'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('\nUTF-0003,fine\n'),
    ]);
    const summary = await run(csv);
    expect(summary.imported).toBe(2);
    expect(summary.rejected).toEqual([{ line: 3, reason: 'productLine: not valid UTF-8' }]);
  });

  it('imports many rows concurrently in chunks', async () => {
    const rows = Array.from(
      { length: 1234 },
      (_, i) => `BULK-${String(i).padStart(5, '0')},line-a,B${i % 7}`,
    );
    const summary = await run(`serial,productLine,batch\n${rows.join('\n')}\n`);
    expect(summary).toMatchObject({ rows: 1234, imported: 1234, rejected: [] });
    const page = await table.store.listDevicesByState('ALLOWLISTED', { limit: 2000 });
    expect(page.items.filter((d) => d.serial.startsWith('BULK-'))).toHaveLength(1234);
  });

  it.each([
    ['an empty file', '', 'the file is empty'],
    ['a header without serial', 'name,batch\nx,y\n', 'a "serial" column is required'],
    ['an unterminated quote', 'serial,batch\n"SN-1,B1\n', 'not valid CSV'],
  ])('refuses %s as a whole', async (_name, csv, message) => {
    await expect(run(csv)).rejects.toThrow(AllowlistFileError);
    await expect(run(csv)).rejects.toThrow(message);
  });
});

describe('import progress', () => {
  it('reports where each written chunk ends, rising from the first chunk to the last row', async () => {
    const rows = Array.from({ length: 2000 }, (_, i) => `PRG-${String(i).padStart(5, '0')},gateway,B1,`);
    const csv = ['serial,productLine,batch,allowedClaim', ...rows].join('\n');
    const progress: number[] = [];
    const summary = await importAllowlistCsv(Readable.from([Buffer.from(csv)]), {
      store: table.store,
      serialPattern: new RegExp(DEFAULT_SERIAL_PATTERN, 'u'),
      now: '2026-11-24T12:00:00.000Z',
      actor: 'test',
      newId: () => `progress-${randomUUID()}`,
      onProgress: ({ rows: done }) => progress.push(done),
    });
    expect(summary).toMatchObject({ rows: 2000, imported: 2000 });
    // The whole file is read at once; progress still counts what is written, chunk by chunk.
    // At most the chunks in flight at once (4 × 100 rows) before the first report, never the whole file.
    expect(progress[0]).toBeLessThanOrEqual(400);
    expect(progress.length).toBeGreaterThanOrEqual(5);
    for (const [index, done] of progress.entries())
      if (index > 0) expect(done).toBeGreaterThan(progress[index - 1] ?? 0);
    expect(progress.at(-1)).toBe(2000);
    expect(progressText(progress[0] ?? 0, 2000)).toMatch(/^\[#{0,5}-+\] \d+\/2000 rows \(\d%\)$/);
    expect(progressText(2000, 2000)).toBe(`[${'#'.repeat(24)}] 2000/2000 rows (100%)`);
  });
});
