/**
 * IoT Core's device endpoint on localhost: an MQTT 3.1.1 broker (aedes) behind mutual TLS, in front of
 * the IoT emulator. The TLS layer asks for a client certificate but does not judge it; the emulator does,
 * as IoT Core would:
 * - ACTIVE certificate whose policies allow iot:Connect on `client/<clientId>` → CONNACK accepted, a
 *   presence `connected` event; when the connection ends, a `disconnected` event with the reason
 *   (CLIENT_INITIATED_DISCONNECT, CONNECTION_LOST, MQTT_KEEP_ALIVE_TIMEOUT, DUPLICATE_CLIENTID, AUTH_ERROR);
 * - certificate from a registered CA with auto-registration (JITR) → registered PENDING_ACTIVATION, the
 *   `$aws/events/certificates/registered/<caId>` event published, connection dropped;
 * - unknown, inactive, revoked, expired, or Connect denied → connection dropped without a CONNACK;
 * - a client id over 128 UTF-8 bytes or MQTT 3.1 → CONNACK 0x02 / 0x01 and closed (IoT Core's limits).
 * Publish, subscribe and receive are checked against the policies (explicit Deny wins, deny by default):
 * a denied PUBLISH closes the connection, a denied SUBSCRIBE gets a SUBACK failure (0x80), a message the
 * client may not receive is not delivered. Device publishes go through the emulator's gateway (so the
 * rules engine sees them with `principal()` and `clientid()`); the Fleet Provisioning MQTT API is answered
 * on the requesting connection only; messages the emulator publishes (presence, data-plane Publish from a
 * Lambda, …) are delivered to subscribed clients.
 */

import { createHash } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { Aedes, type Client, type PublishPacket } from 'aedes';
import { MAX_CLIENT_ID_BYTES } from '../../shared/domain/client-ids';
import type { DisconnectReason, IotEmulator, PublishedMessage, Session } from '../iot-emulator/index';
import { topicMatches } from '../iot-sql';
import { exportPrivateKeyPem, generateKeyPair, x509 } from '../pki';
import { encodePayload, handleFleetRequest, parseFleetTopic } from './fleet-api';
import { evaluatePolicies, type MqttAction, type PolicyConnection } from './policy';

/** Options of {@link startMqttBroker}. */
export interface MqttBrokerOptions {
  emulator: IotEmulator;
  /** TCP port; default a free one. */
  port?: number;
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Called for every refused connection (reason as the emulator's gateway gives it). */
  onRefused?: (refusal: ConnectionRefusal) => void;
}

/** A connection the endpoint refused. */
export interface ConnectionRefusal {
  clientId: string;
  certificateId?: string;
  reason: string;
  at: string;
}

/** A running endpoint. */
export interface MqttBroker {
  /** `mqtts://127.0.0.1:<port>` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The CA a client must trust (the emulator's CA, which issued the server certificate). */
  readonly caPem: string;
  /** Connected MQTT clients. */
  readonly connections: number;
  /** The last refused connections (at most 1,000), oldest first. */
  readonly refusals: readonly ConnectionRefusal[];
  stop(): Promise<void>;
}

interface Connection {
  session: Session;
  certificateArn: string;
  /** Why the endpoint closed it, when it did. */
  closeReason?: DisconnectReason;
}

/** Thrown to aedes to refuse a CONNECT; the socket is already closed (no CONNACK, like IoT Core). */
class RefusedError extends Error {
  readonly returnCode = 5;
}

/** Starts the device endpoint for `emulator`. */
export async function startMqttBroker(options: MqttBrokerOptions): Promise<MqttBroker> {
  const { emulator } = options;
  const host = options.host ?? '127.0.0.1';
  const registry = emulator.registry;
  const gateway = emulator.devices;
  const connections = new WeakMap<Client, Connection>();
  const clientsBySession = new Map<string, Client>();
  const refusals: ConnectionRefusal[] = [];
  const arn = (resource: string) => `arn:aws:iot:${emulator.region}:${emulator.accountId}:${resource}`;

  const refuse = (client: Client, reason: string, certificateId?: string) => {
    const refusal = {
      clientId: client.id,
      ...(certificateId ? { certificateId } : {}),
      reason,
      at: new Date().toISOString(),
    };
    refusals.push(refusal);
    if (refusals.length > 1000) refusals.shift();
    options.onRefused?.(refusal);
  };

  /** The policy documents that apply to a connection, and what its policy variables resolve to. */
  const policyView = (clientId: string, certificateArn: string) => {
    const documents: string[] = [];
    const add = (target: string) => {
      for (const name of registry.targetPolicies.get(target) ?? []) {
        const policy = registry.policies.get(name);
        if (policy) documents.push(policy.policyDocument);
      }
    };
    add(certificateArn);
    const thing = registry.things.get(clientId);
    const attached = thing?.principals.has(certificateArn) === true;
    if (thing && attached) {
      for (const groupName of thing.groups) {
        const group = registry.thingGroups.get(groupName);
        if (!group) continue;
        for (const ancestor of [...registry.rootToParent(group), group]) add(ancestor.thingGroupArn);
      }
    }
    const connection: PolicyConnection = { clientId, ...(attached ? { thingName: clientId } : {}) };
    return { documents, connection };
  };

  const allowed = (clientId: string, certificateArn: string, action: MqttAction, resource: string) => {
    const { documents, connection } = policyView(clientId, certificateArn);
    return evaluatePolicies(documents, action, arn(resource), connection) === 'ALLOW';
  };

  // A certificate deactivated or revoked while connected (e.g. by the quarantine worker) ends the
  // connection at its next action, as IoT Core stops honouring it.
  const certificateActive = (connection: Connection) =>
    registry.certificates.get(connection.session.certificateId)?.status === 'ACTIVE';

  const closeWith = (client: Client, reason: DisconnectReason) => {
    const connection = connections.get(client);
    if (connection && !connection.closeReason) connection.closeReason = reason;
    client.close();
  };

  const aedes = await Aedes.createBroker({
    heartbeatInterval: 3_600_000,
    connectTimeout: 10_000,
    // IoT Core's message broker limits, checked on the CONNECT packet before anything else:
    // MQTT 3.1.1 only here (IoT Core speaks 3.1.1 and 5; 3.1, protocol level 3, is refused) and a
    // client id of at most 128 UTF-8 bytes. Refused as the MQTT 3.1.1 spec says a server refuses
    // them: CONNACK 0x01 (unacceptable protocol level, [MQTT-3.1.2-2]) or 0x02 (identifier rejected,
    // [MQTT-3.1.3-9]), then the connection is closed; no presence event, nothing else happens.
    // @see https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits
    // @see https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html
    preConnect: (client, packet, callback) => {
      const connect = packet as { protocolVersion?: number; clientId?: string };
      const refusal =
        connect.protocolVersion !== 4
          ? {
              code: 1,
              reason: `UNSUPPORTED_PROTOCOL_VERSION: protocol level ${connect.protocolVersion ?? '?'} (MQTT 3.1.1 is level 4)`,
            }
          : Buffer.byteLength(connect.clientId ?? '', 'utf8') > MAX_CLIENT_ID_BYTES
            ? {
                code: 2,
                reason: `CLIENT_ID_TOO_LONG: ${Buffer.byteLength(connect.clientId ?? '', 'utf8')} bytes (at most ${MAX_CLIENT_ID_BYTES})`,
              }
            : undefined;
      if (!refusal) return callback(null, true);
      refuse({ id: (connect.clientId ?? '').slice(0, MAX_CLIENT_ID_BYTES) } as Client, refusal.reason);
      const socket = client.conn as TLSSocket;
      // CONNACK: fixed header 0x20, remaining length 2, no session present, the return code.
      socket.end(Buffer.from([0x20, 0x02, 0x00, refusal.code]));
      callback(new RefusedError(refusal.reason), false);
    },
    authenticate: (client, _username, _password, done) => {
      const socket = client.conn as TLSSocket;
      const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
      const drop = (reason: string, certificateId?: string) => {
        refuse(client, reason, certificateId);
        // IoT Core closes the connection without a CONNACK.
        socket.destroy();
        done(new RefusedError(reason), false);
      };
      if (!peer?.raw) return drop('NO_CLIENT_CERTIFICATE');
      const certificateId = createHash('sha256').update(peer.raw).digest('hex');
      const known = registry.certificates.get(certificateId);
      if (
        known?.status === 'ACTIVE' &&
        !allowed(client.id, known.certificateArn, 'iot:Connect', `client/${client.id}`)
      ) {
        return drop('CONNECT_NOT_AUTHORIZED', certificateId);
      }
      gateway
        .connect({
          certificatePem: new x509.X509Certificate(peer.raw).toString('pem'),
          clientId: client.id,
          ipAddress: socket.remoteAddress ?? '127.0.0.1',
        })
        .then(
          (outcome) => {
            if (!outcome.accepted) return drop(outcome.reason, outcome.certificateId);
            const session = gateway.sessions.get(client.id);
            if (!session || session.sessionIdentifier !== outcome.sessionIdentifier) {
              return drop('SESSION_REPLACED', certificateId);
            }
            if (client.closed) {
              // The socket went away while the gateway was deciding.
              void gateway.disconnect({
                clientId: client.id,
                sessionIdentifier: session.sessionIdentifier,
                reason: 'CONNECTION_LOST',
              });
              return done(new RefusedError('CONNECTION_LOST'), false);
            }
            connections.set(client, { session, certificateArn: registry.certificateArn(certificateId) });
            clientsBySession.set(session.sessionIdentifier, client);
            done(null, true);
          },
          (error: unknown) => drop(`SERVER_ERROR: ${error instanceof Error ? error.message : String(error)}`),
        );
    },
    authorizePublish: (client, packet, callback) => {
      // The broker's own publishes (no client) are the emulator's messages, already authorised.
      if (!client) return callback();
      const connection = connections.get(client);
      if (!connection) return callback(new Error('not connected'));
      const { clientId, certificateId } = connection.session;
      if (!certificateActive(connection)) {
        connection.closeReason = 'AUTH_ERROR';
        return callback(new Error('the certificate is no longer ACTIVE'));
      }
      if (!allowed(clientId, connection.certificateArn, 'iot:Publish', `topic/${packet.topic}`)) {
        // IoT Core disconnects an MQTT 3.1.1 client that publishes where it may not.
        connection.closeReason = 'AUTH_ERROR';
        return callback(new Error(`not authorized to publish on ${packet.topic}`));
      }
      const request = parseFleetTopic(packet.topic);
      if (request) {
        const payload = Buffer.from(packet.payload);
        callback();
        void handleFleetRequest(gateway, request, payload, { certificateId, clientId }).then(
          (reply) => replyTo(client, reply.topic, encodePayload(request.format, reply.response)),
          () => undefined,
        );
        return;
      }
      gateway
        .publish({
          clientId,
          topic: packet.topic,
          payload: Buffer.from(packet.payload),
          qos: packet.qos === 0 ? 0 : 1,
        })
        .then(
          (outcome) => {
            if (outcome.accepted) return callback();
            connection.closeReason = 'CLIENT_ERROR';
            callback(new Error(outcome.message));
          },
          (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
        );
    },
    authorizeSubscribe: (client, subscription, callback) => {
      const connection = connections.get(client);
      if (!connection) return callback(null, null);
      if (!certificateActive(connection)) {
        closeWith(client, 'AUTH_ERROR');
        return callback(null, null);
      }
      const ok = allowed(
        connection.session.clientId,
        connection.certificateArn,
        'iot:Subscribe',
        `topicfilter/${subscription.topic}`,
      );
      // A null subscription is a SUBACK failure (0x80) for this filter; the connection stays.
      callback(null, ok ? { ...subscription, qos: Math.min(subscription.qos, 1) as 0 | 1 } : null);
    },
    authorizeForward: (client, packet) => {
      // Fleet Provisioning requests are for IoT Core, not for other subscribers.
      if (parseFleetTopic(packet.topic)) return null;
      const connection = connections.get(client);
      if (!connection) return null;
      if (!certificateActive(connection)) {
        setImmediate(() => closeWith(client, 'AUTH_ERROR'));
        return null;
      }
      return allowed(
        connection.session.clientId,
        connection.certificateArn,
        'iot:Receive',
        `topic/${packet.topic}`,
      )
        ? packet
        : null;
    },
  });

  /** Delivers a Fleet Provisioning reply to the requesting connection only, when it subscribed to it. */
  const replyTo = (client: Client, topic: string, payload: Buffer) => {
    if (client.closed) return;
    const subscriptions = (client as unknown as { subscriptions: Record<string, { qos: number }> })
      .subscriptions;
    const matching = Object.entries(subscriptions ?? {}).filter(([filter]) => topicMatches(filter, topic));
    if (matching.length === 0) return;
    const qos = Math.max(...matching.map(([, sub]) => sub.qos)) > 0 ? 1 : 0;
    client.publish(
      { cmd: 'publish', topic, payload, qos, retain: false, dup: false } as PublishPacket,
      () => {
        /* a write error closes the connection; nothing else to do */
      },
    );
  };

  aedes.on('keepaliveTimeout', (client) => {
    const connection = connections.get(client);
    if (connection && !connection.closeReason) connection.closeReason = 'MQTT_KEEP_ALIVE_TIMEOUT';
  });
  aedes.on('clientDisconnect', (client) => {
    const connection = connections.get(client);
    if (!connection) return;
    connections.delete(client);
    clientsBySession.delete(connection.session.sessionIdentifier);
    const reason =
      connection.closeReason ??
      ((client as unknown as { _disconnected?: boolean })._disconnected
        ? 'CLIENT_INITIATED_DISCONNECT'
        : 'CONNECTION_LOST');
    // A session the gateway already ended (DUPLICATE_CLIENTID) is not ended twice.
    void gateway.disconnect({
      clientId: connection.session.clientId,
      sessionIdentifier: connection.session.sessionIdentifier,
      reason,
    });
  });
  // The gateway ends a session itself when another connection takes its client id.
  const offDisconnect = gateway.onDisconnect((session, reason) => {
    const client = clientsBySession.get(session.sessionIdentifier);
    if (!client) return;
    clientsBySession.delete(session.sessionIdentifier);
    const connection = connections.get(client);
    if (connection) connection.closeReason = reason;
    closeWith(client, reason);
  });
  // What the emulator publishes (presence, registry events, data-plane Publish) reaches subscribers;
  // a device's own MQTT publish is routed by the broker already.
  const offPublish = emulator.onPublish((message: PublishedMessage) => {
    if (message.meta.source === 'device' && message.meta.clientId && isMqttClient(message.meta.clientId))
      return;
    aedes.publish(
      {
        cmd: 'publish',
        topic: message.topic,
        payload: message.payload,
        qos: message.meta.qos,
        retain: message.meta.retain,
        dup: false,
      } as PublishPacket,
      () => undefined,
    );
  });
  const isMqttClient = (clientId: string) => {
    const session = gateway.sessions.get(clientId);
    return session !== undefined && clientsBySession.has(session.sessionIdentifier);
  };

  const { certificatePem, privateKeyPem } = await serverCertificate(emulator);
  const server: Server = createServer(
    {
      key: privateKeyPem,
      cert: certificatePem,
      requestCert: true,
      // The emulator's registry decides (JITR, statuses), not the TLS layer's trust store.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      // Small MQTT packets: without this, Nagle + delayed ACK add ~40 ms to a CONNACK on loopback.
      noDelay: true,
    },
    (socket) => {
      aedes.handle(socket);
    },
  );
  server.on('tlsClientError', () => undefined);
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let stopped: Promise<void> | undefined;
  return {
    url: `mqtts://${host}:${port}`,
    host,
    port,
    caPem: emulator.issuer.certificatePem,
    get connections() {
      return aedes.connectedClients;
    },
    refusals,
    stop: () => {
      stopped ??= (async () => {
        offPublish();
        offDisconnect();
        // The server's close completes once every connection has ended: aedes ends the MQTT ones,
        // what is left (a handshake in progress) is destroyed.
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await serverClosed;
      })();
      return stopped;
    },
  };
}

/** A server certificate for localhost / 127.0.0.1 from the emulator's CA. */
async function serverCertificate(
  emulator: IotEmulator,
): Promise<{ certificatePem: string; privateKeyPem: string }> {
  const keys = await generateKeyPair();
  const ca = emulator.issuer;
  const now = Date.now();
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: `01${createHash('sha256').update(String(now)).digest('hex').slice(0, 30)}`,
    subject: 'CN=localhost',
    issuer: ca.certificate.subjectName,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 365 * 86_400_000),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
      ]),
    ],
  });
  return {
    certificatePem: certificate.toString('pem'),
    privateKeyPem: await exportPrivateKeyPem(keys.privateKey),
  };
}
