/**
 * Every sample of events/ works with the command events/README.md names for it: a fresh local stack,
 * the samples' allowlist imported, then each row of the README's table run as written (in order), its
 * exit code and quoted text checked. A .json file under events/ that the table does not name fails.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetgate } from '../support/cli';
import { PROJECT_ROOT } from '../support/serverless-copy';

interface Row {
  sample: string;
  args: string[];
  exit: number;
  text: string;
}

const EVENTS = join(PROJECT_ROOT, 'events');

/** The table of events/README.md: sample, command (`fleetgate …`), outcome (exit code, quoted text). */
function readSampleTable(markdown: string): Row[] {
  const rows: Row[] = [];
  for (const line of markdown.split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim());
    const sample = /^`([^`]+\.json)`$/.exec(cells[1] ?? '')?.[1];
    if (!sample) continue;
    const command = /^`fleetgate ([^`]+)`$/.exec(cells[2] ?? '')?.[1];
    const outcome = /^exit (\d), `([^`]+)`/.exec(cells[3] ?? '');
    if (!command || !outcome)
      throw new Error(`events/README.md: row of ${sample} is not "command | exit N, \`text\`"`);
    rows.push({ sample, args: command.split(' '), exit: Number(outcome[1]), text: outcome[2] ?? '' });
  }
  return rows;
}

const rows = readSampleTable(readFileSync(join(EVENTS, 'README.md'), 'utf8'));
let env: Record<string, string>;

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fleetgate-e2e-samples-'));
  env = { FLEETGATE_STACK_FILE: join(dir, 'stack.json') };
  const up = await fleetgate(['local', 'up', '--json'], env);
  expect(up.code, up.stderr).toBe(0);
  const imported = await fleetgate(['allowlist', 'import', 'events/allowlist.csv', '--json'], env);
  expect(imported.code, imported.stderr).toBe(0);
  expect(imported.json()).toMatchObject({ imported: 2, rejected: [] });
});
afterAll(async () => {
  await fleetgate(['local', 'down'], env);
});

describe('events/ samples, each through its documented command', () => {
  it('the table names every sample file exactly once', () => {
    const files = readdirSync(EVENTS, { recursive: true, encoding: 'utf8' })
      .filter((name) => name.endsWith('.json'))
      .map((name) => name.split('\\').join('/'))
      .sort();
    expect(rows.map((row) => row.sample).sort()).toEqual(files);
    for (const row of rows) expect(row.args.join(' ')).toContain(`events/${row.sample}`);
  });

  it('documents what a JITR registration sample really does: the function’s reason, not a bare "succeeded"', () => {
    // `replay` prints `registerCertificate: succeeded` for an event the function ignored; the
    // samples' certificates exist in no emulator, so the truthful outcome is the reason it logs.
    const registrations = rows.filter((row) =>
      /^jitr\/certificate-registered(?!-malformed)/.test(row.sample),
    );
    expect(registrations.length).toBe(4);
    for (const row of registrations) {
      expect(row.args.slice(0, 2), row.sample).toEqual(['invoke', 'registerCertificate']);
      expect(row.text, row.sample).toBe('reason=CERTIFICATE_NOT_FOUND');
    }
  });

  it('every sample gives the documented exit code and output', async () => {
    const failures: string[] = [];
    for (const row of rows) {
      const human = await fleetgate(row.args, env);
      const printed = `${human.stdout}\n${human.stderr}`;
      if (human.code !== row.exit || !printed.includes(row.text)) {
        failures.push(
          `fleetgate ${row.args.join(' ')} → exit ${human.code}, expected ${row.exit} and "${row.text}":\n${printed}`,
        );
      }
      // No usage error: the command knew what to do with the file.
      expect(human.code, printed).not.toBe(2);
    }
    expect(failures).toEqual([]);
  }, 600_000);
});
