/**
 * Fleets through JITR and verification, against the IoT emulator and DynamoDB Local:
 * - idempotency under fire: every JITR and presence event delivered 3× (distinct message ids, as
 *   IoT publishing twice does), shuffled, 40 records in flight at a time;
 * - fault injection: AWS's default API quotas plus 10 % injected 5xx.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { KeyedCertificate } from '../../../local/pki';
import { useTestTable } from '../../support/dynamo';
import { allowlist, deliver, deviceCertificate, type Rig, ruleOutput, startRig } from '../../support/jitr';

const table = useTestTable('fleet');
let rig: Rig;
afterEach(async () => {
  await rig?.stop();
});

async function fleet(
  prefix: string,
  count: number,
): Promise<Array<{ serial: string; certificate: KeyedCertificate }>> {
  const serials = Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);
  await allowlist(table.store, serials);
  return Promise.all(
    serials.map(async (serial) => ({ serial, certificate: await deviceCertificate(rig.ca, serial) })),
  );
}

/** IoT resources fleetgate must never leave behind. */
async function orphans() {
  const registry = rig.emulator.registry;
  const thingsWithoutPrincipals = [...registry.things.values()].filter(
    (thing) => thing.principals.size === 0,
  ).length;
  let activeUnknownToStore = 0;
  for (const certificate of registry.certificates.values()) {
    if (certificate.status !== 'ACTIVE') continue;
    const record = await table.store.getCertificate(certificate.certificateId);
    if (record?.status !== 'ACTIVE') activeUnknownToStore += 1;
  }
  return { thingsWithoutPrincipals, activeUnknownToStore };
}

describe('a fleet through JITR', () => {
  it('200 devices, every event delivered 3× concurrently and shuffled: one thing, one active certificate, one history entry per transition', async () => {
    // Prepare
    rig = await startRig(table.store);
    const devices = await fleet('SN-FIRE', 200);
    for (const { serial, certificate } of devices)
      await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: serial });
    // Act
    const registration = await deliver(rig.registration, rig.take('registration').map(ruleOutput), {
      times: 3,
      shuffle: true,
      concurrency: 4,
      batchSize: 10,
    });
    for (const { serial, certificate } of devices) {
      await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: serial });
      await rig.emulator.disconnect({ clientId: serial });
    }
    const lifecycle = await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput), {
      times: 3,
      shuffle: true,
      concurrency: 4,
      batchSize: 10,
    });
    // Assess
    expect(registration.deadLettered).toEqual([]);
    expect(lifecycle.deadLettered).toEqual([]);
    const registry = rig.emulator.registry;
    expect(registry.things.size).toBe(200);
    expect([...registry.certificates.values()].filter((c) => c.status === 'ACTIVE')).toHaveLength(200);
    expect([...registry.things.values()].every((thing) => thing.principals.size === 1)).toBe(true);
    for (const api of ['CreateThing', 'AttachPolicy', 'AttachThingPrincipal', 'UpdateCertificate']) {
      expect({ api, ok: rig.emulator.callCount(api, 'ok') }).toEqual({ api, ok: 200 });
    }
    const histories = await Promise.all(devices.map(({ serial }) => table.store.history(serial)));
    for (const [i, { serial, certificate }] of devices.entries()) {
      expect({ serial, events: histories[i]?.map((entry) => entry.event) }).toEqual({
        serial,
        events: ['CREATED', 'PROVISION', 'ACTIVATE'],
      });
      expect(await table.store.getDevice(serial)).toMatchObject({
        state: 'ACTIVE',
        certificateId: certificate.certificateId,
      });
    }
    expect(await orphans()).toEqual({ thingsWithoutPrincipals: 0, activeUnknownToStore: 0 });
    expect(rig.quarantine.requests).toEqual([]);
    console.info('idempotency under fire', {
      registration,
      lifecycle,
      outcomes: tally(rig.registrationOutcomes),
    });
  }, 150_000);

  it('under AWS default quotas and 10 % injected 5xx every valid device ends ACTIVE, nothing is orphaned or dead-lettered', async () => {
    // Prepare
    rig = await startRig(table.store, { maxAttempts: 4 });
    const valid = await fleet('SN-FAULT', 40);
    const strangers = await Promise.all(
      Array.from({ length: 5 }, async (_, i) => ({
        serial: `SN-STRANGER-${i}`,
        certificate: await deviceCertificate(rig.ca, `SN-STRANGER-${i}`),
      })),
    );
    for (const { serial, certificate } of [...valid, ...strangers]) {
      await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: serial });
    }
    rig.emulator.setFaults({ quotas: 'aws-default', errorRate: 0.1, seed: 7 });
    // Act
    const started = performance.now();
    const registration = await deliver(rig.registration, rig.take('registration').map(ruleOutput), {
      concurrency: 4,
      batchSize: 10,
      redeliveryMs: 500,
    });
    const seconds = (performance.now() - started) / 1000;
    for (const { serial, certificate } of valid)
      await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: serial });
    const lifecycle = await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput), {
      concurrency: 4,
      batchSize: 10,
      redeliveryMs: 500,
    });
    // Assess
    console.info(
      'fault outcomes',
      tally(rig.registrationOutcomes),
      tally(rig.lifecycleOutcomes),
      registration,
      lifecycle,
    );
    expect(registration.deadLettered).toEqual([]);
    expect(lifecycle.deadLettered).toEqual([]);
    for (const { serial } of valid)
      expect(await table.store.getDevice(serial)).toMatchObject({ state: 'ACTIVE' });
    expect(await orphans()).toEqual({ thingsWithoutPrincipals: 0, activeUnknownToStore: 0 });
    expect(rig.quarantine.distinct.map((request) => request.reason)).toEqual(
      Array(5).fill('SERIAL_NOT_ALLOWLISTED'),
    );
    const calls = rig.emulator.calls;
    const counts = {
      seconds: Number(seconds.toFixed(2)),
      registrationDeliveries: registration.deliveries,
      registrationRetried: registration.retried,
      lifecycleRetried: lifecycle.retried,
      deadLettered: registration.deadLettered.length + lifecycle.deadLettered.length,
      iotCalls: calls.length,
      throttled: calls.filter((call) => call.outcome === 'ThrottlingException').length,
      injected5xx: calls.filter(
        (call) =>
          call.outcome === 'InternalFailureException' || call.outcome === 'ServiceUnavailableException',
      ).length,
      ok: calls.filter((call) => call.outcome === 'ok').length,
    };
    console.info('fault injection', counts);
    expect(counts.injected5xx).toBeGreaterThan(0);
  });
});

function tally(outcomes: ReadonlyArray<{ name: string; reason?: string }>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const outcome of outcomes) {
    const key = outcome.reason ? `${outcome.name}:${outcome.reason}` : outcome.name;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
