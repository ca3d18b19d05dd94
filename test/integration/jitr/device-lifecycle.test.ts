/**
 * deviceLifecycle against the IoT emulator and DynamoDB Local: verification, ordering, the JITP
 * follow-up and clone detection. Presence and registry events are the ones the emulator publishes,
 * delivered as AWS-shaped SQS events (duplicated and shuffled where the test says so).
 */
import { RegisterCertificateCommand, UpdateCACertificateCommand } from '@aws-sdk/client-iot';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestTable, type TestTable } from '../../support/dynamo';
import { allowlist, deliver, deviceCertificate, type Rig, ruleOutput, startRig } from '../../support/jitr';

let table: TestTable;
let rig: Rig;

beforeAll(async () => {
  table = await createTestTable('lifecycle');
});
afterAll(async () => {
  await table.drop();
});
beforeEach(async () => {
  rig = await startRig(table.store);
});
afterEach(async () => {
  await rig?.stop();
});

/** Allowlists, registers through JITR and verifies a device; returns its certificate. */
async function activeDevice(serial: string) {
  await allowlist(table.store, [serial]);
  const certificate = await deviceCertificate(rig.ca, serial);
  await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: serial });
  await deliver(rig.registration, rig.take('registration').map(ruleOutput));
  await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: serial });
  await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput));
  expect(await table.store.getDevice(serial)).toMatchObject({ state: 'ACTIVE' });
  rig.quarantine.requests.length = 0;
  return certificate;
}

describe('deviceLifecycle: verification and ordering', () => {
  it('verifies a hook-provisioned (PROVISIONING) device on its first connect and marks its certificate ACTIVE', async () => {
    // Prepare: a binding as the pre-provisioning hook writes it
    await allowlist(table.store, ['SN-HOOK-1']);
    const certificate = await deviceCertificate(rig.ca, 'SN-HOOK-1');
    const { RegisterCertificateCommand: Register } = await import('@aws-sdk/client-iot');
    await rig.iot.send(
      new Register({
        certificatePem: certificate.certificatePem,
        caCertificatePem: rig.ca.certificatePem,
        status: 'ACTIVE',
      }),
    );
    const device = await table.store.getDevice('SN-HOOK-1');
    if (!device) throw new Error('not allowlisted');
    const now = new Date().toISOString();
    await table.store.bindCertificate({
      serial: 'SN-HOOK-1',
      event: 'PROVISION',
      device,
      certificate: {
        certificateId: certificate.certificateId,
        kind: 'DEVICE',
        status: 'PENDING',
        source: 'FLEET_PROVISIONING',
        serial: 'SN-HOOK-1',
        issuer: 'CN=Acme Device CA',
        notBefore: now,
        notAfter: new Date(Date.now() + 86_400_000).toISOString(),
        createdAt: now,
        updatedAt: now,
      },
      publicKeyHash: 'f'.repeat(64),
      now,
      history: { id: 'hook', actor: 'preProvisionHook' },
      set: { thingName: 'SN-HOOK-1', provisioningDeadline: new Date(Date.now() + 3_600_000).toISOString() },
    });
    // Act
    await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: 'SN-HOOK-1' });
    await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput), { times: 3, shuffle: true });
    // Assess
    expect(await table.store.getDevice('SN-HOOK-1')).toMatchObject({
      state: 'ACTIVE',
      certificateId: certificate.certificateId,
    });
    expect(await table.store.getCertificate(certificate.certificateId)).toMatchObject({ status: 'ACTIVE' });
    const history = await table.store.history('SN-HOOK-1');
    expect(history.filter((entry) => entry.event === 'ACTIVATE')).toHaveLength(1);
  });

  it('never lets a late disconnected undo a newer connected', async () => {
    // Prepare
    const certificate = await activeDevice('SN-ORDER-1');
    await rig.emulator.disconnect({ clientId: 'SN-ORDER-1' });
    await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: 'SN-ORDER-1' });
    const [disconnected, connected] = rig.take('lifecycle');
    if (!disconnected || !connected) throw new Error('missing presence events');
    // Act: the newer connected first, the older disconnected late
    await deliver(rig.lifecycle, [ruleOutput(connected)]);
    await deliver(rig.lifecycle, [ruleOutput(disconnected)]);
    // Assess
    const { RegistrationStore } = await import('../../../shared/store/registration-store');
    const presence = await new RegistrationStore(table.store).presenceOf('SN-ORDER-1');
    expect(presence).toMatchObject({
      connected: true,
      sessionIdentifier: (connected.json as { sessionIdentifier: string }).sessionIdentifier,
    });
    expect(rig.quarantine.requests).toEqual([]);
  });
});

describe('deviceLifecycle: clone detection', () => {
  it('one certificate from two client ids at overlapping times → one CLONE_CONCURRENT_SESSIONS request', async () => {
    // Prepare
    const certificate = await activeDevice('SN-CLONE-A');
    await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: 'rogue-client-1' });
    // Act
    await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput), { times: 3, shuffle: true });
    // Assess
    expect(rig.quarantine.requests).toEqual([
      expect.objectContaining({
        serial: 'SN-CLONE-A',
        certificateId: certificate.certificateId,
        reason: 'CLONE_CONCURRENT_SESSIONS',
        evidence: expect.objectContaining({
          sessions: [
            expect.objectContaining({ clientId: 'SN-CLONE-A' }),
            expect.objectContaining({ clientId: 'rogue-client-1' }),
          ],
        }),
      }),
    ]);
  });

  it('a serial connecting with a certificate that is not its current one → one CLONE_CERTIFICATE_MISMATCH request', async () => {
    // Prepare: a second certificate for the serial, activated outside fleetgate
    await activeDevice('SN-CLONE-B');
    const other = await deviceCertificate(rig.ca, 'SN-CLONE-B');
    await rig.iot.send(
      new RegisterCertificateCommand({
        certificatePem: other.certificatePem,
        caCertificatePem: rig.ca.certificatePem,
        status: 'ACTIVE',
      }),
    );
    await rig.emulator.disconnect({ clientId: 'SN-CLONE-B' });
    await rig.emulator.connect({ certificatePem: other.certificatePem, clientId: 'SN-CLONE-B' });
    await rig.emulator.disconnect({ clientId: 'SN-CLONE-B' });
    await rig.emulator.connect({ certificatePem: other.certificatePem, clientId: 'SN-CLONE-B' });
    // Act
    await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput), { times: 3, shuffle: true });
    // Assess
    expect(rig.quarantine.requests).toEqual([
      expect.objectContaining({
        serial: 'SN-CLONE-B',
        certificateId: other.certificateId,
        reason: 'CLONE_CERTIFICATE_MISMATCH',
        evidence: expect.objectContaining({ clientId: 'SN-CLONE-B', deviceState: 'ACTIVE' }),
      }),
    ]);
  });

  it('repeated DUPLICATE_CLIENTID disconnects within the window → one CLONE_DUPLICATE_CLIENTID request', async () => {
    // Prepare: two boxes with the same identity kick each other off, five times
    const certificate = await activeDevice('SN-CLONE-C');
    for (let i = 0; i < 5; i += 1) {
      await rig.emulator.connect({
        certificatePem: certificate.certificatePem,
        clientId: 'SN-CLONE-C',
        ipAddress: `198.51.100.${i % 2}`,
      });
    }
    // Act
    await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput), { times: 2, shuffle: true });
    // Assess
    expect(rig.quarantine.requests).toEqual([
      expect.objectContaining({
        serial: 'SN-CLONE-C',
        reason: 'CLONE_DUPLICATE_CLIENTID',
        evidence: expect.objectContaining({
          clientId: 'SN-CLONE-C',
          threshold: 3,
          disconnects: expect.any(Array),
        }),
      }),
    ]);
  });

  it('two disconnects below the threshold are not a storm', async () => {
    const certificate = await activeDevice('SN-CLONE-D');
    for (let i = 0; i < 2; i += 1)
      await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: 'SN-CLONE-D' });
    await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput), { times: 2, shuffle: true });
    expect(rig.quarantine.requests).toEqual([]);
  });
});

describe('deviceLifecycle: JITP follow-up', () => {
  const template = JSON.stringify({
    Parameters: {
      'AWS::IoT::Certificate::CommonName': { Type: 'String' },
      'AWS::IoT::Certificate::Id': { Type: 'String' },
    },
    Resources: {
      thing: {
        Type: 'AWS::IoT::Thing',
        Properties: {
          ThingName: { Ref: 'AWS::IoT::Certificate::CommonName' },
          AttributePayload: { serial: { Ref: 'AWS::IoT::Certificate::CommonName' } },
        },
      },
      certificate: {
        Type: 'AWS::IoT::Certificate',
        Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' }, Status: 'ACTIVE' },
      },
    },
  });

  beforeEach(async () => {
    await rig.iot.send(
      new UpdateCACertificateCommand({
        certificateId: rig.caCertificateId,
        registrationConfig: { templateBody: template, roleArn: 'arn:aws:iam::123456789012:role/jitp' },
      }),
    );
  });

  it('records an allowlisted JITP device and verifies it on connect; quarantines an unknown serial', async () => {
    // Prepare
    await allowlist(table.store, ['SN-JITP-1']);
    const known = await deviceCertificate(rig.ca, 'SN-JITP-1');
    const unknown = await deviceCertificate(rig.ca, 'SN-JITP-X');
    await rig.emulator.connect({ certificatePem: known.certificatePem, clientId: 'SN-JITP-1' });
    await rig.emulator.connect({ certificatePem: unknown.certificatePem, clientId: 'SN-JITP-X' });
    // Act
    await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput), { times: 2, shuffle: true });
    await rig.emulator.connect({ certificatePem: known.certificatePem, clientId: 'SN-JITP-1' });
    await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput));
    // Assess
    expect(await table.store.getDevice('SN-JITP-1')).toMatchObject({
      state: 'ACTIVE',
      certificateId: known.certificateId,
      thingName: 'SN-JITP-1',
    });
    expect(await table.store.getCertificate(known.certificateId)).toMatchObject({
      source: 'JITP',
      serial: 'SN-JITP-1',
    });
    expect(rig.quarantine.requests).toEqual([
      expect.objectContaining({
        certificateId: unknown.certificateId,
        reason: 'SERIAL_NOT_ALLOWLISTED',
        evidence: expect.objectContaining({ thingName: 'SN-JITP-X' }),
      }),
    ]);
  });
  it('verifies every JITP device when its connected and thing events race, duplicated and shuffled', async () => {
    // Prepare: ten devices provisioned by JITP and connected with their certificates
    const serials = Array.from({ length: 10 }, (_, i) => `SN-JITP-RACE-${i}`);
    await allowlist(table.store, serials);
    for (const serial of serials) {
      const certificate = await deviceCertificate(rig.ca, serial);
      const first = await rig.emulator.connect({
        certificatePem: certificate.certificatePem,
        clientId: serial,
      });
      expect(first).toMatchObject({ accepted: false, reason: 'JITP_PROVISIONED' });
      expect(
        await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: serial }),
      ).toMatchObject({
        accepted: true,
      });
    }
    // Act: thing CREATED and presence connected events of every device delivered together
    await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput), {
      times: 3,
      shuffle: true,
      batchSize: 2,
      concurrency: 16,
    });
    // Assess
    for (const serial of serials) {
      expect(await table.store.getDevice(serial), serial).toMatchObject({ state: 'ACTIVE' });
    }
    expect(rig.quarantine.requests).toEqual([]);
  });

  it('a JITP certificate of a quarantined device is sent to quarantine when it connects (no thing event comes)', async () => {
    // Prepare: a JITP device, verified, then quarantined by an operator
    await allowlist(table.store, ['SN-JITP-Q']);
    const original = await deviceCertificate(rig.ca, 'SN-JITP-Q');
    await rig.emulator.connect({ certificatePem: original.certificatePem, clientId: 'SN-JITP-Q' });
    await rig.emulator.connect({ certificatePem: original.certificatePem, clientId: 'SN-JITP-Q' });
    await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput));
    const device = await table.store.getDevice('SN-JITP-Q');
    expect(device).toMatchObject({ state: 'ACTIVE' });
    if (!device) throw new Error('device missing');
    const now = new Date().toISOString();
    await table.store.transition({
      serial: 'SN-JITP-Q',
      event: 'QUARANTINE',
      device,
      transitionKey: 'QUARANTINE:test',
      now,
      history: { id: 'q', actor: 'test' },
    });
    // Act: another key under the same serial, signed by the JITP CA, takes the thing over
    const takeover = await deviceCertificate(rig.ca, 'SN-JITP-Q');
    await rig.emulator.connect({ certificatePem: takeover.certificatePem, clientId: 'SN-JITP-Q' });
    await rig.emulator.connect({ certificatePem: takeover.certificatePem, clientId: 'SN-JITP-Q' });
    await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput), { times: 2, shuffle: true });
    // Assess
    expect(rig.quarantine.requests).toEqual([
      expect.objectContaining({
        serial: 'SN-JITP-Q',
        certificateId: takeover.certificateId,
        reason: 'CLONE_CERTIFICATE_MISMATCH',
        evidence: expect.objectContaining({ deviceState: 'QUARANTINED' }),
      }),
    ]);
  });
  it('a clone connecting while the original is still PROVISIONING is sent to quarantine', async () => {
    // Prepare: the original provisioned by JITP and recorded (PROVISIONING), its connect not yet handled
    await allowlist(table.store, ['SN-JITP-EARLY']);
    const original = await deviceCertificate(rig.ca, 'SN-JITP-EARLY');
    await rig.emulator.connect({ certificatePem: original.certificatePem, clientId: 'SN-JITP-EARLY' });
    await rig.emulator.connect({ certificatePem: original.certificatePem, clientId: 'SN-JITP-EARLY' });
    const first = rig.take('lifecycle');
    await deliver(
      rig.lifecycle,
      first.filter((message) => message.topic.startsWith('$aws/events/thing/')).map(ruleOutput),
    );
    expect(await table.store.getDevice('SN-JITP-EARLY')).toMatchObject({ state: 'PROVISIONING' });
    // Act: a clone with its own certificate connects on the same client id, then the original's connect arrives
    const clone = await deviceCertificate(rig.ca, 'SN-JITP-EARLY');
    await rig.emulator.connect({ certificatePem: clone.certificatePem, clientId: 'SN-JITP-EARLY' });
    await rig.emulator.connect({ certificatePem: clone.certificatePem, clientId: 'SN-JITP-EARLY' });
    await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput), { times: 2, shuffle: true });
    // Assess
    expect(rig.quarantine.requests).toEqual([
      expect.objectContaining({
        serial: 'SN-JITP-EARLY',
        certificateId: clone.certificateId,
        reason: 'CLONE_CERTIFICATE_MISMATCH',
        evidence: expect.objectContaining({ deviceState: 'PROVISIONING' }),
      }),
    ]);
  });

  it('a new JITP thing with two certificates (a clone came first) sends the device and both certificates to quarantine', async () => {
    // Prepare: original and clone both connect before any thing event is handled
    await allowlist(table.store, ['SN-JITP-TWO']);
    const original = await deviceCertificate(rig.ca, 'SN-JITP-TWO');
    const clone = await deviceCertificate(rig.ca, 'SN-JITP-TWO');
    for (const certificate of [original, clone]) {
      await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: 'SN-JITP-TWO' });
    }
    // Act: only the thing events (the connects come later)
    await deliver(
      rig.lifecycle,
      rig
        .take('lifecycle')
        .filter((message) => message.topic.startsWith('$aws/events/thing/'))
        .map(ruleOutput),
      { times: 2, shuffle: true },
    );
    // Assess
    const requests = rig.quarantine.requests;
    expect(new Set(requests.map((request) => request.certificateId))).toEqual(
      new Set([original.certificateId, clone.certificateId]),
    );
    expect(requests).toHaveLength(2);
    for (const request of requests) {
      expect(request).toMatchObject({ serial: 'SN-JITP-TWO', reason: 'JITP_MULTIPLE_CERTIFICATES' });
    }
  });
});
