/**
 * Builds the quarantine worker and the operator around a test table and an IoT emulator, seeds
 * devices that exist in both, and shapes SQS events as Lambda receives them.
 */
import { randomUUID } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import {
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { vi } from 'vitest';
import { createHandler } from '../../functions/quarantine-device/create-handler';
import { type IotEmulator, startIotEmulator } from '../../local/iot-emulator/index';
import type { DeadLetterSender } from '../../shared/dlq/dead-letter-sender';
import { prepareAccount, quarantinePolicyDocument } from '../../shared/iot/prepare-account';
import { IotQuarantineActions } from '../../shared/iot/quarantine-actions';
import type { OperatorDeps } from '../../shared/quarantine/operator';
import { QuarantineStore } from '../../shared/store/quarantine-store';
import type { DeviceRecord } from '../../shared/store/records';
import { allowlistedDevice } from './devices';
import { createTestTable, type TestTable } from './dynamo';
import { type RecordedOutcome, recordingMetrics } from './hook';
import { RecordingDeadLetters } from './jitr';

export const QUARANTINE_GROUP = 'fleetgate-test-quarantine';
export const QUARANTINE_QUEUE_ARN = 'arn:aws:sqs:us-east-1:123456789012:fleetgate-local-quarantine';

export function iotClientFor(emulator: IotEmulator): IoTClient {
  return new IoTClient(emulator.clientConfig());
}

/** The quarantine group with its deny policy, as the custom resource makes it at deploy time. */
export async function prepareTestAccount(iot: IoTClient): Promise<void> {
  await prepareAccount(iot, {
    thingGroupName: QUARANTINE_GROUP,
    policyName: QUARANTINE_GROUP,
    policyDocument: quarantinePolicyDocument({ region: 'us-east-1', accountId: '123456789012' }),
  });
}

export interface QuarantineAccount {
  table: TestTable;
  emulator: IotEmulator;
  iot: IoTClient;
}

/** A test table (`prefix`) and an IoT emulator prepared by prepareTestAccount, with a client on it. */
export async function startQuarantineAccount(prefix: string): Promise<QuarantineAccount> {
  const [table, emulator] = await Promise.all([createTestTable(prefix), startIotEmulator()]);
  const iot = iotClientFor(emulator);
  try {
    await prepareTestAccount(iot);
  } catch (error) {
    iot.destroy();
    await Promise.all([table.drop(), emulator.stop()]);
    throw error;
  }
  return { table, emulator, iot };
}

export interface TestWorker {
  handler: ReturnType<typeof createHandler>;
  outcomes: RecordedOutcome[];
  /** Error and warning log lines (a failed or invalid request is logged at warn). */
  errorLogs: Array<{ message: string; fields: Record<string, unknown> }>;
  operator: OperatorDeps;
}

/**
 * The quarantineDevice handler around the test table and the emulator, recording metrics and
 * error/warning logs; invalid requests go to `deadLetters` (a recording DLQ unless given one).
 */
export function buildTestWorker(
  table: TestTable,
  iot: IoTClient,
  deadLetters?: DeadLetterSender,
): TestWorker {
  const outcomes: RecordedOutcome[] = [];
  const errorLogs: TestWorker['errorLogs'] = [];
  const logger = new Logger({ serviceName: 'fleetgate', logLevel: 'SILENT' });
  for (const level of ['error', 'warn'] as const) {
    vi.spyOn(logger, level).mockImplementation((message: unknown, ...extra: unknown[]) => {
      errorLogs.push({ message: String(message), fields: Object.assign({}, ...(extra as object[])) });
    });
  }
  const quarantineStore = new QuarantineStore(table.store);
  const actions = new IotQuarantineActions(iot);
  const handler = createHandler({
    config: { quarantineGroupName: QUARANTINE_GROUP },
    store: table.store,
    quarantineStore,
    iot: actions,
    logger,
    metrics: recordingMetrics(outcomes),
    deadLetters: deadLetters ?? new RecordingDeadLetters(),
  });
  return {
    handler,
    outcomes,
    errorLogs,
    operator: { store: table.store, quarantineStore, iot: actions, quarantineGroupName: QUARANTINE_GROUP },
  };
}

/** A device that exists in IoT (ACTIVE certificate attached to its thing) and in the store. */
export async function seedActiveDevice(
  table: TestTable,
  iot: IoTClient,
  serial: string,
): Promise<{ device: DeviceRecord; certificateId: string; thingName: string }> {
  const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  const certificateId = cert.certificateId ?? '';
  // Thing name = THING_NAME_PREFIX (default empty) + serial, as every flow names things. The store
  // knows the device before the thing exists, so registry-event consumers see an allowlisted serial.
  const thingName = serial;
  const device = allowlistedDevice({ serial, state: 'ACTIVE', certificateId, thingName });
  await table.store.createDevice(device, { id: `seed-${serial}`, actor: 'test' });
  await iot.send(new CreateThingCommand({ thingName }));
  await iot.send(new AttachThingPrincipalCommand({ thingName, principal: cert.certificateArn ?? '' }));
  return { device, certificateId, thingName };
}

/** A quarantine request body (schemas/quarantine-request.ts) with overrides. */
export function quarantineRequest(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    requestId: `req-${randomUUID()}`,
    reason: 'CLONE_CONCURRENT_SESSIONS',
    evidence: { clientIds: ['a', 'b'] },
    source: 'deviceLifecycle',
    at: '2026-11-24T12:00:00.000Z',
    ...overrides,
  };
}

/** An SQS event as Lambda delivers it; strings are sent as they are, anything else as JSON. */
export function sqsEvent(bodies: unknown[], receiveCount = 1): SQSEvent {
  return {
    Records: bodies.map(
      (body): SQSRecord => ({
        messageId: randomUUID(),
        receiptHandle: `rh-${randomUUID()}`,
        body: typeof body === 'string' ? body : JSON.stringify(body),
        attributes: {
          ApproximateReceiveCount: String(receiveCount),
          SentTimestamp: '1764000000000',
          SenderId: 'AIDAEXAMPLE',
          ApproximateFirstReceiveTimestamp: '1764000000000',
        },
        messageAttributes: {},
        md5OfBody: '',
        eventSource: 'aws:sqs',
        eventSourceARN: QUARANTINE_QUEUE_ARN,
        awsRegion: 'us-east-1',
      }),
    ),
  };
}
