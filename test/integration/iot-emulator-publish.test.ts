import { IoTClient, RegisterCACertificateCommand, RegisterCertificateCommand } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifiedCaCertificate } from '../../local/ca-registration';
import { type IotEmulator, type PublishMeta, startIotEmulator } from '../../local/iot-emulator';
import { createCertificateAuthority, createDeviceCertificate } from '../../local/pki';

let emulator: IotEmulator;
let iot: IoTClient;
const sunk: Array<{ topic: string; meta: PublishMeta }> = [];

beforeEach(async () => {
  sunk.length = 0;
  emulator = await startIotEmulator({
    publish: async (topic, _payload, meta) => {
      sunk.push({ topic, meta });
    },
  });
  iot = new IoTClient({ ...emulator.clientConfig(), maxAttempts: 1 });
});

afterEach(async () => {
  iot.destroy();
  await emulator.stop();
});

async function connectedDevice(serial: string) {
  const ca = await createCertificateAuthority({ subject: { commonName: 'Device CA' } });
  await iot.send(
    new RegisterCACertificateCommand({ ...(await verifiedCaCertificate(iot, ca)), setAsActive: true }),
  );
  const device = await createDeviceCertificate(ca, { subject: { commonName: serial } });
  await iot.send(
    new RegisterCertificateCommand({ certificatePem: device.certificatePem, setAsActive: true }),
  );
  const outcome = await emulator.connect({ certificatePem: device.certificatePem, clientId: serial });
  expect(outcome.accepted).toBe(true);
  return device;
}

describe('DeviceGateway.publish', () => {
  it("sends a connected device's message to the sink with its certificate as principal and its client id", async () => {
    // Prepare
    const device = await connectedDevice('SN-PUB-1');
    // Act
    const outcome = await emulator.publish({
      clientId: 'SN-PUB-1',
      topic: 'fleetgate/SN-PUB-1/rotate/request',
      payload: { csr: 'x' },
    });
    // Assess
    expect(outcome.accepted).toBe(true);
    const routed = sunk.find((m) => m.topic === 'fleetgate/SN-PUB-1/rotate/request');
    expect(routed?.meta).toMatchObject({
      source: 'device',
      principal: device.certificateId,
      clientId: 'SN-PUB-1',
    });
    expect(emulator.publishedOn('fleetgate/SN-PUB-1/')[0]?.json).toEqual({ csr: 'x' });
  });

  it('refuses a client without a session, wildcard topics and payloads over 128 KB', async () => {
    await connectedDevice('SN-PUB-2');
    const notConnected = await emulator.publish({ clientId: 'SN-NOBODY', topic: 'a/b', payload: 'x' });
    const wildcard = await emulator.publish({ clientId: 'SN-PUB-2', topic: 'a/+/b', payload: 'x' });
    const large = await emulator.publish({
      clientId: 'SN-PUB-2',
      topic: 'a/b',
      payload: Buffer.alloc(128 * 1024 + 1),
    });
    expect([notConnected, wildcard, large].map((o) => (o.accepted ? 'ok' : o.reason))).toEqual([
      'NOT_CONNECTED',
      'INVALID_TOPIC',
      'PAYLOAD_TOO_LARGE',
    ]);
    expect(sunk.filter((m) => m.meta.source === 'device')).toEqual([]);
  });

  it('refuses after the device disconnected', async () => {
    await connectedDevice('SN-PUB-3');
    await emulator.disconnect({ clientId: 'SN-PUB-3' });
    const outcome = await emulator.publish({ clientId: 'SN-PUB-3', topic: 'a/b', payload: 'x' });
    expect(outcome).toMatchObject({ accepted: false, reason: 'NOT_CONNECTED' });
  });

  it('is reachable through POST /_emulator/publish (JSON or base64 payload)', async () => {
    const device = await connectedDevice('SN-PUB-4');
    const post = (body: unknown) =>
      fetch(`${emulator.endpoint}/_emulator/publish`, {
        method: 'POST',
        body: JSON.stringify(body),
      }).then((r) => r.json() as Promise<Record<string, unknown>>);
    const json = await post({ clientId: 'SN-PUB-4', topic: 'fleetgate/SN-PUB-4/x', payload: { a: 1 } });
    const raw = await post({
      clientId: 'SN-PUB-4',
      topic: 'fleetgate/SN-PUB-4/y',
      payload: Buffer.from('hello').toString('base64'),
      encoding: 'base64',
    });
    const refused = await post({ clientId: 'SN-NOBODY', topic: 'a', payload: 1 });
    expect(json).toMatchObject({ accepted: true, meta: { principal: device.certificateId } });
    expect(raw).toMatchObject({ accepted: true });
    expect(emulator.publishedOn('fleetgate/SN-PUB-4/y')[0]?.payload.toString()).toBe('hello');
    expect(emulator.publishedOn('fleetgate/SN-PUB-4/x')[0]?.json).toEqual({ a: 1 });
    expect(refused).toMatchObject({ accepted: false, reason: 'NOT_CONNECTED' });
  });
});

describe('nextPublished', () => {
  it('resolves with the next data-plane message on a matching topic and ignores earlier ones', async () => {
    const data = new IoTDataPlaneClient({ ...emulator.clientConfig(), maxAttempts: 1 });
    try {
      await data.send(
        new PublishCommand({ topic: 'fleetgate/T1/rotate/accepted', payload: Buffer.from('{"n":1}') }),
      );
      const next = emulator.nextPublished('fleetgate/+/rotate/accepted', 2000);
      await data.send(new PublishCommand({ topic: 'fleetgate/T1/other', payload: Buffer.from('{"n":2}') }));
      await data.send(
        new PublishCommand({ topic: 'fleetgate/T1/rotate/accepted', payload: Buffer.from('{"n":3}') }),
      );
      expect((await next).json).toEqual({ n: 3 });
      await expect(emulator.nextPublished('never/+', 50)).rejects.toThrow(/nothing was published/);
    } finally {
      data.destroy();
    }
  });
});
