/**
 * A device's side of the local MQTT endpoint (the `mqtt` package over mutual TLS): connect once and,
 * when the endpoint drops the connection as IoT Core does (no CONNACK, no reason), find out why from the
 * control plane; call the Fleet Provisioning MQTT API in JSON or CBOR and wait for its reply.
 */
import { DescribeCertificateCommand, type IoTClient } from '@aws-sdk/client-iot';
import mqtt, { type MqttClient } from 'mqtt';
import { certificateId as computeCertificateId, parseCertificate } from '../pki';
import { decodePayload, encodePayload, type PayloadFormat } from './fleet-api';

/** Where and who: the endpoint, the CA that signed its server certificate, and the device's identity. */
export interface DeviceConnectOptions {
  url: string;
  caPem: string;
  certificatePem: string;
  privateKeyPem: string;
  clientId: string;
  /** The control plane, to explain a dropped connection (DescribeCertificate). */
  iot?: IoTClient;
  connectTimeoutMs?: number;
  keepaliveSeconds?: number;
}

/** Why the endpoint dropped a connection, as far as the device can find out. */
export type DropReason =
  | 'CERTIFICATE_EXPIRED'
  | 'UNKNOWN_CERTIFICATE'
  | 'PENDING_ACTIVATION'
  | 'CERTIFICATE_INACTIVE'
  | 'CERTIFICATE_REVOKED'
  | 'CERTIFICATE_PENDING_TRANSFER'
  | 'ACTIVATED_ON_CONNECT'
  | 'CONNECT_NOT_AUTHORIZED'
  | 'CONNECTION_FAILED';

export type DeviceConnectResult =
  | { connected: true; client: MqttClient; certificateId: string }
  | { connected: false; reason: DropReason; certificateId: string; detail: string };

/** One connection attempt (no automatic reconnects). */
export async function connectDevice(options: DeviceConnectOptions): Promise<DeviceConnectResult> {
  const certificateId = computeCertificateId(options.certificatePem);
  const attempt = await new Promise<{ client?: MqttClient; error?: string; wasStatus?: string }>(
    (resolve) => {
      const client = mqtt.connect(options.url, {
        clientId: options.clientId,
        protocolVersion: 4,
        clean: true,
        reconnectPeriod: 0,
        keepalive: options.keepaliveSeconds ?? 60,
        connectTimeout: options.connectTimeoutMs ?? 15_000,
        ca: options.caPem,
        cert: options.certificatePem,
        key: options.privateKeyPem,
        // Passed on to tls.connect: small MQTT packets are not held back by Nagle's algorithm.
        noDelay: true,
      } as mqtt.IClientOptions);
      let settled = false;
      const settle = (result: { client?: MqttClient; error?: string }) => {
        if (settled) return;
        settled = true;
        if (!result.client) client.end(true);
        resolve(result);
      };
      client.once('connect', () => settle({ client }));
      client.once('error', (error) => settle({ error: error.message }));
      client.once('close', () => settle({ error: 'the endpoint closed the connection without a CONNACK' }));
    },
  );
  if (attempt.client) return { connected: true, client: attempt.client, certificateId };
  const detail = attempt.error ?? 'connection failed';
  return { connected: false, reason: await explainDrop(options, certificateId), certificateId, detail };
}

async function explainDrop(options: DeviceConnectOptions, certificateId: string): Promise<DropReason> {
  const certificate = parseCertificate(options.certificatePem);
  const now = new Date();
  if (certificate.notAfter < now || certificate.notBefore > now) return 'CERTIFICATE_EXPIRED';
  if (!options.iot) return 'CONNECTION_FAILED';
  try {
    const out = await options.iot.send(new DescribeCertificateCommand({ certificateId }));
    switch (out.certificateDescription?.status) {
      case 'PENDING_ACTIVATION':
        return 'PENDING_ACTIVATION';
      case 'INACTIVE':
        return 'CERTIFICATE_INACTIVE';
      case 'REVOKED':
        return 'CERTIFICATE_REVOKED';
      case 'PENDING_TRANSFER':
        return 'CERTIFICATE_PENDING_TRANSFER';
      case 'ACTIVE':
        // JITP activates the certificate on the connection it refuses; otherwise a policy said no.
        return (out.certificateDescription?.lastModifiedDate?.getTime() ?? 0) > Date.now() - 10_000 &&
          out.certificateDescription?.caCertificateId
          ? 'ACTIVATED_ON_CONNECT'
          : 'CONNECT_NOT_AUTHORIZED';
      default:
        return 'CONNECTION_FAILED';
    }
  } catch (error) {
    return (error as { name?: string }).name === 'ResourceNotFoundException'
      ? 'UNKNOWN_CERTIFICATE'
      : 'CONNECTION_FAILED';
  }
}

/** Fleet Provisioning MQTT API request topics. */
export const fleetTopics = {
  createKeysAndCertificate: (format: PayloadFormat) => `$aws/certificates/create/${format}`,
  createCertificateFromCsr: (format: PayloadFormat) => `$aws/certificates/create-from-csr/${format}`,
  registerThing: (templateName: string, format: PayloadFormat) =>
    `$aws/provisioning-templates/${templateName}/provision/${format}`,
};

/** A reply of the Fleet Provisioning MQTT API. */
export interface FleetApiReply {
  accepted: boolean;
  topic: string;
  body: Record<string, unknown>;
}

const subscribed = new WeakMap<MqttClient, Set<string>>();

/**
 * Publishes one Fleet Provisioning request on `topic` and resolves with the reply on `<topic>/accepted`
 * or `<topic>/rejected` (subscribed to first, as the API asks).
 * @throws Error when no reply arrives within `timeoutMs` or the connection closes first.
 */
export async function fleetRequest(
  client: MqttClient,
  topic: string,
  format: PayloadFormat,
  request: object,
  timeoutMs = 30_000,
): Promise<FleetApiReply> {
  const accepted = `${topic}/accepted`;
  const rejected = `${topic}/rejected`;
  const done = subscribed.get(client) ?? new Set<string>();
  subscribed.set(client, done);
  if (!done.has(topic)) {
    await client.subscribeAsync([accepted, rejected], { qos: 1 });
    done.add(topic);
  }
  const reply = new Promise<FleetApiReply>((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      client.off('message', onMessage);
      client.off('close', onClose);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no reply on ${topic}/accepted|rejected within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (replyTopic: string, payload: Buffer) => {
      if (replyTopic !== accepted && replyTopic !== rejected) return;
      cleanup();
      try {
        resolve({
          accepted: replyTopic === accepted,
          topic: replyTopic,
          body: decodePayload(format, payload),
        });
      } catch (error) {
        reject(error);
      }
    };
    const onClose = () => {
      cleanup();
      reject(new Error(`the connection closed before the reply on ${topic}`));
    };
    client.on('message', onMessage);
    client.once('close', onClose);
  });
  await client.publishAsync(topic, encodePayload(format, request), { qos: 1 });
  return reply;
}
