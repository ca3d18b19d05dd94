/**
 * IoT Core's device endpoint on localhost: MQTT 3.1.1 and MQTT 5 behind mutual TLS, in front of the IoT
 * emulator. One session layer serves both protocol versions (packets parsed and written by `mqtt-packet`);
 * the version only decides how a decision is said on the wire (docs/mqtt-endpoint.md explains why the
 * endpoint is not built on an MQTT broker package).
 *
 * The TLS layer asks for a client certificate but does not judge it; the emulator does, as IoT Core would:
 * - ACTIVE certificate whose policies allow iot:Connect on `client/<clientId>` → CONNACK accepted, a
 *   presence `connected` event; when the connection ends, a `disconnected` event with the reason
 *   (CLIENT_INITIATED_DISCONNECT, CONNECTION_LOST, MQTT_KEEP_ALIVE_TIMEOUT, DUPLICATE_CLIENTID, AUTH_ERROR,
 *   CLIENT_ERROR, SERVER_INITIATED_DISCONNECT);
 * - certificate from a registered CA with auto-registration (JITR) → registered PENDING_ACTIVATION, the
 *   `$aws/events/certificates/registered/<caId>` event published, connection dropped;
 * - unknown, inactive, revoked, expired certificate → connection dropped without a CONNACK;
 * - iot:Connect denied → dropped without a CONNACK (3.1.1), CONNACK 0x87 Not authorized (5).
 * Publish, subscribe and receive are checked against the policies (explicit Deny wins, deny by default):
 * a denied PUBLISH closes a 3.1.1 connection and gets PUBACK 0x87 on MQTT 5 (QoS 1; a denied QoS 0 publish
 * closes it with DISCONNECT 0x87); a denied SUBSCRIBE gets a SUBACK failure (0x80; 0x87 on MQTT 5) for that
 * filter; a message the client may not receive is not delivered. Device publishes go through the
 * emulator's gateway (so the rules engine sees them with `principal()` and `clientid()`); the Fleet
 * Provisioning MQTT API is answered on the requesting connection only; messages the emulator publishes
 * (presence, Device Shadow replies, data-plane Publish from a Lambda, …) are delivered to subscribers.
 */

import { createHash, randomUUID } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { TextDecoder } from 'node:util';
import mqttPacket, {
  type IConnectPacket,
  type IDisconnectPacket,
  type IPublishPacket,
  type ISubscribePacket,
  type IUnsubscribePacket,
  type Packet,
} from 'mqtt-packet';
import type { DisconnectReason, IotEmulator, PublishedMessage, Session } from '../iot-emulator/index';
import { topicMatches } from '../iot-sql';
import { exportPrivateKeyPem, generateKeyPair, x509 } from '../pki';
import { connectRefusal } from './connect-rules';
import { encodePayload, handleFleetRequest, parseFleetTopic } from './fleet-api';
import { evaluatePolicies, type MqttAction, type PolicyConnection } from './policy';
import {
  connackProperties,
  effectiveKeepAlive,
  LIMITS,
  parseSharedFilter,
  ReasonCode,
  SUBACK_FAILURE_V4,
  validTopicFilter,
  validTopicName,
} from './protocol';

/** Options of {@link startMqttBroker}. */
export interface MqttBrokerOptions {
  emulator: IotEmulator;
  /** TCP port; default a free one. */
  port?: number;
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Called for every refused connection (reason as the emulator's gateway gives it). */
  onRefused?: (refusal: ConnectionRefusal) => void;
  /** Called for every connection the endpoint closes itself (policy, certificate no longer ACTIVE, takeover, …). */
  onClosed?: (closure: EndpointClosure) => void;
  /** Called for every TLS handshake the endpoint fails (before any MQTT: no client id yet). */
  onTlsError?: (failure: TlsFailure) => void;
}

/** A connection the endpoint closed itself, after accepting it. */
export interface EndpointClosure {
  clientId: string;
  certificateId: string;
  /** As the lifecycle event's `disconnectReason` says it (AUTH_ERROR, DUPLICATE_CLIENTID, …). */
  reason: DisconnectReason;
  /** What the endpoint saw, in a few words (never a payload or a PEM). */
  detail?: string;
  /** The MQTT 5 DISCONNECT reason code, when one was sent. */
  reasonCode?: number;
  protocolVersion: number;
  at: string;
}

/** A TLS handshake the endpoint failed. */
export interface TlsFailure {
  /** OpenSSL's reason, e.g. `unsupported protocol`, `tlsv1 alert unknown ca`. */
  reason: string;
  code?: string;
  /** The client certificate's id when it got that far. */
  certificateId?: string;
  remoteAddress?: string;
  at: string;
}

/** A connection the endpoint refused. */
export interface ConnectionRefusal {
  clientId: string;
  certificateId?: string;
  reason: string;
  /** The CONNECT's protocol level: 3 (MQTT 3.1), 4 (MQTT 3.1.1) or 5. */
  protocolVersion?: number;
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
  /** The last accepted connections (at most 1,000), oldest first, with their protocol version. */
  readonly accepted: readonly { clientId: string; protocolVersion: number; at: string }[];
  stop(): Promise<void>;
}

type PublishProperties = NonNullable<IPublishPacket['properties']>;

/** A message on its way to subscribers. */
interface Message {
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  retain: boolean;
  properties?: PublishProperties;
  /** Epoch ms after which it is not delivered (MQTT 5 Message Expiry Interval). */
  expiresAt?: number;
  /** The publishing MQTT session (No Local). */
  fromClientId?: string;
}

interface Subscription {
  /** The filter as subscribed (with `$share/<name>/` for a shared one). */
  key: string;
  /** The filter topics are matched against. */
  filter: string;
  shareName?: string;
  qos: 0 | 1;
  noLocal: boolean;
  retainAsPublished: boolean;
}

/** Session state: lives while connected and, for a persistent session, until it expires. */
interface SessionState {
  clientId: string;
  subscriptions: Map<string, Subscription>;
  /** QoS 1 messages waiting to be sent (offline, or beyond the client's Receive Maximum). */
  queue: Message[];
  /** QoS 1 messages sent and not yet acknowledged, by packet id. */
  inflight: Map<number, Message>;
  nextPacketId: number;
  expirySeconds: number;
  expiryTimer?: NodeJS.Timeout;
  connection?: Connection;
  /** The identity of its last connection: who receives what it queued. */
  certificateArn: string;
}

interface Connection {
  socket: TLSSocket;
  version: 3 | 4 | 5;
  clientId: string;
  session: Session;
  certificateArn: string;
  state: SessionState;
  keepAliveMs: number;
  keepAliveTimer?: NodeJS.Timeout;
  /** Topic aliases the client set (MQTT 5). */
  aliases: Map<number, string>;
  /** The client's Receive Maximum (MQTT 5; 65,535 otherwise). */
  receiveMaximum: number;
  /** The client's Maximum Packet Size (MQTT 5). */
  maximumPacketSize?: number;
  will?: IConnectPacket['will'];
  /** The session expiry asked for in CONNECT (MQTT 5: a DISCONNECT may not raise it from 0). */
  connectExpiry: number;
  closeReason?: DisconnectReason;
  /** Publish the will when the connection ends. */
  sendWill: boolean;
  /** The endpoint is closing it. */
  closing: boolean;
  closed: boolean;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function isUtf8(payload: Buffer): boolean {
  try {
    utf8.decode(payload);
    return true;
  } catch {
    return false;
  }
}

/** Starts the device endpoint for `emulator`. */
export async function startMqttBroker(options: MqttBrokerOptions): Promise<MqttBroker> {
  const { emulator } = options;
  const host = options.host ?? '127.0.0.1';
  const registry = emulator.registry;
  const gateway = emulator.devices;
  const sessions = new Map<string, SessionState>();
  const live = new Set<Connection>();
  const bySessionId = new Map<string, Connection>();
  const retained = new Map<string, Message>();
  const sharedCursor = new Map<string, number>();
  const refusals: ConnectionRefusal[] = [];
  const accepted: { clientId: string; protocolVersion: number; at: string }[] = [];
  const pendingDisconnects = new Set<Promise<unknown>>();
  const arn = (resource: string) => `arn:aws:iot:${emulator.region}:${emulator.accountId}:${resource}`;

  const refuse = (clientId: string, reason: string, protocolVersion?: number, certificateId?: string) => {
    const refusal: ConnectionRefusal = {
      clientId,
      ...(certificateId ? { certificateId } : {}),
      reason,
      ...(protocolVersion !== undefined ? { protocolVersion } : {}),
      at: new Date().toISOString(),
    };
    refusals.push(refusal);
    if (refusals.length > 1000) refusals.shift();
    options.onRefused?.(refusal);
  };

  /**
   * A temporary claim (CreateProvisioningClaim) carries no policy of the account; AWS scopes it to
   * its template's Fleet Provisioning MQTT API itself, which the documentation does not spell out.
   * Emulated as the narrowest policy that lets a device use it as documented: connect, and publish /
   * subscribe / receive on `$aws/certificates/create[-from-csr]/*` and
   * `$aws/provisioning-templates/<its template>/provision/*` — nothing else.
   * @see https://docs.aws.amazon.com/iot/latest/developerguide/provision-wo-cert.html#trusted-user
   */
  const temporaryClaimPolicy = (certificateArn: string): string | undefined => {
    const certificateId = certificateArn.split('/').pop() ?? '';
    const claim = registry.certificates.get(certificateId)?.provisioningClaim;
    if (!claim) return undefined;
    const topics = [
      '$aws/certificates/create/*',
      '$aws/certificates/create-from-csr/*',
      `$aws/provisioning-templates/${claim.templateName}/provision/*`,
    ];
    return JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client/*') },
        {
          Effect: 'Allow',
          Action: ['iot:Publish', 'iot:Receive'],
          Resource: topics.map((topic) => arn(`topic/${topic}`)),
        },
        {
          Effect: 'Allow',
          Action: 'iot:Subscribe',
          Resource: topics.map((topic) => arn(`topicfilter/${topic}`)),
        },
      ],
    });
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
    const temporary = temporaryClaimPolicy(certificateArn);
    if (temporary) documents.push(temporary);
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
  const inactiveDetail = (connection: Connection) =>
    `certificate ${registry.certificates.get(connection.session.certificateId)?.status ?? 'deleted'}`;

  // ------------------------------------------------------------------ writing

  const write = (socket: Socket, version: number, packet: Packet) => {
    if (socket.destroyed || !socket.writable) return;
    socket.write(mqttPacket.generate(packet, { protocolVersion: version }));
  };

  /**
   * Ends a connection: MQTT 5 clients get a DISCONNECT with `reasonCode` first (when given); the
   * presence event says `reason`.
   */
  const closeWith = (
    connection: Connection,
    reason: DisconnectReason,
    reasonCode?: number,
    detail?: string,
  ) => {
    if (!connection.closeReason) connection.closeReason = reason;
    if (connection.closed || connection.closing) return;
    connection.closing = true;
    options.onClosed?.({
      clientId: connection.clientId,
      certificateId: connection.session.certificateId,
      reason: connection.closeReason,
      ...(detail ? { detail } : {}),
      ...(connection.version === 5 && reasonCode !== undefined ? { reasonCode } : {}),
      protocolVersion: connection.version,
      at: new Date().toISOString(),
    });
    if (connection.version === 5 && reasonCode !== undefined) {
      write(connection.socket, 5, { cmd: 'disconnect', reasonCode });
    }
    connection.socket.end();
    setTimeout(() => connection.socket.destroy(), 1000).unref();
  };

  const nextPacketId = (state: SessionState): number => {
    for (let i = 0; i < 65_535; i += 1) {
      const id = state.nextPacketId;
      state.nextPacketId = id >= 65_535 ? 1 : id + 1;
      if (!state.inflight.has(id)) return id;
    }
    throw new Error('no free packet identifier');
  };

  /** Writes one message to a connected client, if it may receive it; QoS 1 is tracked until PUBACK. */
  const send = (connection: Connection, message: Message, qos: 0 | 1, retain: boolean, dupId?: number) => {
    const now = Date.now();
    if (message.expiresAt !== undefined && message.expiresAt <= now) return;
    const properties: PublishProperties | undefined =
      connection.version === 5 && message.properties ? { ...message.properties } : undefined;
    if (properties && message.expiresAt !== undefined) {
      properties.messageExpiryInterval = Math.max(1, Math.ceil((message.expiresAt - now) / 1000));
    }
    const packet: IPublishPacket = {
      cmd: 'publish',
      topic: message.topic,
      payload: message.payload,
      qos,
      retain,
      dup: dupId !== undefined,
      ...(qos === 1 ? { messageId: dupId ?? nextPacketId(connection.state) } : {}),
      ...(properties && Object.keys(properties).length > 0 ? { properties } : {}),
    };
    const bytes = mqttPacket.generate(packet, { protocolVersion: connection.version });
    // MQTT 5: a message larger than the client's Maximum Packet Size is not sent to it [MQTT-3.1.2-25].
    if (connection.maximumPacketSize !== undefined && bytes.length > connection.maximumPacketSize) return;
    if (qos === 1 && packet.messageId !== undefined) connection.state.inflight.set(packet.messageId, message);
    if (!connection.socket.destroyed) connection.socket.write(bytes);
  };

  /** May `connection` receive `topic` now? An inactive certificate closes the connection. */
  const mayReceive = (connection: Connection, topic: string): boolean => {
    if (!certificateActive(connection)) {
      setImmediate(() =>
        closeWith(connection, 'AUTH_ERROR', ReasonCode.NotAuthorized, inactiveDetail(connection)),
      );
      return false;
    }
    return allowed(connection.clientId, connection.certificateArn, 'iot:Receive', `topic/${topic}`);
  };

  /** Delivers to a session: now when connected and under its Receive Maximum, else queued (QoS 1). */
  const deliverTo = (state: SessionState, message: Message, qos: 0 | 1, retain: boolean) => {
    const connection = state.connection;
    if (connection && !connection.closed) {
      if (!mayReceive(connection, message.topic)) return;
      if (qos === 1 && state.inflight.size >= connection.receiveMaximum) {
        state.queue.push({ ...message, retain });
        return;
      }
      send(connection, message, qos, retain);
      return;
    }
    // Offline persistent session: QoS 1 messages are stored, QoS 0 ones are not.
    if (qos === 1) state.queue.push({ ...message, retain });
  };

  const drainQueue = (connection: Connection) => {
    const state = connection.state;
    while (state.queue.length > 0 && state.inflight.size < connection.receiveMaximum && !connection.closed) {
      const message = state.queue.shift() as Message;
      if (!mayReceive(connection, message.topic)) continue;
      send(connection, message, 1, message.retain);
    }
  };

  /** Routes a message to every matching subscription (one member of each shared group). */
  const route = (message: Message) => {
    // Fleet Provisioning requests are for IoT Core, not for other subscribers.
    if (parseFleetTopic(message.topic)) return;
    const groups = new Map<string, SessionState[]>();
    for (const state of sessions.values()) {
      let best: Subscription | undefined;
      for (const subscription of state.subscriptions.values()) {
        if (!topicMatches(subscription.filter, message.topic)) continue;
        if (subscription.shareName !== undefined) {
          const group = `${subscription.shareName}\u0000${subscription.filter}`;
          const members = groups.get(group) ?? [];
          members.push(state);
          groups.set(group, members);
          continue;
        }
        if (subscription.noLocal && message.fromClientId === state.clientId) continue;
        if (!best || subscription.qos > best.qos) best = subscription;
      }
      if (best) {
        const qos = Math.min(best.qos, message.qos) as 0 | 1;
        deliverTo(state, message, qos, best.retainAsPublished ? message.retain : false);
      }
    }
    for (const [group, members] of groups) {
      const connected = members.filter((state) => state.connection && !state.connection.closed);
      const candidates = connected.length > 0 ? connected : members;
      const cursor = sharedCursor.get(group) ?? 0;
      sharedCursor.set(group, cursor + 1);
      const state = candidates[cursor % candidates.length] as SessionState;
      const subscription = [...state.subscriptions.values()].find(
        (s) => s.shareName !== undefined && `${s.shareName}\u0000${s.filter}` === group,
      ) as Subscription;
      deliverTo(state, message, Math.min(subscription.qos, message.qos) as 0 | 1, false);
    }
  };

  /** Stores or clears (empty payload) a retained message. */
  const retain = (message: Message) => {
    if (message.payload.length === 0) retained.delete(message.topic);
    else retained.set(message.topic, { ...message, retain: true });
  };

  // ------------------------------------------------------------------ sessions

  const dropSession = (state: SessionState) => {
    clearTimeout(state.expiryTimer);
    if (sessions.get(state.clientId) === state) sessions.delete(state.clientId);
  };

  const detach = (connection: Connection) => {
    const state = connection.state;
    if (state.connection !== connection) return;
    state.connection = undefined;
    // Unacknowledged QoS 1 messages are sent again (DUP) when the session resumes.
    if (state.expirySeconds === 0) {
      dropSession(state);
      return;
    }
    clearTimeout(state.expiryTimer);
    state.expiryTimer = setTimeout(() => dropSession(state), state.expirySeconds * 1000);
    state.expiryTimer.unref();
  };

  // ------------------------------------------------------------------ connection handling

  const handleSocket = (socket: TLSSocket) => {
    const parser = mqttPacket.parser();
    let connection: Connection | undefined;
    let connecting = false;
    let work: Promise<void> = Promise.resolve();
    const connectTimer = setTimeout(() => {
      if (!connection) socket.destroy();
    }, 10_000);
    connectTimer.unref();

    const armKeepAlive = () => {
      if (!connection) return;
      clearTimeout(connection.keepAliveTimer);
      const current = connection;
      current.keepAliveTimer = setTimeout(() => {
        closeWith(
          current,
          'MQTT_KEEP_ALIVE_TIMEOUT',
          ReasonCode.KeepAliveTimeout,
          'nothing received for 1.5 × the keep-alive',
        );
        current.socket.destroy();
      }, current.keepAliveMs * 1.5);
      current.keepAliveTimer.unref();
    };

    /** A protocol violation: MQTT 5 gets a DISCONNECT with the reason code, then the socket closes. */
    const violation = (reasonCode: number) => {
      if (connection) closeWith(connection, 'CLIENT_ERROR', reasonCode);
      else socket.destroy();
    };

    parser.on('packet', (packet: Packet) => {
      if (connection) armKeepAlive();
      work = work
        .then(() => handlePacket(packet))
        .catch(() => {
          if (connection) closeWith(connection, 'SERVER_ERROR', ReasonCode.UnspecifiedError);
          else socket.destroy();
        });
    });
    parser.on('error', () => violation(ReasonCode.MalformedPacket));
    socket.on('data', (chunk: Buffer) => {
      if (connection?.closed) return;
      parser.parse(chunk);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(connectTimer);
      if (!connection) return;
      const ended = connection;
      ended.closed = true;
      clearTimeout(ended.keepAliveTimer);
      live.delete(ended);
      bySessionId.delete(ended.session.sessionIdentifier);
      const reason = ended.closeReason ?? 'CONNECTION_LOST';
      const done = (async () => {
        if (ended.sendWill && ended.will) await publishWill(ended);
        detach(ended);
        // A session the gateway already ended (DUPLICATE_CLIENTID) is not ended twice.
        await gateway.disconnect({
          clientId: ended.session.clientId,
          sessionIdentifier: ended.session.sessionIdentifier,
          reason,
        });
      })();
      pendingDisconnects.add(done);
      void done.finally(() => pendingDisconnects.delete(done));
    });

    const handlePacket = async (packet: Packet): Promise<void> => {
      if (!connection) {
        if (packet.cmd !== 'connect' || connecting) {
          socket.destroy();
          return;
        }
        connecting = true;
        await handleConnect(packet);
        return;
      }
      if (connection.closed) return;
      switch (packet.cmd) {
        case 'publish':
          return handlePublish(connection, packet);
        case 'puback': {
          connection.state.inflight.delete(packet.messageId ?? -1);
          drainQueue(connection);
          return;
        }
        case 'subscribe':
          return handleSubscribe(connection, packet);
        case 'unsubscribe':
          return handleUnsubscribe(connection, packet);
        case 'pingreq':
          write(socket, connection.version, { cmd: 'pingresp' });
          return;
        case 'disconnect':
          return handleDisconnect(connection, packet);
        default:
          // A second CONNECT, QoS 2 flow packets, AUTH, or a server-to-client packet.
          violation(ReasonCode.ProtocolError);
      }
    };

    const handleConnect = async (packet: IConnectPacket): Promise<void> => {
      const version = (packet.protocolVersion ?? 4) as 3 | 4 | 5;
      let clientId = packet.clientId;
      const drop = (reason: string, certificateId?: string, reasonCode?: number, returnCode?: number) => {
        refuse(clientId, reason, version, certificateId);
        if (version === 5 && reasonCode !== undefined) {
          write(socket, 5, { cmd: 'connack', sessionPresent: false, reasonCode });
          socket.end();
          setTimeout(() => socket.destroy(), 1000).unref();
          return;
        }
        if (version !== 5 && returnCode !== undefined) {
          write(socket, version, { cmd: 'connack', sessionPresent: false, returnCode });
          socket.end();
          setTimeout(() => socket.destroy(), 1000).unref();
          return;
        }
        // IoT Core closes the connection without a CONNACK.
        socket.destroy();
      };
      const rule = connectRefusal(packet);
      if (rule) return drop(rule.reason, undefined, rule.reasonCode, rule.returnCode);
      const v5 = version === 5;
      const properties = packet.properties ?? {};
      const clean = packet.clean !== false;
      let assigned: string | undefined;
      if (clientId.length === 0) {
        // MQTT 3.1.1 [MQTT-3.1.3-8]: an empty client id needs a clean session (return code 2 otherwise).
        if (!v5 && !clean) return drop('CLIENT_ID_REQUIRED', undefined, undefined, 2);
        assigned = `fleetgate-${randomUUID()}`;
        clientId = assigned;
      }
      if (v5 && properties.receiveMaximum === 0)
        return drop('PROTOCOL_ERROR', undefined, ReasonCode.ProtocolError);
      const peer = socket.getPeerCertificate();
      if (!peer?.raw) return drop('NO_CLIENT_CERTIFICATE');
      const certificateId = createHash('sha256').update(peer.raw).digest('hex');
      const known = registry.certificates.get(certificateId);
      if (
        known?.status === 'ACTIVE' &&
        !allowed(clientId, known.certificateArn, 'iot:Connect', `client/${clientId}`)
      ) {
        return drop('CONNECT_NOT_AUTHORIZED', certificateId, ReasonCode.NotAuthorized);
      }
      let outcome: Awaited<ReturnType<typeof gateway.connect>>;
      try {
        outcome = await gateway.connect({
          certificatePem: new x509.X509Certificate(peer.raw).toString('pem'),
          clientId,
          ipAddress: socket.remoteAddress ?? '127.0.0.1',
        });
      } catch (error) {
        return drop(
          `SERVER_ERROR: ${error instanceof Error ? error.message : String(error)}`,
          certificateId,
          ReasonCode.UnspecifiedError,
        );
      }
      if (!outcome.accepted) return drop(outcome.reason, outcome.certificateId);
      const session = gateway.sessions.get(clientId);
      if (!session || session.sessionIdentifier !== outcome.sessionIdentifier) {
        return drop('SESSION_REPLACED', certificateId);
      }
      if (socket.destroyed) {
        // The socket went away while the gateway was deciding.
        await gateway.disconnect({
          clientId,
          sessionIdentifier: session.sessionIdentifier,
          reason: 'CONNECTION_LOST',
        });
        return;
      }
      const certificateArn = registry.certificateArn(certificateId);
      const requestedExpiry = v5
        ? (properties.sessionExpiryInterval ?? 0)
        : clean
          ? 0
          : LIMITS.sessionExpirySeconds;
      const expirySeconds = Math.min(requestedExpiry, LIMITS.sessionExpirySeconds);
      let state = sessions.get(clientId);
      if (state && clean) {
        dropSession(state);
        state = undefined;
      }
      const sessionPresent = state !== undefined;
      if (!state) {
        state = {
          clientId,
          subscriptions: new Map(),
          queue: [],
          inflight: new Map(),
          nextPacketId: 1,
          expirySeconds,
          certificateArn,
        };
        sessions.set(clientId, state);
      }
      clearTimeout(state.expiryTimer);
      state.expirySeconds = expirySeconds;
      state.certificateArn = certificateArn;
      const keepAlive = effectiveKeepAlive(packet.keepalive ?? 0);
      const opened: Connection = {
        socket,
        version,
        clientId,
        session,
        certificateArn,
        state,
        keepAliveMs: keepAlive * 1000,
        aliases: new Map(),
        receiveMaximum: v5 ? (properties.receiveMaximum ?? 65_535) : 65_535,
        ...(v5 && properties.maximumPacketSize !== undefined
          ? { maximumPacketSize: properties.maximumPacketSize }
          : {}),
        ...(packet.will ? { will: packet.will } : {}),
        connectExpiry: requestedExpiry,
        sendWill: packet.will !== undefined,
        closing: false,
        closed: false,
      };
      const previous = state.connection;
      state.connection = opened;
      if (previous && !previous.closed)
        closeWith(
          previous,
          'DUPLICATE_CLIENTID',
          ReasonCode.SessionTakenOver,
          `another connection took the client id (certificate ${certificateId})`,
        );
      connection = opened;
      accepted.push({ clientId, protocolVersion: version, at: new Date().toISOString() });
      if (accepted.length > 1000) accepted.shift();
      clearTimeout(connectTimer);
      live.add(opened);
      bySessionId.set(session.sessionIdentifier, opened);
      armKeepAlive();
      const connack = v5
        ? {
            cmd: 'connack' as const,
            sessionPresent,
            reasonCode: ReasonCode.Success,
            properties: {
              ...connackProperties(),
              ...(keepAlive !== packet.keepalive ? { serverKeepAlive: keepAlive } : {}),
              ...(expirySeconds !== requestedExpiry ? { sessionExpiryInterval: expirySeconds } : {}),
              ...(assigned ? { assignedClientIdentifier: assigned } : {}),
            },
          }
        : { cmd: 'connack' as const, sessionPresent, returnCode: 0 };
      write(socket, version, connack as Packet);
      // A resumed session: unacknowledged messages again (DUP), then what was stored meanwhile.
      for (const [id, message] of [...state.inflight]) {
        if (!mayReceive(opened, message.topic)) {
          state.inflight.delete(id);
          continue;
        }
        send(opened, message, 1, message.retain, id);
      }
      drainQueue(opened);
    };

    const handlePublish = async (conn: Connection, packet: IPublishPacket): Promise<void> => {
      const v5 = conn.version === 5;
      let topic = packet.topic;
      const alias = packet.properties?.topicAlias;
      if (v5 && alias !== undefined) {
        if (alias < 1 || alias > LIMITS.topicAliasMaximum) return violation(ReasonCode.TopicAliasInvalid);
        if (topic.length === 0) {
          const known = conn.aliases.get(alias);
          if (!known) return violation(ReasonCode.ProtocolError);
          topic = known;
        } else {
          conn.aliases.set(alias, topic);
        }
      }
      if (packet.qos === 2) {
        // IoT Core supports QoS 0 and 1 only (CONNACK Maximum QoS 1).
        return violation(ReasonCode.QoSNotSupported);
      }
      const qos = packet.qos;
      const ack = (reasonCode: number) => {
        if (qos !== 1) return;
        write(socket, conn.version, {
          cmd: 'puback',
          messageId: packet.messageId,
          ...(v5 ? { reasonCode } : {}),
        });
      };
      /** A refused publish: PUBACK with the reason (MQTT 5, QoS 1), otherwise the connection closes. */
      const refusePublish = (reason: DisconnectReason, reasonCode: number, detail: string) => {
        if (v5 && qos === 1) return ack(reasonCode);
        closeWith(conn, reason, reasonCode, detail);
      };
      if (!validTopicName(topic)) return violation(ReasonCode.TopicNameInvalid);
      if (!certificateActive(conn))
        return closeWith(conn, 'AUTH_ERROR', ReasonCode.NotAuthorized, inactiveDetail(conn));
      const payload = Buffer.from(packet.payload);
      if (
        !allowed(conn.clientId, conn.certificateArn, 'iot:Publish', `topic/${topic}`) ||
        (packet.retain && !allowed(conn.clientId, conn.certificateArn, 'iot:RetainPublish', `topic/${topic}`))
      ) {
        // IoT Core disconnects an MQTT 3.1.1 client that publishes where it may not.
        return refusePublish(
          'AUTH_ERROR',
          ReasonCode.NotAuthorized,
          `the policies do not allow ${packet.retain ? 'a retained ' : ''}iot:Publish on ${topic}`,
        );
      }
      if (payload.length > LIMITS.maximumPayloadBytes)
        return closeWith(conn, 'CLIENT_ERROR', ReasonCode.PacketTooLarge, 'payload over the size limit');
      const properties = v5 ? forwardedProperties(packet.properties) : undefined;
      if (properties?.payloadFormatIndicator === true && !isUtf8(payload)) {
        return refusePublish('CLIENT_ERROR', ReasonCode.PayloadFormatInvalid, 'payload is not UTF-8');
      }
      const request = parseFleetTopic(topic);
      if (request) {
        ack(ReasonCode.Success);
        const { certificateId } = conn.session;
        void handleFleetRequest(gateway, request, payload, { certificateId, clientId: conn.clientId }).then(
          (reply) => replyTo(conn, reply.topic, encodePayload(request.format, reply.response)),
          () => undefined,
        );
        return;
      }
      const outcome = await gateway.publish({ clientId: conn.clientId, topic, payload, qos });
      if (!outcome.accepted) return closeWith(conn, 'CLIENT_ERROR', ReasonCode.ImplementationSpecificError);
      const expiry = properties?.messageExpiryInterval;
      const message: Message = {
        topic,
        payload,
        qos,
        retain: packet.retain,
        ...(properties && Object.keys(properties).length > 0 ? { properties } : {}),
        ...(expiry !== undefined ? { expiresAt: Date.now() + expiry * 1000 } : {}),
        fromClientId: conn.clientId,
      };
      if (packet.retain) retain(message);
      ack(ReasonCode.Success);
      route(message);
    };

    const handleSubscribe = (conn: Connection, packet: ISubscribePacket): void => {
      const v5 = conn.version === 5;
      const failure = (reasonCode: number) => (v5 ? reasonCode : SUBACK_FAILURE_V4);
      const granted: number[] = [];
      const fresh: Subscription[] = [];
      if (v5 && packet.properties?.subscriptionIdentifier !== undefined) {
        // CONNACK said Subscription Identifiers Available = 0.
        write(socket, 5, {
          cmd: 'suback',
          messageId: packet.messageId,
          granted: packet.subscriptions.map(() => ReasonCode.SubscriptionIdentifiersNotSupported),
        });
        return;
      }
      if (packet.subscriptions.length > LIMITS.subscriptionsPerSubscribe) {
        write(socket, conn.version, {
          cmd: 'suback',
          messageId: packet.messageId,
          granted: packet.subscriptions.map(() => failure(ReasonCode.QuotaExceeded)),
        });
        return;
      }
      for (const request of packet.subscriptions) {
        const shared = parseSharedFilter(request.topic);
        if (shared === null || (shared === undefined && !validTopicFilter(request.topic))) {
          granted.push(failure(ReasonCode.TopicFilterInvalid));
          continue;
        }
        if (shared && request.nl) {
          // [MQTT-3.8.3-4]: No Local on a shared subscription is a Protocol Error.
          violation(ReasonCode.ProtocolError);
          return;
        }
        if (!certificateActive(conn)) {
          closeWith(conn, 'AUTH_ERROR', ReasonCode.NotAuthorized, inactiveDetail(conn));
          return;
        }
        if (!allowed(conn.clientId, conn.certificateArn, 'iot:Subscribe', `topicfilter/${request.topic}`)) {
          // A refused filter fails alone; the connection stays.
          granted.push(failure(ReasonCode.NotAuthorized));
          continue;
        }
        const existing = conn.state.subscriptions.get(request.topic);
        if (!existing && conn.state.subscriptions.size >= LIMITS.subscriptionsPerConnection) {
          granted.push(failure(ReasonCode.QuotaExceeded));
          continue;
        }
        const qos = Math.min(request.qos, 1) as 0 | 1;
        const subscription: Subscription = {
          key: request.topic,
          filter: shared ? shared.filter : request.topic,
          ...(shared ? { shareName: shared.shareName } : {}),
          qos,
          noLocal: v5 && request.nl === true,
          retainAsPublished: v5 && request.rap === true,
        };
        conn.state.subscriptions.set(request.topic, subscription);
        granted.push(qos);
        const handling = v5 ? (request.rh ?? 0) : 0;
        if (!shared && (handling === 0 || (handling === 1 && !existing))) fresh.push(subscription);
      }
      write(socket, conn.version, { cmd: 'suback', messageId: packet.messageId, granted });
      // Retained messages reach exact-topic subscriptions only: IoT Core sends none to a filter with a
      // wildcard, nor to a shared subscription.
      for (const subscription of fresh) {
        const message = retained.get(subscription.filter);
        if (!message || !mayReceive(conn, message.topic)) continue;
        send(conn, message, Math.min(subscription.qos, message.qos) as 0 | 1, true);
      }
    };

    const handleUnsubscribe = (conn: Connection, packet: IUnsubscribePacket): void => {
      const codes = packet.unsubscriptions.map((filter) =>
        conn.state.subscriptions.delete(filter) ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted,
      );
      write(socket, conn.version, {
        cmd: 'unsuback',
        messageId: packet.messageId,
        ...(conn.version === 5 ? { granted: codes } : {}),
      } as Packet);
    };

    const handleDisconnect = (conn: Connection, packet: IDisconnectPacket): void => {
      const expiry = packet.properties?.sessionExpiryInterval;
      if (conn.version === 5 && expiry !== undefined) {
        // [MQTT-3.14.2-2]: a session opened with expiry 0 may not be given one at DISCONNECT.
        if (conn.connectExpiry === 0 && expiry > 0) {
          violation(ReasonCode.ProtocolError);
          return;
        }
        conn.state.expirySeconds = Math.min(expiry, LIMITS.sessionExpirySeconds);
      }
      conn.sendWill = conn.version === 5 && packet.reasonCode === ReasonCode.DisconnectWithWillMessage;
      conn.closeReason = 'CLIENT_INITIATED_DISCONNECT';
      socket.end();
    };
  };

  /** The will of a connection that ended without a clean DISCONNECT, if its policy lets it publish. */
  const publishWill = async (connection: Connection) => {
    const will = connection.will;
    if (!will || !validTopicName(will.topic)) return;
    if (!allowed(connection.clientId, connection.certificateArn, 'iot:Publish', `topic/${will.topic}`))
      return;
    const payload = Buffer.from(will.payload);
    const properties = connection.version === 5 ? forwardedProperties(will.properties) : undefined;
    if (
      gateway.sessions.get(connection.clientId)?.sessionIdentifier === connection.session.sessionIdentifier
    ) {
      await gateway.publish({
        clientId: connection.clientId,
        topic: will.topic,
        payload,
        qos: will.qos === 0 ? 0 : 1,
      });
    }
    const message: Message = {
      topic: will.topic,
      payload,
      qos: will.qos === 0 ? 0 : 1,
      retain: will.retain === true,
      ...(properties && Object.keys(properties).length > 0 ? { properties } : {}),
      fromClientId: connection.clientId,
    };
    if (message.retain) retain(message);
    route(message);
  };

  /** Delivers a Fleet Provisioning reply to the requesting connection only, when it subscribed to it. */
  const replyTo = (connection: Connection, topic: string, payload: Buffer) => {
    if (connection.closed) return;
    const matching = [...connection.state.subscriptions.values()].filter(
      (s) => s.shareName === undefined && topicMatches(s.filter, topic),
    );
    if (matching.length === 0) return;
    const qos = matching.some((s) => s.qos === 1) ? 1 : 0;
    send(connection, { topic, payload, qos, retain: false }, qos, false);
  };

  // The gateway ends a session itself when another connection takes its client id.
  const offDisconnect = gateway.onDisconnect((session, reason) => {
    const connection = bySessionId.get(session.sessionIdentifier);
    if (!connection) return;
    bySessionId.delete(session.sessionIdentifier);
    closeWith(
      connection,
      reason,
      reason === 'DUPLICATE_CLIENTID' ? ReasonCode.SessionTakenOver : ReasonCode.NotAuthorized,
      reason === 'DUPLICATE_CLIENTID' ? 'another connection took the client id' : 'ended by the gateway',
    );
  });
  // What the emulator publishes (presence, registry events, shadow replies, data-plane Publish) reaches
  // subscribers; a device's own MQTT publish is routed by the broker already.
  const offPublish = emulator.onPublish((message: PublishedMessage) => {
    if (message.meta.source === 'device' && message.meta.clientId && isMqttClient(message.meta.clientId))
      return;
    const extra = message.meta.mqtt5;
    const routed: Message = {
      topic: message.topic,
      payload: message.payload,
      qos: message.meta.qos,
      retain: message.meta.retain,
      ...(extra?.properties ? { properties: extra.properties as PublishProperties } : {}),
      ...(extra?.messageExpiryInterval !== undefined
        ? { expiresAt: Date.now() + extra.messageExpiryInterval * 1000 }
        : {}),
    };
    if (routed.retain) retain(routed);
    route(routed);
  });
  const isMqttClient = (clientId: string) => {
    const session = gateway.sessions.get(clientId);
    return session !== undefined && bySessionId.has(session.sessionIdentifier);
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
    handleSocket,
  );
  server.on('tlsClientError', (error: NodeJS.ErrnoException & { reason?: string }, socket: TLSSocket) => {
    // Only what TLS itself refused: a TCP connection that closes before a ClientHello (a port probe)
    // is nobody's failed handshake.
    const ssl = error.code?.startsWith('ERR_SSL_') === true || error.reason !== undefined;
    if (!ssl) return;
    let certificateId: string | undefined;
    try {
      const raw = socket.getPeerCertificate()?.raw;
      if (raw) certificateId = createHash('sha256').update(raw).digest('hex');
    } catch {
      // no peer certificate to name
    }
    options.onTlsError?.({
      reason: error.reason ?? error.code ?? 'handshake failed',
      ...(error.code ? { code: error.code } : {}),
      ...(certificateId ? { certificateId } : {}),
      ...(socket.remoteAddress ? { remoteAddress: socket.remoteAddress } : {}),
      at: new Date().toISOString(),
    });
  });
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
  // DescribeEndpoint (iot:Data-ATS) answers with this endpoint from now on.
  emulator.setMqttEndpoint({ host, port });
  let stopped: Promise<void> | undefined;
  return {
    url: `mqtts://${host}:${port}`,
    host,
    port,
    caPem: emulator.issuer.certificatePem,
    get connections() {
      return live.size;
    },
    refusals,
    accepted,
    stop: () => {
      stopped ??= (async () => {
        offPublish();
        offDisconnect();
        if (emulator.mqttEndpoint?.port === port) emulator.setMqttEndpoint(undefined);
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        const closing = [...live].map(
          (connection) =>
            new Promise<void>((resolve) => {
              connection.socket.once('close', () => resolve());
              closeWith(
                connection,
                'SERVER_INITIATED_DISCONNECT',
                ReasonCode.ServerShuttingDown,
                'the endpoint is stopping',
              );
            }),
        );
        await Promise.race([Promise.all(closing), new Promise((resolve) => setTimeout(resolve, 2000))]);
        for (const socket of sockets) socket.destroy();
        await Promise.all([...pendingDisconnects]);
        for (const state of sessions.values()) clearTimeout(state.expiryTimer);
        sessions.clear();
        await serverClosed;
      })();
      return stopped;
    },
  };
}

/** The MQTT 5 PUBLISH properties forwarded to subscribers (not the Topic Alias, which is per connection). */
function forwardedProperties(properties: IPublishPacket['properties'] | undefined): PublishProperties {
  if (!properties) return {};
  const {
    topicAlias: _alias,
    subscriptionIdentifier: _id,
    ...rest
  } = properties as PublishProperties & {
    willDelayInterval?: number;
  };
  const { willDelayInterval: _delay, ...forwarded } = rest as PublishProperties & {
    willDelayInterval?: number;
  };
  return forwarded;
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
