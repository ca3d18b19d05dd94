/**
 * The local IoT Core device endpoint with real MQTT clients over mutual TLS, against the IoT emulator
 * alone: who may connect, presence events, policy enforcement, the Fleet Provisioning MQTT API in JSON
 * and CBOR, and data-plane messages reaching subscribed devices.
 */

import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreatePolicyCommand,
  CreateProvisioningTemplateCommand,
  CreateThingCommand,
  type IoTClient,
  RegisterCACertificateCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { decode as decodeCbor, encode as encodeCbor } from 'cborg';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifiedCaCertificate } from '../../../local/ca-registration';
import type { IotEmulator } from '../../../local/iot-emulator';
import type { MqttBroker } from '../../../local/mqtt/broker';
import {
  createCertificateAuthority,
  createCsr,
  createDeviceCertificate,
  exportPrivateKeyPem,
  parseCertificate,
} from '../../../local/pki';
import {
  ACCOUNT,
  activeCertificate,
  createClaimPolicy,
  createDevicePolicy,
  fleetTemplateBody,
  REGION,
  startEmulatorEndpoint,
  stopEmulatorEndpoint,
} from '../../support/iot-emulator';
import {
  closed,
  connect,
  type DeviceIdentity,
  nextMessage,
  PROTOCOL_VERSIONS,
  type ProtocolVersion,
  subscribeCodes,
  tryConnect,
} from '../../support/mqtt';

const TEMPLATE = 'mqtt-test-fleet';

let emulator: IotEmulator;
let broker: MqttBroker;
let iot: IoTClient;
const open: MqttClient[] = [];

/** A certificate issued by the emulator (as CreateCertificateFromCsr would), ACTIVE, with `policies`. */
function activeIdentity(policies: string[]) {
  return activeCertificate(iot, policies);
}

async function connected(
  version: ProtocolVersion,
  identity: DeviceIdentity,
  clientId: string,
): Promise<MqttClient> {
  const client = await connect(broker, identity, clientId, version);
  open.push(client);
  return client;
}

/** A thing named `name` with `identity` attached: the device policy's `${iot:Connection.Thing.ThingName}`. */
async function thingFor(name: string, identity: { certificateArn: string }): Promise<void> {
  await iot.send(new CreateThingCommand({ thingName: name }));
  await iot.send(new AttachThingPrincipalCommand({ thingName: name, principal: identity.certificateArn }));
}

/** Publishes each [topic, payload] at QoS 1 through the data-plane API, as a cloud service does. */
async function publishFromCloud(messages: Array<[string, string]>): Promise<void> {
  const data = new IoTDataPlaneClient({ ...emulator.clientConfig(), maxAttempts: 1 });
  try {
    for (const [topic, payload] of messages)
      await data.send(new PublishCommand({ topic, qos: 1, payload: Buffer.from(payload) }));
  } finally {
    data.destroy();
  }
}

beforeAll(async () => {
  ({ emulator, broker, iot } = await startEmulatorEndpoint());
  await createClaimPolicy(iot, 'claim', TEMPLATE);
  await createDevicePolicy(iot, 'device');
  // No hook: the emulator's template engine alone creates the thing and activates the certificate.
  await iot.send(
    new CreateProvisioningTemplateCommand({
      templateName: TEMPLATE,
      templateBody: fleetTemplateBody('device'),
      provisioningRoleArn: `arn:aws:iam::${ACCOUNT}:role/provisioning`,
      enabled: true,
    }),
  );
});

afterAll(async () => {
  for (const client of open) client.end(true);
  await stopEmulatorEndpoint({ emulator, broker, iot });
});

describe.each(PROTOCOL_VERSIONS)('$name', ({ version }) => {
  /** Names unique to this protocol version's run (one emulator serves both). */
  const id = (name: string) => `${name}-v${version}`;

  describe('who may connect', () => {
    it('refuses a certificate the registry does not know, without a CONNACK', async () => {
      // Prepare
      const stranger = await createDeviceCertificate(await createCertificateAuthority(), {
        subject: { commonName: 'stranger' },
      });
      // Act
      const attempt = await tryConnect(
        broker,
        {
          certificatePem: stranger.certificatePem,
          privateKeyPem: await exportPrivateKeyPem(stranger.keys.privateKey),
        },
        id('stranger-1'),
        version,
      );
      // Assess
      expect(attempt.connected).toBe(false);
      expect(broker.refusals.at(-1)).toMatchObject({
        clientId: id('stranger-1'),
        reason: 'UNKNOWN_CERTIFICATE',
      });
    });

    it('accepts an ACTIVE certificate whose policy allows iot:Connect and publishes presence events', async () => {
      // Prepare
      const identity = await activeIdentity(['claim']);
      const connectedEvent = emulator.nextPublished(`$aws/events/presence/connected/${id('claim.presence')}`);
      // Act
      const client = await connected(version, identity, id('claim.presence'));
      const event = (await connectedEvent).json;
      const disconnectedEvent = emulator.nextPublished(
        `$aws/events/presence/disconnected/${id('claim.presence')}`,
      );
      await client.endAsync();
      // Assess
      expect(event).toMatchObject({
        clientId: id('claim.presence'),
        eventType: 'connected',
        principalIdentifier: identity.certificateId,
        sessionIdentifier: expect.any(String),
        versionNumber: expect.any(Number),
      });
      expect((await disconnectedEvent).json).toMatchObject({
        eventType: 'disconnected',
        principalIdentifier: identity.certificateId,
        disconnectReason: 'CLIENT_INITIATED_DISCONNECT',
        clientInitiatedDisconnect: true,
      });
    });

    it('reports CONNECTION_LOST when the socket goes away without DISCONNECT', async () => {
      // Prepare
      const identity = await activeIdentity(['claim']);
      const client = await connected(version, identity, id('claim.lost'));
      const disconnectedEvent = emulator.nextPublished(
        `$aws/events/presence/disconnected/${id('claim.lost')}`,
      );
      // Act
      client.stream.destroy();
      // Assess
      expect((await disconnectedEvent).json).toMatchObject({ disconnectReason: 'CONNECTION_LOST' });
    });

    it('refuses a device certificate connecting under a client id that is not its attached thing', async () => {
      // Prepare: the device policy allows iot:Connect only as client/<own thing name>.
      const identity = await activeIdentity(['device']);
      await thingFor(id('thing-own'), identity);
      // Act
      const other = await tryConnect(broker, identity, id('thing-other'), version);
      const own = await tryConnect(broker, identity, id('thing-own'), version);
      if (own.connected) open.push(own.client);
      // Assess: MQTT 3.1.1 is closed without a CONNACK, MQTT 5 gets CONNACK 0x87 Not authorized.
      expect(other).toMatchObject(
        version === 5
          ? { connected: false, reasonCode: 0x87 }
          : { connected: false, error: 'connection closed without CONNACK' },
      );
      expect(broker.refusals.at(-1)).toMatchObject({
        clientId: id('thing-other'),
        reason: 'CONNECT_NOT_AUTHORIZED',
        protocolVersion: version,
      });
      expect(own.connected).toBe(true);
    });

    it('refuses an INACTIVE and a REVOKED certificate', async () => {
      // Prepare
      const inactive = await activeIdentity(['claim']);
      const revoked = await activeIdentity(['claim']);
      await iot.send(
        new UpdateCertificateCommand({ certificateId: inactive.certificateId, newStatus: 'INACTIVE' }),
      );
      await iot.send(
        new UpdateCertificateCommand({ certificateId: revoked.certificateId, newStatus: 'REVOKED' }),
      );
      // Act
      const first = await tryConnect(broker, inactive, id('inactive-1'), version);
      const second = await tryConnect(broker, revoked, id('revoked-1'), version);
      // Assess
      expect(first.connected).toBe(false);
      expect(second.connected).toBe(false);
      expect(broker.refusals.slice(-2).map((refusal) => refusal.reason)).toEqual([
        'CERTIFICATE_INACTIVE',
        'CERTIFICATE_REVOKED',
      ]);
    });

    it('JITR: registers a certificate from an auto-registration CA and drops the first connection', async () => {
      // Prepare
      const ca = await createCertificateAuthority({ subject: { commonName: 'MQTT JITR CA' } });
      await iot.send(
        new RegisterCACertificateCommand({
          ...(await verifiedCaCertificate(iot, ca)),
          setAsActive: true,
          allowAutoRegistration: true,
        }),
      );
      const device = await createDeviceCertificate(ca, { subject: { commonName: id('JITR-1') } });
      const identity = {
        certificatePem: device.certificatePem,
        privateKeyPem: await exportPrivateKeyPem(device.keys.privateKey),
      };
      const registered = emulator.nextPublished('$aws/events/certificates/registered/+');
      // Act
      const first = await tryConnect(broker, identity, id('JITR-1'), version);
      const event = (await registered).json as { certificateId: string; certificateStatus: string };
      await iot.send(
        new UpdateCertificateCommand({ certificateId: device.certificateId, newStatus: 'ACTIVE' }),
      );
      const certificateArn = `arn:aws:iot:${REGION}:${ACCOUNT}:cert/${device.certificateId}`;
      await iot.send(new AttachPolicyCommand({ policyName: 'device', target: certificateArn }));
      await thingFor(id('JITR-1'), { certificateArn });
      const second = await tryConnect(broker, identity, id('JITR-1'), version);
      if (second.connected) open.push(second.client);
      // Assess
      expect(first.connected).toBe(false);
      expect(event).toMatchObject({
        certificateId: device.certificateId,
        certificateStatus: 'PENDING_ACTIVATION',
      });
      expect(second.connected).toBe(true);
    });

    it('DUPLICATE_CLIENTID: a second connection with the same client id disconnects the first', async () => {
      // Prepare
      const identity = await activeIdentity(['claim']);
      const first = await connected(version, identity, id('claim.dup-client'));
      const firstClosed = closed(first);
      const kicked = emulator.nextPublished(`$aws/events/presence/disconnected/${id('claim.dup-client')}`);
      const disconnectPackets: number[] = [];
      first.on('disconnect', (packet) => disconnectPackets.push(packet.reasonCode ?? 0));
      // Act
      await connected(version, identity, id('claim.dup-client'));
      // Assess: MQTT 5 is told why, DISCONNECT 0x8E Session taken over.
      await firstClosed;
      expect(disconnectPackets).toEqual(version === 5 ? [0x8e] : []);
      expect((await kicked).json).toMatchObject({
        disconnectReason: 'DUPLICATE_CLIENTID',
        clientInitiatedDisconnect: false,
      });
      expect(emulator.sessions.get(id('claim.dup-client'))).toBeDefined();
    });
  });

  describe('policy enforcement', () => {
    it('closes the connection of a claim certificate publishing outside the provisioning API (QoS 1 on 3.1.1, QoS 0 on 5: DISCONNECT 0x87)', async () => {
      // Prepare
      const identity = await activeIdentity(['claim']);
      const client = await connected(version, identity, id('claim.rogue'));
      const disconnected = emulator.nextPublished(`$aws/events/presence/disconnected/${id('claim.rogue')}`);
      const routed = emulator.publishedOn(`devices/${id('claim.rogue')}/`).length;
      const disconnectPackets: number[] = [];
      client.on('disconnect', (packet) => disconnectPackets.push(packet.reasonCode ?? 0));
      // Act
      client.publish(`devices/${id('claim.rogue')}/telemetry`, '{"t":1}', { qos: version === 5 ? 0 : 1 });
      // Assess
      await closed(client);
      expect((await disconnected).json).toMatchObject({ disconnectReason: 'AUTH_ERROR' });
      expect(emulator.publishedOn(`devices/${id('claim.rogue')}/`).length).toBe(routed);
      expect(disconnectPackets).toEqual(version === 5 ? [0x87] : []);
    });

    it('closes a connection whose certificate was deactivated, at its next publish', async () => {
      // Prepare
      const identity = await activeIdentity(['device']);
      await thingFor(id('thing-deactivated'), identity);
      const client = await connected(version, identity, id('thing-deactivated'));
      await client.publishAsync(`devices/${id('thing-deactivated')}/telemetry`, '{"t":1}', { qos: 1 });
      const disconnected = emulator.nextPublished(
        `$aws/events/presence/disconnected/${id('thing-deactivated')}`,
      );
      // Act
      await iot.send(
        new UpdateCertificateCommand({ certificateId: identity.certificateId, newStatus: 'INACTIVE' }),
      );
      client.publish(`devices/${id('thing-deactivated')}/telemetry`, '{"t":2}', { qos: 1 });
      // Assess
      await closed(client);
      expect((await disconnected).json).toMatchObject({ disconnectReason: 'AUTH_ERROR' });
    });

    it('answers a subscription the policy denies with a SUBACK failure and keeps the connection', async () => {
      // Prepare
      const identity = await activeIdentity(['claim']);
      const client = await connected(version, identity, id('claim.subscriber'));
      // Act
      const denied = await subscribeCodes(client, 'devices/+/telemetry');
      const granted = await subscribeCodes(client, '$aws/certificates/create/json/accepted');
      // Assess: 0x80 on MQTT 3.1.1, 0x87 Not authorized on MQTT 5.
      expect(denied).toEqual([version === 5 ? 0x87 : 0x80]);
      expect(granted).toEqual([1]);
      expect(client.connected).toBe(true);
    });

    it('routes a device publish to the rules engine with its principal and delivers data-plane messages it may receive', async () => {
      // Prepare
      const identity = await activeIdentity(['device']);
      await thingFor(id('thing-pubsub'), identity);
      const client = await connected(version, identity, id('thing-pubsub'));
      await client.subscribeAsync(`devices/${id('thing-pubsub')}/commands`, { qos: 1 });
      const sink = emulator.nextPublished(`devices/${id('thing-pubsub')}/telemetry`);
      // Act
      await client.publishAsync(`devices/${id('thing-pubsub')}/telemetry`, '{"t":21}', { qos: 1 });
      const command = nextMessage(client, [`devices/${id('thing-pubsub')}/commands`]);
      await publishFromCloud([[`devices/${id('thing-pubsub')}/commands`, '{"reboot":true}']]);
      // Assess
      expect((await sink).meta).toMatchObject({
        source: 'device',
        principal: identity.certificateId,
        clientId: id('thing-pubsub'),
      });
      expect(JSON.parse((await command).payload.toString())).toEqual({ reboot: true });
    });

    it('delivers through a wildcard subscription only what iot:Receive allows', async () => {
      // Prepare: subscribing to every device's commands is allowed, receiving only its own.
      await iot.send(
        new CreatePolicyCommand({
          policyName: id('receive-own'),
          policyDocument: JSON.stringify({
            Statement: [
              { Effect: 'Allow', Action: 'iot:Connect', Resource: '*' },
              {
                Effect: 'Allow',
                Action: 'iot:Subscribe',
                Resource: `arn:aws:iot:${REGION}:${ACCOUNT}:topicfilter/devices/*`,
              },
              {
                Effect: 'Allow',
                Action: 'iot:Receive',
                Resource: `arn:aws:iot:${REGION}:${ACCOUNT}:topic/devices/\${iot:ClientId}/*`,
              },
            ],
          }),
        }),
      );
      const identity = await activeIdentity([id('receive-own')]);
      const client = await connected(version, identity, id('thing-nosy'));
      const suback = await subscribeCodes(client, 'devices/+/commands');
      const received: string[] = [];
      client.on('message', (topic) => received.push(topic));
      const own = nextMessage(client, [`devices/${id('thing-nosy')}/commands`]);
      // Act
      await publishFromCloud([
        [`devices/${id('thing-other')}/commands`, 'x'],
        [`devices/${id('thing-nosy')}/commands`, 'y'],
      ]);
      await own;
      // Assess
      expect(suback).toEqual([1]);
      expect(received).toEqual([`devices/${id('thing-nosy')}/commands`]);
    });
  });

  describe('Fleet Provisioning MQTT API', () => {
    it('CreateCertificateFromCsr and RegisterThing in JSON, then the new certificate connects', async () => {
      // Prepare
      const claim = await activeIdentity(['claim']);
      const client = await connected(version, claim, id('claim.json'));
      await client.subscribeAsync(
        [
          '$aws/certificates/create-from-csr/json/+',
          `$aws/provisioning-templates/${TEMPLATE}/provision/json/+`,
        ],
        { qos: 1 },
      );
      const csr = await createCsr({ subject: { commonName: id('JSON-1') } });
      // Act
      const created = nextMessage(client, [
        '$aws/certificates/create-from-csr/json/accepted',
        '$aws/certificates/create-from-csr/json/rejected',
      ]);
      await client.publishAsync(
        '$aws/certificates/create-from-csr/json',
        JSON.stringify({ certificateSigningRequest: csr.csrPem }),
        { qos: 1 },
      );
      const certificate = JSON.parse((await created).payload.toString()) as Record<string, string>;
      const registered = nextMessage(client, [
        `$aws/provisioning-templates/${TEMPLATE}/provision/json/accepted`,
        `$aws/provisioning-templates/${TEMPLATE}/provision/json/rejected`,
      ]);
      await client.publishAsync(
        `$aws/provisioning-templates/${TEMPLATE}/provision/json`,
        JSON.stringify({
          certificateOwnershipToken: certificate.certificateOwnershipToken,
          parameters: { SerialNumber: id('JSON-1') },
        }),
        { qos: 1 },
      );
      const reply = await registered;
      const device = await tryConnect(
        broker,
        {
          certificatePem: certificate.certificatePem ?? '',
          privateKeyPem: await exportPrivateKeyPem(csr.keys.privateKey),
        },
        id('JSON-1'),
        version,
      );
      if (device.connected) open.push(device.client);
      // Assess
      expect(Object.keys(certificate).sort()).toEqual([
        'certificateId',
        'certificateOwnershipToken',
        'certificatePem',
      ]);
      expect(reply.topic).toBe(`$aws/provisioning-templates/${TEMPLATE}/provision/json/accepted`);
      expect(JSON.parse(reply.payload.toString())).toEqual({
        deviceConfiguration: {},
        thingName: id('JSON-1'),
      });
      expect(device.connected).toBe(true);
    });

    it('CreateKeysAndCertificate in CBOR with the documented field names, only to the requester', async () => {
      // Prepare: a second claim connection subscribed to the same reply topic must not see the reply.
      const claim = await activeIdentity(['claim']);
      const requester = await connected(version, claim, id('claim.cbor'));
      const bystander = await connected(version, claim, id('claim.bystander'));
      await requester.subscribeAsync('$aws/certificates/create/cbor/+', { qos: 1 });
      await bystander.subscribeAsync('$aws/certificates/create/cbor/+', { qos: 1 });
      const seenByBystander: string[] = [];
      bystander.on('message', (topic) => seenByBystander.push(topic));
      // Act
      const reply = nextMessage(requester, [
        '$aws/certificates/create/cbor/accepted',
        '$aws/certificates/create/cbor/rejected',
      ]);
      await requester.publishAsync('$aws/certificates/create/cbor', Buffer.from(encodeCbor({})), { qos: 1 });
      const message = await reply;
      const body = decodeCbor(message.payload) as Record<string, string>;
      await new Promise((resolve) => setTimeout(resolve, 200));
      // Assess
      expect(message.topic).toBe('$aws/certificates/create/cbor/accepted');
      expect(Object.keys(body).sort()).toEqual([
        'certificateId',
        'certificateOwnershipToken',
        'certificatePem',
        'privateKey',
      ]);
      expect(parseCertificate(body.certificatePem ?? '')).toBeDefined();
      expect(body.privateKey).toContain('PRIVATE KEY');
      expect(seenByBystander).toEqual([]);
    });

    it('rejects RegisterThing with an unknown ownership token on /rejected (statusCode, errorCode, errorMessage)', async () => {
      // Prepare
      const claim = await activeIdentity(['claim']);
      const client = await connected(version, claim, id('claim.bad-token'));
      await client.subscribeAsync(`$aws/provisioning-templates/${TEMPLATE}/provision/cbor/+`, { qos: 1 });
      // Act
      const reply = nextMessage(client, [
        `$aws/provisioning-templates/${TEMPLATE}/provision/cbor/accepted`,
        `$aws/provisioning-templates/${TEMPLATE}/provision/cbor/rejected`,
      ]);
      await client.publishAsync(
        `$aws/provisioning-templates/${TEMPLATE}/provision/cbor`,
        Buffer.from(
          encodeCbor({ certificateOwnershipToken: 'not-a-token', parameters: { SerialNumber: id('X-1') } }),
        ),
        { qos: 1 },
      );
      const message = await reply;
      // Assess
      expect(message.topic).toBe(`$aws/provisioning-templates/${TEMPLATE}/provision/cbor/rejected`);
      expect(decodeCbor(message.payload)).toEqual({
        statusCode: 400,
        errorCode: 'InvalidCertificateOwnershipToken',
        errorMessage: expect.any(String),
      });
    });
  });
});

/**
 * IoT Core's message broker limits: client ids of at most 128 UTF-8 bytes, MQTT 3.1.1 (and 5), not
 * MQTT 3.1. Refused as the MQTT 3.1.1 spec has a server refuse them (CONNACK 0x02 / 0x01).
 * @see https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html
 */
describe('message broker limits (issue 15)', () => {
  /** One attempt with the `mqtt` package, any protocol level; the CONNACK error if refused. */
  function attempt(identity: DeviceIdentity, clientId: string, protocolVersion: 3 | 4) {
    return new Promise<{ connected: boolean; error?: string; code?: number; client?: MqttClient }>(
      (resolve) => {
        const client = mqtt.connect(broker.url, {
          clientId,
          protocolVersion,
          ...(protocolVersion === 3 ? { protocolId: 'MQIsdp' as const } : {}),
          clean: true,
          reconnectPeriod: 0,
          connectTimeout: 10_000,
          ca: broker.caPem,
          cert: identity.certificatePem,
          key: identity.privateKeyPem,
        });
        let settled = false;
        const settle = (result: { connected: boolean; error?: string; code?: number }) => {
          if (settled) return;
          settled = true;
          if (!result.connected) client.end(true);
          resolve({ ...result, ...(result.connected ? { client } : {}) });
        };
        client.once('connect', () => settle({ connected: true }));
        client.once('error', (error) =>
          settle({ connected: false, error: error.message, code: (error as { code?: number }).code }),
        );
        client.once('close', () => settle({ connected: false, error: 'closed without CONNACK' }));
      },
    );
  }

  it('refuses a client id over 128 UTF-8 bytes (CONNACK 2, identifier rejected) and accepts 128 bytes', async () => {
    // Prepare: 129 bytes in 65 characters (é is two bytes), and exactly 128 bytes
    const identity = await activeIdentity(['claim']);
    const tooLong = `claim.${'é'.repeat(61)}x`;
    const longest = `claim.${'x'.repeat(122)}`;
    expect(Buffer.byteLength(tooLong)).toBe(129);
    expect(Buffer.byteLength(longest)).toBe(128);
    const presence = emulator.publishedOn('$aws/events/presence/').length;
    // Act
    const refused = await attempt(identity, tooLong, 4);
    const accepted = await attempt(identity, longest, 4);
    if (accepted.client) open.push(accepted.client);
    // Assess
    expect(refused).toMatchObject({ connected: false, code: 2 });
    expect(refused.error).toMatch(/identifier rejected/i);
    expect(broker.refusals.some((r) => r.reason.startsWith('CLIENT_ID_TOO_LONG: 129 bytes'))).toBe(true);
    expect(accepted.connected).toBe(true);
    // The refused one never had a session: only the accepted one's connected event was published.
    expect(emulator.publishedOn('$aws/events/presence/').length).toBe(presence + 1);
  });

  it('refuses a client id over 128 UTF-8 bytes over MQTT 5 with CONNACK 0x85 (Client Identifier not valid)', async () => {
    const identity = await activeIdentity(['claim']);
    const tooLong = `claim.${'é'.repeat(61)}y`;
    const refused = await tryConnect(broker, identity, tooLong, 5);
    expect(refused).toMatchObject({ connected: false, reasonCode: 0x85 });
    expect(broker.refusals.at(-1)).toMatchObject({
      reason: 'CLIENT_ID_TOO_LONG: 129 bytes (at most 128)',
      protocolVersion: 5,
    });
  });

  it('refuses MQTT 3.1 (protocol level 3) with CONNACK 1 (unacceptable protocol version)', async () => {
    const identity = await activeIdentity(['claim']);
    const refused = await attempt(identity, 'claim.mqtt31', 3);
    expect(refused).toMatchObject({ connected: false, code: 1 });
    expect(refused.error).toMatch(/unacceptable protocol version/i);
    expect(broker.refusals.at(-1)).toMatchObject({
      clientId: 'claim.mqtt31',
      reason: expect.stringContaining('UNSUPPORTED_PROTOCOL_VERSION: protocol level 3'),
    });
    expect(emulator.sessions.get('claim.mqtt31')).toBeUndefined();
  });
});

describe('stop', () => {
  it('closes connected clients and ends their sessions instead of waiting for them', async () => {
    // Prepare: an endpoint of its own, with one device connected.
    const own = await startEmulatorEndpoint();
    await own.iot.send(
      new CreatePolicyCommand({
        policyName: 'connect',
        policyDocument: JSON.stringify({
          Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
        }),
      }),
    );
    const client = await connect(own.broker, await activeCertificate(own.iot, ['connect'], 'stop'), 'stop-1');
    const gone = closed(client);
    // Act
    await own.broker.stop();
    await gone;
    // Assess
    expect(own.emulator.sessions.size).toBe(0);
    own.iot.destroy();
    await own.emulator.stop();
  });
});

describe('certificate ownership tokens', () => {
  it('expire after one hour: RegisterThing is rejected with InvalidCertificateOwnershipToken', async () => {
    // Prepare: an endpoint whose emulator clock the test moves.
    let now = Date.now();
    const clocked = await startEmulatorEndpoint({ now: () => new Date(now) });
    await createClaimPolicy(clocked.iot, 'claim', TEMPLATE);
    await clocked.iot.send(
      new CreateProvisioningTemplateCommand({
        templateName: TEMPLATE,
        templateBody: JSON.stringify({ Resources: {} }),
        provisioningRoleArn: `arn:aws:iam::${ACCOUNT}:role/provisioning`,
        enabled: true,
      }),
    );
    const client = await connect(
      clocked.broker,
      await activeCertificate(clocked.iot, ['claim'], 'claim'),
      'claim.clock',
    );
    await client.subscribeAsync(
      ['$aws/certificates/create/json/+', `$aws/provisioning-templates/${TEMPLATE}/provision/json/+`],
      { qos: 1 },
    );
    const created = nextMessage(client, ['$aws/certificates/create/json/accepted']);
    await client.publishAsync('$aws/certificates/create/json', '{}', { qos: 1 });
    const { certificateOwnershipToken } = JSON.parse((await created).payload.toString()) as {
      certificateOwnershipToken: string;
    };
    // Act
    now += 61 * 60_000;
    const reply = nextMessage(client, [
      `$aws/provisioning-templates/${TEMPLATE}/provision/json/accepted`,
      `$aws/provisioning-templates/${TEMPLATE}/provision/json/rejected`,
    ]);
    await client.publishAsync(
      `$aws/provisioning-templates/${TEMPLATE}/provision/json`,
      JSON.stringify({ certificateOwnershipToken, parameters: {} }),
      { qos: 1 },
    );
    const message = await reply;
    await client.endAsync();
    // Assess
    expect(message.topic).toBe(`$aws/provisioning-templates/${TEMPLATE}/provision/json/rejected`);
    expect(JSON.parse(message.payload.toString())).toMatchObject({
      statusCode: 400,
      errorCode: 'InvalidCertificateOwnershipToken',
    });
    await stopEmulatorEndpoint(clocked);
  });
});
