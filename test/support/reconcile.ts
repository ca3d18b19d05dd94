/**
 * A fleet in the IoT emulator and the store that agree, with drift planted on purpose (both ways)
 * and decoys that look like drift but are not. Certificates are real: the emulator's CA issues them
 * (CreateKeysAndCertificate) and the store records their validity parsed from the PEM.
 */
import {
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  DeleteCertificateCommand,
  DeleteThingCommand,
  DetachThingPrincipalCommand,
  IoTClient,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { type IotEmulator, startIotEmulator } from '../../local/iot-emulator';
import { parseCertificate } from '../../local/pki';
import type { DriftKind } from '../../shared/domain/reconciliation';
import { IotInventory } from '../../shared/iot/iot-inventory';
import type { ReconcileDeps } from '../../shared/reconcile/reconcile-inventory';
import type { ReportSink } from '../../shared/reports/report-sink';
import { deviceItem } from '../../shared/store/entities/device';
import { ReconcileStore } from '../../shared/store/reconcile-store';
import type { CertificateRecord, DeviceRecord } from '../../shared/store/records';
import { createTestTable, type TestTable } from './dynamo';

const NOW = '2026-11-24T06:00:00.000Z';

export interface PlantedFleet {
  /** `${kind}#${certificateId or thingName}` of every planted finding. */
  expected: string[];
  consistent: number;
}

export interface ReconcileRig {
  table: TestTable;
  emulator: IotEmulator;
  iot: IoTClient;
  stop(): Promise<void>;
}

/** A test table (`tablePrefix`) and an IoT emulator; `stop` drops and stops both. */
export async function startReconcileRig(tablePrefix: string): Promise<ReconcileRig> {
  const table = await createTestTable(tablePrefix);
  const emulator = await startIotEmulator();
  // Generous retries: the throttling tests drive the emulator past its quotas on purpose.
  const iot = new IoTClient({ ...emulator.clientConfig(), maxAttempts: 10 });
  return {
    table,
    emulator,
    iot,
    stop: async () => {
      iot.destroy();
      await emulator.stop();
      await table.drop();
    },
  };
}

/** Deps for `runReconciliation` against the rig and the table (a fresh IotInventory each call). */
export function reconcileDeps(
  table: TestTable,
  rig: Pick<ReconcileRig, 'emulator' | 'iot'>,
  sink: ReportSink,
  overrides: Partial<ReconcileDeps> & { maxTps?: number } = {},
): ReconcileDeps {
  const { maxTps = 100, ...rest } = overrides;
  return {
    reconcileStore: new ReconcileStore(table.store),
    provisioningStore: table.store,
    inventory: new IotInventory(rig.iot, maxTps),
    sink,
    remainingMs: () => Number.POSITIVE_INFINITY,
    safetyMarginMs: 0,
    pageSize: 7,
    thingNamePrefix: '',
    clock: Date.now,
    ...rest,
  };
}

/** An in-memory report sink. */
export function memorySink(): ReportSink & { files: Map<string, string> } {
  const files = new Map<string, string>();
  return {
    location: 'memory://reports',
    files,
    put: async (name, body) => {
      files.set(name, body);
      return `memory://reports/${name}`;
    },
    get: async (name) => files.get(name),
  };
}

async function issue(iot: IoTClient, active: boolean) {
  const out = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: active }));
  const pem = out.certificatePem ?? '';
  const parsed = parseCertificate(pem);
  return {
    certificateId: out.certificateId ?? '',
    certificateArn: out.certificateArn ?? '',
    notBefore: parsed.notBefore.toISOString(),
    notAfter: parsed.notAfter.toISOString(),
    issuer: parsed.issuer,
  };
}

async function putDevice(
  table: TestTable,
  device: Partial<DeviceRecord> & Pick<DeviceRecord, 'serial' | 'state'>,
) {
  const record: DeviceRecord = { version: 1, attributes: {}, createdAt: NOW, updatedAt: NOW, ...device };
  await table.doc.send(new PutCommand({ TableName: table.tableName, Item: deviceItem(record) }));
}

async function putCertificate(
  table: TestTable,
  certificate: Awaited<ReturnType<typeof issue>>,
  fields: Pick<CertificateRecord, 'status'> & Partial<CertificateRecord>,
) {
  await table.store.putCertificateIfAbsent({
    certificateId: certificate.certificateId,
    kind: 'DEVICE',
    source: 'FLEET_PROVISIONING',
    issuer: certificate.issuer,
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
    createdAt: NOW,
    updatedAt: NOW,
    ...fields,
  });
}

/** A device both sides agree on: ACTIVE certificate attached to its thing, ACTIVE in the store. */
async function consistentDevice(table: TestTable, iot: IoTClient, serial: string) {
  const certificate = await issue(iot, true);
  await iot.send(new CreateThingCommand({ thingName: serial }));
  await iot.send(
    new AttachThingPrincipalCommand({ thingName: serial, principal: certificate.certificateArn }),
  );
  await putCertificate(table, certificate, { status: 'ACTIVE', serial, thingName: serial });
  await putDevice(table, {
    serial,
    state: 'ACTIVE',
    thingName: serial,
    certificateId: certificate.certificateId,
  });
  return certificate;
}

/** A report's counts of plantFleet's drift, by kind. */
export const PLANTED_DRIFT_COUNTS: Record<DriftKind, number> = {
  CERTIFICATE_UNKNOWN_TO_STORE: 1,
  STORE_CERTIFICATE_GONE: 1,
  STORE_CERTIFICATE_NOT_ACTIVE: 1,
  THING_WITHOUT_PRINCIPALS: 1,
  THING_UNKNOWN_TO_STORE: 1,
  FACTORY_NEVER_CONNECTED: 0,
};

/**
 * `consistent` agreeing devices, then the planted drift:
 * - an ACTIVE certificate nobody recorded, attached to a thing the store does not know (console-made device);
 * - a device whose certificate (and thing) were deleted in IoT;
 * - a device whose certificate was set INACTIVE in IoT;
 * - an allowlisted device's thing without any principal;
 * and decoys that are not drift: a QUARANTINED device with an INACTIVE certificate, a PROVISIONING
 * device whose new certificate is still INACTIVE, a retired certificate INACTIVE in IoT, an unknown
 * INACTIVE certificate.
 */
export async function plantFleet(
  table: TestTable,
  iot: IoTClient,
  consistent: number,
): Promise<PlantedFleet> {
  const expected: string[] = [];
  const plant = (kind: DriftKind, id: string) => expected.push(`${kind}#${id}`);
  for (let n = 0; n < consistent; n += 1)
    await consistentDevice(table, iot, `SN-OK-${String(n).padStart(3, '0')}`);

  const unknown = await issue(iot, true);
  await iot.send(new CreateThingCommand({ thingName: 'SN-GHOST' }));
  await iot.send(
    new AttachThingPrincipalCommand({ thingName: 'SN-GHOST', principal: unknown.certificateArn }),
  );
  plant('CERTIFICATE_UNKNOWN_TO_STORE', unknown.certificateId);
  plant('THING_UNKNOWN_TO_STORE', 'SN-GHOST');

  const gone = await consistentDevice(table, iot, 'SN-GONE');
  await iot.send(new DetachThingPrincipalCommand({ thingName: 'SN-GONE', principal: gone.certificateArn }));
  await iot.send(new UpdateCertificateCommand({ certificateId: gone.certificateId, newStatus: 'INACTIVE' }));
  await iot.send(new DeleteCertificateCommand({ certificateId: gone.certificateId }));
  await iot.send(new DeleteThingCommand({ thingName: 'SN-GONE' }));
  plant('STORE_CERTIFICATE_GONE', gone.certificateId);

  const inactive = await consistentDevice(table, iot, 'SN-INACTIVE');
  await iot.send(
    new UpdateCertificateCommand({ certificateId: inactive.certificateId, newStatus: 'INACTIVE' }),
  );
  plant('STORE_CERTIFICATE_NOT_ACTIVE', inactive.certificateId);

  await putDevice(table, { serial: 'SN-LONELY', state: 'ALLOWLISTED' });
  await iot.send(new CreateThingCommand({ thingName: 'SN-LONELY' }));
  plant('THING_WITHOUT_PRINCIPALS', 'SN-LONELY');

  // Decoys.
  const quarantined = await consistentDevice(table, iot, 'SN-QUARANTINED');
  await iot.send(
    new UpdateCertificateCommand({ certificateId: quarantined.certificateId, newStatus: 'INACTIVE' }),
  );
  await table.store.updateCertificateStatus(quarantined.certificateId, 'INACTIVE', NOW);
  await putDevice(table, {
    serial: 'SN-QUARANTINED',
    state: 'QUARANTINED',
    thingName: 'SN-QUARANTINED',
    certificateId: quarantined.certificateId,
    version: 2,
  });
  const provisioning = await issue(iot, false);
  await iot.send(new CreateThingCommand({ thingName: 'SN-PROVISIONING' }));
  await iot.send(
    new AttachThingPrincipalCommand({ thingName: 'SN-PROVISIONING', principal: provisioning.certificateArn }),
  );
  await putCertificate(table, provisioning, { status: 'PENDING', serial: 'SN-PROVISIONING' });
  await putDevice(table, {
    serial: 'SN-PROVISIONING',
    state: 'PROVISIONING',
    thingName: 'SN-PROVISIONING',
    pendingCertificateId: provisioning.certificateId,
  });
  const retired = await issue(iot, false);
  await putCertificate(table, retired, { status: 'RETIRED', serial: 'SN-OK-000' });
  await issue(iot, false);

  return { expected: expected.sort(), consistent };
}
