import { readFileSync } from 'node:fs';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { BatchGetCommand, DynamoDBDocumentClient, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { documentClient } from '../../shared/aws/clients';
import { configFor } from '../../shared/config';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { allowlistedDevice, NOW } from '../support/devices';
import { lambdaContext } from '../support/lambda';

// The module composes its dependencies from the environment at import time, as in Lambda.
vi.hoisted(() => {
  process.env.TABLE_NAME = 'hook-unit';
  process.env.THING_NAME_PREFIX = 'fg-';
  process.env.DEFAULT_ALLOWED_CLAIM = '*';
});
const { createHandler, handler } = await import('../../functions/pre-provision-hook/handler');

const ddb = mockClient(DynamoDBDocumentClient);
const sample = (name: string) =>
  JSON.parse(readFileSync(new URL(`../../events/hook/${name}`, import.meta.url), 'utf8')) as Record<
    string,
    unknown
  >;
const allowedEvent = () => sample('allowed.json');

function deviceItem(overrides: Record<string, unknown> = {}) {
  return {
    PK: 'DEVICE#SN-000001',
    SK: 'DEVICE',
    ...allowlistedDevice({ serial: 'SN-000001', productLine: 'gateway', batch: 'B-7' }),
    ...overrides,
  };
}

function withDevice(item: Record<string, unknown> | undefined) {
  ddb.on(BatchGetCommand).resolves({ Responses: { 'hook-unit': item ? [item] : [] } });
}

function cancelled(codes: string[]) {
  return Object.assign(new Error('Transaction cancelled'), {
    name: 'TransactionCanceledException',
    CancellationReasons: codes.map((Code) => ({ Code })),
  });
}

beforeEach(() => {
  ddb.reset();
  ddb.on(TransactWriteCommand).resolves({});
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('preProvisionHook handler', () => {
  it('allows an allowlisted serial with the overridden thing name and attributes', async () => {
    // Prepare
    withDevice(deviceItem());
    // Act
    const response = await handler(allowedEvent(), lambdaContext());
    // Assess
    expect(response).toEqual({
      allowProvisioning: true,
      parameterOverrides: {
        ThingName: 'fg-SN-000001',
        ProductLine: 'gateway',
        Batch: 'B-7',
        CertificateIssueDate: '2026-01-01T00:00:00.000Z',
      },
    });
    expect(ddb.commandCalls(BatchGetCommand)).toHaveLength(1);
    expect(ddb.commandCalls(TransactWriteCommand)).toHaveLength(1);
    const items = ddb.commandCalls(TransactWriteCommand)[0]?.args[0].input.TransactItems ?? [];
    expect(items.map((item) => Object.keys(item)[0])).toEqual(['Update', 'Put', 'Put', 'Put', 'Update']);
  });

  it('denies after an allow in the same warm container (no state leaks between invocations)', async () => {
    withDevice(deviceItem());
    expect(await handler(allowedEvent(), lambdaContext())).toMatchObject({ allowProvisioning: true });
    withDevice(undefined);
    expect(await handler(sample('unknown-serial.json'), lambdaContext())).toEqual({
      allowProvisioning: false,
    });
    withDevice(deviceItem({ state: 'REVOKED' }));
    expect(await handler(allowedEvent(), lambdaContext())).toEqual({ allowProvisioning: false });
    withDevice(deviceItem());
    expect(await handler(allowedEvent(), lambdaContext())).toMatchObject({ allowProvisioning: true });
  });

  it.each([['missing-serial.json'], ['invalid-serial.json'], ['csr-instead-of-certificate.json']])(
    'denies %s without touching the store',
    async (name) => {
      expect(await handler(sample(name), lambdaContext())).toEqual({ allowProvisioning: false });
      expect(ddb.calls()).toHaveLength(0);
    },
  );

  it.each([null, 'text', 42, [], {}, { ...allowedEvent(), parameters: 'SN-000001' }])(
    'denies a malformed event %j and never throws',
    async (event) => {
      await expect(handler(event, lambdaContext())).resolves.toEqual({ allowProvisioning: false });
      expect(ddb.calls()).toHaveLength(0);
    },
  );

  it('denies when the read fails', async () => {
    ddb.on(BatchGetCommand).rejects(Object.assign(new Error('down'), { name: 'InternalServerError' }));
    expect(await handler(allowedEvent(), lambdaContext())).toEqual({ allowProvisioning: false });
  });

  it('denies when the write fails', async () => {
    withDevice(deviceItem());
    ddb.on(TransactWriteCommand).rejects(new Error('AccessDeniedException'));
    expect(await handler(allowedEvent(), lambdaContext())).toEqual({ allowProvisioning: false });
  });

  it('denies when the claim counter condition fails in the transaction', async () => {
    withDevice(deviceItem());
    ddb
      .on(TransactWriteCommand)
      .rejects(cancelled(['None', 'None', 'None', 'None', 'ConditionalCheckFailed']));
    expect(await handler(allowedEvent(), lambdaContext())).toEqual({ allowProvisioning: false });
  });
});

describe('createHandler', () => {
  function build(env: Record<string, string> = {}) {
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
    const config = configFor({ TABLE_NAME: 'hook-unit', DEFAULT_ALLOWED_CLAIM: '*', ...env });
    const hook = createHandler({
      config,
      store: new ProvisioningStore(documentClient(), config.tableName),
      logger,
      metrics,
      clock: () => Date.parse(NOW),
      newId: () => 'id-1',
    });
    return { hook, logged, counted };
  }

  it('denies with TIME_BUDGET_EXCEEDED when the store is slower than the budget', async () => {
    // Prepare
    ddb
      .on(BatchGetCommand)
      .callsFake(
        () =>
          new Promise((resolve) =>
            setTimeout(() => resolve({ Responses: { 'hook-unit': [deviceItem()] } }), 400),
          ),
      );
    const { hook, counted } = build({ HOOK_TIME_BUDGET_MS: '100' });
    // Fake timers: the budget is measured on the test's clock, not the machine's load.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    // Act
    const started = Date.now();
    const pending = hook(allowedEvent(), lambdaContext());
    await vi.advanceTimersByTimeAsync(100);
    const response = await pending;
    const elapsed = Date.now() - started;
    vi.useRealTimers();
    // Assess: answered when the budget ran out, long before the store (400 ms)
    expect(response).toEqual({ allowProvisioning: false });
    expect(elapsed).toBe(100);
    expect(counted).toEqual([{ name: 'ProvisioningDenied', dimensions: { reason: 'TIME_BUDGET_EXCEEDED' } }]);
  });

  it('shrinks the budget to the Lambda time left minus the safety margin', async () => {
    ddb
      .on(BatchGetCommand)
      .callsFake(
        () =>
          new Promise((resolve) =>
            setTimeout(() => resolve({ Responses: { 'hook-unit': [deviceItem()] } }), 400),
          ),
      );
    const { hook, counted } = build({ HOOK_TIME_BUDGET_MS: '3000', HOOK_SAFETY_MARGIN_MS: '250' });
    const started = Date.now();
    expect(await hook(allowedEvent(), lambdaContext('f', 350))).toEqual({ allowProvisioning: false });
    expect(Date.now() - started).toBeLessThan(300);
    expect(counted[0]?.dimensions.reason).toBe('TIME_BUDGET_EXCEEDED');
  });

  it('counts one outcome per invocation with the reason as dimension', async () => {
    const { hook, counted } = build();
    withDevice(deviceItem());
    await hook(allowedEvent(), lambdaContext());
    withDevice(deviceItem({ state: 'QUARANTINED' }));
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
    withDevice(deviceItem());
    await hook(allowedEvent(), lambdaContext());
    await hook({ ...allowedEvent(), parameters: { SerialNumber: 7 } }, lambdaContext());
    const text = JSON.stringify(logged);
    expect(text).toContain('INVALID_EVENT');
    expect(text).toContain('parameters.SerialNumber: must be a string');
    expect(text).not.toContain('BEGIN CERTIFICATE');
    expect(text).not.toContain('"certificatePem"');
  });

  it('answers an unexpected exception with a denial', async () => {
    const { hook, counted } = build();
    ddb.on(BatchGetCommand).callsFake(() => {
      throw new TypeError('boom');
    });
    expect(await hook(allowedEvent(), lambdaContext())).toEqual({ allowProvisioning: false });
    expect(counted[0]?.dimensions.reason).toBe('STORE_UNAVAILABLE');
  });
});
