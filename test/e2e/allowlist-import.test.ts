import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetgate } from '../support/cli';
import { createTestTable, type TestTable } from '../support/dynamo';

let table: TestTable;
let dir: string;
let env: Record<string, string>;
beforeAll(async () => {
  table = await createTestTable('e2e-allowlist');
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-e2e-'));
  env = { AWS_ENDPOINT_URL_DYNAMODB: table.endpoint, TABLE_NAME: table.tableName };
});
afterAll(async () => {
  await table.drop();
});

describe('fleetgate allowlist import', () => {
  it('imports, reports rejected rows with line numbers, and re-imports as unchanged', async () => {
    const file = join(dir, 'devices.csv');
    await writeFile(file, 'serial,productLine,batch\nE2E-0001,gw,B1\nE2E-0002,gw,B1\nnot valid!,gw,B1\n');
    const first = await fleetgate(['allowlist', 'import', file, '--json'], env);
    // A rejected row makes it a partial import: exit 3, the same summary document, the good rows written.
    expect(first.code, first.stderr).toBe(3);
    expect(first.json()).toMatchObject({
      imported: 2,
      unchanged: 0,
      rejected: [{ line: 4, reason: expect.stringContaining('serial: must match') }],
      rejectedCount: 1,
    });
    expect(first.json()).not.toHaveProperty('ok');
    expect(first.stderr).toContain('1 row rejected (exit 3)');
    const second = await fleetgate(['allowlist', 'import', file, '--json'], env);
    expect(second.code).toBe(3);
    expect(second.json()).toMatchObject({ imported: 0, unchanged: 2 });
    expect(await table.store.getDevice('E2E-0001')).toMatchObject({
      state: 'ALLOWLISTED',
      productLine: 'gw',
    });
  });

  it('issue 15: the formula-injection row with a stray quote is one rejected line, in words, and the rest is imported', async () => {
    const file = join(dir, 'formula.csv');
    const claim = 'c'.repeat(64);
    await writeFile(
      file,
      `serial,productLine,batch,allowedClaim\nE2E-F001,gw,B1,${claim}\nSN7777777777,=cmd|"/C calc"!A0,B1,${claim}\nE2E-F002,gw,B1,${claim}\n`,
    );
    const result = await fleetgate(['allowlist', 'import', file], env);
    expect(result.code, result.stderr).toBe(3);
    expect(result.stdout).toMatch(/3 rows: 2 imported, 0 updated, 0 unchanged, 1 rejected/);
    expect(result.stdout).toContain('line 3: productLine: stray quote (") inside an unquoted field');
    expect(result.stdout + result.stderr).not.toMatch(/Buffer|"data":\[/);
  });

  it('past 1000 rejected rows: the first 1000 in the output, every one in the report file, and the summary says where', async () => {
    const file = join(dir, 'many-bad.csv');
    const rows = ['serial,productLine', 'E2E-R001,gw'];
    for (let i = 0; i < 1200; i += 1) rows.push(`bad serial ${i}!,gw`);
    await writeFile(file, `${rows.join('\n')}\n`);
    const report = join(dir, 'many-bad.report.csv');
    const json = await fleetgate(['allowlist', 'import', file, '--json', '--rejected-file', report], env);
    expect(json.code, json.stderr).toBe(3);
    const summary = json.json() as { rejected: Array<{ line: number }>; rejectedCount: number };
    expect(summary).toMatchObject({ imported: 1, rejectedCount: 1200, rejectedFile: report });
    expect(summary.rejected.map((r) => r.line)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 3));
    const lines = (await readFile(report, 'utf8')).trim().split('\n');
    expect(lines[0]).toBe('line,reason');
    expect(lines.slice(1).map((line) => Number(line.split(',')[0]))).toEqual(
      Array.from({ length: 1200 }, (_, i) => i + 3),
    );
    // Without --rejected-file: beside the file; the human summary names it.
    const human = await fleetgate(['allowlist', 'import', file], env);
    expect(human.code, human.stderr).toBe(3);
    expect(human.stdout).toMatch(/1201 rows: 0 imported, 0 updated, 1 unchanged, 1200 rejected/);
    expect(human.stdout).toContain(`… and 1150 more (all 1200 in ${file}.rejected.csv)`);
    expect((await readFile(`${file}.rejected.csv`, 'utf8')).trim().split('\n')).toHaveLength(1201);
  });

  it('prints a human summary without --json, and exits 0 when no row is rejected', async () => {
    const file = join(dir, 'human.csv');
    await writeFile(file, 'serial\nE2E-0100\n');
    const result = await fleetgate(['allowlist', 'import', file], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/\b1 row: 1 imported, 0 updated, 0 unchanged, 0 rejected/);
    expect(result.stderr).not.toContain('rejected');
  });

  it('documents its exit codes in --help', async () => {
    const help = await fleetgate(['allowlist', 'import', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Exit codes: 0 every row imported.*; 3 some rows rejected/s);
  });

  it('exits 1 with a one-line reason when the file is not an allowlist', async () => {
    const file = join(dir, 'bad.csv');
    await writeFile(file, 'name,batch\nx,y\n');
    const result = await fleetgate(['allowlist', 'import', file, '--json'], env);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('a "serial" column is required');
    expect(result.json()).toMatchObject({ ok: false, error: { code: 'FAILED' } });
  });

  it('stops its ephemeral DynamoDB Local and exits 1 when the table cannot be created', async () => {
    // No stack and no endpoints: the command starts an ephemeral DynamoDB Local. A failure after that
    // must not leave it (or the command) running.
    const file = join(dir, 'ephemeral.csv');
    await writeFile(file, 'serial\nE2E-0200\n');
    const result = await fleetgate(['allowlist', 'import', file, '--table', 't4', '--json']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Invalid table/index name');
  });

  it.each([
    [['allowlist', 'import'], "missing required argument 'csv'"],
    [['allowlist', 'import', '/nonexistent.csv', '--json'], 'no such file'],
    [['allowlist', 'import', 'x.csv', '--bogus'], 'unknown option'],
    [['nonsense'], 'unknown command'],
  ])('exits 2 on usage errors: %j', async (args, message) => {
    const result = await fleetgate(args, env);
    expect(result.code).toBe(2);
    expect(result.stderr.toLowerCase()).toContain(message);
    // commander's usage errors carry fleetgate's prefix, as every other error does.
    if (!args.includes('--json')) expect(result.stderr).toMatch(/^fleetgate: /);
  });
});
