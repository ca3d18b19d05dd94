/**
 * deviceLifecycle against the IoT emulator and DynamoDB Local: verification, ordering, the JITP
 * follow-up and clone detection. Presence and registry events are the ones the emulator publishes,
 * delivered as AWS-shaped SQS events (duplicated and shuffled where the test says so).
 */
import {
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  DescribeCertificateCommand,
  RegisterCertificateCommand,
  UpdateCACertificateCommand,
} from '@aws-sdk/client-iot';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { issueCertificate } from '../../../local/pki';
import { parseCertificatePem } from '../../../shared/certificates';
import { anchorCertificateRecord, deviceCertificateRecord } from '../../../shared/store/records';
import { useTestTable } from '../../support/dynamo';
import { allowlist, deliver, deviceCertificate, type Rig, ruleOutput, startRig } from '../../support/jitr';
import { tornStore } from '../../support/torn-read';

const table = useTestTable('lifecycle');
let rig: Rig;
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

  it('a certificate the store does not know, not attached to the thing, on a device client id: recorded for an operator, the device untouched', async () => {
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
    // Assess: only a permissive policy lets such a certificate in (the device policy requires the
    // thing to be attached); it may be an unrecorded claim certificate, so nothing is deactivated.
    expect(rig.quarantine.requests).toEqual([]);
    expect(await table.store.getDevice('SN-CLONE-B')).toMatchObject({ state: 'ACTIVE' });
    const suspicious = (await table.store.history('SN-CLONE-B')).filter(
      (entry) => entry.event === 'SUSPICIOUS_CONNECTION',
    );
    expect(suspicious).toHaveLength(2);
    expect(suspicious[0]).toMatchObject({
      reason: 'FOREIGN_CERTIFICATE_AS_DEVICE',
      detail: expect.objectContaining({
        certificateId: other.certificateId,
        principalKind: 'UNKNOWN',
        action: 'recorded-for-an-operator',
        deviceState: 'ACTIVE',
      }),
    });
  });

  it('a foreign certificate attached to the device thing: a certificate-scoped request (that certificate only), the device untouched', async () => {
    // Prepare: a second certificate for the serial, registered and attached to the thing outside fleetgate
    await activeDevice('SN-CLONE-B2');
    const other = await deviceCertificate(rig.ca, 'SN-CLONE-B2');
    const registered = await rig.iot.send(
      new RegisterCertificateCommand({
        certificatePem: other.certificatePem,
        caCertificatePem: rig.ca.certificatePem,
        status: 'ACTIVE',
      }),
    );
    await rig.iot.send(
      new AttachThingPrincipalCommand({ thingName: 'SN-CLONE-B2', principal: registered.certificateArn }),
    );
    await rig.emulator.connect({ certificatePem: other.certificatePem, clientId: 'SN-CLONE-B2' });
    // Act
    await deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput), { times: 3, shuffle: true });
    // Assess
    expect(rig.quarantine.requests).toEqual([
      expect.objectContaining({
        scope: 'certificate',
        certificateId: other.certificateId,
        reason: 'CLONE_CERTIFICATE_MISMATCH',
        evidence: expect.objectContaining({ claimedSerial: 'SN-CLONE-B2', deviceState: 'ACTIVE' }),
      }),
    ]);
    expect(rig.quarantine.requests[0]?.serial).toBeUndefined();
    expect(await table.store.getDevice('SN-CLONE-B2')).toMatchObject({ state: 'ACTIVE' });
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

/**
 * Issue 15: evidence from a connection whose principal is not the device's own certificate (a claim
 * certificate above all: shared by a product line, extractable from any device) never counts toward
 * the device's clone detection, never quarantines it and never deactivates a claim certificate.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html (versionNumber, DUPLICATE_CLIENTID)
 */
describe('deviceLifecycle: presence from a principal that is not the device own certificate', () => {
  /** An ACTIVE claim certificate in IoT, recorded in the store as fleetgate records claim certificates. */
  async function claimCertificate() {
    const out = await rig.iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    const certificatePem = out.certificatePem ?? '';
    await table.store.putCertificateIfAbsent(
      anchorCertificateRecord(parseCertificatePem(certificatePem), {
        kind: 'CLAIM',
        now: new Date().toISOString(),
      }),
    );
    return { certificatePem, certificateId: out.certificateId ?? '' };
  }

  async function iotStatus(certificateId: string) {
    return (await rig.iot.send(new DescribeCertificateCommand({ certificateId }))).certificateDescription
      ?.status;
  }

  it('a claim holder taking an ACTIVE device client id four times (the issue 15 storm): no quarantine, nothing deactivated, each connection recorded', async () => {
    // Prepare: the device is connected; the claim certificate takes its client id, the device takes
    // it back, four times (what a permissive claim policy allowed): DUPLICATE_CLIENTID both ways.
    const certificate = await activeDevice('SN-HOSTILE-1');
    const claim = await claimCertificate();
    for (let round = 0; round < 4; round += 1) {
      await rig.emulator.connect({ certificatePem: claim.certificatePem, clientId: 'SN-HOSTILE-1' });
      await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: 'SN-HOSTILE-1' });
    }
    const events = rig.take('lifecycle');
    const presence = events.map(
      (message) => message.json as { disconnectReason?: string; principalIdentifier: string },
    );
    expect(presence.filter((event) => event.disconnectReason === 'DUPLICATE_CLIENTID').length).toBe(8);
    // Act: delivered twice each, shuffled (AWS delivers at least once, in any order)
    await deliver(rig.lifecycle, events.map(ruleOutput), { times: 2, shuffle: true });
    // Assess
    expect(rig.quarantine.requests).toEqual([]);
    expect(await table.store.getDevice('SN-HOSTILE-1')).toMatchObject({
      state: 'ACTIVE',
      certificateId: certificate.certificateId,
    });
    expect(await iotStatus(certificate.certificateId)).toBe('ACTIVE');
    expect(await iotStatus(claim.certificateId)).toBe('ACTIVE');
    const suspicious = (await table.store.history('SN-HOSTILE-1')).filter(
      (entry) => entry.event === 'SUSPICIOUS_CONNECTION',
    );
    expect(suspicious).toHaveLength(4);
    for (const entry of suspicious) {
      expect(entry).toMatchObject({
        reason: 'CLAIM_CERTIFICATE_AS_DEVICE',
        detail: expect.objectContaining({
          certificateId: claim.certificateId,
          principalKind: 'CLAIM',
          action: 'recorded-for-an-operator',
        }),
      });
    }
  });

  it('crafted DUPLICATE_CLIENTID disconnects and connects whose principal is the claim certificate, in any order, never name the device or the claim certificate', async () => {
    // Prepare: crafted events on the device client id, every one with the claim certificate as principal
    await activeDevice('SN-HOSTILE-2');
    const claim = await claimCertificate();
    const base = Date.now();
    const crafted = Array.from({ length: 6 }, (_, i) => [
      {
        clientId: 'SN-HOSTILE-2',
        timestamp: base + i * 1000,
        eventType: 'connected',
        sessionIdentifier: `00000000-0000-4000-8000-00000000000${i}`,
        principalIdentifier: claim.certificateId,
        ipAddress: '203.0.113.7',
        versionNumber: 100 + i,
        presenceTopicType: 'connected',
      },
      {
        clientId: 'SN-HOSTILE-2',
        timestamp: base + i * 1000 + 500,
        eventType: 'disconnected',
        sessionIdentifier: `00000000-0000-4000-8000-00000000000${i}`,
        principalIdentifier: claim.certificateId,
        clientInitiatedDisconnect: false,
        disconnectReason: 'DUPLICATE_CLIENTID',
        versionNumber: 100 + i,
        presenceTopicType: 'disconnected',
      },
    ]).flat();
    // Act
    await deliver(
      rig.lifecycle,
      crafted.map((event) => JSON.stringify(event)),
      { times: 3, shuffle: true },
    );
    // Assess
    expect(rig.quarantine.requests).toEqual([]);
    expect(await table.store.getDevice('SN-HOSTILE-2')).toMatchObject({ state: 'ACTIVE' });
    expect(await iotStatus(claim.certificateId)).toBe('ACTIVE');
    const suspicious = (await table.store.history('SN-HOSTILE-2')).filter(
      (entry) => entry.event === 'SUSPICIOUS_CONNECTION',
    );
    expect(suspicious).toHaveLength(6);
  });

  it('the device own certificate kicked off by its own certificate three times is still a CLONE_DUPLICATE_CLIENTID storm, whichever event comes last', async () => {
    // Prepare
    const certificate = await activeDevice('SN-HOSTILE-3');
    for (let i = 0; i < 4; i += 1) {
      await rig.emulator.connect({ certificatePem: certificate.certificatePem, clientId: 'SN-HOSTILE-3' });
    }
    const events = rig.take('lifecycle');
    const connects = events.filter((message) => message.topic.includes('/connected/'));
    const disconnects = events.filter((message) => message.topic.includes('/disconnected/'));
    // Act: every disconnect first, the takers' connects last
    await deliver(rig.lifecycle, disconnects.map(ruleOutput));
    expect(rig.quarantine.requests).toEqual([]);
    await deliver(rig.lifecycle, connects.map(ruleOutput));
    // Assess
    expect(rig.quarantine.requests).toEqual([
      expect.objectContaining({
        serial: 'SN-HOSTILE-3',
        certificateId: certificate.certificateId,
        reason: 'CLONE_DUPLICATE_CLIENTID',
      }),
    ]);
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
        scope: 'certificate',
        certificateId: takeover.certificateId,
        reason: 'CLONE_CERTIFICATE_MISMATCH',
        evidence: expect.objectContaining({ claimedSerial: 'SN-JITP-Q', deviceState: 'QUARANTINED' }),
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
        scope: 'certificate',
        certificateId: clone.certificateId,
        reason: 'CLONE_CERTIFICATE_MISMATCH',
        evidence: expect.objectContaining({ claimedSerial: 'SN-JITP-EARLY', deviceState: 'PROVISIONING' }),
      }),
    ]);
    // The original is not touched (its own connect is still to come).
    expect(await table.store.getDevice('SN-JITP-EARLY')).toMatchObject({
      state: 'PROVISIONING',
      pendingCertificateId: original.certificateId,
    });
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

  it('a duplicate thing event that meets a same-key reprovisioning half-committed sends nothing to quarantine', async () => {
    // Prepare: SN-JITP-TORN ACTIVE on thing fg-SN-JITP-TORN; its key under a new certificate through
    // JITP (thing SN-JITP-TORN), whose CREATED event delivery A records (same-key policy)
    const torn = tornStore(table.store);
    await rig.stop();
    rig = await startRig(torn.store, { env: { REPROVISIONING_POLICY: 'same-key' } });
    await rig.iot.send(
      new UpdateCACertificateCommand({
        certificateId: rig.caCertificateId,
        registrationConfig: { templateBody: template, roleArn: 'arn:aws:iam::123456789012:role/jitp' },
      }),
    );
    await allowlist(table.store, ['SN-JITP-TORN']);
    const original = await deviceCertificate(rig.ca, 'SN-JITP-TORN');
    const parsed = parseCertificatePem(original.certificatePem);
    const allowlisted = await table.store.getDevice('SN-JITP-TORN');
    if (!allowlisted) throw new Error('not allowlisted');
    const now = new Date().toISOString();
    const bound = await table.store.bindCertificate({
      serial: 'SN-JITP-TORN',
      event: 'PROVISION',
      device: allowlisted,
      certificate: deviceCertificateRecord(parsed, {
        status: 'ACTIVE',
        source: 'JITR',
        serial: 'SN-JITP-TORN',
        thingName: 'fg-SN-JITP-TORN',
        now,
      }),
      publicKeyHash: parsed.publicKeyHash,
      now,
      history: { id: 'bind', actor: 'test' },
      set: {
        thingName: 'fg-SN-JITP-TORN',
        provisioningDeadline: new Date(Date.now() + 3_600_000).toISOString(),
      },
    });
    if (bound.status !== 'applied') throw new Error(`bind: ${bound.status}`);
    await table.store.transition({
      serial: 'SN-JITP-TORN',
      event: 'ACTIVATE',
      device: bound.device,
      transitionKey: 'ACTIVATE:test',
      now,
      history: { id: 'activate', actor: 'test' },
      set: { certificateId: parsed.certificateId },
      remove: ['pendingCertificateId', 'provisioningDeadline'],
    });
    const active = await table.store.getDevice('SN-JITP-TORN');
    expect(active).toMatchObject({ state: 'ACTIVE', thingName: 'fg-SN-JITP-TORN' });
    const renewal = await issueCertificate(rig.ca, {
      publicKey: original.keys.publicKey,
      subject: { commonName: 'SN-JITP-TORN' },
    });
    expect(
      await rig.emulator.connect({ certificatePem: renewal.certificatePem, clientId: 'SN-JITP-TORN' }),
    ).toMatchObject({ accepted: false, reason: 'JITP_PROVISIONED' });
    const created = rig.take('lifecycle').find((message) => message.topic.startsWith('$aws/events/thing/'));
    if (!created) throw new Error('no thing event');
    await deliver(rig.lifecycle, [ruleOutput(created)]);
    expect(await table.store.getDevice('SN-JITP-TORN')).toMatchObject({
      state: 'PROVISIONING',
      pendingCertificateId: renewal.certificateId,
    });
    rig.quarantine.requests.length = 0;
    const reads = torn.reads.count;
    // Delivery B read the device before A's binding, and its facts while the binding committed:
    // the device as before, the key owner as A left it.
    torn.tearNext({
      device: { serial: 'SN-JITP-TORN', before: active },
      facts: (facts) => ({ ...facts, ...(active ? { device: active } : {}) }),
    });

    // Act
    const stats = await deliver(rig.lifecycle, [ruleOutput(created)]);

    // Assess
    expect(rig.quarantine.requests).toEqual([]);
    expect(stats.deadLettered).toEqual([]);
    expect(torn.reads.count - reads).toBe(2);
    expect(await table.store.getDevice('SN-JITP-TORN')).toMatchObject({
      state: 'PROVISIONING',
      pendingCertificateId: renewal.certificateId,
    });
  });
});
