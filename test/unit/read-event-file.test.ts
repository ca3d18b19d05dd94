/**
 * `fleetgate invoke --event <file>` and `fleetgate replay <path>` read event files with one reader:
 * a file that is not JSON is a usage error on one line (JSON.parse quotes the start of the text,
 * line breaks included), naming the file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readEventFile } from '../../cli/commands/invoke';
import { UsageError } from '../../cli/io';

const dir = mkdtempSync(join(tmpdir(), 'fg-event-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('readEventFile', () => {
  it('reads a JSON event', () => {
    const file = join(dir, 'ok.json');
    writeFileSync(file, '{"a": 1}\n');
    expect(readEventFile(file)).toEqual({ a: 1 });
  });

  it('refuses text that is not JSON on one line, naming the file', () => {
    const file = join(dir, 'text.json');
    writeFileSync(file, 'hello\nworld\n');
    let error: unknown;
    try {
      readEventFile(file);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(UsageError);
    const message = (error as Error).message;
    expect(message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not JSON \\(`));
    expect(message).not.toMatch(/\n/);
  });

  it('refuses a missing file', () => {
    expect(() => readEventFile(join(dir, 'missing.json'))).toThrow(/missing\.json: no such file/);
  });
});
