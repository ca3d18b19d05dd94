/**
 * JITR end to end against the IoT emulator and DynamoDB Local. Events are the ones the emulator
 * publishes when devices connect; they reach the handlers as AWS-shaped SQS events through the
 * delivery loop of test/support/jitr.ts (partial batch failures redelivered with the same message
 * id). Quarantine requests are recorded instead of sent to SQS.
 */

import {
  DescribeCertificateCommand,
  ListAttachedPoliciesCommand,
  ListThingPrincipalsCommand,
} from '@aws-sdk/client-iot';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCertificateAuthority, issueCertificate } from '../../../local/pki';
import { registerCa, registerTrustedCa } from '../../support/device-ca';
import { useTestTable } from '../../support/dynamo';
import {
  allowlist,
  deliver,
  deviceCertificate,
  POLICY_NAME,
  type Rig,
  ruleOutput,
  startRig,
} from '../../support/jitr';
import { tornStore } from '../../support/torn-read';

const table = useTestTable('jitr');
let rig: Rig;
afterEach(async () => {
  await rig?.stop();
});

async function connect(certificatePem: string, clientId: string) {
  return rig.emulator.connect({ certificatePem, clientId });
}

async function deliverRegistrations(times = 1) {
  return deliver(rig.registration, rig.take('registration').map(ruleOutput), { times, shuffle: times > 1 });
}

/**
 * Allowlists `serial`, connects it with a certificate of a new CA (`commonName`) registered in IoT
 * only, and checks that registration rejects it as UNTRUSTED_ISSUER and asks for quarantine.
 */
async function expectUntrustedIssuer(serial: string, commonName: string) {
  // Prepare
  await allowlist(table.store, [serial]);
  const ca = await createCertificateAuthority({ subject: { commonName } });
  await registerCa(rig.iot, ca);
  const device = await deviceCertificate(ca, serial);
  await connect(device.certificatePem, serial);
  // Act
  await deliverRegistrations();
  // Assess
  expect(rig.registrationOutcomes).toEqual([{ name: 'RegistrationRejected', reason: 'UNTRUSTED_ISSUER' }]);
  expect(await table.store.getDevice(serial)).toMatchObject({ state: 'ALLOWLISTED' });
  expect(rig.quarantine.distinct).toEqual([
    expect.objectContaining({ certificateId: device.certificateId, reason: 'UNTRUSTED_ISSUER' }),
  ]);
}

async function deliverLifecycle(times = 1) {
  return deliver(rig.lifecycle, rig.take('lifecycle').map(ruleOutput), { times, shuffle: times > 1 });
}

describe('registerCertificate', () => {
  beforeEach(async () => {
    rig = await startRig(table.store);
  });

  it('registers a valid device: shared policy, thing, principal, ACTIVE last; ACTIVE in the store after its first connect', async () => {
    // Prepare
    await allowlist(table.store, ['SN-VALID-1']);
    const device = await deviceCertificate(rig.ca, 'SN-VALID-1');
    // Act
    const first = await connect(device.certificatePem, 'SN-VALID-1');
    const stats = await deliverRegistrations();
    // Assess
    expect(first).toMatchObject({ accepted: false, reason: 'PENDING_ACTIVATION' });
    expect(stats.deadLettered).toEqual([]);
    const apis = rig.emulator.calls.map((call) => call.api).filter((api) => api !== 'DescribeCACertificate');
    expect(apis).toEqual([
      'DescribeCertificate',
      'AttachPolicy',
      'CreateThing',
      'AttachThingPrincipal',
      'UpdateCertificate',
    ]);
    const { certificateDescription } = await rig.iot.send(
      new DescribeCertificateCommand({ certificateId: device.certificateId }),
    );
    expect(certificateDescription?.status).toBe('ACTIVE');
    const principals = await rig.iot.send(new ListThingPrincipalsCommand({ thingName: 'SN-VALID-1' }));
    expect(principals.principals).toEqual([certificateDescription?.certificateArn]);
    const policies = await rig.iot.send(
      new ListAttachedPoliciesCommand({ target: certificateDescription?.certificateArn ?? '' }),
    );
    expect(policies.policies?.map((p) => p.policyName)).toEqual([POLICY_NAME]);
    expect(rig.emulator.registry.things.get('SN-VALID-1')?.attributes).toEqual({
      serial: 'SN-VALID-1',
      productLine: 'sensor',
      batch: 'B-1',
    });
    expect(await table.store.getDevice('SN-VALID-1')).toMatchObject({
      state: 'PROVISIONING',
      pendingCertificateId: device.certificateId,
      thingName: 'SN-VALID-1',
    });
    expect(await table.store.getCertificate(device.certificateId)).toMatchObject({
      status: 'ACTIVE',
      source: 'JITR',
      serial: 'SN-VALID-1',
      thingName: 'SN-VALID-1',
    });

    // Act: the device reconnects with its now-active certificate
    const second = await connect(device.certificatePem, 'SN-VALID-1');
    const lifecycle = await deliverLifecycle();
    // Assess
    expect(second.accepted).toBe(true);
    expect(lifecycle.deadLettered).toEqual([]);
    const stored = await table.store.getDevice('SN-VALID-1');
    expect(stored).toMatchObject({ state: 'ACTIVE', certificateId: device.certificateId });
    expect(stored?.pendingCertificateId).toBeUndefined();
    const history = await table.store.history('SN-VALID-1');
    expect(history.map((entry) => entry.event)).toEqual(['CREATED', 'PROVISION', 'ACTIVATE']);
    expect(rig.quarantine.requests).toEqual([]);
  });

  it('costs one read and no IoT call for a repeat of a finished registration', async () => {
    // Prepare
    await allowlist(table.store, ['SN-REPEAT-1']);
    const device = await deviceCertificate(rig.ca, 'SN-REPEAT-1');
    await connect(device.certificatePem, 'SN-REPEAT-1');
    const [event] = rig.take('registration');
    if (!event) throw new Error('no registration event');
    await deliver(rig.registration, [ruleOutput(event)]);
    rig.emulator.clearCalls();
    const before = table.store.stats.roundTrips;
    // Act
    await deliver(rig.registration, [ruleOutput(event)], { times: 3 });
    // Assess
    expect(rig.emulator.calls).toEqual([]);
    expect(table.store.stats.roundTrips - before).toBe(3);
  });

  it.each([
    ['an expired certificate', 'CERTIFICATE_EXPIRED'],
    ['a serial not allowlisted', 'SERIAL_NOT_ALLOWLISTED'],
    ['a revoked serial', 'DEVICE_REVOKED'],
  ])('rejects %s with %s and asks for quarantine', async (_case, reason) => {
    // Prepare
    const serial = `SN-${reason.replaceAll('_', '-')}`;
    if (reason !== 'SERIAL_NOT_ALLOWLISTED') await allowlist(table.store, [serial]);
    if (reason === 'DEVICE_REVOKED') await revoke(serial);
    const now = Date.now();
    const device = await deviceCertificate(
      rig.ca,
      serial,
      reason === 'CERTIFICATE_EXPIRED' ? { notAfter: new Date(now + 3_600_000) } : {},
    );
    await connect(device.certificatePem, serial);
    if (reason === 'CERTIFICATE_EXPIRED') rig.setNow(now + 2 * 3_600_000);
    // Act
    const stats = await deliverRegistrations(2);
    // Assess
    expect(stats.deadLettered).toEqual([]);
    const status = (
      await rig.iot.send(new DescribeCertificateCommand({ certificateId: device.certificateId }))
    ).certificateDescription?.status;
    expect(status).toBe(reason === 'DEVICE_REVOKED' ? 'REVOKED' : 'INACTIVE');
    expect(rig.registrationOutcomes).toContainEqual({ name: 'RegistrationRejected', reason });
    expect(rig.quarantine.distinct).toEqual([
      expect.objectContaining({
        certificateId: device.certificateId,
        reason,
        source: 'registerCertificate',
        evidence: expect.objectContaining({ claimedSerial: serial, caCertificateId: rig.caCertificateId }),
        // Issue 15: only a device that cannot move anyway (revoked) is named; an expired or unknown
        // certificate is the presenter's alone (certificate-scoped).
        ...(reason === 'DEVICE_REVOKED' ? { serial } : { scope: 'certificate' }),
      }),
    ]);
    if (reason !== 'DEVICE_REVOKED') expect(rig.quarantine.distinct[0]?.serial).toBeUndefined();
    const record = await table.store.getCertificate(device.certificateId);
    expect(record).toMatchObject({ kind: 'DEVICE', source: 'JITR', status: status });
    expect(record?.serial).toBeUndefined();
    expect(rig.emulator.registry.things.size).toBe(0);
    if (reason !== 'SERIAL_NOT_ALLOWLISTED') {
      const history = await table.store.history(serial);
      expect(history.filter((entry) => entry.event === 'REGISTRATION_REJECTED')).toHaveLength(1);
    }
  });

  it('rejects a certificate whose CN does not carry a serial (SERIAL_NOT_IN_SUBJECT)', async () => {
    // Prepare
    await rig.stop();
    rig = await startRig(table.store, { env: { SERIAL_CN_PATTERN: '^acme-([A-Za-z0-9-]+)$' } });
    await allowlist(table.store, ['SN-CN-1']);
    const good = await deviceCertificate(rig.ca, 'SN-CN-1', { commonName: 'acme-SN-CN-1' });
    const bad = await deviceCertificate(rig.ca, 'SN-CN-2', { commonName: 'other-SN-CN-2' });
    await connect(good.certificatePem, 'SN-CN-1');
    await connect(bad.certificatePem, 'SN-CN-2');
    // Act
    await deliverRegistrations();
    // Assess
    expect(rig.registrationOutcomes).toEqual(
      expect.arrayContaining([
        { name: 'DeviceRegistered' },
        { name: 'RegistrationRejected', reason: 'SERIAL_NOT_IN_SUBJECT' },
      ]),
    );
    expect(rig.quarantine.distinct).toEqual([
      expect.objectContaining({ certificateId: bad.certificateId, reason: 'SERIAL_NOT_IN_SUBJECT' }),
    ]);
  });

  it('rejects a certificate from a registered CA that is not trusted (UNTRUSTED_ISSUER)', async () => {
    // Prepare: a second CA with auto-registration, outside TRUSTED_CA_IDS
    await rig.stop();
    const trusted = await startRig(table.store);
    const trustedId = trusted.caCertificateId;
    await trusted.stop();
    rig = await startRig(table.store, { env: { TRUSTED_CA_IDS: trustedId } });
    await expectUntrustedIssuer('SN-FOREIGN-1', 'Foreign CA');
    expect(rig.quarantine.distinct[0]?.serial).toBeUndefined();
  });

  it('fails closed under the default configuration (issue 15): a registered, ACTIVE, auto-registering CA the operator never named or recorded → UNTRUSTED_ISSUER', async () => {
    // Prepare: TRUSTED_CA_IDS empty (the default); a second CA registered in IoT only
    expect(rig.config.trustedCaIds).toEqual([]);
    await expectUntrustedIssuer('SN-UNNAMED-1', 'Registered, never trusted CA');
  });

  it('trusts a CA once the operator records it in the store (fleetgate certificates register --kind ca)', async () => {
    // Prepare: the same situation, then the CA recorded
    await allowlist(table.store, ['SN-RECORDED-1']);
    const recorded = await createCertificateAuthority({ subject: { commonName: 'Recorded CA' } });
    await registerTrustedCa(rig.iot, table.store, recorded);
    const device = await deviceCertificate(recorded, 'SN-RECORDED-1');
    await connect(device.certificatePem, 'SN-RECORDED-1');
    // Act
    await deliverRegistrations();
    // Assess
    expect(rig.registrationOutcomes).toEqual([{ name: 'DeviceRegistered' }]);
    expect(await table.store.getDevice('SN-RECORDED-1')).toMatchObject({ state: 'PROVISIONING' });
  });

  it('lets exactly one of two certificates for one serial win; the other is rejected and quarantined', async () => {
    // Prepare
    await allowlist(table.store, ['SN-TWIN-1']);
    const first = await deviceCertificate(rig.ca, 'SN-TWIN-1');
    const second = await deviceCertificate(rig.ca, 'SN-TWIN-1');
    await connect(first.certificatePem, 'SN-TWIN-1');
    await connect(second.certificatePem, 'SN-TWIN-1');
    // Act
    await deliverRegistrations(3);
    // Assess
    const statuses = await Promise.all(
      [first, second].map(
        async (c) =>
          (await rig.iot.send(new DescribeCertificateCommand({ certificateId: c.certificateId })))
            .certificateDescription?.status,
      ),
    );
    expect(statuses.sort()).toEqual(['ACTIVE', 'INACTIVE']);
    // Issue 15: the loser's certificate is not the device's own — only it is quarantined.
    expect(rig.quarantine.distinct).toEqual([
      expect.objectContaining({ scope: 'certificate', reason: 'PROVISIONING_IN_PROGRESS' }),
    ]);
    expect(rig.quarantine.distinct[0]?.serial).toBeUndefined();
  });

  it('a second key for an ACTIVE serial quarantines that certificate only; the device keeps working (issue 15)', async () => {
    // Prepare: an ACTIVE device, then another certificate from the trusted CA for its serial
    await allowlist(table.store, ['SN-SECOND-1']);
    const original = await deviceCertificate(rig.ca, 'SN-SECOND-1');
    await connect(original.certificatePem, 'SN-SECOND-1');
    await deliverRegistrations();
    await connect(original.certificatePem, 'SN-SECOND-1');
    await deliverLifecycle();
    expect(await table.store.getDevice('SN-SECOND-1')).toMatchObject({ state: 'ACTIVE' });
    rig.quarantine.requests.length = 0;
    const second = await deviceCertificate(rig.ca, 'SN-SECOND-1');
    await connect(second.certificatePem, 'SN-SECOND-1');
    // Act
    await deliverRegistrations();
    // Assess
    expect(rig.quarantine.distinct).toEqual([
      expect.objectContaining({ scope: 'certificate', certificateId: second.certificateId }),
    ]);
    expect(rig.quarantine.distinct[0]?.serial).toBeUndefined();
    expect(await table.store.getDevice('SN-SECOND-1')).toMatchObject({
      state: 'ACTIVE',
      certificateId: original.certificateId,
    });
    const history = await table.store.history('SN-SECOND-1');
    expect(history.some((entry) => entry.event === 'REGISTRATION_REJECTED')).toBe(true);
  });
});

describe('registerCertificate: a torn read of its own reservation', () => {
  it('a duplicate delivery that meets a same-key reprovisioning half-committed neither rejects nor quarantines', async () => {
    // Prepare: SN-TORN-1 ACTIVE; its key under a new certificate registered by delivery A (same-key)
    const torn = tornStore(table.store);
    rig = await startRig(torn.store, { env: { REPROVISIONING_POLICY: 'same-key' } });
    await allowlist(table.store, ['SN-TORN-1']);
    const original = await deviceCertificate(rig.ca, 'SN-TORN-1');
    await connect(original.certificatePem, 'SN-TORN-1');
    await deliverRegistrations();
    await connect(original.certificatePem, 'SN-TORN-1');
    await deliverLifecycle();
    const active = await table.store.getDevice('SN-TORN-1');
    expect(active).toMatchObject({ state: 'ACTIVE', certificateId: original.certificateId });
    const renewal = await issueCertificate(rig.ca, {
      publicKey: original.keys.publicKey,
      subject: { commonName: 'SN-TORN-1' },
    });
    await connect(renewal.certificatePem, 'SN-TORN-1');
    const [event] = rig.take('registration');
    if (!event) throw new Error('no registration event');
    await deliver(rig.registration, [ruleOutput(event)]);
    expect(await table.store.getDevice('SN-TORN-1')).toMatchObject({
      state: 'PROVISIONING',
      pendingCertificateId: renewal.certificateId,
    });
    rig.quarantine.requests.length = 0;
    rig.registrationOutcomes.length = 0;
    const reads = torn.reads.count;
    // Delivery B read the certificate record before A's reservation, and its facts while A's
    // transaction committed: the device as before, the key owner as A left it.
    torn.tearNext({
      certificate: { certificateId: renewal.certificateId, before: undefined },
      facts: (facts) => ({ ...facts, ...(active ? { device: active } : {}) }),
    });

    // Act
    const stats = await deliver(rig.registration, [ruleOutput(event)]);

    // Assess
    expect(rig.quarantine.requests).toEqual([]);
    expect(rig.registrationOutcomes.filter((outcome) => outcome.name === 'RegistrationRejected')).toEqual([]);
    expect(stats.deadLettered).toEqual([]);
    expect(torn.reads.count - reads).toBe(2);
    const { certificateDescription } = await rig.iot.send(
      new DescribeCertificateCommand({ certificateId: renewal.certificateId }),
    );
    expect(certificateDescription?.status).toBe('ACTIVE');
    expect(await table.store.getDevice('SN-TORN-1')).toMatchObject({
      state: 'PROVISIONING',
      pendingCertificateId: renewal.certificateId,
    });
  });

  it('a rejection the store really holds is confirmed by the second read', async () => {
    // Prepare: SN-TORN-A owns a key; a certificate for SN-TORN-B carries it
    const torn = tornStore(table.store);
    rig = await startRig(torn.store);
    await allowlist(table.store, ['SN-TORN-A', 'SN-TORN-B']);
    const owner = await deviceCertificate(rig.ca, 'SN-TORN-A');
    await connect(owner.certificatePem, 'SN-TORN-A');
    await deliverRegistrations();
    const thief = await issueCertificate(rig.ca, {
      publicKey: owner.keys.publicKey,
      subject: { commonName: 'SN-TORN-B' },
    });
    await connect(thief.certificatePem, 'SN-TORN-B');
    const reads = torn.reads.count;
    torn.tearNext({ facts: (facts) => facts });

    // Act
    await deliverRegistrations();

    // Assess
    expect(torn.reads.count - reads).toBe(2);
    expect(rig.registrationOutcomes).toContainEqual({
      name: 'RegistrationRejected',
      reason: 'PUBLIC_KEY_IN_USE',
    });
    expect(rig.quarantine.distinct).toEqual([
      expect.objectContaining({ serial: 'SN-TORN-A', certificateId: thief.certificateId }),
    ]);
  });
});

async function revoke(serial: string): Promise<void> {
  const device = await table.store.getDevice(serial);
  if (!device) throw new Error('not allowlisted');
  await table.store.transition({
    serial,
    event: 'QUARANTINE',
    device,
    transitionKey: 'q',
    now: new Date().toISOString(),
    history: { id: 'q', actor: 'test' },
  });
  const quarantined = await table.store.getDevice(serial);
  if (!quarantined) throw new Error('gone');
  await table.store.transition({
    serial,
    event: 'REJECT',
    device: quarantined,
    transitionKey: 'r',
    now: new Date().toISOString(),
    history: { id: 'r', actor: 'test' },
  });
}
