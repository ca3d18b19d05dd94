/**
 * A device's side of the MQTT endpoint, as firmware does it: MQTT 3.1.1 over mutual TLS with the
 * `mqtt` package, one connection attempt at a time (no automatic reconnects), the Fleet Provisioning
 * MQTT API in JSON, and waiting for messages on the device's own topics.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';

/** Where devices connect: `mqtts://<host>:<port>`, and the CA to trust (none: Node's roots, as on AWS). */
export interface MqttEndpoint {
  url: string;
  caPem?: string;
}

export interface DeviceIdentity {
  certificatePem: string;
  privateKeyPem: string;
  /** Sent after the certificate in the TLS handshake (JITR: the registered CA that signed it). */
  chainPem?: string;
}

export type ConnectAttempt = { connected: true; client: MqttClient } | { connected: false; error: string };

/**
 * AWS IoT Core accepts one CONNECT per second per client id (a hard quota); faster attempts are
 * throttled. Every connection of the suite keeps to it, on both targets.
 */
const CONNECT_SPACING_MS = 1100;
const lastConnect = new Map<string, number>();

async function paced(clientId: string): Promise<void> {
  const wait = (lastConnect.get(clientId) ?? 0) + CONNECT_SPACING_MS - Date.now();
  if (wait > 0) await sleep(wait);
  lastConnect.set(clientId, Date.now());
}

/** Connections still open, ended by `endAll` after a file (also when a test failed half-way). */
const open = new Set<MqttClient>();

/** Ends every connection this process still has open. */
export async function endAll(): Promise<void> {
  await Promise.all([...open].map((client) => end(client)));
  open.clear();
}

/** Connects once and says whether the endpoint accepted (CONNACK) or dropped the connection. */
export async function tryConnect(
  endpoint: MqttEndpoint,
  identity: DeviceIdentity,
  clientId: string,
  timeoutMs = 20_000,
): Promise<ConnectAttempt> {
  await paced(clientId);
  return new Promise((resolve) => {
    const client = mqtt.connect(endpoint.url, {
      clientId,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      keepalive: 30,
      ...(endpoint.caPem ? { ca: endpoint.caPem } : {}),
      cert: identity.chainPem
        ? `${identity.certificatePem.trim()}\n${identity.chainPem.trim()}\n`
        : identity.certificatePem,
      key: identity.privateKeyPem,
    });
    let settled = false;
    const settle = (attempt: ConnectAttempt) => {
      if (settled) return;
      settled = true;
      if (!attempt.connected) client.end(true);
      resolve(attempt);
    };
    client.once('connect', () => {
      open.add(client);
      client.once('close', () => open.delete(client));
      settle({ connected: true, client });
    });
    client.once('error', (error) => settle({ connected: false, error: error.message }));
    client.once('close', () => settle({ connected: false, error: 'closed without a CONNACK' }));
  });
}

/** Connects or throws with why. */
export async function connect(
  endpoint: MqttEndpoint,
  identity: DeviceIdentity,
  clientId: string,
): Promise<MqttClient> {
  const attempt = await tryConnect(endpoint, identity, clientId);
  if (!attempt.connected) throw new Error(`${clientId} could not connect: ${attempt.error}`);
  return attempt.client;
}

/** Resolves when the connection closes (the endpoint dropped it, or another took its client id). */
export function closed(client: MqttClient, timeoutMs = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (client.disconnected) return resolve();
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

/** A JSON message a device received. */
export interface Received {
  topic: string;
  body: Record<string, unknown>;
}

/**
 * Starts keeping what arrives on `topics` (exact names) from now on; `next` resolves with the first
 * kept message, waiting up to `timeoutMs` from the moment it is called.
 */
export function inbox(
  client: MqttClient,
  topics: string[],
): { next(timeoutMs?: number): Promise<Received>; stop(): void } {
  const kept: Received[] = [];
  const waiting: Array<(message: Received) => void> = [];
  const onMessage = (topic: string, payload: Buffer) => {
    if (!topics.includes(topic)) return;
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    } catch {
      body = { unparsable: payload.toString('utf8') };
    }
    const waiter = waiting.shift();
    if (waiter) waiter({ topic, body });
    else kept.push({ topic, body });
  };
  client.on('message', onMessage);
  return {
    next: (timeoutMs = 30_000) => {
      const first = kept.shift();
      if (first) return Promise.resolve(first);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const index = waiting.indexOf(deliver);
          if (index >= 0) waiting.splice(index, 1);
          reject(new Error(`no message on ${topics.join(' | ')} within ${timeoutMs} ms`));
        }, timeoutMs);
        const deliver = (message: Received) => {
          clearTimeout(timer);
          resolve(message);
        };
        waiting.push(deliver);
      });
    },
    stop: () => {
      client.off('message', onMessage);
    },
  };
}

/** Resolves with the next message on one of `topics` (exact names), parsed as JSON. */
export function nextJson(client: MqttClient, topics: string[], timeoutMs = 30_000): Promise<Received> {
  const messages = inbox(client, topics);
  return messages.next(timeoutMs).finally(() => messages.stop());
}

/**
 * One request / reply of an MQTT request API (Fleet Provisioning, fleetgate's rotation): subscribe
 * to `<replyBase>/accepted` and `/rejected` first (answers are not retained), publish, wait.
 */
export async function request(
  client: MqttClient,
  topic: string,
  body: object,
  options: { replyBase?: string; timeoutMs?: number } = {},
): Promise<{ accepted: boolean; body: Record<string, unknown> }> {
  const base = options.replyBase ?? topic;
  const accepted = `${base}/accepted`;
  const rejected = `${base}/rejected`;
  const granted = await client.subscribeAsync([accepted, rejected], { qos: 1 });
  const refused = granted.filter((grant) => grant.qos === 128);
  if (refused.length > 0) throw new Error(`SUBSCRIBE refused: ${refused.map((g) => g.topic).join(', ')}`);
  const reply = nextJson(client, [accepted, rejected], options.timeoutMs);
  await client.publishAsync(topic, JSON.stringify(body), { qos: 1 });
  const { topic: replyTopic, body: answer } = await reply;
  return { accepted: replyTopic === accepted, body: answer };
}

/** Fleet Provisioning MQTT API topics (JSON). */
export const fleetApi = {
  createFromCsr: '$aws/certificates/create-from-csr/json',
  registerThing: (templateName: string) => `$aws/provisioning-templates/${templateName}/provision/json`,
};

/** fleetgate's rotation topics for a thing. */
export const rotationTopics = (thingName: string) => ({
  request: `fleetgate/${thingName}/rotate/request`,
  replyBase: `fleetgate/${thingName}/rotate`,
});

/** Ends a connection, ignoring one that is already gone. */
export async function end(client: MqttClient | undefined): Promise<void> {
  if (!client) return;
  await client.endAsync().catch(() => undefined);
}
