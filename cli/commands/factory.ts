/**
 * `fleetgate factory import <dir|manifest>`: registers a batch of factory-issued device certificates
 * (docs/factory-import.md). Every row is reported — registered, already registered, rejected with the
 * rule, in progress in another run, or failed (resumed by the next run) —; a rejected row changes
 * nothing. Exit 0 when every row is registered or already registered; 3 (`EXIT_PARTIAL`, as
 * `allowlist import`) when a row was rejected, failed or is still in progress — the report is the
 * same document; run the import again to resume failed rows —; 1 when the import could not run.
 */

import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { readStackFile } from '../../local/stack-file';
import { loadConfig } from '../../shared/config';
import { ConfigError } from '../../shared/errors';
import { BatchFileError, readBatch } from '../../shared/factory/batch';
import {
  FactoryImportError,
  type FactoryImportReport,
  importFactoryBatch,
} from '../../shared/factory/import';
import { IotRegistry, iotClient } from '../../shared/iot/iot-registry';
import { CommandFailure, EXIT_OK, EXIT_PARTIAL, progressBar, UsageError } from '../io';
import { type CommandRegistry, contract } from '../main';
import { plural } from '../plural';
import { LOCAL_CREDENTIALS, resolveStoreTarget } from '../target';
import { resolveIotTarget } from '../target-iot';

interface ImportOptions {
  ca?: string;
  withoutCa?: boolean;
  batch?: string;
  productLine?: string;
  devicePolicy?: string;
  concurrency: string;
  maxTps: string;
  json?: boolean;
  target?: string;
  table?: string;
}

/** `fleetgate factory import` */
export function registerFactoryCommands({ program, setExitCode }: CommandRegistry): void {
  const factory = program
    .command('factory')
    .description('Factory-issued device certificates: register a batch in bulk');
  factory
    .command('import')
    .description(
      'Register a batch of device certificates (a directory of PEM files, or a manifest CSV serial,certificate): thing, policy, allowlist entry and store record; idempotent and resumable',
    )
    .argument(
      '<dir|manifest>',
      'directory of .pem/.crt/.cer files, or a CSV with the header serial,certificate',
    )
    .option(
      '--ca <pem>',
      'the CA that issued the batch (RegisterCertificate); it must be registered and ACTIVE in IoT',
    )
    .option(
      '--without-ca',
      'register without a CA (RegisterCertificateWithoutCA, multi-account registration)',
    )
    .option(
      '--batch <name>',
      'batch name on the devices and certificates (default: the file or directory name)',
    )
    .option('--product-line <name>', 'product line of devices the import allowlists')
    .option(
      '--device-policy <name>',
      'the shared device policy (default: the stack’s, or DEVICE_POLICY_NAME)',
    )
    .option('--concurrency <n>', 'rows imported at once', '4')
    .option('--max-tps <n>', 'requests per second per IoT API (AWS default quotas: 10)', '5')
    .option('--json', 'print one JSON document')
    .option('--target <target>', 'local (default) or aws')
    .option('--table <name>', 'table name (default: the stack’s, or TABLE_NAME)')
    .addHelpText(
      'after',
      `\nExit codes: ${EXIT_OK} every row registered or already registered; ${EXIT_PARTIAL} some rows rejected, failed or in\nprogress (the report lists them; run the import again to resume failed rows); 1 the import could not\nrun (e.g. an unusable --ca); 2 usage error.`,
    )
    .action(async (path: string, options: ImportOptions) => {
      let left: FactoryImportReport['counts'] | undefined;
      const code = await contract(Boolean(options.json), async (output) => {
        if (Boolean(options.ca) === Boolean(options.withoutCa)) {
          throw new UsageError('give exactly one of --ca <pem> and --without-ca');
        }
        const concurrency = Number(options.concurrency);
        if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 32)
          throw new UsageError('--concurrency must be an integer from 1 to 32');
        const maxTps = Number(options.maxTps);
        if (!Number.isFinite(maxTps) || maxTps <= 0 || maxTps > 100)
          throw new UsageError('--max-tps must be a number above 0 and at most 100');
        if (!existsSync(path)) throw new UsageError(`${path}: no such file or directory`);
        let caCertificatePem: string | undefined;
        if (options.ca) {
          if (!existsSync(options.ca) || !statSync(options.ca).isFile())
            throw new UsageError(`--ca ${options.ca}: no such file`);
          caCertificatePem = readFileSync(options.ca, 'utf8');
        }
        const stack = readStackFile();
        const declared = (stack?.declared ?? {}) as { devicePolicyName?: string };
        let config: ReturnType<typeof loadConfig>;
        try {
          config = loadConfig({
            ...process.env,
            TABLE_NAME: options.table ?? process.env.TABLE_NAME ?? stack?.tableName ?? 'fleetgate',
            DEVICE_POLICY_NAME:
              options.devicePolicy ?? process.env.DEVICE_POLICY_NAME ?? declared.devicePolicyName,
          });
        } catch (error) {
          if (error instanceof ConfigError)
            throw new UsageError(error.message.split('\n')[0] ?? 'configuration');
          throw error;
        }
        let batch: ReturnType<typeof readBatch>;
        try {
          batch = readBatch(path, { maxPemBytes: config.maxCertificatePemBytes });
        } catch (error) {
          if (error instanceof BatchFileError) throw new CommandFailure(error.message);
          throw error;
        }
        const iotTarget = resolveIotTarget(options);
        if (!iotTarget)
          throw new CommandFailure(
            'no IoT control plane: run `fleetgate local up`, set AWS_ENDPOINT_URL_IOT, or use --target aws',
          );
        iotTarget.close();
        // The registry's own client: adaptive retries under throttling, on the same endpoint.
        const iot = iotClient(
          iotTarget.kind === 'aws'
            ? {}
            : {
                endpoint: stack?.endpoints.iot ?? process.env.AWS_ENDPOINT_URL_IOT,
                region: stack?.region ?? process.env.AWS_REGION ?? 'us-east-1',
                credentials: LOCAL_CREDENTIALS,
              },
        );
        const target = await resolveStoreTarget(options, output);
        const bar = progressBar(output, 'importing');
        const started = performance.now();
        let done = 0;
        try {
          const report = await importFactoryBatch(
            {
              batch,
              ...(caCertificatePem ? { caCertificatePem } : {}),
              batchName: options.batch ?? basename(resolve(path)).replace(/\.[^.]*$/, ''),
              ...(options.productLine ? { productLine: options.productLine } : {}),
              runId: `factory-${randomUUID()}`,
              concurrency,
              maxTps,
              onRow: () => {
                done += 1;
                bar.update(`${done}/${batch.rows.length} rows`);
              },
            },
            { store: target.store, iot: new IotRegistry(iot), config, newId: randomUUID },
          );
          bar.done();
          const seconds = (performance.now() - started) / 1000;
          const { counts } = report;
          output.say(
            `${plural(batch.rows.length, 'row')}: ${counts.registered} registered, ${counts['already-registered']} already registered, ${counts.rejected} rejected, ${counts['in-progress']} in progress, ${counts.failed} failed (${seconds.toFixed(1)} s)`,
          );
          for (const row of report.rows
            .filter((r) => r.status !== 'registered' && r.status !== 'already-registered')
            .slice(0, 50)) {
            output.say(
              `  ${row.source}: ${row.status}${row.reason ? ` ${row.reason}` : ''}${row.detail ? ` — ${row.detail}` : ''}`,
            );
          }
          left = counts;
          return { ...report, table: target.tableName, seconds: Number(seconds.toFixed(3)) };
        } catch (error) {
          bar.done();
          if (error instanceof FactoryImportError) throw new CommandFailure(error.message);
          throw error;
        } finally {
          iot.destroy();
          await target.close();
        }
      });
      // The report is the output either way; rows not registered make it a partial import (exit 3).
      const partial = left ? partialImport(left) : undefined;
      if (code === EXIT_OK && partial) {
        process.stderr.write(`fleetgate: ${partial} (exit ${EXIT_PARTIAL})\n`);
        setExitCode(EXIT_PARTIAL);
        return;
      }
      setExitCode(code);
    });
}

/** What of a batch was not registered (rejected, failed, in progress), or undefined when nothing. */
function partialImport(counts: FactoryImportReport['counts']): string | undefined {
  const parts = [
    counts.rejected > 0 ? `${plural(counts.rejected, 'row')} rejected` : undefined,
    counts.failed > 0 ? `${plural(counts.failed, 'row')} failed` : undefined,
    counts['in-progress'] > 0 ? `${plural(counts['in-progress'], 'row')} in progress` : undefined,
  ].filter((part): part is string => part !== undefined);
  if (parts.length === 0) return undefined;
  const resume =
    counts.failed > 0 || counts['in-progress'] > 0 ? '; run the import again to resume them' : '';
  return `${parts.join(', ')}${resume}`;
}
