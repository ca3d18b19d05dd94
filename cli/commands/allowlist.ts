import { randomUUID } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { AllowlistFileError, importAllowlistCsv } from '../../shared/allowlist/import-csv';
import { DEFAULT_SERIAL_PATTERN } from '../../shared/allowlist/rows';
import { CommandFailure, progressBar, UsageError } from '../io';
import { type CommandRegistry, contract } from '../main';
import { resolveStoreTarget } from '../target';

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
    .action(
      async (
        file: string,
        options: {
          json?: boolean;
          target?: string;
          table?: string;
          serialPattern: string;
          concurrency: string;
        },
      ) => {
        setExitCode(
          await contract(Boolean(options.json), async (output) => {
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
            const target = await resolveStoreTarget(options, output);
            const size = statSync(file).size;
            const bar = progressBar(output, 'importing');
            const started = performance.now();
            try {
              const summary = await importAllowlistCsv(createReadStream(file), {
                store: target.store,
                serialPattern,
                now: new Date().toISOString(),
                actor: `cli:allowlist-import:${process.env.USER ?? 'unknown'}`,
                newId: randomUUID,
                concurrency,
                onProgress: ({ rows, bytes }) =>
                  bar.update(`${rows} rows (${Math.round((bytes / Math.max(size, 1)) * 100)}%)`),
              });
              bar.done();
              const seconds = (performance.now() - started) / 1000;
              const result = {
                imported: summary.imported,
                updated: summary.updated,
                unchanged: summary.unchanged,
                rejected: summary.rejected,
                rows: summary.rows,
                table: target.tableName,
                seconds: Number(seconds.toFixed(3)),
                rowsPerSecond: Math.round(summary.rows / Math.max(seconds, 0.001)),
                peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
              };
              output.say(
                `${summary.rows} rows: ${summary.imported} imported, ${summary.updated} updated, ${summary.unchanged} unchanged, ${summary.rejected.length} rejected (${seconds.toFixed(1)} s)`,
              );
              for (const { line, reason } of summary.rejected.slice(0, 50))
                output.say(`  line ${line}: ${reason}`);
              if (summary.rejected.length > 50)
                output.say(`  … and ${summary.rejected.length - 50} more (use --json for all)`);
              return result;
            } catch (error) {
              bar.done();
              if (error instanceof AllowlistFileError) throw new CommandFailure(error.message);
              throw error;
            } finally {
              await target.close();
            }
          }),
        );
      },
    );
}
