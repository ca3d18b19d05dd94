/**
 * Inventory reconciliation benchmark: BENCH_RECONCILE_DEVICES (default 300) agreeing devices
 * (certificate ACTIVE and attached to its thing in the IoT emulator, device and certificate records in
 * DynamoDB Local), reconciled under AWS's default IoT quotas with the token buckets at the quota
 * (10 TPS). Reports IoT calls per certificate, throttled calls, and certificates per second against
 * the quota-limited ideal (each API's calls ÷ its quota, phases one after another).
 */
import {
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { startIotEmulator } from '../local/iot-emulator';
import { AWS_DEFAULT_QUOTAS } from '../local/iot-emulator/faults';
import { IotInventory } from '../shared/iot/iot-inventory';
import { runReconciliation } from '../shared/reconcile/reconcile-inventory';
import type { ReportSink } from '../shared/reports/report-sink';
import { certificateItem } from '../shared/store/entities/certificate';
import { deviceItem } from '../shared/store/entities/device';
import { ReconcileStore } from '../shared/store/reconcile-store';
import type { BenchContext, BenchRow } from './types';

const NOW = '2026-11-24T06:00:00.000Z';
const QUOTA_TPS = 10;

export async function run(context: BenchContext): Promise<BenchRow[]> {
  const total = Number(process.env.BENCH_RECONCILE_DEVICES ?? 300);
  const table = await context.table('reconcile');
  const doc = DynamoDBDocumentClient.from(table.client, { marshallOptions: { removeUndefinedValues: true } });
  const emulator = await startIotEmulator();
  const iot = new IoTClient({ ...emulator.clientConfig(), maxAttempts: 10 });
  try {
    const items: Array<Record<string, unknown>> = [];
    for (let start = 0; start < total; start += 20) {
      const batch = Array.from(
        { length: Math.min(20, total - start) },
        (_, i) => `SN-B-${String(start + i).padStart(6, '0')}`,
      );
      await Promise.all(
        batch.map(async (serial) => {
          const certificate = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
          const certificateId = certificate.certificateId ?? '';
          await iot.send(new CreateThingCommand({ thingName: serial }));
          await iot.send(
            new AttachThingPrincipalCommand({ thingName: serial, principal: certificate.certificateArn }),
          );
          items.push(
            deviceItem({
              serial,
              state: 'ACTIVE',
              version: 1,
              attributes: {},
              thingName: serial,
              certificateId,
              createdAt: NOW,
              updatedAt: NOW,
            }),
            certificateItem({
              certificateId,
              kind: 'DEVICE',
              status: 'ACTIVE',
              source: 'FLEET_PROVISIONING',
              serial,
              thingName: serial,
              issuer: 'CN=fleetgate IoT emulator CA',
              notBefore: '2026-01-01T00:00:00.000Z',
              notAfter: '2049-12-31T23:59:59.000Z',
              createdAt: NOW,
              updatedAt: NOW,
            }),
          );
        }),
      );
    }
    for (let start = 0; start < items.length; start += 25) {
      await doc.send(
        new BatchWriteCommand({
          RequestItems: {
            [table.tableName]: items.slice(start, start + 25).map((Item) => ({ PutRequest: { Item } })),
          },
        }),
      );
    }
    emulator.setFaults({ quotas: 'aws-default' });
    const sink: ReportSink = { location: 'memory://', put: async (name) => name, get: async () => undefined };
    const reconcile = async (tps: number) => {
      emulator.setFaults({ quotas: 'aws-default' });
      emulator.clearCalls();
      const started = performance.now();
      const outcome = await runReconciliation(
        { runId: `bench-${tps}`, now: NOW },
        {
          reconcileStore: new ReconcileStore(table.store),
          provisioningStore: table.store,
          inventory: new IotInventory(iot, tps),
          sink,
          remainingMs: () => Number.POSITIVE_INFINITY,
          safetyMarginMs: 0,
          pageSize: 250,
          thingNamePrefix: '',
          clock: Date.now,
        },
      );
      const seconds = (performance.now() - started) / 1000;
      if (outcome.status !== 'complete') throw new Error(`reconciliation ended ${outcome.status}`);
      const throttled = emulator.calls.filter((call) => call.outcome === 'ThrottlingException').length;
      return { seconds, summary: outcome.summary, throttled };
    };
    const atQuota = await reconcile(QUOTA_TPS);
    const below = await reconcile(8);
    const { summary, seconds } = atQuota;
    const calls = Object.values(summary.apiCalls).reduce((sum, value) => sum + value, 0);
    const idealSeconds = Object.entries(summary.apiCalls).reduce(
      (sum, [api, count]) => sum + count / (AWS_DEFAULT_QUOTAS[api] ?? QUOTA_TPS),
      0,
    );
    const rate = summary.certificatesListed / seconds;
    const idealRate = summary.certificatesListed / idealSeconds;
    return [
      {
        name: `certificates listed (${total} agreeing devices)`,
        value: summary.certificatesListed,
        unit: 'certs',
        target: `= ${total}`,
      },
      { name: 'drift found', value: summary.drift + below.summary.drift, unit: 'findings', target: '= 0' },
      { name: 'IoT API calls per certificate', value: calls / summary.certificatesListed, unit: 'calls' },
      {
        name: 'DescribeCertificate calls (healthy fleet)',
        value: summary.apiCalls.DescribeCertificate ?? 0,
        unit: 'calls',
        target: '= 0',
      },
      {
        name: 'buckets at the quota (10 TPS): throttled calls (retried)',
        value: atQuota.throttled,
        unit: 'calls',
      },
      { name: 'buckets at the quota (10 TPS): run time', value: seconds, unit: 's' },
      {
        name: 'buckets at the quota (10 TPS): certificates/s vs quota-limited ideal',
        value: rate,
        unit: 'certs/s',
        target: `${idealRate.toFixed(2)} ideal`,
        ratio: rate / idealRate,
      },
      { name: 'buckets at 8 TPS: throttled calls', value: below.throttled, unit: 'calls' },
      {
        name: 'buckets at 8 TPS: certificates/s',
        value: below.summary.certificatesListed / below.seconds,
        unit: 'certs/s',
        target: `${((idealRate * 8) / QUOTA_TPS).toFixed(2)} ideal`,
        ratio: below.summary.certificatesListed / below.seconds / ((idealRate * 8) / QUOTA_TPS),
      },
    ];
  } finally {
    iot.destroy();
    await emulator.stop();
  }
}
