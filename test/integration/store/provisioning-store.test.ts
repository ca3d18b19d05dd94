import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MalformedItemError } from '../../../shared/errors';
import { keys } from '../../../shared/store/keys';
import type { TransitionInput } from '../../../shared/store/provisioning-store';
import { QuarantineStore } from '../../../shared/store/quarantine-store';
import type { CertificateRecord, DeviceRecord } from '../../../shared/store/records';
import { RegistrationStore } from '../../../shared/store/registration-store';
import { RotationStore } from '../../../shared/store/rotation-store';
import { allowlistedDevice, NOW, pendingCertificate } from '../../support/devices';
import { createTestTable, type TestTable } from '../../support/dynamo';

let table: TestTable;
beforeAll(async () => {
  table = await createTestTable('store');
});
afterAll(async () => {
  await table.drop();
});

const certificate = pendingCertificate;

let counter = 0;
async function newDevice(prefix: string) {
  counter += 1;
  const device = allowlistedDevice({ serial: `${prefix}-${String(counter).padStart(4, '0')}`, batch: 'B1' });
  expect(await table.store.createDevice(device, { id: 'import', actor: 'test' })).toBe(true);
  return device;
}

/** Binds a new PENDING certificate to an allowlisted device, as fleet provisioning does. */
function provision(
  device: DeviceRecord,
  certificateId: string,
  publicKeyHash: string,
  historyId: string,
  claim?: { claimCertificateId: string; limitPerMinute: number },
) {
  return table.store.bindCertificate({
    serial: device.serial,
    event: 'PROVISION',
    device,
    certificate: certificate(certificateId),
    publicKeyHash,
    now: NOW,
    history: { id: historyId, actor: 'test' },
    ...(claim ? { claim } : {}),
  });
}

/** Moves a device by `event` under `transitionKey` (also the history id unless `extra` names one). */
function move(
  device: DeviceRecord,
  event: TransitionInput['event'],
  transitionKey: string,
  extra: Partial<TransitionInput> = {},
) {
  return table.store.transition({
    serial: device.serial,
    event,
    device,
    transitionKey,
    now: NOW,
    history: { id: transitionKey, actor: 'test' },
    ...extra,
  });
}

describe('ProvisioningStore', () => {
  it('creates a device once; a second create is refused', async () => {
    const device = await newDevice('CREATE');
    expect(await table.store.createDevice(device, { id: 'import-2', actor: 'test' })).toBe(false);
    expect(await table.store.getDevice(device.serial)).toMatchObject({
      serial: device.serial,
      state: 'ALLOWLISTED',
      version: 1,
    });
    expect(await table.store.history(device.serial)).toHaveLength(1);
  });

  it('lets exactly one of 20 concurrent bindings of different certificates win', async () => {
    // Prepare
    const device = await newDevice('RACE');
    // Act
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        provision(device, `race-cert-${device.serial}-${i}`, `race-key-${device.serial}-${i}`, `bind-${i}`),
      ),
    );
    // Assess
    const winners = outcomes.filter((outcome) => outcome.status === 'applied');
    expect(winners).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome.status === 'conflict')).toHaveLength(19);
    const stored = await table.store.getDevice(device.serial);
    expect(stored).toMatchObject({ state: 'PROVISIONING', version: 2 });
    const winner = winners[0];
    expect(winner?.status === 'applied' && winner.device.pendingCertificateId).toBe(
      stored?.pendingCertificateId,
    );
    const history = await table.store.history(device.serial);
    expect(history.filter((entry) => entry.event === 'PROVISION')).toHaveLength(1);
  });

  it('treats re-binding the same certificate as already done, also concurrently', async () => {
    const device = await newDevice('REBIND');
    const bind = () => provision(device, `rebind-${device.serial}`, `rebind-key-${device.serial}`, 'bind');
    const outcomes = await Promise.all(Array.from({ length: 10 }, bind));
    expect(outcomes.filter((o) => o.status === 'applied')).toHaveLength(1);
    expect(outcomes.filter((o) => o.status === 'already-done')).toHaveLength(9);
    const again = await bind();
    expect(again.status).toBe('already-done');
    expect((await table.store.history(device.serial)).filter((e) => e.event === 'PROVISION')).toHaveLength(1);
  });

  it('refuses a public key already owned by another device', async () => {
    const first = await newDevice('KEY');
    const second = await newDevice('KEY');
    const shared = `shared-key-${first.serial}`;
    const a = await provision(first, `key-a-${first.serial}`, shared, 'a');
    const b = await provision(second, `key-b-${second.serial}`, shared, 'b');
    expect(a.status).toBe('applied');
    expect(b).toMatchObject({
      status: 'conflict',
      reason: 'PUBLIC_KEY_IN_USE',
      owner: { serial: first.serial },
    });
    expect(await table.store.getDevice(second.serial)).toMatchObject({ state: 'ALLOWLISTED', version: 1 });
    expect(await table.store.getCertificate(`key-b-${second.serial}`)).toBeUndefined();
  });

  it('counts claims atomically: never more bindings than the per-minute limit', async () => {
    const devices = await Promise.all(Array.from({ length: 12 }, () => newDevice('CLAIM')));
    const outcomes = await Promise.all(
      devices.map((device, i) =>
        provision(device, `claim-${device.serial}`, `claim-key-${device.serial}`, `c${i}`, {
          claimCertificateId: 'claim-cert-1',
          limitPerMinute: 5,
        }),
      ),
    );
    expect(outcomes.filter((o) => o.status === 'applied')).toHaveLength(5);
    expect(
      outcomes.filter((o) => o.status === 'conflict' && o.reason === 'CLAIM_RATE_EXCEEDED'),
    ).toHaveLength(7);
  });

  it('applies a transition once; the same key again is already done; a stale version conflicts', async () => {
    const device = await newDevice('MOVE');
    const bound = await provision(device, `move-${device.serial}`, `move-key-${device.serial}`, 'bind');
    if (bound.status !== 'applied') throw new Error(`bind failed: ${bound.status}`);
    const activate = {
      serial: device.serial,
      event: 'ACTIVATE' as const,
      device: bound.device,
      transitionKey: `activate:move-${device.serial}`,
      now: NOW,
      history: { id: 'activate', actor: 'test' },
      set: { certificateId: `move-${device.serial}` },
      remove: ['pendingCertificateId'] as const,
    };
    const results = await Promise.all([table.store.transition(activate), table.store.transition(activate)]);
    expect(results.map((r) => r.status).sort()).toEqual(['already-done', 'applied']);
    const stored = await table.store.getDevice(device.serial);
    expect(stored).toMatchObject({ state: 'ACTIVE', version: 3, certificateId: `move-${device.serial}` });
    expect(stored?.pendingCertificateId).toBeUndefined();
    // A different transition from the stale read conflicts.
    const stale = await table.store.transition({
      ...activate,
      event: 'EXPIRE_PROVISIONING',
      transitionKey: 'expire',
    });
    expect(stale.status).toBe('conflict');
  });

  it('quarantines with the previous state and releases back to it', async () => {
    const device = await newDevice('QUAR');
    const quarantined = await move(device, 'QUARANTINE', 'q1', {
      history: { id: 'q1', actor: 'test', reason: 'CLONED_KEY' },
      set: {
        quarantine: { reason: 'CLONED_KEY', source: 'test', at: NOW, evidence: { certificateId: 'x' } },
      },
    });
    if (quarantined.status !== 'applied') throw new Error(quarantined.status);
    expect(quarantined.device).toMatchObject({ state: 'QUARANTINED', previousState: 'ALLOWLISTED' });
    const released = await move(quarantined.device, 'RELEASE', 'r1', {
      history: { id: 'r1', actor: 'operator', reason: 'false positive' },
    });
    expect(released).toMatchObject({ status: 'applied', device: { state: 'ALLOWLISTED' } });
    const stored = await table.store.getDevice(device.serial);
    expect(stored?.state).toBe('ALLOWLISTED');
    expect(stored?.quarantine).toBeUndefined();
    expect((await table.store.history(device.serial)).map((e) => e.event)).toEqual([
      'CREATED',
      'QUARANTINE',
      'RELEASE',
    ]);
  });

  it('reports an illegal transition without writing', async () => {
    const device = await newDevice('ILLEGAL');
    const result = await move(device, 'ACTIVATE', 'a');
    expect(result).toMatchObject({ status: 'illegal', reason: 'ACTIVATE is not allowed from ALLOWLISTED' });
    expect(await table.store.getDevice(device.serial)).toMatchObject({ version: 1 });
  });

  it('writes a transition and its dedup marker together: a repeat of the identity is already done', async () => {
    const device = await newDevice('DEDUP');
    const input = {
      serial: device.serial,
      event: 'QUARANTINE' as const,
      device,
      now: NOW,
      history: { id: 'd', actor: 'test' },
      dedup: { identity: `evt-${device.serial}`, ttlSeconds: 3600 },
    };
    const first = await table.store.transition({ ...input, transitionKey: 'd1' });
    const second = await table.store.transition({ ...input, transitionKey: 'd2' });
    expect(first.status).toBe('applied');
    expect(second.status).not.toBe('applied');
  });

  it('marks an effect once', async () => {
    expect(await table.store.markOnce('effect-1', { ttlSeconds: 60, now: NOW })).toBe(true);
    expect(await table.store.markOnce('effect-1', { ttlSeconds: 60, now: NOW })).toBe(false);
  });

  it('loads device, certificate and key owner in one round trip', async () => {
    const device = await newDevice('FACTS');
    await provision(device, `facts-${device.serial}`, `facts-key-${device.serial}`, 'b');
    const before = table.store.stats.roundTrips;
    const facts = await table.store.loadProvisioningFacts({
      serial: device.serial,
      certificateId: `facts-${device.serial}`,
      publicKeyHash: `facts-key-${device.serial}`,
    });
    expect(table.store.stats.roundTrips - before).toBe(1);
    expect(facts.device?.state).toBe('PROVISIONING');
    expect(facts.certificate?.serial).toBe(device.serial);
    expect(facts.publicKeyOwner?.serial).toBe(device.serial);
  });
});

describe('store client and checked items', () => {
  it('refuses a malformed device record with its key and field instead of passing it on', async () => {
    // Prepare: a device item no writer of fleetgate would write (an unknown state).
    const serial = 'MALFORMED-0001';
    await table.doc.send(
      new PutCommand({
        TableName: table.tableName,
        Item: { ...keys.device(serial), ...allowlistedDevice({ serial }), state: 'LOST' },
      }),
    );
    // Act
    const read = await table.store.getDevice(serial).catch((error: unknown) => error);
    const facts = await table.store.loadProvisioningFacts({ serial }).catch((error: unknown) => error);
    // Assess
    for (const error of [read, facts]) {
      expect(error).toBeInstanceOf(MalformedItemError);
      expect(error).toMatchObject({ entity: 'device', key: `PK=DEVICE#${serial} SK=DEVICE`, field: 'state' });
    }
  });

  it('counts the round trips of every store that shares its client', async () => {
    const before = table.store.stats.roundTrips;
    await new QuarantineStore(table.store).isDone('no-such-request');
    await new RegistrationStore(table.store).wasSeen('no-such-identity');
    await new RotationStore(table.store).getRequest('NO-SUCH-SERIAL', 'no-such-key');
    expect(table.store.stats.roundTrips - before).toBe(3);
  });
});

describe('expiry index', () => {
  it('returns exactly the certificates inside a window, across day and shard boundaries', async () => {
    // Prepare: certificates every 5 hours over 6 days, ids spread over every shard.
    const start = Date.parse('2027-03-01T00:00:00.000Z');
    const all: CertificateRecord[] = [];
    for (let i = 0; i < 30; i += 1) {
      const notAfter = new Date(start + i * 5 * 3600_000).toISOString();
      all.push(certificate(`exp-${i}`, { notAfter, serial: `EXP-${i}` }));
    }
    // Boundary twins: exactly at the window edges.
    const from = '2027-03-02T10:00:00.000Z';
    const to = '2027-03-05T15:00:00.000Z';
    all.push(certificate('edge-from', { notAfter: from }), certificate('edge-to', { notAfter: to }));
    all.push(certificate('edge-before', { notAfter: '2027-03-02T09:59:59.999Z' }));
    all.push(certificate('edge-last', { notAfter: '2027-03-05T14:59:59.999Z' }));
    await Promise.all(all.map((record) => table.store.putCertificateIfAbsent(record)));
    // Act
    const found: string[] = [];
    for await (const record of table.store.certificatesExpiringBetween(from, to))
      found.push(record.certificateId);
    // Assess: [from, to) exactly.
    const expected = all
      .filter((record) => record.notAfter >= from && record.notAfter < to)
      .map((record) => record.certificateId);
    expect(found.sort()).toEqual(expected.sort());
    expect(found).toContain('edge-from');
    expect(found).toContain('edge-last');
    expect(found).not.toContain('edge-to');
    expect(found).not.toContain('edge-before');
  });
});

describe('devices by state', () => {
  it('pages through every shard with an opaque cursor', async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 25; i += 1) serials.add((await newDevice('LIST')).serial);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await table.store.listDevicesByState('ALLOWLISTED', {
        limit: 7,
        ...(cursor ? { cursor } : {}),
      });
      expect(page.items.length).toBeLessThanOrEqual(7);
      seen.push(...page.items.map((d) => d.serial));
      cursor = page.cursor;
    } while (cursor);
    for (const serial of serials) expect(seen).toContain(serial);
    expect(new Set(seen).size).toBe(seen.length);
  });
});
