/**
 * `fleetgate factory import` against the IoT emulator and DynamoDB Local through the real SDK:
 * a batch with planted bad rows imports the rest and reports each bad row with its rule, leaving
 * nothing of them anywhere; re-running the import changes nothing (same table, no IoT write); a run
 * interrupted by IoT failures is finished by the next; two runs at once register every row once;
 * RegisterCertificateWithoutCA; and the imported devices land in the same state machine as every
 * other flow: first connect → ACTIVE (deviceLifecycle), a second certificate for the serial refused
 * by JITR, a copied key refused as KEY_REUSED.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeCertificateCommand,
  DescribeThingCommand,
  ListAttachedPoliciesCommand,
  ListThingPrincipalsCommand,
} from '@aws-sdk/client-iot';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCertificateAuthority, issueCertificate, type KeyedCertificate } from '../../../local/pki';
import { readBatch } from '../../../shared/factory/batch';
import {
  type FactoryImportReport,
  type FactoryRowReport,
  importFactoryBatch,
} from '../../../shared/factory/import';
import { IotRegistry } from '../../../shared/iot/iot-registry';
import { runReconciliation } from '../../../shared/reconcile/reconcile-inventory';
import type { ProvisioningFacts, ProvisioningStore } from '../../../shared/store/provisioning-store';
import { useTestTable } from '../../support/dynamo';
import { allowlist, deliver, deviceCertificate, type Rig, ruleOutput, startRig } from '../../support/jitr';
import { memorySink, reconcileDeps } from '../../support/reconcile';
import { tornStore } from '../../support/torn-read';

const table = useTestTable('factory');
let rig: Rig;
let dir: string;
let counter = 0;
beforeEach(async () => {
  rig = await startRig(table.store);
  dir = mkdtempSync(join(tmpdir(), 'fleetgate-factory-'));
});
afterEach(async () => {
  await rig?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Writes a manifest (serial,certificate) and the PEM files it names. */
function manifest(rows: Array<{ serial: string; pem: string; file?: string }>, name = 'batch.csv'): string {
  const certs = join(dir, 'certs');
  mkdirSync(certs, { recursive: true });
  const lines = ['serial,certificate'];
  for (const row of rows) {
    counter += 1;
    const file = row.file ?? `c${counter}.pem`;
    writeFileSync(join(certs, file), row.pem);
    lines.push(`${row.serial},certs/${file}`);
  }
  const path = join(dir, name);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

function run(
  path: string,
  options: { ca?: boolean; runId?: string; concurrency?: number; store?: ProvisioningStore } = {},
) {
  return importFactoryBatch(
    {
      batch: readBatch(path, { maxPemBytes: rig.config.maxCertificatePemBytes }),
      ...(options.ca === false ? {} : { caCertificatePem: rig.ca.certificatePem }),
      batchName: 'B-FACTORY',
      productLine: 'meter',
      runId: options.runId ?? `run-${Math.random()}`,
      concurrency: options.concurrency ?? 4,
      maxTps: 200,
    },
    {
      store: options.store ?? table.store,
      iot: new IotRegistry(rig.iot),
      config: rig.config,
      newId: () => `h-${Math.random().toString(36).slice(2)}`,
    },
  );
}

const bySerial = (report: FactoryImportReport) =>
  Object.fromEntries(report.rows.map((row) => [row.serial ?? row.source, row]));
const statuses = (report: FactoryImportReport) =>
  report.rows.map(
    (row: FactoryRowReport) =>
      `${row.serial ?? row.source}:${row.status}${row.reason ? `:${row.reason}` : ''}`,
  );

async function thingOf(certificateId: string): Promise<string[]> {
  const described = await rig.iot.send(new DescribeCertificateCommand({ certificateId }));
  return [described.certificateDescription?.status ?? ''];
}

describe('factory import: a batch with planted bad rows', () => {
  it('imports the good rows, reports each bad row with its rule and leaves nothing of them; a re-run changes nothing', async () => {
    // Prepare: 4 good rows and one of each bad kind
    const good = await Promise.all(
      ['FG-0001', 'FG-0002', 'FG-0003', 'FG-0004'].map((s) => deviceCertificate(rig.ca, s)),
    );
    const otherCa = await createCertificateAuthority({ subject: { commonName: 'Rogue CA' } });
    const wrongCa = await deviceCertificate(otherCa, 'FG-BAD-CA');
    const expired = await deviceCertificate(rig.ca, 'FG-BAD-EXP', {
      notBefore: new Date(Date.now() - 400 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    const mismatch = await deviceCertificate(rig.ca, 'FG-BAD-CN');
    const reusedKey = await issueCertificate(rig.ca, {
      publicKey: (good[0] as KeyedCertificate).keys.publicKey,
      subject: { commonName: 'FG-BAD-KEY' },
    });
    const path = manifest([
      ...good.map((certificate, i) => ({ serial: `FG-000${i + 1}`, pem: certificate.certificatePem })),
      { serial: 'FG-BAD-CA', pem: wrongCa.certificatePem },
      { serial: 'FG-BAD-EXP', pem: expired.certificatePem },
      { serial: 'FG-BAD-MANIFEST', pem: mismatch.certificatePem },
      { serial: 'FG-BAD-KEY', pem: reusedKey.certificatePem },
      { serial: 'FG-BAD-PEM', pem: '-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n' },
      { serial: 'FG-0001', pem: good[1]?.certificatePem ?? '' },
    ]);

    // Act
    const first = await run(path);

    // Assess: the per-row report
    expect(statuses(first)).toEqual([
      'FG-0001:registered',
      'FG-0002:registered',
      'FG-0003:registered',
      'FG-0004:registered',
      'FG-BAD-CA:rejected:WRONG_CA',
      'FG-BAD-EXP:rejected:CERTIFICATE_EXPIRED',
      'FG-BAD-MANIFEST:rejected:SERIAL_MISMATCH',
      'FG-BAD-KEY:rejected:KEY_REUSED',
      'FG-BAD-PEM:rejected:INVALID_CERTIFICATE',
      'FG-0001:rejected:DUPLICATE_CERTIFICATE',
    ]);
    expect(first.counts).toMatchObject({ registered: 4, rejected: 6, failed: 0 });
    expect(bySerial(first)['FG-BAD-MANIFEST']?.detail).toContain('FG-BAD-CN');
    expect(JSON.stringify(first)).not.toContain('BEGIN CERTIFICATE');
    // The good rows: certificate ACTIVE in IoT, attached to its thing with the device policy
    for (const [i, certificate] of good.entries()) {
      const serial = `FG-000${i + 1}`;
      expect(await thingOf(certificate.certificateId)).toEqual(['ACTIVE']);
      const principals = await rig.iot.send(new ListThingPrincipalsCommand({ thingName: serial }));
      expect(principals.principals).toHaveLength(1);
      expect(principals.principals?.[0]).toContain(certificate.certificateId);
      const thing = await rig.iot.send(new DescribeThingCommand({ thingName: serial }));
      expect(thing.attributes).toMatchObject({ serial, batch: 'B-FACTORY', productLine: 'meter' });
      const policies = await rig.iot.send(
        new ListAttachedPoliciesCommand({ target: principals.principals?.[0] }),
      );
      expect(policies.policies?.map((p) => p.policyName)).toEqual([rig.config.devicePolicyName]);
      expect(await table.store.getDevice(serial)).toMatchObject({
        state: 'PROVISIONING',
        pendingCertificateId: certificate.certificateId,
        batch: 'B-FACTORY',
        thingName: serial,
      });
      expect(await table.store.getCertificate(certificate.certificateId)).toMatchObject({
        status: 'ACTIVE',
        source: 'FACTORY',
        serial,
      });
      const history = await table.store.history(serial);
      expect(history.map((entry) => entry.event)).toEqual(['CREATED', 'PROVISION']);
    }
    // The bad rows: nothing in the store, nothing in IoT
    for (const serial of [
      'FG-BAD-CA',
      'FG-BAD-EXP',
      'FG-BAD-MANIFEST',
      'FG-BAD-CN',
      'FG-BAD-KEY',
      'FG-BAD-PEM',
    ])
      expect(await table.store.getDevice(serial)).toBeUndefined();
    for (const certificate of [wrongCa, expired, mismatch]) {
      expect(await table.store.getCertificate(certificate.certificateId)).toBeUndefined();
      await expect(
        rig.iot.send(new DescribeCertificateCommand({ certificateId: certificate.certificateId })),
      ).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    }

    // Act again: the same batch
    const before = await table.dump();
    rig.emulator.clearCalls();
    const second = await run(path);

    // Assess: nothing changed, no IoT write
    expect(statuses(second)).toEqual(
      statuses(first).map((s) => s.replace(':registered', ':already-registered')),
    );
    expect(await table.dump()).toEqual(before);
    expect(new Set(rig.emulator.calls.map((call) => call.api))).toEqual(new Set(['DescribeCACertificate']));
  });

  it('takes a directory of PEM files (serial from the subject) and registers without a CA when told to', async () => {
    // Prepare
    const certificates = await Promise.all(['FG-DIR-1', 'FG-DIR-2'].map((s) => deviceCertificate(rig.ca, s)));
    const batchDir = join(dir, 'pems');
    mkdirSync(batchDir);
    for (const [i, certificate] of certificates.entries())
      writeFileSync(join(batchDir, `d${i}.pem`), certificate.certificatePem);
    writeFileSync(join(batchDir, 'README.txt'), 'not a certificate');

    // Act
    const report = await run(batchDir, { ca: false });

    // Assess
    expect(report.mode).toBe('without-ca');
    expect(statuses(report)).toEqual(['FG-DIR-1:registered', 'FG-DIR-2:registered']);
    const described = await rig.iot.send(
      new DescribeCertificateCommand({ certificateId: certificates[0]?.certificateId }),
    );
    expect(described.certificateDescription).toMatchObject({ status: 'ACTIVE', certificateMode: 'SNI_ONLY' });
  });
});

describe('factory import: resumable, race-safe', () => {
  it('a run stopped by IoT failures leaves resumable rows; the next run finishes them', async () => {
    // Prepare: AttachThingPrincipal fails every time (SDK retries off in the rig)
    const certificates = await Promise.all(['FG-RES-1', 'FG-RES-2'].map((s) => deviceCertificate(rig.ca, s)));
    const path = manifest(certificates.map((c, i) => ({ serial: `FG-RES-${i + 1}`, pem: c.certificatePem })));
    rig.emulator.setFaults({ errorRate: 1, apis: ['AttachThingPrincipal'] });

    // Act
    const failed = await run(path);
    rig.emulator.setFaults({});
    const resumed = await run(path);

    // Assess
    expect(failed.counts).toMatchObject({ failed: 2, registered: 0 });
    expect(failed.rows[0]?.reason).toMatch(/InternalFailureException|ServiceUnavailableException/);
    expect(resumed.rows.map((row) => [row.status, row.resumed])).toEqual([
      ['registered', true],
      ['registered', true],
    ]);
    expect(await table.store.getCertificate(certificates[0]?.certificateId ?? '')).toMatchObject({
      status: 'ACTIVE',
    });
    expect(await thingOf(certificates[1]?.certificateId ?? '')).toEqual(['ACTIVE']);
  });

  it('two runs of one batch at once register every row exactly once', async () => {
    // Prepare
    const serials = Array.from({ length: 8 }, (_, i) => `FG-RACE-${i}`);
    const certificates = await Promise.all(serials.map((s) => deviceCertificate(rig.ca, s)));
    const path = manifest(
      certificates.map((c, i) => ({ serial: serials[i] as string, pem: c.certificatePem })),
    );

    // Act
    const [a, b] = await Promise.all([run(path, { runId: 'run-a' }), run(path, { runId: 'run-b' })]);

    // Assess: each row registered by exactly one run, the other saw it done
    for (let i = 0; i < serials.length; i += 1) {
      const pair = [a.rows[i]?.status, b.rows[i]?.status].sort();
      expect(pair).toEqual(['already-registered', 'registered']);
    }
    const registers = rig.emulator.calls.filter((call) => call.api === 'RegisterCertificate');
    expect(registers.length).toBe(serials.length);
    for (const serial of serials) {
      const principals = await rig.iot.send(new ListThingPrincipalsCommand({ thingName: serial }));
      expect(principals.principals).toHaveLength(1);
    }
  });
});

/** The store with its next facts read torn as `tear` makes them (test/support/torn-read.ts). */
function tornOnce(tear: (facts: ProvisioningFacts) => ProvisioningFacts) {
  const torn = tornStore(table.store);
  torn.tearNext({ facts: tear });
  return torn;
}

describe('factory import: a torn read of a concurrent reservation', () => {
  it.each([
    [
      'the certificate record, and the device as before it (absent)',
      'FG-TORN-1',
      ({ device: _, ...rest }: ProvisioningFacts) => rest,
    ],
    [
      'the device bound to the certificate, and no certificate record yet',
      'FG-TORN-2',
      ({ certificate: _, ...rest }: ProvisioningFacts) => rest,
    ],
  ])('a row whose first read shows %s is read again, not rejected', async (_tear, serial, tear) => {
    // Prepare: run A has reserved and registered the row
    const certificate = await deviceCertificate(rig.ca, serial);
    const path = manifest([{ serial, pem: certificate.certificatePem }]);
    await run(path, { runId: 'run-a' });
    const registersBefore = rig.emulator.calls.filter((call) => call.api === 'RegisterCertificate').length;
    const { store, reads } = tornOnce(tear);

    // Act: run B's first read of the row is torn
    const report = await run(path, { runId: 'run-b', store });

    // Assess: B read the row twice and saw it done; nothing was registered again
    expect(statuses(report)).toEqual([`${serial}:already-registered`]);
    expect(reads.count).toBe(2);
    expect(rig.emulator.calls.filter((call) => call.api === 'RegisterCertificate')).toHaveLength(
      registersBefore,
    );
  });

  it('a rejection the store really holds is confirmed by the second read', async () => {
    // Prepare: FG-KEY-A owns a key; FG-KEY-B's certificate carries the same key
    const first = await deviceCertificate(rig.ca, 'FG-KEY-A');
    await run(manifest([{ serial: 'FG-KEY-A', pem: first.certificatePem }], 'a.csv'));
    const copied = await issueCertificate(rig.ca, {
      publicKey: (first as KeyedCertificate).keys.publicKey,
      subject: { commonName: 'FG-KEY-B' },
    });
    const { store, reads } = tornOnce((facts) => facts);

    // Act
    const report = await run(manifest([{ serial: 'FG-KEY-B', pem: copied.certificatePem }], 'b.csv'), {
      store,
    });

    // Assess
    expect(statuses(report)).toEqual(['FG-KEY-B:rejected:KEY_REUSED']);
    expect(reads.count).toBe(2);
  });
});

describe('factory import: the same state machine as every flow', () => {
  it('an imported device turns ACTIVE on its first connect; a second certificate for its serial (on the shelf and after) and a copied key are refused', async () => {
    // Prepare
    const certificate = await deviceCertificate(rig.ca, 'FG-LIFE-1');
    await run(manifest([{ serial: 'FG-LIFE-1', pem: certificate.certificatePem }]));

    // Act: while the device is on the shelf, another certificate of the CA for its serial connects (JITR)
    const early = await deviceCertificate(rig.ca, 'FG-LIFE-1');
    await rig.emulator.connect({ certificatePem: early.certificatePem, clientId: 'FG-LIFE-1-early' });
    await deliver(rig.registration, rig.take('registration').map(ruleOutput));
    expect(rig.registrationOutcomes.map((o) => o.reason)).toContain('PROVISIONING_IN_PROGRESS');
    expect(await table.store.getDevice('FG-LIFE-1')).toMatchObject({
      state: 'PROVISIONING',
      pendingCertificateId: certificate.certificateId,
    });
    rig.take('lifecycle');

    // Act: the device connects with its factory certificate
    await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: 'FG-LIFE-1' });
    await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput));

    // Assess
    expect(await table.store.getDevice('FG-LIFE-1')).toMatchObject({
      state: 'ACTIVE',
      certificateId: certificate.certificateId,
    });

    // Act: another certificate of the CA for the serial arrives through JITR
    const rogue = await deviceCertificate(rig.ca, 'FG-LIFE-1');
    await rig.emulator.connect({ certificatePem: rogue.certificatePem, clientId: 'FG-LIFE-1-rogue' });
    await deliver(rig.registration, rig.take('registration').map(ruleOutput));
    // … and a later batch carries the device's key under a new certificate for another serial
    const copied = await issueCertificate(rig.ca, {
      publicKey: certificate.keys.publicKey,
      subject: { commonName: 'FG-LIFE-2' },
    });
    const later = await run(manifest([{ serial: 'FG-LIFE-2', pem: copied.certificatePem }], 'later.csv'));

    // Assess
    expect(rig.registrationOutcomes.map((o) => o.reason)).toContain('SERIAL_BOUND_TO_OTHER_CERTIFICATE');
    expect(await table.store.getDevice('FG-LIFE-1')).toMatchObject({
      certificateId: certificate.certificateId,
    });
    expect(statuses(later)).toEqual(['FG-LIFE-2:rejected:KEY_REUSED']);
    expect(later.rows[0]?.detail).toContain('FG-LIFE-1');
  });

  it('binds an allowlisted serial and refuses a quarantined one', async () => {
    // Prepare
    await allowlist(table.store, ['FG-ALLOW-1', 'FG-QUAR-1']);
    const quarantined = await table.store.getDevice('FG-QUAR-1');
    if (!quarantined) throw new Error('not allowlisted');
    await table.store.transition({
      serial: 'FG-QUAR-1',
      event: 'QUARANTINE',
      device: quarantined,
      transitionKey: 'q-1',
      now: new Date().toISOString(),
      history: { id: 'q-1', actor: 'test' },
      set: { previousState: 'ALLOWLISTED' },
    });
    const certificates = await Promise.all(
      ['FG-ALLOW-1', 'FG-QUAR-1'].map((s) => deviceCertificate(rig.ca, s)),
    );
    const path = manifest(
      certificates.map((c, i) => ({
        serial: ['FG-ALLOW-1', 'FG-QUAR-1'][i] as string,
        pem: c.certificatePem,
      })),
    );

    // Act
    const report = await run(path);

    // Assess
    expect(statuses(report)).toEqual(['FG-ALLOW-1:registered', 'FG-QUAR-1:rejected:DEVICE_QUARANTINED']);
    expect(await table.store.getDevice('FG-ALLOW-1')).toMatchObject({
      state: 'PROVISIONING',
      productLine: 'sensor',
      batch: 'B-1',
    });
    expect(await table.store.getDevice('FG-QUAR-1')).toMatchObject({ state: 'QUARANTINED' });
  });
});

describe('factory import: reconciliation', () => {
  it('reports the batch devices registered but never connected after N days, not the ones that connected', async () => {
    // Prepare: two devices imported, one connects
    const certificates = await Promise.all(['FG-REC-1', 'FG-REC-2'].map((s) => deviceCertificate(rig.ca, s)));
    await run(manifest(certificates.map((c, i) => ({ serial: `FG-REC-${i + 1}`, pem: c.certificatePem }))));
    await rig.emulator.connect({
      certificatePem: certificates[0]?.certificatePem ?? '',
      clientId: 'FG-REC-1',
    });
    await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput));
    const later = new Date(Date.now() + 31 * 86_400_000).toISOString();

    // Act: a run today and one 31 days later
    const today = await runReconciliation(
      { runId: 'rec-today', now: new Date().toISOString() },
      reconcileDeps(table, rig, memorySink(), { neverConnectedDays: 30 }),
    );
    const month = await runReconciliation(
      { runId: 'rec-month', now: later },
      reconcileDeps(table, rig, memorySink(), { neverConnectedDays: 30 }),
    );

    // Assess
    if (today.status !== 'complete' || month.status !== 'complete') throw new Error('run incomplete');
    const never = (outcome: typeof month) =>
      (outcome.status === 'complete' ? (outcome.report?.drift ?? []) : [])
        .filter((drift) => drift.kind === 'FACTORY_NEVER_CONNECTED' && drift.serial?.startsWith('FG-REC-'))
        .map((drift) => [drift.serial, drift.certificateId]);
    expect(never(today)).toEqual([]);
    expect(never(month)).toEqual([['FG-REC-2', certificates[1]?.certificateId]]);
  });
});
