/**
 * MQTT 5 on the local endpoint, feature by feature, as the AWS IoT Core developer guide describes it
 * ("MQTT 5 supported features", "MQTT 5 properties", "MQTT reason codes",
 * https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html): the CONNACK's limits, keep-alive and
 * session-expiry clamping, user properties and request/response properties forwarded (also across
 * versions), topic aliases, message expiry, persistent sessions, shared subscriptions and their policy
 * resource, retained messages, and the reason codes of what IoT Core refuses.
 */
import { CreatePolicyCommand, type IoTClient } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import type { IConnackPacket, IPublishPacket, MqttClient } from 'mqtt';
import mqttPacket, { type ISubackPacket, type ISubscribePacket, type Packet } from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

vi.setConfig({ testTimeout: 30_000 });

import type { IotEmulator } from '../../../local/iot-emulator';
import type { MqttBroker } from '../../../local/mqtt/broker';
import {
  ACCOUNT,
  activeCertificate,
  REGION,
  startEmulatorEndpoint,
  stopEmulatorEndpoint,
} from '../../support/iot-emulator';
import {
  closed,
  connect,
  type DeviceIdentity,
  PROTOCOL_VERSIONS,
  type ProtocolVersion,
  subscribeCodes,
  tryConnect,
} from '../../support/mqtt';

const ARN = `arn:aws:iot:${REGION}:${ACCOUNT}`;

let emulator: IotEmulator;
let broker: MqttBroker;
let iot: IoTClient;
let open: DeviceIdentity;
let noRetain: DeviceIdentity;
const clients: MqttClient[] = [];

function identityWith(policyName: string): Promise<DeviceIdentity> {
  return activeCertificate(iot, [policyName], policyName);
}

async function client(
  clientId: string,
  version: ProtocolVersion = 5,
  extra: Parameters<typeof connect>[4] = {},
  identity: DeviceIdentity = open,
): Promise<MqttClient> {
  const connected = await connect(broker, identity, clientId, version, extra);
  clients.push(connected);
  return connected;
}

/** The next PUBLISH packet the client receives on `topic`, with its properties. */
function nextPublish(target: MqttClient, topic: string, timeoutMs = 5000): Promise<IPublishPacket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      target.off('message', onMessage);
      reject(new Error(`nothing on ${topic} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (received: string, _payload: Buffer, packet: IPublishPacket) => {
      if (received !== topic) return;
      clearTimeout(timer);
      target.off('message', onMessage);
      resolve(packet);
    };
    target.on('message', onMessage);
  });
}

let rawId = 60_000;

/**
 * Writes a packet as is on the client's connection, past mqtt.js's own checks (it refuses to send
 * what the server announced it would refuse), and resolves with the reply of type `reply`, if any.
 */
function raw(target: MqttClient, packet: Packet, reply?: Packet['cmd']): Promise<Packet | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 5000);
    const onPacket = (received: Packet) => {
      if (received.cmd !== reply || received.messageId !== packet.messageId) return;
      clearTimeout(timer);
      target.off('packetreceive', onPacket);
      resolve(received);
    };
    if (reply) target.on('packetreceive', onPacket);
    target.stream.write(
      mqttPacket.generate(packet, { protocolVersion: target.options.protocolVersion ?? 4 }),
    );
    if (!reply) {
      clearTimeout(timer);
      resolve(undefined);
    }
  });
}

/** SUBSCRIBE written raw; resolves with the SUBACK's codes. */
async function rawSubscribe(
  target: MqttClient,
  filters: string[],
  properties?: ISubscribePacket['properties'],
  options: { nl?: boolean } = {},
): Promise<number[]> {
  rawId += 1;
  const suback = await raw(
    target,
    {
      cmd: 'subscribe',
      messageId: rawId,
      subscriptions: filters.map((topic) => ({ topic, qos: 1 as const, ...options })),
      ...(properties ? { properties } : {}),
    },
    'suback',
  );
  return ((suback as ISubackPacket | undefined)?.granted ?? []).map(Number);
}

/** Collects the topics a client receives for `ms`. */
async function received(target: MqttClient, ms: number, act: () => Promise<unknown>): Promise<string[]> {
  const topics: string[] = [];
  const onMessage = (topic: string) => topics.push(topic);
  target.on('message', onMessage);
  await act();
  await new Promise((resolve) => setTimeout(resolve, ms));
  target.off('message', onMessage);
  return topics;
}

/** The reason code of the DISCONNECT the endpoint sends before closing (MQTT 5). */
/** Writes a PUBLISH (payload `x`) the client library would not send; resolves the DISCONNECT's reason code. */
async function rawPublishDisconnects(
  target: MqttClient,
  packet: Pick<IPublishPacket, 'topic' | 'qos' | 'messageId' | 'properties'>,
): Promise<number> {
  const reason = disconnectReason(target);
  await raw(target, { cmd: 'publish', payload: Buffer.from('x'), dup: false, retain: false, ...packet });
  return reason;
}

function disconnectReason(target: MqttClient): Promise<number> {
  return new Promise((resolve) => {
    target.once('disconnect', (packet) => resolve(packet.reasonCode ?? 0));
  });
}

beforeAll(async () => {
  ({ emulator, broker, iot } = await startEmulatorEndpoint());
  const statements = (retain: boolean) => [
    { Effect: 'Allow', Action: 'iot:Connect', Resource: '*' },
    {
      Effect: 'Allow',
      Action: ['iot:Publish', 'iot:Receive', ...(retain ? ['iot:RetainPublish'] : [])],
      Resource: `${ARN}:topic/mqtt5/*`,
    },
    {
      Effect: 'Allow',
      Action: 'iot:Subscribe',
      Resource: [`${ARN}:topicfilter/mqtt5/*`, `${ARN}:topicfilter/$share/workers/mqtt5/*`],
    },
  ];
  await iot.send(
    new CreatePolicyCommand({
      policyName: 'mqtt5-open',
      policyDocument: JSON.stringify({ Version: '2012-10-17', Statement: statements(true) }),
    }),
  );
  await iot.send(
    new CreatePolicyCommand({
      policyName: 'mqtt5-no-retain',
      policyDocument: JSON.stringify({ Version: '2012-10-17', Statement: statements(false) }),
    }),
  );
  open = await identityWith('mqtt5-open');
  noRetain = await identityWith('mqtt5-no-retain');
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await stopEmulatorEndpoint({ emulator, broker, iot });
});

describe('CONNACK (MQTT 5 supported features)', () => {
  it('announces IoT Core limits: Maximum QoS 1, Receive Maximum 100, Topic Alias Maximum 8, 149,504-byte packets, shared subscriptions yes, subscription identifiers no', async () => {
    // Act
    const connack = await connackOf('v5-connack', { keepalive: 60 });
    // Assess
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties).toMatchObject({
      maximumQoS: 1,
      receiveMaximum: 100,
      topicAliasMaximum: 8,
      maximumPacketSize: 149_504,
      retainAvailable: true,
      wildcardSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: false,
      sharedSubscriptionAvailable: true,
    });
    expect(connack.properties?.serverKeepAlive).toBeUndefined();
  });

  it('keep-alive 0 becomes 1,200 s and a session expiry over one hour becomes 3,600 s, both said in the CONNACK', async () => {
    // Act
    const connack = await connackOf('v5-clamp', {
      keepalive: 0,
      properties: { sessionExpiryInterval: 86_400 },
    });
    // Assess
    expect(connack.properties?.serverKeepAlive).toBe(1200);
    expect(connack.properties?.sessionExpiryInterval).toBe(3600);
  });

  it('refuses enhanced authentication (an Authentication Method) with CONNACK 0x8C', async () => {
    // Act
    const attempt = await tryConnect(broker, open, 'v5-auth-method', 5, {
      properties: { authenticationMethod: 'SCRAM-SHA-1' },
    });
    // Assess
    expect(attempt).toMatchObject({ connected: false, reasonCode: 0x8c });
  });
});

/** Connects and returns the CONNACK packet. */
async function connackOf(clientId: string, extra: Parameters<typeof connect>[4]): Promise<IConnackPacket> {
  const attempt = await tryConnect(broker, open, clientId, 5, extra);
  if (!attempt.connected) throw new Error(attempt.error);
  clients.push(attempt.client);
  return attempt.connack;
}

describe('properties forwarded (user properties, request/response, content type)', () => {
  it('delivers user properties, Response Topic, Correlation Data, Content Type and Payload Format Indicator to an MQTT 5 subscriber, and the message alone to an MQTT 3.1.1 one', async () => {
    // Prepare
    const publisher = await client('v5-props-pub');
    const subscriber5 = await client('v5-props-sub5');
    const subscriber4 = await client('v5-props-sub4', 4);
    await subscriber5.subscribeAsync('mqtt5/props/request', { qos: 1 });
    await subscriber4.subscribeAsync('mqtt5/props/request', { qos: 1 });
    const at5 = nextPublish(subscriber5, 'mqtt5/props/request');
    const at4 = nextPublish(subscriber4, 'mqtt5/props/request');
    // Act
    await publisher.publishAsync('mqtt5/props/request', '{"op":"reboot"}', {
      qos: 1,
      properties: {
        userProperties: { source: 'sensor-1', zone: ['a', 'b'] },
        responseTopic: 'mqtt5/props/response',
        correlationData: Buffer.from('c0ffee', 'hex'),
        contentType: 'application/json',
        payloadFormatIndicator: true,
      },
    });
    const packet5 = await at5;
    const packet4 = await at4;
    // Assess
    expect(packet5.properties).toMatchObject({
      userProperties: { source: 'sensor-1', zone: ['a', 'b'] },
      responseTopic: 'mqtt5/props/response',
      correlationData: Buffer.from('c0ffee', 'hex'),
      contentType: 'application/json',
      payloadFormatIndicator: true,
    });
    expect(packet4.payload.toString()).toBe('{"op":"reboot"}');
    expect(packet4.properties).toBeUndefined();
  });

  it('an MQTT 3.1.1 publisher reaches an MQTT 5 subscriber (cross-version)', async () => {
    // Prepare
    const publisher = await client('v5-cross-pub', 4);
    const subscriber = await client('v5-cross-sub', 5);
    await subscriber.subscribeAsync('mqtt5/cross', { qos: 1 });
    const arrived = nextPublish(subscriber, 'mqtt5/cross');
    // Act
    await publisher.publishAsync('mqtt5/cross', 'from 3.1.1', { qos: 1 });
    // Assess
    expect((await arrived).payload.toString()).toBe('from 3.1.1');
  });

  it('a data-plane Publish with MQTT 5 properties (responseTopic, contentType, user properties) reaches the MQTT 5 subscriber with them', async () => {
    // Prepare
    const subscriber = await client('v5-dataplane-sub');
    await subscriber.subscribeAsync('mqtt5/dataplane', { qos: 1 });
    const arrived = nextPublish(subscriber, 'mqtt5/dataplane');
    const data = new IoTDataPlaneClient({ ...emulator.clientConfig(), maxAttempts: 1 });
    // Act
    await data.send(
      new PublishCommand({
        topic: 'mqtt5/dataplane',
        qos: 1,
        payload: Buffer.from('{"x":1}'),
        responseTopic: 'mqtt5/dataplane/reply',
        contentType: 'application/json',
        userProperties: JSON.stringify([{ origin: 'lambda' }]),
        payloadFormatIndicator: 'UTF8_DATA',
        correlationData: Buffer.from('abc').toString('base64'),
      }),
    );
    data.destroy();
    // Assess
    expect((await arrived).properties).toMatchObject({
      responseTopic: 'mqtt5/dataplane/reply',
      contentType: 'application/json',
      userProperties: { origin: 'lambda' },
      payloadFormatIndicator: true,
      correlationData: Buffer.from('abc'),
    });
  });

  it('refuses a payload that is not UTF-8 when the Payload Format Indicator says it is: PUBACK 0x99', async () => {
    // Prepare
    const publisher = await client('v5-pfi');
    // Act
    const error = await publisher
      .publishAsync('mqtt5/pfi', Buffer.from([0xff, 0xfe]), {
        qos: 1,
        properties: { payloadFormatIndicator: true },
      })
      .then(
        () => undefined,
        (e: { code?: number }) => e,
      );
    // Assess
    expect(error?.code).toBe(0x99);
    expect(publisher.connected).toBe(true);
  });
});

describe('topic aliases', () => {
  it('resolves an alias the client set (Topic Alias Maximum 8)', async () => {
    // Prepare
    const publisher = await client('v5-alias-pub');
    const subscriber = await client('v5-alias-sub');
    await subscriber.subscribeAsync('mqtt5/alias/long/topic/name', { qos: 1 });
    const first = nextPublish(subscriber, 'mqtt5/alias/long/topic/name');
    await publisher.publishAsync('mqtt5/alias/long/topic/name', 'one', {
      qos: 1,
      properties: { topicAlias: 3 },
    });
    await first;
    const second = nextPublish(subscriber, 'mqtt5/alias/long/topic/name');
    // Act: the topic left empty, the alias alone.
    await publisher.publishAsync('', 'two', { qos: 1, properties: { topicAlias: 3 } });
    // Assess
    expect((await second).payload.toString()).toBe('two');
  });

  it('disconnects with 0x94 Topic Alias invalid for an alias over 8', async () => {
    // Prepare
    const publisher = await client('v5-alias-bad', 5, { properties: { topicAliasMaximum: 0 } });
    // Act
    const reason = await rawPublishDisconnects(publisher, {
      topic: 'mqtt5/alias/x',
      qos: 0,
      properties: { topicAlias: 9 },
    });
    // Assess
    expect(reason).toBe(0x94);
    await closed(publisher);
  });
});

describe('what IoT Core refuses, with its reason codes', () => {
  it('PUBLISH QoS 2: DISCONNECT 0x9B QoS not supported', async () => {
    // Prepare
    const publisher = await client('v5-qos2');
    // Act
    const reason = await rawPublishDisconnects(publisher, { topic: 'mqtt5/qos2', qos: 2, messageId: 7 });
    // Assess
    expect(reason).toBe(0x9b);
  });

  it('a publish the policy denies at QoS 1: PUBACK 0x87 Not authorized, the connection stays', async () => {
    // Prepare
    const publisher = await client('v5-denied');
    // Act
    const error = await publisher.publishAsync('elsewhere/topic', 'x', { qos: 1 }).then(
      () => undefined,
      (e: { code?: number }) => e,
    );
    // Assess
    expect(error?.code).toBe(0x87);
    expect(publisher.connected).toBe(true);
    expect(emulator.publishedOn('elsewhere/')).toHaveLength(0);
  });

  it('SUBSCRIBE: 0x8F for an invalid filter, 0xA1 with a Subscription Identifier, 0x97 for more than 8 filters in one SUBSCRIBE', async () => {
    // Prepare
    const c = await client('v5-suback');
    // Act
    const invalid = await rawSubscribe(c, ['mqtt5/a#']);
    const identifier = await rawSubscribe(c, ['mqtt5/id'], { subscriptionIdentifier: 7 });
    const nine = await rawSubscribe(
      c,
      Array.from({ length: 9 }, (_, i) => `mqtt5/nine/${i}`),
    );
    const eight = await rawSubscribe(
      c,
      Array.from({ length: 8 }, (_, i) => `mqtt5/eight/${i}`),
    );
    // Assess
    expect(invalid).toEqual([0x8f]);
    expect(identifier).toEqual([0xa1]);
    expect(nine).toEqual(Array(9).fill(0x97));
    expect(eight).toEqual(Array(8).fill(1));
  });

  it('the same refusals on MQTT 3.1.1 are SUBACK 0x80', async () => {
    // Prepare
    const c = await client('v4-suback', 4);
    // Act
    const invalid = await rawSubscribe(c, ['mqtt5/a#']);
    const nine = await rawSubscribe(
      c,
      Array.from({ length: 9 }, (_, i) => `mqtt5/nine4/${i}`),
    );
    // Assess
    expect(invalid).toEqual([0x80]);
    expect(nine).toEqual(Array(9).fill(0x80));
  });
});

describe('sessions and message expiry', () => {
  it.each(PROTOCOL_VERSIONS)(
    '$name: a persistent session keeps subscriptions and stores QoS 1 messages while offline (sessionPresent)',
    async ({ version }) => {
      // Prepare
      const id = `persist-v${version}`;
      const persistent =
        version === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
      const first = await client(id, version, persistent);
      await first.subscribeAsync('mqtt5/persist/+', { qos: 1 });
      await first.endAsync();
      const publisher = await client(`${id}-pub`, version);
      await publisher.publishAsync('mqtt5/persist/a', 'while offline', { qos: 1 });
      // Act
      let packet: Promise<IPublishPacket> | undefined;
      const attempt = await tryConnect(broker, open, id, version, persistent, (c) => {
        packet = nextPublish(c, 'mqtt5/persist/a');
      });
      if (!attempt.connected) throw new Error(attempt.error);
      clients.push(attempt.client);
      // Assess
      expect(attempt.connack.sessionPresent).toBe(true);
      expect((await packet)?.payload.toString()).toBe('while offline');
    },
  );

  it('MQTT 5: a stored message whose Message Expiry Interval has passed is not delivered', async () => {
    // Prepare
    const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } };
    const first = await client('v5-expiry', 5, persistent);
    await first.subscribeAsync('mqtt5/expiry/+', { qos: 1 });
    await first.endAsync();
    const publisher = await client('v5-expiry-pub');
    await publisher.publishAsync('mqtt5/expiry/short', 'gone', {
      qos: 1,
      properties: { messageExpiryInterval: 1 },
    });
    await publisher.publishAsync('mqtt5/expiry/long', 'kept', {
      qos: 1,
      properties: { messageExpiryInterval: 600 },
    });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // Act
    const topics: string[] = [];
    let long: Promise<IPublishPacket> | undefined;
    const attempt = await tryConnect(broker, open, 'v5-expiry', 5, persistent, (c) => {
      c.on('message', (topic) => topics.push(topic));
      long = nextPublish(c, 'mqtt5/expiry/long');
    });
    if (!attempt.connected) throw new Error(attempt.error);
    clients.push(attempt.client);
    const packet = (await long) as IPublishPacket;
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Assess: the remaining interval is sent on (≤ 600 s), the expired message is gone.
    expect(packet.properties?.messageExpiryInterval).toBeLessThanOrEqual(600);
    expect(topics).toEqual(['mqtt5/expiry/long']);
  });

  it('MQTT 5: Clean Start with Session Expiry 0 (the default) keeps nothing', async () => {
    // Prepare
    const first = await client('v5-clean');
    await first.subscribeAsync('mqtt5/clean/+', { qos: 1 });
    await first.endAsync();
    const publisher = await client('v5-clean-pub');
    // Act
    const second = await client('v5-clean', 5, { clean: false });
    const topics = await received(second, 300, () =>
      publisher.publishAsync('mqtt5/clean/a', 'x', { qos: 1 }),
    );
    // Assess
    expect(topics).toEqual([]);
  });
});

describe('shared subscriptions ($share/<ShareName>/<TopicFilter>)', () => {
  it('delivers each message to one member of the group, MQTT 3.1.1 and MQTT 5 members alike', async () => {
    // Prepare
    const member5 = await client('share-5');
    const member4 = await client('share-4', 4);
    expect(await subscribeCodes(member5, '$share/workers/mqtt5/jobs/+')).toEqual([1]);
    expect(await subscribeCodes(member4, '$share/workers/mqtt5/jobs/+')).toEqual([1]);
    const publisher = await client('share-pub');
    const got5: string[] = [];
    const got4: string[] = [];
    member5.on('message', (_t, payload) => got5.push(payload.toString()));
    member4.on('message', (_t, payload) => got4.push(payload.toString()));
    // Act
    for (let i = 0; i < 4; i += 1) await publisher.publishAsync('mqtt5/jobs/a', `job-${i}`, { qos: 1 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Assess
    expect([...got5, ...got4].sort()).toEqual(['job-0', 'job-1', 'job-2', 'job-3']);
    expect(got5.length).toBe(2);
    expect(got4.length).toBe(2);
  });

  it('is authorized on topicfilter/$share/<ShareName>/<TopicFilter>: another share name is refused (0x87)', async () => {
    // Prepare
    const c = await client('share-denied');
    // Act
    const codes = await subscribeCodes(c, '$share/others/mqtt5/jobs/+');
    // Assess
    expect(codes).toEqual([0x87]);
  });

  it('refuses a malformed shared subscription (0x8F) and No Local on a shared subscription (DISCONNECT 0x82)', async () => {
    // Prepare
    const c = await client('share-bad');
    // Act
    const malformed = await rawSubscribe(c, ['$share/workers']);
    const reason = disconnectReason(c);
    void rawSubscribe(c, ['$share/workers/mqtt5/jobs/+'], undefined, { nl: true });
    // Assess
    expect(malformed).toEqual([0x8f]);
    expect(await reason).toBe(0x82);
  });
});

describe('retained messages', () => {
  it('go to a subscription on the exact topic, not to a wildcard one (IoT Core), and need iot:RetainPublish', async () => {
    // Prepare
    const publisher = await client('retain-pub');
    await publisher.publishAsync('mqtt5/retained/state', 'on', { qos: 1, retain: true });
    const denied = await client('retain-denied', 5, {}, noRetain);
    const refused = await denied.publishAsync('mqtt5/retained/other', 'x', { qos: 1, retain: true }).then(
      () => undefined,
      (e: { code?: number }) => e,
    );
    const exact = await client('retain-exact');
    const wildcard = await client('retain-wildcard');
    // Act
    const exactTopics = await received(exact, 300, () =>
      exact.subscribeAsync('mqtt5/retained/state', { qos: 1 }),
    );
    const wildcardTopics = await received(wildcard, 300, () =>
      wildcard.subscribeAsync('mqtt5/retained/+', { qos: 1 }),
    );
    // Assess
    expect(exactTopics).toEqual(['mqtt5/retained/state']);
    expect(wildcardTopics).toEqual([]);
    expect(refused?.code).toBe(0x87);
  });
});
