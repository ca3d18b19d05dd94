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
    [
      'a header with an unterminated quote',
      '"serial,batch\nSN-1,B1\n',
      'line 1: header: quoted field not closed',
    ],
    ['a header with a stray quote', 'serial,ba"tch\nSN-1,B1\n', 'line 1: header: stray quote'],
  ])('refuses %s as a whole', async (_name, csv, message) => {
    await expect(run(csv)).rejects.toThrow(AllowlistFileError);
    await expect(run(csv)).rejects.toThrow(message);
  });

  // Issue 15: one malformed row never aborts the import; each is rejected with its line and rule.
  const CLAIM = 'c'.repeat(64);

  it('the formula-injection payload with a stray quote (SN7777777777,=cmd|"/C calc"!A0,B1,<claim>) is one rejected row; the rest is imported', async () => {
    const csv = [
      'serial,productLine,batch,allowedClaim',
      `FML-0001,gateway,B1,${CLAIM}`,
      `SN7777777777,=cmd|"/C calc"!A0,B1,${CLAIM}`,
      `FML-0002,gateway,B1,${CLAIM}`,
    ].join('\n');
    const summary = await run(csv);
    expect(summary).toMatchObject({ rows: 3, imported: 2 });
    expect(summary.rejected).toEqual([
      {
        line: 3,
        reason:
          'productLine: stray quote (") inside an unquoted field (a field containing " must be quoted and its quotes doubled)',
      },
    ]);
    expect(JSON.stringify(summary)).not.toMatch(/Buffer|"type":"Buffer"|\bdata\b/);
    expect(await table.store.getDevice('SN7777777777')).toBeUndefined();
    expect(await table.store.getDevice('FML-0002')).toMatchObject({ state: 'ALLOWLISTED' });
  });

  it('quoted, the same formula is read and then refused as CSV injection (its own rule), line kept', async () => {
    const summary = await run(`serial,productLine\nFML-0003,"=cmd|""/C calc""!A0"\nFML-0004,ok\n`);
    expect(summary.imported).toBe(1);
    expect(summary.rejected).toEqual([
      {
        line: 2,
        reason: 'productLine: must not start with =, +, -, @ or a control character (CSV injection)',
      },
    ]);
  });

  it.each<[string, string | Buffer, number, string]>([
    ['text after a closing quote', 'NL-A1,"gate"way', 3, 'productLine: text after the closing quote'],
    ['a NUL byte', Buffer.from('NL-A2,gate\u0000way'), 3, 'row: NUL byte (0x00) at byte 11'],
    ['a bare carriage return', 'NL-A3,gate\rway', 3, 'row: carriage return (\\r) at byte 11'],
    [
      'a byte order mark after the start',
      '\uFEFFNL-A4,gateway',
      3,
      'row: byte order mark (U+FEFF) at byte 1',
    ],
    [
      'a line break inside a quoted field',
      'NL-A5,"gate\nway"',
      3,
      'productLine: quoted field not closed on its line',
    ],
  ])(
    'rejects %s with its line and rule, and imports the rows around it',
    async (_name, bad, line, reason) => {
      const csv = Buffer.concat([
        Buffer.from('serial,productLine\nNL-OK-1,gateway\n'),
        Buffer.from(bad),
        Buffer.from('\nNL-OK-2,gateway\n'),
      ]);
      const summary = await run(csv);
      expect(summary.rejected[0]).toMatchObject({ line });
      expect(summary.rejected[0]?.reason).toContain(reason);
      expect(await table.store.getDevice('NL-OK-2')).toMatchObject({ state: 'ALLOWLISTED' });
    },
  );

  it('a line break inside a quoted field: the opening line and the continuation are both rejected, with their own lines; nothing after is lost', async () => {
    const summary = await run('serial,productLine\nNL-B1,"first\nsecond",x\nNL-B2,ok\n');
    expect(summary.rejected.map((r) => r.line)).toEqual([2, 3]);
    expect(summary.rejected[0]?.reason).toContain('productLine: quoted field not closed on its line');
    expect(summary.rejected[1]?.reason).toContain('stray quote');
    expect(await table.store.getDevice('NL-B2')).toMatchObject({ state: 'ALLOWLISTED' });
  });

  it('accepts a UTF-8 byte order mark at the start and CRLF line endings (what spreadsheets write), lines counted exactly', async () => {
    const csv = Buffer.from(
      '\uFEFFserial,productLine\r\nCRLF-0001,gateway\r\n\r\nCRLF-0002,gateway\r\nbad!,x\r\n',
    );
    const summary = await run(csv);
    expect(summary).toMatchObject({ rows: 3, imported: 2 });
    expect(summary.rejected).toEqual([{ line: 5, reason: expect.stringContaining('serial: must match') }]);
    expect(await table.store.getDevice('CRLF-0002')).toMatchObject({ productLine: 'gateway' });
  });

  it('rejects a 1 MB line by its length without keeping it in memory, and reads on', async () => {
    const csv = Buffer.concat([
      Buffer.from('serial,productLine\nBIG-0001,ok\nBIG-0002,'),
      Buffer.alloc(1024 * 1024, 'a'),
      Buffer.from('\nBIG-0003,ok'),
    ]);
    const summary = await run(csv);
    expect(summary.rejected).toEqual([{ line: 3, reason: 'row: longer than 65536 bytes (1048585 bytes)' }]);
    expect(summary.imported).toBe(2);
    expect(await table.store.getDevice('BIG-0003')).toMatchObject({ state: 'ALLOWLISTED' });
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
    expect(progressText(progress[0] ?? 0, 2000)).toMatch(/^\[#{0,5}-+\] \d+\/2000 rows \(\d{1,2}%\)$/);
    expect(progressText(2000, 2000)).toBe(`[${'#'.repeat(24)}] 2000/2000 rows (100%)`);
  });
});
