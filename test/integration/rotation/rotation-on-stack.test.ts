/**
 * Certificate rotation end to end on the local stack, wired only by serverless.yml: a connected
 * device publishes a CSR → RotationRequestRule (principal(), clientid(), topic(2)) → RotationQueue →
 * rotateCertificate → answer on the data plane → the device connects with the new certificate →
 * PresenceRule → deviceLifecycle commits → sweepRotations deletes the old certificate after the
 * grace period, or aborts a rotation that was never committed (run "as of" a later instant).
 */

import { randomUUID } from 'node:crypto';
import { DescribeCertificateCommand, type IoTClient } from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IotEmulator } from '../../../local/iot-emulator';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  createCsr,
  createDeviceCertificate,
  type KeyedCertificate,
} from '../../../local/pki';
import type { LocalStack } from '../../../local/stack';
import type { ProvisioningStore } from '../../../shared/store/provisioning-store';
import { registerTrustedCa } from '../../support/device-ca';
import { allowlistedDevice } from '../../support/devices';
import { startTestStack, type TestStack } from '../../support/stack';

const GRACE_SECONDS = 7200;
const DEADLINE_SECONDS = 3600;

let testStack: TestStack;
let stack: LocalStack;
let emulator: IotEmulator;
let iot: IoTClient;
let store: ProvisioningStore;
let ca: CertificateAuthority;

beforeAll(async () => {
  testStack = await startTestStack('rotation', {
    overrides: {
      ROTATION_GRACE_SECONDS: String(GRACE_SECONDS),
      ROTATION_DEADLINE_SECONDS: String(DEADLINE_SECONDS),
    },
  });
  ({ stack, iot, store, emulator } = testStack);
  ca = await createCertificateAuthority({ subject: { commonName: 'Rotation Stack CA' } });
  await registerTrustedCa(iot, store, ca);
}, 120_000);

afterAll(async () => {
  await testStack?.stop();
});

/** Allowlist → first connect (JITR) → reconnect (verified): an ACTIVE, connected device. */
async function activeDevice(prefix: string): Promise<{ serial: string; certificate: KeyedCertificate }> {
  const serial = `${prefix}-${randomUUID().slice(0, 6).toUpperCase()}`;
  await store.createDevice(allowlistedDevice({ serial }), { id: 'import', actor: 'test' });
  const certificate = await createDeviceCertificate(ca, { subject: { commonName: serial } });
  await emulator.connect({ certificatePem: certificate.certificatePem, clientId: serial });
  await stack.settle();
  expect(
    await emulator.connect({ certificatePem: certificate.certificatePem, clientId: serial }),
  ).toMatchObject({ accepted: true });
  await stack.settle();
  expect(await store.getDevice(serial)).toMatchObject({
    state: 'ACTIVE',
    certificateId: certificate.certificateId,
  });
  return { serial, certificate };
}

async function requestRotation(clientId: string, thingName: string, csrPem: string) {
  const outcome = await emulator.publish({
    clientId,
    topic: `fleetgate/${thingName}/rotate/request`,
    payload: { csr: csrPem },
  });
  expect(outcome.accepted).toBe(true);
}

function answersOn(thingName: string) {
  return emulator
    .publishedOn(`fleetgate/${thingName}/rotate/`)
    .filter((m) => !m.topic.endsWith('/request'))
    .map((m) => ({ topic: m.topic.split('/').pop(), json: m.json as Record<string, string> }));
}

async function iotStatus(certificateId: string): Promise<string> {
  try {
    const out = await iot.send(new DescribeCertificateCommand({ certificateId }));
    return out.certificateDescription?.status ?? 'UNKNOWN';
  } catch (error) {
    if ((error as { name?: string }).name === 'ResourceNotFoundException') return 'DELETED';
    throw error;
  }
}

describe('rotation on the local stack', () => {
  it('request → new certificate on accepted → connect with it → commit → old certificate deleted after the grace period', async () => {
    // Prepare
    const { serial, certificate: old } = await activeDevice('ROT');
    const csr = await createCsr({ subject: { commonName: serial } });
    // Act: the device asks, receives, reconnects with the new certificate
    const answer = emulator.nextPublished(`fleetgate/${serial}/rotate/accepted`, 30_000);
    await requestRotation(serial, serial, csr.csrPem);
    const accepted = await answer;
    await stack.settle();
    expect(accepted.topic).toBe(`fleetgate/${serial}/rotate/accepted`);
    const { certificateId, certificatePem } = accepted.json as {
      certificateId: string;
      certificatePem: string;
    };
    expect(await store.getDevice(serial)).toMatchObject({
      state: 'ROTATING',
      pendingCertificateId: certificateId,
    });
    expect(await emulator.connect({ certificatePem, clientId: serial })).toMatchObject({ accepted: true });
    await stack.settle();
    // Assess: committed, old certificate INACTIVE and kept for the grace period
    const committedAt = Date.now();
    expect(await store.getDevice(serial)).toMatchObject({ state: 'ACTIVE', certificateId });
    expect(await iotStatus(old.certificateId)).toBe('INACTIVE');
    await stack.invoke('sweepRotations', {
      now: new Date(committedAt + (GRACE_SECONDS - 60) * 1000).toISOString(),
    });
    expect(await iotStatus(old.certificateId)).toBe('INACTIVE');
    await stack.invoke('sweepRotations', {
      now: new Date(committedAt + (GRACE_SECONDS + 60) * 1000).toISOString(),
    });
    expect(await iotStatus(old.certificateId)).toBe('DELETED');
    expect(await iotStatus(certificateId)).toBe('ACTIVE');
    expect(await store.getCertificate(old.certificateId)).toMatchObject({ status: 'DELETED' });
  });

  it('no connect before the deadline: the new certificate is revoked and the old one kept', async () => {
    const { serial, certificate: old } = await activeDevice('ABORT');
    const answer = emulator.nextPublished(`fleetgate/${serial}/rotate/accepted`, 30_000);
    await requestRotation(serial, serial, (await createCsr({ subject: { commonName: serial } })).csrPem);
    const { certificateId } = (await answer).json as { certificateId: string };
    await stack.settle();
    const startedAt = Date.now();
    await stack.invoke('sweepRotations', {
      now: new Date(startedAt + (DEADLINE_SECONDS + 60) * 1000).toISOString(),
    });
    expect(await store.getDevice(serial)).toMatchObject({
      state: 'ACTIVE',
      certificateId: old.certificateId,
    });
    expect(await iotStatus(certificateId)).toBe('REVOKED');
    expect(await iotStatus(old.certificateId)).toBe('ACTIVE');
    const history = await store.history(serial);
    expect(history.map((entry) => entry.event)).toEqual(
      expect.arrayContaining(['START_ROTATION', 'ABORT_ROTATION']),
    );
  });

  it("rejects a request published with another device's certificate", async () => {
    const victim = await activeDevice('VICTIM');
    const attacker = await activeDevice('ATTACKER');
    const calls = emulator.callCount('CreateCertificateFromCsr');
    const answer = emulator.nextPublished(`fleetgate/${victim.serial}/rotate/rejected`, 30_000);
    await requestRotation(
      attacker.serial,
      victim.serial,
      (await createCsr({ subject: { commonName: victim.serial } })).csrPem,
    );
    const rejected = await answer;
    await stack.settle();
    expect(rejected.topic).toBe(`fleetgate/${victim.serial}/rotate/rejected`);
    expect(rejected.json).toMatchObject({ reason: 'PRINCIPAL_MISMATCH' });
    expect(emulator.callCount('CreateCertificateFromCsr')).toBe(calls);
    expect(await store.getDevice(victim.serial)).toMatchObject({
      state: 'ACTIVE',
      certificateId: victim.certificate.certificateId,
    });
  });

  it('the same request published five times at once creates exactly one certificate', async () => {
    const { serial } = await activeDevice('DUP');
    const calls = emulator.callCount('CreateCertificateFromCsr');
    const csr = (await createCsr({ subject: { commonName: serial } })).csrPem;
    await Promise.all(Array.from({ length: 5 }, () => requestRotation(serial, serial, csr)));
    await stack.settle();
    expect(emulator.callCount('CreateCertificateFromCsr') - calls).toBe(1);
    const accepted = answersOn(serial).filter((a) => a.topic === 'accepted');
    expect(accepted.length).toBeGreaterThanOrEqual(1);
    expect(new Set(accepted.map((a) => a.json.certificateId)).size).toBe(1);
    expect(answersOn(serial).filter((a) => a.topic === 'rejected')).toEqual([]);
    expect(await stack.depths()).toMatchObject({ 'fleetgate-local-rotation-dlq': 0 });
  });
});
