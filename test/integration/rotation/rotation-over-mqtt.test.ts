/**
 * Rotation as a real device does it: an MQTT client over mutual TLS on the local stack's device
 * endpoint, held to the deployed device policy (iot/device-policy.json), subscribes to its rotation
 * answers, publishes a CSR, receives its new certificate and reconnects with it; the backend commits
 * and retires the old certificate.
 */

import { randomUUID } from 'node:crypto';
import { DescribeCertificateCommand, type IoTClient } from '@aws-sdk/client-iot';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice } from '../../../local/mqtt/client';
import {
  createCertificateAuthority,
  createCsr,
  createDeviceCertificate,
  exportPrivateKeyPem,
} from '../../../local/pki';
import type { LocalStack } from '../../../local/stack';
import type { ProvisioningStore } from '../../../shared/store/provisioning-store';
import { registerTrustedCa } from '../../support/device-ca';
import { allowlistedDevice } from '../../support/devices';
import { startTestStack, type TestStack } from '../../support/stack';

let testStack: TestStack;
let stack: LocalStack;
let iot: IoTClient;
let store: ProvisioningStore;
const open: MqttClient[] = [];

beforeAll(async () => {
  testStack = await startTestStack('rotation-mqtt', { iotMaxAttempts: 1 });
  ({ stack, iot, store } = testStack);
  if (!stack.endpoints.mqtt) throw new Error('the local stack has no IoT device endpoint');
}, 120_000);

afterAll(async () => {
  for (const client of open) client.end(true);
  await testStack?.stop();
});

async function connect(certificatePem: string, privateKeyPem: string, clientId: string) {
  const emulator = stack.emulator;
  if (!emulator || !stack.endpoints.mqtt) throw new Error('no device endpoint');
  const result = await connectDevice({
    url: stack.endpoints.mqtt,
    caPem: emulator.issuer.certificatePem,
    certificatePem,
    privateKeyPem,
    clientId,
    iot,
  });
  if (result.connected) open.push(result.client);
  return result;
}

describe('rotation over MQTT on the local stack', () => {
  it('a device subscribes, sends its CSR, gets its certificate, reconnects with it and the old one is retired', async () => {
    // Prepare: a JITR device, ACTIVE and connected over MQTT
    const ca = await createCertificateAuthority({ subject: { commonName: 'MQTT Rotation CA' } });
    await registerTrustedCa(iot, store, ca);
    const serial = `MQTT-${randomUUID().slice(0, 6).toUpperCase()}`;
    await store.createDevice(allowlistedDevice({ serial }), { id: 'import', actor: 'test' });
    const old = await createDeviceCertificate(ca, { subject: { commonName: serial } });
    const oldKey = await exportPrivateKeyPem(old.keys.privateKey);
    expect(await connect(old.certificatePem, oldKey, serial)).toMatchObject({
      connected: false,
      reason: 'PENDING_ACTIVATION',
    });
    await stack.settle();
    const first = await connect(old.certificatePem, oldKey, serial);
    if (!first.connected) throw new Error(`reconnect refused: ${first.reason}`);
    await stack.settle();
    expect(await store.getDevice(serial)).toMatchObject({
      state: 'ACTIVE',
      certificateId: old.certificateId,
    });

    // Act: subscribe to the answers, publish the CSR
    const device = first.client;
    await device.subscribeAsync(`fleetgate/${serial}/rotate/+`, { qos: 1 });
    const answer = new Promise<{ topic: string; json: Record<string, string> }>((resolve) => {
      device.on('message', (topic, payload) => {
        if (topic.endsWith('/accepted') || topic.endsWith('/rejected'))
          resolve({ topic, json: JSON.parse(payload.toString('utf8')) as Record<string, string> });
      });
    });
    const csr = await createCsr({ subject: { commonName: serial } });
    await device.publishAsync(`fleetgate/${serial}/rotate/request`, JSON.stringify({ csr: csr.csrPem }), {
      qos: 1,
    });
    const received = await answer;
    await stack.settle();

    // Assess: the certificate arrived over MQTT; the device reconnects with it and the backend commits
    expect(received.topic).toBe(`fleetgate/${serial}/rotate/accepted`);
    const certificateId = received.json.certificateId ?? '';
    const certificatePem = received.json.certificatePem ?? '';
    expect(await store.getDevice(serial)).toMatchObject({
      state: 'ROTATING',
      pendingCertificateId: certificateId,
    });
    const second = await connect(certificatePem, await exportPrivateKeyPem(csr.keys.privateKey), serial);
    expect(second.connected).toBe(true);
    await stack.settle();
    expect(await store.getDevice(serial)).toMatchObject({ state: 'ACTIVE', certificateId });
    const oldDescription = await iot.send(
      new DescribeCertificateCommand({ certificateId: old.certificateId }),
    );
    expect(oldDescription.certificateDescription?.status).toBe('INACTIVE');
    // The old certificate can no longer connect.
    expect(await connect(old.certificatePem, oldKey, `${serial}-old`)).toMatchObject({ connected: false });
  });
});
