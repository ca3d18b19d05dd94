/**
 * Builders for the messages AWS IoT publishes on reserved `$aws/events/...` topics, and the publisher that
 * sends them to the configured sink, the listeners and the in-memory log.
 */

/** Where a published message came from. */
export type PublishSource =
  | 'presence'
  | 'certificate-registration'
  | 'registry'
  | 'data-plane'
  | 'device'
  | 'shadow';

/** Metadata passed with every published message. */
export interface PublishMeta {
  source: PublishSource;
  qos: 0 | 1;
  retain: boolean;
  /** Emulator clock time of the publish (ISO-8601). */
  at: string;
  /** Source `device`: the certificate id the publishing session authenticated with (`principal()`). */
  principal?: string;
  /** Source `device`: the publishing session's MQTT client id (`clientid()`). */
  clientId?: string;
  /**
   * MQTT 5 PUBLISH properties to deliver with the message (user properties, response topic, correlation
   * data, content type, payload format indicator) and its Message Expiry Interval in seconds.
   */
  mqtt5?: { properties?: Record<string, unknown>; messageExpiryInterval?: number };
}

/** A message the emulator published. */
export interface PublishedMessage {
  topic: string;
  payload: Buffer;
  meta: PublishMeta;
  /** `payload` parsed as JSON when it is JSON, else undefined. */
  json: unknown;
}

/** Sink for published messages (e.g. the local rules engine). */
export type PublishSink = (topic: string, payload: Buffer, meta: PublishMeta) => Promise<void>;

/** Fan-out of published messages: the sink, the listeners and an in-memory log. */
export class Publisher {
  readonly log: PublishedMessage[] = [];
  private readonly listeners = new Set<(message: PublishedMessage) => void>();

  constructor(
    private readonly sink: PublishSink | undefined,
    private readonly now: () => Date,
    private readonly limit = 100_000,
  ) {}

  /** Registers a listener; returns a function that removes it. */
  onPublish(listener: (message: PublishedMessage) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Publishes `payload` (objects are JSON-encoded) on `topic`; resolves after the sink has accepted it. */
  async publish(
    topic: string,
    payload: Buffer | string | object,
    meta: Omit<PublishMeta, 'at' | 'qos' | 'retain'> & Partial<PublishMeta>,
  ): Promise<PublishedMessage> {
    const bytes = Buffer.isBuffer(payload)
      ? payload
      : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
    const fullMeta: PublishMeta = { qos: 1, retain: false, at: this.now().toISOString(), ...meta };
    const message: PublishedMessage = { topic, payload: bytes, meta: fullMeta, json: tryJson(bytes) };
    this.log.push(message);
    if (this.log.length > this.limit) this.log.splice(0, this.log.length - this.limit);
    for (const listener of this.listeners) listener(message);
    await this.sink?.(topic, bytes, fullMeta);
    return message;
  }
}

function tryJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Presence `connected` event.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html#connect-disconnect
 */
export interface PresenceConnectedEvent {
  clientId: string;
  timestamp: number;
  eventType: 'connected';
  sessionIdentifier: string;
  principalIdentifier: string;
  ipAddress: string;
  versionNumber: number;
}

/** Why a session ended, as AWS reports it in `disconnectReason`. */
export type DisconnectReason =
  | 'AUTH_ERROR'
  | 'CLIENT_INITIATED_DISCONNECT'
  | 'CLIENT_ERROR'
  | 'CONNECTION_LOST'
  | 'DUPLICATE_CLIENTID'
  | 'FORBIDDEN_ACCESS'
  | 'MQTT_KEEP_ALIVE_TIMEOUT'
  | 'SERVER_ERROR'
  | 'SERVER_INITIATED_DISCONNECT'
  | 'THROTTLED'
  | 'WEBSOCKET_TTL_EXPIRATION'
  | 'CUSTOMAUTH_TTL_EXPIRATION';

/**
 * Presence `disconnected` event.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html#connect-disconnect
 */
export interface PresenceDisconnectedEvent {
  clientId: string;
  timestamp: number;
  eventType: 'disconnected';
  sessionIdentifier: string;
  principalIdentifier: string;
  clientInitiatedDisconnect: boolean;
  disconnectReason: DisconnectReason;
  versionNumber: number;
}

/**
 * JITR event published on `$aws/events/certificates/registered/<caCertificateId>`.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/auto-register-device-cert.html
 */
export interface CertificateRegisteredEvent {
  certificateId: string;
  caCertificateId: string;
  timestamp: number;
  certificateStatus: 'PENDING_ACTIVATION';
  awsAccountId: string;
  certificateRegistrationTimestamp: number;
}

/**
 * Registry thing event on `$aws/events/thing/<thingName>/created|updated|deleted`.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/registry-events.html#registry-events-thing
 */
export interface ThingEvent {
  eventType: 'THING_EVENT';
  eventId: string;
  timestamp: number;
  operation: 'CREATED' | 'UPDATED' | 'DELETED';
  accountId: string;
  thingId: string;
  thingName: string;
  versionNumber: number;
  thingTypeName: string | null;
  attributes: Record<string, string>;
}

/**
 * Registry event on `$aws/events/thingGroupMembership/thingGroup/<group>/thing/<thing>/added|removed`.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/registry-events.html#registry-events-thinggroup-membership
 */
export interface ThingGroupMembershipEvent {
  eventType: 'THING_GROUP_MEMBERSHIP_EVENT';
  eventId: string;
  timestamp: number;
  operation: 'ADDED' | 'REMOVED';
  accountId: string;
  groupArn: string;
  groupName: string;
  thingArn: string;
  thingName: string;
  membershipId: string;
}

/** Topic helpers for the reserved topics the emulator publishes on. */
export const topics = {
  presenceConnected: (clientId: string) => `$aws/events/presence/connected/${clientId}`,
  presenceDisconnected: (clientId: string) => `$aws/events/presence/disconnected/${clientId}`,
  certificateRegistered: (caCertificateId: string) =>
    `$aws/events/certificates/registered/${caCertificateId}`,
  thing: (thingName: string, operation: ThingEvent['operation']) =>
    `$aws/events/thing/${thingName}/${operation.toLowerCase()}`,
  thingGroupMembership: (groupName: string, thingName: string, operation: 'ADDED' | 'REMOVED') =>
    `$aws/events/thingGroupMembership/thingGroup/${groupName}/thing/${thingName}/${operation.toLowerCase()}`,
};
