import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateThingCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  InternalFailureException,
  IoTClient,
  ResourceNotFoundException,
  ServiceUnavailableException,
  ThrottlingException,
} from '@aws-sdk/client-iot';
import { afterEach, describe, expect, it } from 'vitest';
import { AWS_DEFAULT_QUOTAS, type IotEmulator, startIotEmulator } from '../../local/iot-emulator';

const MISSING_CERT = 'a'.repeat(64);

let emulator: IotEmulator;
let iot: IoTClient;

async function start(options: Parameters<typeof startIotEmulator>[0] = {}) {
  emulator = await startIotEmulator(options);
  // maxAttempts 1: the SDK's own retries must not hide throttling or injected errors.
  iot = new IoTClient({ ...emulator.clientConfig(), maxAttempts: 1 });
}

afterEach(async () => {
  iot?.destroy();
  await emulator?.stop();
});

async function burst(n: number, call: () => Promise<unknown>) {
  const results = await Promise.allSettled(Array.from({ length: n }, call));
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
  return { results, errors };
}

describe('quotas', () => {
  it('has AWS default TPS for the APIs fleetgate uses', () => {
    expect(AWS_DEFAULT_QUOTAS).toMatchObject({
      DescribeCertificate: 10,
      UpdateCertificate: 10,
      CreateThing: 15,
      AttachPolicy: 15,
      AttachThingPrincipal: 15,
      ListCertificates: 10,
      DescribeThing: 350,
    });
  });

  it('throttles a burst over the AWS default quota with ThrottlingException (HTTP 400, as documented) and logs it', async () => {
    // Prepare
    await start({ faults: { quotas: 'aws-default' } });
    // Act: 30 concurrent DescribeCertificate calls against a 10 TPS bucket
    const started = performance.now();
    const { errors } = await burst(30, () =>
      iot.send(new DescribeCertificateCommand({ certificateId: MISSING_CERT })),
    );
    // Tokens refill at 10/s while the burst is in flight: a loaded machine takes longer and gets more.
    const refilledDuringBurst = Math.ceil(((performance.now() - started) / 1000) * 10);
    // Assess: the first 10 (the bucket) reach the handler (ResourceNotFound), the rest are throttled
    const throttled = errors.filter((e) => e instanceof ThrottlingException);
    const handled = errors.filter((e) => e instanceof ResourceNotFoundException);
    expect(handled.length).toBeGreaterThanOrEqual(10);
    expect(handled.length).toBeLessThanOrEqual(10 + refilledDuringBurst);
    expect(throttled.length).toBeGreaterThan(0);
    expect(throttled.length).toBe(30 - handled.length);
    expect(throttled[0]).toMatchObject({ name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } });
    expect(emulator.callCount('DescribeCertificate', 'ThrottlingException')).toBe(throttled.length);
    expect(emulator.callCount('DescribeCertificate', 'ResourceNotFoundException')).toBe(handled.length);
    expect(emulator.callCount('DescribeCertificate')).toBe(30);

    // the bucket refills at the quota rate: ~3 tokens after 300 ms
    const drained = performance.now();
    await sleep(300);
    const refill = await burst(10, () =>
      iot.send(new DescribeCertificateCommand({ certificateId: MISSING_CERT })),
    );
    const elapsed = performance.now() - drained;
    const refilled = refill.errors.filter((e) => e instanceof ResourceNotFoundException).length;
    expect(refilled).toBeGreaterThanOrEqual(2);
    expect(refilled).toBeLessThanOrEqual(Math.min(10, Math.ceil((elapsed / 1000) * 10) + 1));
    // other APIs have their own buckets
    await expect(iot.send(new CreateThingCommand({ thingName: 'own-bucket' }))).resolves.toBeDefined();
  });

  it('accepts a custom quota table and can switch quotas off at runtime', async () => {
    await start({ faults: { quotas: { CreateThing: 2 } } });
    const { results } = await burst(5, () => iot.send(new CreateThingCommand({ thingName: 'same' })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    emulator.setFaults({});
    const after = await burst(5, () => iot.send(new CreateThingCommand({ thingName: 'same' })));
    expect(after.errors).toEqual([]);
  });
});

describe('injected errors and latency', () => {
  it('fails every call with the chosen 5xx when errorRate is 1', async () => {
    await start();
    await iot.send(new CreateThingCommand({ thingName: 'steady' }));
    emulator.setFaults({ errorRate: 1, errorCodes: ['ServiceUnavailableException'] });
    const unavailable = iot.send(new DescribeThingCommand({ thingName: 'steady' }));
    await expect(unavailable).rejects.toBeInstanceOf(ServiceUnavailableException);
    await expect(unavailable).rejects.toMatchObject({ $metadata: { httpStatusCode: 503 } });
    emulator.setFaults({ errorRate: 1, errorCodes: ['InternalFailureException'] });
    const internal = iot.send(new DescribeThingCommand({ thingName: 'steady' }));
    await expect(internal).rejects.toBeInstanceOf(InternalFailureException);
    await expect(internal).rejects.toMatchObject({ $metadata: { httpStatusCode: 500 } });
    expect(emulator.callCount('DescribeThing', 'ServiceUnavailableException')).toBe(1);
    expect(emulator.callCount('DescribeThing', 'InternalFailureException')).toBe(1);
  });

  it('throttles a share of calls (throttleRate) with ThrottlingException, HTTP 400, whatever the quotas', async () => {
    await start();
    await iot.send(new CreateThingCommand({ thingName: 'steady' }));
    emulator.setFaults({ throttleRate: 0.1, seed: 3 });
    const { errors } = await burst(200, () => iot.send(new DescribeThingCommand({ thingName: 'steady' })));
    expect(errors.every((error) => error instanceof ThrottlingException)).toBe(true);
    expect(errors[0]).toMatchObject({ $metadata: { httpStatusCode: 400 } });
    // About one in ten (binomial, 200 draws): well inside 5..40.
    expect(errors.length).toBeGreaterThan(5);
    expect(errors.length).toBeLessThan(40);
    expect(() => emulator.setFaults({ throttleRate: 1.5 })).toThrow(RangeError);
  });

  it('injects faults only into the callers named (the functions), never into the operator', async () => {
    await start();
    await iot.send(new CreateThingCommand({ thingName: 'steady' }));
    emulator.setFaults({ errorRate: 1, throttleRate: 0, callers: ['local-fn-'] });
    // The operator (access key "local") is left alone…
    await expect(iot.send(new DescribeThingCommand({ thingName: 'steady' }))).resolves.toBeDefined();
    // …a function signing as local-fn-<name> gets the injected 5xx.
    const fn = new IoTClient({
      ...emulator.clientConfig(),
      credentials: { accessKeyId: 'local-fn-registerCertificate', secretAccessKey: 'local' },
      maxAttempts: 1,
    });
    try {
      await expect(fn.send(new DescribeThingCommand({ thingName: 'steady' }))).rejects.toMatchObject({
        $metadata: { httpStatusCode: expect.any(Number) },
      });
      expect(
        emulator.callCount('DescribeThing', 'InternalFailureException') +
          emulator.callCount('DescribeThing', 'ServiceUnavailableException'),
      ).toBe(1);
    } finally {
      fn.destroy();
    }
  });

  it('produces the same error sequence for the same seed, and only on the chosen APIs', async () => {
    const outcomes = async (seed: number) => {
      emulator.setFaults({ errorRate: 0.5, seed, apis: ['DescribeThing'] });
      const seen: string[] = [];
      for (let i = 0; i < 30; i += 1) {
        try {
          await iot.send(new DescribeThingCommand({ thingName: 'steady' }));
          seen.push('ok');
        } catch (error) {
          seen.push((error as Error).name);
        }
      }
      return seen;
    };
    await start();
    await iot.send(new CreateThingCommand({ thingName: 'steady' }));
    const first = await outcomes(7);
    const second = await outcomes(7);
    const other = await outcomes(8);
    expect(second).toEqual(first);
    expect(other).not.toEqual(first);
    const failures = first.filter((o) => o !== 'ok').length;
    expect(failures).toBeGreaterThan(5);
    expect(failures).toBeLessThan(25);
    await expect(iot.send(new CreateThingCommand({ thingName: 'unaffected' }))).resolves.toBeDefined();
  });

  it('adds fixed and ranged latency', async () => {
    await start({ faults: { latency: 120 } });
    let started = performance.now();
    await iot.send(new CreateThingCommand({ thingName: 'slow' }));
    expect(performance.now() - started).toBeGreaterThanOrEqual(115);
    emulator.setFaults({ latency: { minMs: 50, maxMs: 80 } });
    started = performance.now();
    await iot.send(new DescribeThingCommand({ thingName: 'slow' }));
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(45);
    expect(emulator.calls.at(-1)).toMatchObject({
      api: 'DescribeThing',
      outcome: 'ok',
      input: { thingName: 'slow' },
    });
  });
});

describe('introspection routes', () => {
  it('reads the call log and changes faults from another process over HTTP', async () => {
    await start();
    await iot.send(new CreateThingCommand({ thingName: 'seen' }));
    await expect(iot.send(new DescribeThingCommand({ thingName: 'unseen' }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
    const calls = (await (await fetch(`${emulator.endpoint}/_emulator/calls`)).json()) as {
      calls: { api: string; outcome: string; input: Record<string, unknown>; at: string }[];
    };
    expect(calls.calls.map((c) => [c.api, c.outcome])).toEqual([
      ['CreateThing', 'ok'],
      ['DescribeThing', 'ResourceNotFoundException'],
    ]);
    expect(calls.calls[0]?.input).toEqual({ thingName: 'seen' });

    const set = await fetch(`${emulator.endpoint}/_emulator/faults`, {
      method: 'POST',
      body: JSON.stringify({ quotas: { DescribeThing: 1 } }),
    });
    expect(await set.json()).toMatchObject({ quotas: { DescribeThing: 1 } });
    const { errors } = await burst(3, () => iot.send(new DescribeThingCommand({ thingName: 'seen' })));
    expect(errors.filter((e) => e instanceof ThrottlingException)).toHaveLength(2);

    await fetch(`${emulator.endpoint}/_emulator/calls`, { method: 'DELETE' });
    expect(emulator.calls).toHaveLength(0);
    const unknown = await fetch(`${emulator.endpoint}/_emulator/nope`);
    expect(unknown.status).toBe(404);
  });
});
