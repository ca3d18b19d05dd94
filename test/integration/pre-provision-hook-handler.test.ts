/**
 * The pre-provisioning hook's handler against DynamoDB Local: what it answers, what it writes, and
 * how it denies when the store fails or is slow. Failures are real (a table that does not exist) or
 * injected at the store's seam; DynamoDB itself is never mocked. The race-free rules (concurrency,
 * claim rate, clones) are in pre-provision-hook.test.ts.
 */
import { readFileSync } from 'node:fs';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createHandler } from '../../functions/pre-provision-hook/create-handler';
import { configFor } from '../../shared/config';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { allowlistedDevice, NOW } from '../support/devices';
import { createTestTable, type TestTable } from '../support/dynamo';
import { lambdaContext } from '../support/lambda';

const sample = (name: string) =>
  JSON.parse(readFileSync(new URL(`../../events/hook/${name}`, import.meta.url), 'utf8')) as Record<
    string,
    unknown
  >;
const allowedEvent = () => sample('allowed.json');
const DEVICE_KEY = { PK: 'DEVICE#SN-000001', SK: 'DEVICE' };

let table: TestTable;

// A table per test: each starts from one allowlisted device and nothing bound.
beforeEach(async () => {
  table = await createTestTable('hook-handler');
  await putDevice(deviceItem());
});
afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await table.drop();
});

function deviceItem(overrides: Record<string, unknown> = {}) {
  return {
    ...DEVICE_KEY,
    ...allowlistedDevice({ serial: 'SN-000001', productLine: 'gateway', batch: 'B-7' }),
    ...overrides,
  };
}

async function putDevice(item: Record<string, unknown>): Promise<void> {
  await table.doc.send(new PutCommand({ TableName: table.tableName, Item: item }));
}

async function readDeviceItem(): Promise<Record<string, unknown> | undefined> {
  const out = await table.doc.send(
    new GetCommand({ TableName: table.tableName, Key: DEVICE_KEY, ConsistentRead: true }),
  );
  return out.Item;
}

function build(env: Record<string, string> = {}, store = table.store) {
  const logger = new Logger({ serviceName: 'fleetgate', logLevel: 'SILENT' });
  const metrics = new Metrics({ namespace: 'fleetgate', serviceName: 'fleetgate' });
  const logged: unknown[] = [];
  for (const level of ['info', 'warn', 'error'] as const) {
    vi.spyOn(logger, level).mockImplementation((...args: unknown[]) => {
      logged.push(args);
    });
  }
  const counted: Array<{ name: string; dimensions: Record<string, string> }> = [];
  vi.spyOn(metrics, 'singleMetric').mockImplementation(() => {
    const dimensions: Record<string, string> = {};
    return {
      addDimension: (key: string, value: string) => {
        dimensions[key] = value;
      },
      addMetric: (name: string) => {
        counted.push({ name, dimensions });
      },
    } as unknown as Metrics;
  });
  const config = configFor({
    TABLE_NAME: store.tableName,
    DEFAULT_ALLOWED_CLAIM: '*',
    THING_NAME_PREFIX: 'fg-',
    ...env,
  });
  const hook = createHandler({
    config,
    store,
    logger,
    metrics,
    clock: () => Date.parse(NOW),
    newId: () => 'id-1',
  });
  return { hook, logged, counted };
}

/** A store whose reads of the device are delayed by `ms` (then done for real). */
function slowStore(ms: number): ProvisioningStore {
  const store = new ProvisioningStore(table.doc, table.tableName);
  const read = store.loadProvisioningFacts.bind(store);
  vi.spyOn(store, 'loadProvisioningFacts').mockImplementation(async (input) => {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return read(input);
  });
  return store;
}

describe('preProvisionHook handler on DynamoDB Local', () => {
  it('allows an allowlisted serial with the overridden thing name and attributes, and records the binding', async () => {
    const { hook } = build();
    const response = await hook(allowedEvent(), lambdaContext());
    expect(response).toEqual({
      allowProvisioning: true,
      parameterOverrides: {
        ThingName: 'fg-SN-000001',
        ProductLine: 'gateway',
        Batch: 'B-7',
        CertificateIssueDate: '2026-01-01T00:00:00.000Z',
      },
    });
    const event = allowedEvent();
    const device = await readDeviceItem();
    expect(device).toMatchObject({ state: 'PROVISIONING', pendingCertificateId: event.certificateId });
    // One transaction: the device moved, the certificate and its public key recorded, the history
    // entry, the claim's per-minute counter.
    const keys = (await table.dump()).map((item) => `${String(item.PK)} ${String(item.SK)}`);
    expect(keys).toEqual([
      `CERT#${String(event.certificateId)} CERT`,
      `CLAIM#${String(event.claimCertificateId)}#2026-11-24T12:00 CLAIM`,
      'DEVICE#SN-000001 DEVICE',
      'DEVICE#SN-000001 EVENT#2026-11-24T12:00:00.000Z#id-1',
      expect.stringMatching(/^PUBKEY#[0-9a-f]{64} PUBKEY$/),
    ]);
  });

  it('denies after an allow in the same warm container (no state leaks between invocations)', async () => {
    const { hook } = build();
    expect(await hook(allowedEvent(), lambdaContext())).toMatchObject({ allowProvisioning: true });
    const bound = await readDeviceItem();
    expect(await hook(sample('unknown-serial.json'), lambdaContext())).toEqual({ allowProvisioning: false });
    await putDevice(deviceItem({ state: 'REVOKED' }));
    expect(await hook(allowedEvent(), lambdaContext())).toEqual({ allowProvisioning: false });
    // The device as the first allow left it: the same request is allowed again (a retry).
    await putDevice(bound ?? {});
    expect(await hook(allowedEvent(), lambdaContext())).toMatchObject({ allowProvisioning: true });
  });

  it('denies when the read fails (the table does not exist)', async () => {
    const { hook, counted } = build({}, new ProvisioningStore(table.doc, `${table.tableName}-missing`));
    expect(await hook(allowedEvent(), lambdaContext())).toEqual({ allowProvisioning: false });
    expect(counted[0]?.dimensions.reason).toBe('STORE_UNAVAILABLE');
  });

  it('denies when the write fails, and nothing is bound', async () => {
    const store = new ProvisioningStore(table.doc, table.tableName);
    vi.spyOn(store, 'bindCertificate').mockRejectedValue(
      Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' }),
    );
    const { hook, counted } = build({}, store);
    expect(await hook(allowedEvent(), lambdaContext())).toEqual({ allowProvisioning: false });
    expect(counted[0]?.dimensions.reason).toBe('STORE_UNAVAILABLE');
    expect(await readDeviceItem()).toMatchObject({ state: 'ALLOWLISTED' });
  });

  it('denies with TIME_BUDGET_EXCEEDED when the store is slower than the budget', async () => {
    const { hook, counted } = build({ HOOK_TIME_BUDGET_MS: '100' }, slowStore(400));
    // Fake timers: the budget is measured on the test's clock, not the machine's load.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const started = Date.now();
    const pending = hook(allowedEvent(), lambdaContext());
    await vi.advanceTimersByTimeAsync(100);
    const response = await pending;
    const elapsed = Date.now() - started;
    vi.useRealTimers();
    // Answered when the budget ran out, long before the store (400 ms)
    expect(response).toEqual({ allowProvisioning: false });
    expect(elapsed).toBe(100);
    expect(counted).toEqual([{ name: 'ProvisioningDenied', dimensions: { reason: 'TIME_BUDGET_EXCEEDED' } }]);
  });

  it('shrinks the budget to the Lambda time left minus the safety margin', async () => {
    const { hook, counted } = build(
      { HOOK_TIME_BUDGET_MS: '3000', HOOK_SAFETY_MARGIN_MS: '250' },
      slowStore(400),
    );
    const started = Date.now();
    expect(await hook(allowedEvent(), lambdaContext('f', 350))).toEqual({ allowProvisioning: false });
    expect(Date.now() - started).toBeLessThan(300);
    expect(counted[0]?.dimensions.reason).toBe('TIME_BUDGET_EXCEEDED');
  });

  it('counts one outcome per invocation with the reason as dimension', async () => {
    const { hook, counted } = build();
    await hook(allowedEvent(), lambdaContext());
    await putDevice(deviceItem({ state: 'QUARANTINED' }));
    await hook(allowedEvent(), lambdaContext());
    await hook(sample('invalid-serial.json'), lambdaContext());
    expect(counted).toEqual([
      { name: 'DeviceProvisioned', dimensions: {} },
      { name: 'ProvisioningDenied', dimensions: { reason: 'DEVICE_QUARANTINED' } },
      { name: 'ProvisioningDenied', dimensions: { reason: 'INVALID_SERIAL' } },
    ]);
  });

  it('logs reasons and field issues, never the PEM or the whole event', async () => {
    const { hook, logged } = build();
    await hook(allowedEvent(), lambdaContext());
    await hook({ ...allowedEvent(), parameters: { SerialNumber: 7 } }, lambdaContext());
    const text = JSON.stringify(logged);
    expect(text).toContain('INVALID_EVENT');
    expect(text).toContain('parameters.SerialNumber: must be a string');
    expect(text).not.toContain('BEGIN CERTIFICATE');
    expect(text).not.toContain('"certificatePem"');
  });

  it('answers an unexpected exception with a denial', async () => {
    const store = new ProvisioningStore(table.doc, table.tableName);
    vi.spyOn(store, 'loadProvisioningFacts').mockImplementation(() => {
      throw new TypeError('boom');
    });
    const { hook, counted } = build({}, store);
    expect(await hook(allowedEvent(), lambdaContext())).toEqual({ allowProvisioning: false });
    expect(counted[0]?.dimensions.reason).toBe('STORE_UNAVAILABLE');
  });
});
