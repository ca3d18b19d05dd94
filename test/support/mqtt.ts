/**
 * Real MQTT clients (the `mqtt` package) over mutual TLS against the local device endpoint.
 */
import mqtt, { type IConnackPacket, type MqttClient, type Packet } from 'mqtt';
import type { MqttBroker } from '../../local/mqtt/broker';

export interface DeviceIdentity {
  certificatePem: string;
  privateKeyPem: string;
}

/** MQTT protocol level: 4 = MQTT 3.1.1, 5 = MQTT 5. */
export type ProtocolVersion = 4 | 5;

/** Both protocol versions the endpoint serves, for `describe.each`. */
export const PROTOCOL_VERSIONS = [
  { version: 4 as const, name: 'MQTT 3.1.1' },
  { version: 5 as const, name: 'MQTT 5' },
];

/** The outcome of a connection attempt: a connected client, or how the endpoint ended it. */
export type ConnectAttempt =
  | { connected: true; client: MqttClient; connack: IConnackPacket }
  | { connected: false; error: string; reasonCode?: number };

/** Connects once (no reconnects) and reports whether the endpoint sent a CONNACK accepting it. */
export function tryConnect(
  broker: Pick<MqttBroker, 'url' | 'caPem'>,
  identity: DeviceIdentity,
  clientId: string,
  version: ProtocolVersion = 4,
  extra: Partial<mqtt.IClientOptions> = {},
  /** Called with the client before it connects (to listen for what arrives right after the CONNACK). */
  onClient?: (client: MqttClient) => void,
): Promise<ConnectAttempt> {
  return new Promise((resolve) => {
    const client = mqtt.connect(broker.url, {
      clientId,
      protocolVersion: version,
      clean: true,
      ...extra,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      ca: broker.caPem,
      cert: identity.certificatePem,
      key: identity.privateKeyPem,
    });
    onClient?.(client);
    let settled = false;
    const settle = (attempt: ConnectAttempt) => {
      if (settled) return;
      settled = true;
      if (!attempt.connected) client.end(true);
      resolve(attempt);
    };
    client.once('connect', (connack) => settle({ connected: true, client, connack }));
    client.once('error', (error) =>
      settle({
        connected: false,
        error: error.message,
        ...((error as { code?: number }).code !== undefined
          ? { reasonCode: (error as { code?: number }).code }
          : {}),
      }),
    );
    client.once('close', () => settle({ connected: false, error: 'connection closed without CONNACK' }));
  });
}

/** Connects or throws. */
export async function connect(
  broker: Pick<MqttBroker, 'url' | 'caPem'>,
  identity: DeviceIdentity,
  clientId: string,
  version: ProtocolVersion = 4,
  extra: Partial<mqtt.IClientOptions> = {},
): Promise<MqttClient> {
  const attempt = await tryConnect(broker, identity, clientId, version, extra);
  if (!attempt.connected) throw new Error(`${clientId} could not connect: ${attempt.error}`);
  return attempt.client;
}

/** Resolves with the next message on one of `topics` (exact topic names). */
export function nextMessage(
  client: MqttClient,
  topics: string[],
  timeoutMs = 10_000,
): Promise<{ topic: string; payload: Buffer }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new Error(`no message on ${topics.join(', ')} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (topic: string, payload: Buffer) => {
      if (!topics.includes(topic)) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve({ topic, payload });
    };
    client.on('message', onMessage);
  });
}

/** Resolves when the client's connection closes. */
export function closed(client: MqttClient, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!client.connected && client.disconnected) return resolve();
    const timer = setTimeout(
      () => reject(new Error(`the connection stayed open for ${timeoutMs} ms`)),
      timeoutMs,
    );
    client.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Subscribes and resolves with the SUBACK's return codes (128 = refused), whatever they are. */
export function subscribeCodes(
  client: MqttClient,
  filter: string | string[],
  qos: 0 | 1 = 1,
  properties?: mqtt.IClientSubscribeOptions['properties'],
): Promise<number[]> {
  return new Promise((resolve) => {
    const onPacket = (packet: Packet) => {
      if (packet.cmd !== 'suback') return;
      client.off('packetreceive', onPacket);
      resolve(packet.granted.map(Number));
    };
    client.on('packetreceive', onPacket);
    client.subscribe(filter, { qos, ...(properties ? { properties } : {}) }, () => undefined);
  });
}
