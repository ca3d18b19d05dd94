import { randomUUID } from 'node:crypto';
import { IoTClient } from '@aws-sdk/client-iot';
import { startIotEmulator } from '../../local/iot-emulator';
import { runIdFor } from '../../shared/expiry/expiry-sweep';
import { IotInventory } from '../../shared/iot/iot-inventory';
import { runReconciliation } from '../../shared/reconcile/reconcile-inventory';
import { createReportSink } from '../../shared/reports/report-sink';
import { ReconcileStore } from '../../shared/store/reconcile-store';
import { CommandFailure } from '../io';
import type { CommandRegistry } from '../main';
import { plural } from '../plural';
import { resolveStoreTarget } from '../target';
import { resolveIotTarget } from '../target-iot';
import { reportRun } from '../target-report';

/**
 * `fleetgate reconcile [--out DIR] [--fail-on-drift]`: runs the inventory reconciliation now and
 * writes the report. Drift is a finding, not a failure: exit 0 with the counts, unless
 * `--fail-on-drift` asks for exit 1 when there is any.
 */
export function registerReconcileCommand({ program, run }: CommandRegistry): void {
  program
    .command('reconcile')
    .description('Compare the IoT registry with the store (read-only); write the drift report (JSON, CSV)')
    .option('--out <dir>', 'write the report files here (default: REPORT_DESTINATION or .fleetgate/reports)')
    .option('--now <iso>', 'the instant the report is stamped with (default: now)')
    .option('--fail-on-drift', 'exit 1 when any drift is found')
    .option('--json', 'print one JSON document')
    .option('--target <target>', 'local (default) or aws')
    .option('--table <name>', 'table name (default: the stack’s, or TABLE_NAME)')
    .action(
      async (options: {
        out?: string;
        now?: string;
        failOnDrift?: boolean;
        json?: boolean;
        target?: string;
        table?: string;
      }) => {
        await run(options.json, async (output) => {
          const { now, config, destination } = reportRun(options);
          const target = await resolveStoreTarget(options, output);
          const closers: Array<() => Promise<void> | void> = [() => target.close()];
          try {
            let iotTarget = resolveIotTarget(options);
            if (!iotTarget) {
              // An empty registry against a real table would report every device as drift.
              if (target.kind !== 'ephemeral') {
                throw new CommandFailure(
                  'no IoT control plane: run `fleetgate local up`, set AWS_ENDPOINT_URL_IOT, or use --target aws',
                );
              }
              const emulator = await startIotEmulator();
              closers.push(() => emulator.stop());
              const iot = new IoTClient(emulator.clientConfig());
              iotTarget = { kind: 'env', iot, close: () => iot.destroy() };
            }
            const iot = iotTarget;
            closers.push(() => iot.close());
            const inventory = new IotInventory(iot.iot, config.reconcileMaxTps);
            const runId = runIdFor('cli', now, randomUUID().slice(0, 8));
            const outcome = await runReconciliation(
              { runId, now },
              {
                reconcileStore: new ReconcileStore(target.store),
                provisioningStore: target.store,
                inventory,
                sink: createReportSink(destination),
                remainingMs: () => Number.POSITIVE_INFINITY,
                safetyMarginMs: 0,
                pageSize: config.reconcilePageSize,
                neverConnectedDays: config.factoryNeverConnectedDays,
                thingNamePrefix: config.thingNamePrefix,
                clock: Date.now,
              },
            );
            if (outcome.status !== 'complete')
              throw new CommandFailure(`reconciliation ${runId} did not complete`);
            const { summary, files } = outcome;
            const result = { runId, now, table: target.tableName, summary, files };
            output.say(`inventory reconciliation ${runId} (table ${target.tableName}, IoT ${iot.kind})`);
            for (const [kind, count] of Object.entries(summary.counts))
              output.say(`  ${kind.padEnd(30)} ${count}`);
            output.say(
              `  listed ${plural(summary.certificatesListed, 'certificate')}, ${plural(summary.thingsListed, 'thing')}; read ${plural(summary.devicesRead, 'device')}`,
            );
            output.say(
              `  IoT calls: ${Object.entries(summary.apiCalls)
                .map(([api, count]) => `${api} ${count}`)
                .join(
                  ', ',
                )} (${summary.apiCallsPerCertificate} per certificate, ${summary.sdkRetries} retried)`,
            );
            output.say(`  ${files.json}\n  ${files.csv}`);
            if (options.failOnDrift && summary.drift > 0) {
              throw new CommandFailure(`${summary.drift} drift findings`, result);
            }
            return result;
          } finally {
            for (const close of closers.reverse()) await close();
          }
        });
      },
    );
}
