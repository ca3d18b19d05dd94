import { randomUUID } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import {
  AllowlistFileError,
  type ImportSummary,
  importAllowlistCsv,
} from '../../shared/allowlist/import-csv';
import { DEFAULT_SERIAL_PATTERN } from '../../shared/allowlist/rows';
import { CommandFailure, EXIT_OK, EXIT_PARTIAL, type Output, progressBar, UsageError } from '../io';
import { type CommandRegistry, contract } from '../main';
import { operatorName } from '../operator';
import { plural } from '../plural';
import { resolveStoreTarget } from '../target';

interface ImportOptions {
  json?: boolean;
  target?: string;
  table?: string;
  serialPattern: string;
  concurrency: string;
  rejectedFile?: string;
}

/** The rows of a CSV file (lines after the header), counted by streaming it: the progress bar's 100 %. */
export async function countRows(file: string): Promise<number> {
  let lines = 0;
  let last = 0x0a;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    for (const byte of chunk) if (byte === 0x0a) lines += 1;
    last = chunk[chunk.length - 1] ?? last;
  }
  if (last !== 0x0a) lines += 1;
  return Math.max(0, lines - 1);
}

const BAR_WIDTH = 24;

/** What the progress bar shows once `rows` of `total` rows are written: `[#####-----] 500/1000 rows (50%)`. */
export function progressText(rows: number, total: number): string {
  const percent = total > 0 ? Math.min(100, Math.floor((rows / total) * 100)) : 100;
  const filled = Math.round((percent / 100) * BAR_WIDTH);
  return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${rows}/${total} rows (${percent}%)`;
}

function importSettings(
  file: string,
  options: ImportOptions,
): { serialPattern: RegExp; concurrency: number } {
  if (!existsSync(file) || !statSync(file).isFile()) throw new UsageError(`${file}: no such file`);
  let serialPattern: RegExp;
  try {
    serialPattern = new RegExp(options.serialPattern, 'u');
  } catch {
    throw new UsageError(`--serial-pattern: not a valid regular expression`);
  }
  const concurrency = Number(options.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw new UsageError('--concurrency must be an integer from 1 to 64');
  }
  return { serialPattern, concurrency };
}

/** Where the complete list of rejections goes when there are too many to keep: beside the file. */
export function defaultRejectedFile(file: string): string {
  return `${file}.rejected.csv`;
}

function printSummary(output: Output, summary: ImportSummary, seconds: number): void {
  output.say(
    `${plural(summary.rows, 'row')}: ${summary.imported} imported, ${summary.updated} updated, ${summary.unchanged} unchanged, ${summary.rejectedCount} rejected (${seconds.toFixed(1)} s)`,
  );
  for (const { line, reason } of summary.rejected.slice(0, 50)) output.say(`  line ${line}: ${reason}`);
  if (summary.rejectedCount > 50) {
    const where = summary.rejectedFile
      ? `all ${summary.rejectedCount} in ${summary.rejectedFile}`
      : 'use --json for all';
    output.say(`  … and ${summary.rejectedCount - 50} more (${where})`);
  }
}

async function runImport(
  file: string,
  options: ImportOptions,
  output: Output,
): Promise<{ rejectedCount: number } & Record<string, unknown>> {
  const { serialPattern, concurrency } = importSettings(file, options);
  const target = await resolveStoreTarget(options, output);
  const total = output.interactive ? await countRows(file) : 0;
  const bar = progressBar(output, 'importing');
  const started = performance.now();
  try {
    const summary = await importAllowlistCsv(createReadStream(file), {
      store: target.store,
      serialPattern,
      now: new Date().toISOString(),
      actor: `cli:allowlist-import:${operatorName()}`,
      newId: randomUUID,
      concurrency,
      // A file can be read twice: in-file duplicates by hash, each hit confirmed (flat memory).
      reopen: () => createReadStream(file),
      // Past the first 1000 rejections, the complete list goes to a file, not to memory.
      rejectedFile: options.rejectedFile ?? defaultRejectedFile(file),
      onProgress: ({ rows }) => bar.update(progressText(rows, total)),
    });
    bar.done();
    const seconds = (performance.now() - started) / 1000;
    printSummary(output, summary, seconds);
    return {
      imported: summary.imported,
      updated: summary.updated,
      unchanged: summary.unchanged,
      rejected: summary.rejected,
      rejectedCount: summary.rejectedCount,
      ...(summary.rejectedFile ? { rejectedFile: summary.rejectedFile } : {}),
      rows: summary.rows,
      table: target.tableName,
      seconds: Number(seconds.toFixed(3)),
      rowsPerSecond: Math.round(summary.rows / Math.max(seconds, 0.001)),
      peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    };
  } catch (error) {
    bar.done();
    if (error instanceof AllowlistFileError) throw new CommandFailure(error.message);
    throw error;
  } finally {
    await target.close();
  }
}

/** `fleetgate allowlist import <csv>` */
export function registerAllowlistCommands({ program, setExitCode }: CommandRegistry): void {
  const allowlist = program.command('allowlist').description('Manage the allowlist of device serials');
  allowlist
    .command('import')
    .description(
      'Import serials from a CSV (serial[,productLine,batch,allowedClaim,<attributes>…]); idempotent',
    )
    .argument('<csv>', 'CSV file with a header row')
    .option('--json', 'print one JSON document')
    .option('--target <target>', 'local (default) or aws')
    .option('--table <name>', 'table name (default: the stack’s, or TABLE_NAME)')
    .option('--serial-pattern <regex>', 'serial format', process.env.SERIAL_PATTERN ?? DEFAULT_SERIAL_PATTERN)
    .option('--concurrency <n>', 'chunks of 100 rows written at once', '4')
    .option(
      '--rejected-file <path>',
      'where the complete list of rejected rows goes when there are more than 1000 (default: <csv>.rejected.csv)',
    )
    .addHelpText(
      'after',
      `\nExit codes: ${EXIT_OK} every row imported, updated or unchanged; ${EXIT_PARTIAL} some rows rejected (the valid rows are\nstill imported, the summary lists the rejected ones); 1 the import failed (e.g. a malformed header);\n2 usage error.`,
    )
    .action(async (file: string, options: ImportOptions) => {
      keepYoungGenerationSmall();
      let rejected = 0;
      const code = await contract(Boolean(options.json), async (output) => {
        const summary = await runImport(file, options, output);
        rejected = summary.rejectedCount;
        return summary;
      });
      // The summary is the output either way; rejected rows make it a partial import (exit 3).
      if (code === EXIT_OK && rejected > 0) {
        process.stderr.write(
          `fleetgate: ${plural(rejected, 'row')} rejected (exit ${EXIT_PARTIAL}); the valid rows, if any, were imported or already stored (see the summary)\n`,
        );
        setExitCode(EXIT_PARTIAL);
        return;
      }
      setExitCode(code);
    });
}

/**
 * The import's live heap is flat (a window of rows in flight, bounded rejections), but V8 grows the
 * young generation with the allocation rate — from 2 MB to 32 MB of semi-spaces over a long file —
 * so its peak RSS grew with the file's size. Semi-spaces that never grow keep the peak flat; the
 * extra scavenges are cheap next to the import's writes (bench/store.bench.ts prints both). V8 reads
 * this flag at each growth decision, so it takes effect in the running process.
 */
function keepYoungGenerationSmall(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}
