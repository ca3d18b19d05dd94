/**
 * The flows end to end on the local stack, wired only by serverless.yml: IoT emulator → topic rule
 * → SQS → function → store, exactly as a device's first connection travels in AWS.
 */

import { randomUUID } from 'node:crypto';
import { DescribeCertificateCommand, type IoTClient, ListThingPrincipalsCommand } from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority, createDeviceCertificate } from '../../../local/pki';
import type { LocalStack } from '../../../local/stack';
import type { ProvisioningStore } from '../../../shared/store/provisioning-store';
import { registerTrustedCa } from '../../support/device-ca';
import { allowlistedDevice } from '../../support/devices';
import { startTestStack, type TestStack } from '../../support/stack';

let testStack: TestStack;
let stack: LocalStack;
let iot: IoTClient;
let store: ProvisioningStore;

beforeAll(async () => {
  testStack = await startTestStack('flows');
  ({ stack, iot, store } = testStack);
}, 120_000);

afterAll(async () => {
  await testStack?.stop();
});

describe('JITR on the local stack', () => {
  it('takes an allowlisted device from its first connection to ACTIVE, and quarantines a stranger', async () => {
    // Prepare: a device CA registered with auto-registration, one allowlisted serial, one stranger.
    const ca = await createCertificateAuthority({ subject: { commonName: 'Flows Test CA' } });
    await registerTrustedCa(iot, store, ca);
    const serial = `STACK-${randomUUID().slice(0, 6).toUpperCase()}`;
    await store.createDevice(allowlistedDevice({ serial }), { id: 'import', actor: 'test' });
    const device = await createDeviceCertificate(ca, { subject: { commonName: serial } });
    const stranger = await createDeviceCertificate(ca, { subject: { commonName: 'NOT-ALLOWLISTED-1' } });
    const emulator = stack.emulator;
    if (!emulator) throw new Error('no emulator');

    // Act: first connections are refused while AWS publishes the registered events.
    const first = await emulator.connect({ certificatePem: device.certificatePem, clientId: serial });
    const strangerFirst = await emulator.connect({
      certificatePem: stranger.certificatePem,
      clientId: 'stranger',
    });
    expect(first).toMatchObject({ accepted: false, reason: 'PENDING_ACTIVATION' });
    expect(strangerFirst).toMatchObject({ accepted: false });
    await stack.settle(60_000);

    // Assess: the registration function activated the device's certificate and bound it.
    const described = await iot.send(new DescribeCertificateCommand({ certificateId: device.certificateId }));
    expect(described.certificateDescription?.status).toBe('ACTIVE');
    expect(await store.getDevice(serial)).toMatchObject({
      state: 'PROVISIONING',
      pendingCertificateId: device.certificateId,
    });
    const principals = await iot.send(
      new ListThingPrincipalsCommand({ thingName: (await store.getDevice(serial))?.thingName ?? serial }),
    );
    expect(principals.principals).toHaveLength(1);
    const strangerCert = await iot.send(
      new DescribeCertificateCommand({ certificateId: stranger.certificateId }),
    );
    expect(strangerCert.certificateDescription?.status).toBe('INACTIVE');

    // Act: the device reconnects with its now-active certificate → presence connected → lifecycle.
    const second = await emulator.connect({ certificatePem: device.certificatePem, clientId: serial });
    expect(second).toMatchObject({ accepted: true });
    await stack.settle(60_000);

    // Assess: verified, ACTIVE, with one history entry per transition; nothing dead-lettered.
    expect(await store.getDevice(serial)).toMatchObject({
      state: 'ACTIVE',
      certificateId: device.certificateId,
    });
    const events = (await store.history(serial)).map((entry) => entry.event);
    expect(events.filter((event) => event === 'PROVISION')).toHaveLength(1);
    expect(events.filter((event) => event === 'ACTIVATE')).toHaveLength(1);
    const depths = await stack.depths();
    // The stranger's quarantine request went through QuarantineQueue to quarantineDevice.
    expect(await store.getCertificate(stranger.certificateId)).toMatchObject({
      status: 'INACTIVE',
      quarantine: expect.objectContaining({ reason: 'SERIAL_NOT_ALLOWLISTED' }),
    });
    const deadLettered = Object.entries(depths).filter(
      ([queue, depth]) => queue.endsWith('-dlq') && depth > 0,
    );
    expect(deadLettered).toEqual([]);
  });
});
