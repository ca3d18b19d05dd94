/**
 * Real MQTT devices over mutual TLS against the whole local stack (DynamoDB Local, local SQS, the IoT
 * emulator, the rules engine and the functions of serverless.yml): fleet provisioning by claim in JSON
 * and in CBOR through the real pre-provisioning hook, JITR on first connect through registerCertificate,
 * and a DUPLICATE_CLIENTID storm seen by the clone detector (deviceLifecycle → quarantine).
 */

import { randomUUID } from 'node:crypto';
import { DescribeCertificateCommand, type IoTClient } from '@aws-sdk/client-iot';
import { decode as decodeCbor, encode as encodeCbor } from 'cborg';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createCertificateAuthority,
  createCsr,
  createDeviceCertificate,
  exportPrivateKeyPem,
} from '../../../local/pki';
import type { LocalStack } from '../../../local/stack';
import { claimClientId } from '../../../shared/domain/client-ids';
import type { ProvisioningStore } from '../../../shared/store/provisioning-store';
import { registerTrustedCa } from '../../support/device-ca';
import { allowlistedDevice } from '../../support/devices';
import { activeCertificate } from '../../support/iot-emulator';
import {
  closed,
  connect,
  type DeviceIdentity,
  nextMessage,
  PROTOCOL_VERSIONS,
  type ProtocolVersion,
  tryConnect,
} from '../../support/mqtt';
import { startTestStack, type TestStack } from '../../support/stack';
import { waitFor } from '../../support/wait';

const DEVICE_POLICY = 'fleetgate-local-device';
const TEMPLATE = 'fleetgate-local-fleet';

let testStack: TestStack;
let stack: LocalStack;
let iot: IoTClient;
let store: ProvisioningStore;
let claim: DeviceIdentity & { certificateId: string };
const open: MqttClient[] = [];

function endpoint() {
  if (!stack.mqtt) throw new Error('the local stack started without its MQTT endpoint');
  return stack.mqtt;
}

async function connected(
  identity: DeviceIdentity,
  clientId: string,
  version: ProtocolVersion = 4,
): Promise<MqttClient> {
  const client = await connect(endpoint(), identity, clientId, version);
  open.push(client);
  return client;
}

async function allowlist(serial: string): Promise<void> {
  await store.createDevice(allowlistedDevice({ serial, allowedClaim: claim.certificateId }), {
    id: `import-${serial}`,
    actor: 'test',
  });
}

/** A device on its claim connection: CreateCertificateFromCsr, then RegisterThing, in `format`. */
async function provisionByClaim(serial: string, format: 'json' | 'cbor', version: ProtocolVersion = 4) {
  const client = await connected(claim, claimClientId(serial), version);
  const encode = (value: object) =>
    format === 'cbor' ? Buffer.from(encodeCbor(value)) : Buffer.from(JSON.stringify(value));
  const decode = (payload: Buffer) =>
    (format === 'cbor' ? decodeCbor(payload) : JSON.parse(payload.toString())) as Record<string, unknown>;
  const csrTopic = `$aws/certificates/create-from-csr/${format}`;
  const provisionTopic = `$aws/provisioning-templates/${TEMPLATE}/provision/${format}`;
  await client.subscribeAsync([`${csrTopic}/+`, `${provisionTopic}/+`], { qos: 1 });
  const csr = await createCsr({ subject: { commonName: serial } });
  const created = nextMessage(client, [`${csrTopic}/accepted`, `${csrTopic}/rejected`]);
  await client.publishAsync(csrTopic, encode({ certificateSigningRequest: csr.csrPem }), { qos: 1 });
  const createReply = await created;
  const certificate = decode(createReply.payload);
  const registered = nextMessage(client, [`${provisionTopic}/accepted`, `${provisionTopic}/rejected`]);
  await client.publishAsync(
    provisionTopic,
    encode({
      certificateOwnershipToken: certificate.certificateOwnershipToken,
      parameters: { SerialNumber: serial },
    }),
    { qos: 1 },
  );
  const registerReply = await registered;
  await client.endAsync();
  return {
    createReply: { topic: createReply.topic, body: certificate },
    registerReply: { topic: registerReply.topic, body: decode(registerReply.payload) },
    identity: {
      certificatePem: String(certificate.certificatePem),
      privateKeyPem: await exportPrivateKeyPem(csr.keys.privateKey),
    },
  };
}

beforeAll(async () => {
  testStack = await startTestStack('mqtt');
  ({ stack, iot, store } = testStack);
  // The device policy, the claim policy and the template (with its hook) are serverless.yml's,
  // created by the local stack at start; the claim certificate is this test's.
  expect(stack.declared).toEqual({
    devicePolicyName: DEVICE_POLICY,
    claimPolicyName: 'fleetgate-local-claim',
    fleetTemplateName: TEMPLATE,
    installerTemplateName: 'fleetgate-local-installer',
  });
  claim = await activeCertificate(iot, ['fleetgate-local-claim'], 'fleetgate claim');
}, 120_000);

afterAll(async () => {
  for (const client of open) client.end(true);
  await testStack?.stop();
});

describe('fleet provisioning by claim over MQTT', () => {
  it.each([
    { format: 'json', version: 4, name: 'MQTT 3.1.1' },
    { format: 'cbor', version: 4, name: 'MQTT 3.1.1' },
    { format: 'json', version: 5, name: 'MQTT 5' },
    { format: 'cbor', version: 5, name: 'MQTT 5' },
  ] as const)(
    'in $format over $name: the hook allows an allowlisted serial, the new certificate connects and the device turns ACTIVE',
    async ({ format, version }) => {
      // Prepare
      const serial = `MQTT-${format.toUpperCase()}-${version}-${randomUUID().slice(0, 6).toUpperCase()}`;
      await allowlist(serial);
      // Act
      const { createReply, registerReply, identity } = await provisionByClaim(serial, format, version);
      const device = await connected(identity, serial, version);
      const record = await waitFor(
        () => store.getDevice(serial),
        (value) => value?.state === 'ACTIVE',
      );
      // Assess
      expect(createReply.topic).toBe(`$aws/certificates/create-from-csr/${format}/accepted`);
      expect(Object.keys(createReply.body).sort()).toEqual([
        'certificateId',
        'certificateOwnershipToken',
        'certificatePem',
      ]);
      expect(registerReply).toEqual({
        topic: `$aws/provisioning-templates/${TEMPLATE}/provision/${format}/accepted`,
        body: { deviceConfiguration: {}, thingName: serial },
      });
      expect(device.connected).toBe(true);
      expect(record).toMatchObject({ state: 'ACTIVE', certificateId: createReply.body.certificateId });
    },
  );

  it.each(PROTOCOL_VERSIONS)(
    'rejects RegisterThing for a serial that is not allowlisted (AccessDenied from the hook) over $name',
    async ({ version }) => {
      // Prepare
      const serial = `MQTT-STRANGER-${version}-${randomUUID().slice(0, 6).toUpperCase()}`;
      // Act
      const { registerReply, identity } = await provisionByClaim(serial, 'json', version);
      const attempt = await tryConnect(endpoint(), identity, serial);
      // Assess
      expect(registerReply).toEqual({
        topic: `$aws/provisioning-templates/${TEMPLATE}/provision/json/rejected`,
        body: { statusCode: 403, errorCode: 'AccessDenied', errorMessage: expect.any(String) },
      });
      expect(attempt.connected).toBe(false);
    },
  );
});

describe('JITR over MQTT', () => {
  it('drops the first connection, registerCertificate activates, the next connection is accepted', async () => {
    // Prepare
    const ca = await createCertificateAuthority({ subject: { commonName: 'MQTT stack JITR CA' } });
    await registerTrustedCa(iot, store, ca);
    const serial = `MQTT-JITR-${randomUUID().slice(0, 6).toUpperCase()}`;
    await store.createDevice(allowlistedDevice({ serial }), { id: `import-${serial}`, actor: 'test' });
    const device = await createDeviceCertificate(ca, { subject: { commonName: serial } });
    const identity = {
      certificatePem: device.certificatePem,
      privateKeyPem: await exportPrivateKeyPem(device.keys.privateKey),
    };
    // Act
    const first = await tryConnect(endpoint(), identity, serial);
    const status = await waitFor(
      async () =>
        (await iot.send(new DescribeCertificateCommand({ certificateId: device.certificateId })))
          .certificateDescription?.status,
      (value) => value === 'ACTIVE',
    );
    const second = await tryConnect(endpoint(), identity, serial);
    if (second.connected) open.push(second.client);
    const record = await waitFor(
      () => store.getDevice(serial),
      (value) => value?.state === 'ACTIVE',
    );
    // Assess
    expect(first.connected).toBe(false);
    expect(status).toBe('ACTIVE');
    expect(second.connected).toBe(true);
    expect(record).toMatchObject({ state: 'ACTIVE', certificateId: device.certificateId });
  });
});

describe('clone detection over MQTT', () => {
  it('two devices fighting over one client id: DUPLICATE_CLIENTID disconnects, deviceLifecycle quarantines', async () => {
    // Prepare: a provisioned, ACTIVE device whose identity was copied.
    const serial = `MQTT-CLONE-${randomUUID().slice(0, 6).toUpperCase()}`;
    await allowlist(serial);
    const { identity } = await provisionByClaim(serial, 'json');
    const original = await connected(identity, serial);
    await waitFor(
      () => store.getDevice(serial),
      (value) => value?.state === 'ACTIVE',
    );
    // Act: each connection takes the client id from the other, three times.
    let current = original;
    for (let round = 0; round < 3; round += 1) {
      const kicked = closed(current);
      current = await connected(identity, serial);
      await kicked;
    }
    const record = await waitFor(
      () => store.getDevice(serial),
      (value) => value?.state === 'QUARANTINED',
      60_000,
    );
    // The quarantine worker deactivates the certificate: the copy cannot come back.
    const status = await waitFor(
      async () =>
        (await iot.send(new DescribeCertificateCommand({ certificateId: String(record?.certificateId) })))
          .certificateDescription?.status,
      (value) => value !== 'ACTIVE',
    );
    const again = await tryConnect(endpoint(), identity, serial);
    if (again.connected) open.push(again.client);
    // Assess
    const presence = (stack.emulator?.publishedOn('$aws/events/presence/') ?? [])
      .map(
        (message) =>
          message.json as {
            clientId: string;
            eventType: string;
            disconnectReason?: string;
            versionNumber: number;
          },
      )
      .filter((event) => event.clientId === serial);
    const duplicates = presence.filter((event) => event.disconnectReason === 'DUPLICATE_CLIENTID');
    expect(duplicates, JSON.stringify(presence)).toHaveLength(3);
    expect(record).toMatchObject({
      state: 'QUARANTINED',
      quarantine: { reason: 'CLONE_DUPLICATE_CLIENTID' },
    });
    expect(status).toBe('INACTIVE');
    expect(again.connected).toBe(false);
  });
});

/**
 * Issue 15: the claim certificate is shared by a product line and extractable from any device. The
 * claim policy lets it connect only as `claim.*`, a client id no thing can have (thing names are
 * `[a-zA-Z0-9:_-]+`), so it can never take a device's client id.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/iot-policy-actions.html
 * @see https://docs.aws.amazon.com/iot/latest/apireference/API_CreateThing.html
 */
describe('a hostile claim-certificate holder over MQTT', () => {
  it('cannot connect as a provisioned thing client id, and no sequence of claim connections changes the device', async () => {
    // Prepare: a provisioned, connected, ACTIVE device
    const serial = `MQTT-HOSTILE-${randomUUID().slice(0, 6).toUpperCase()}`;
    await allowlist(serial);
    const { identity, createReply } = await provisionByClaim(serial, 'json');
    const certificateId = String(createReply.body.certificateId);
    const device = await connected(identity, serial);
    await waitFor(
      () => store.getDevice(serial),
      (value) => value?.state === 'ACTIVE',
    );
    const historyBefore = (await store.history(serial)).length;
    // Act: four times, the claim certificate tries the device client id (holding what it gets 500 ms),
    // then uses its own reserved client ids, including ones that spell the serial.
    const attempts: boolean[] = [];
    for (let round = 0; round < 4; round += 1) {
      const attempt = await tryConnect(endpoint(), claim, serial);
      attempts.push(attempt.connected);
      if (attempt.connected) {
        open.push(attempt.client);
        await new Promise((resolve) => setTimeout(resolve, 500));
        attempt.client.end(true);
      }
      for (const clientId of [claimClientId(serial), `claim.${serial}.${round}`]) {
        const own = await connected(claim, clientId);
        await new Promise((resolve) => setTimeout(resolve, 100));
        await own.endAsync();
      }
    }
    await stack.settle(60_000);
    // Assess
    expect(attempts).toEqual([false, false, false, false]);
    expect(
      endpoint().refusals.filter(
        (refusal) => refusal.clientId === serial && refusal.certificateId === claim.certificateId,
      ),
    ).toHaveLength(4);
    expect(
      endpoint()
        .refusals.filter((r) => r.clientId === serial)
        .map((r) => r.reason),
    ).toEqual(Array(4).fill('CONNECT_NOT_AUTHORIZED'));
    expect(device.connected).toBe(true);
    const presence = (stack.emulator?.publishedOn(`$aws/events/presence/`) ?? [])
      .map((message) => message.json as { clientId: string; disconnectReason?: string })
      .filter((event) => event.clientId === serial);
    expect(presence.filter((event) => event.disconnectReason === 'DUPLICATE_CLIENTID')).toEqual([]);
    expect(await store.getDevice(serial)).toMatchObject({ state: 'ACTIVE', certificateId });
    expect((await store.history(serial)).length).toBe(historyBefore);
    const status = async (id: string) =>
      (await iot.send(new DescribeCertificateCommand({ certificateId: id }))).certificateDescription?.status;
    expect(await status(certificateId)).toBe('ACTIVE');
    expect(await status(claim.certificateId)).toBe('ACTIVE');
  });
});
