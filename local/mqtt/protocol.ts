/**
 * What the local endpoint says on the wire, per protocol version: AWS IoT Core's MQTT limits, the MQTT 5
 * reason codes it uses, the CONNACK properties it announces, and topic / topic-filter validation.
 *
 * Sources (AWS IoT Core developer guide, "MQTT": "MQTT 5 supported features", "MQTT 5 properties",
 * "MQTT reason codes", "AWS IoT differences from MQTT specifications"; AWS General Reference, "AWS IoT
 * Core message broker and protocol limits and quotas"):
 * https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html
 * https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits
 */

/** MQTT 5 reason codes (OASIS MQTT 5.0, 2.4) that the endpoint sends. */
export const ReasonCode = {
  Success: 0x00,
  GrantedQoS1: 0x01,
  DisconnectWithWillMessage: 0x04,
  NoSubscriptionExisted: 0x11,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  NotAuthorized: 0x87,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  QuotaExceeded: 0x97,
  PayloadFormatInvalid: 0x99,
  QoSNotSupported: 0x9b,
  SubscriptionIdentifiersNotSupported: 0xa1,
} as const;

/** MQTT 3.1.1 SUBACK failure return code. */
export const SUBACK_FAILURE_V4 = 0x80;

/** IoT Core's limits that the endpoint enforces. */
export const LIMITS = {
  /** "Topic alias maximum": the CONNACK's Topic Alias Maximum. */
  topicAliasMaximum: 8,
  /** "Receive maximum": in-flight QoS 1 PUBLISHes a client may send before PUBACKs. */
  receiveMaximum: 100,
  /** "Maximum packet size" announced in CONNACK (128 KB payload plus headers and properties). */
  maximumPacketSize: 149_504,
  /** Message payload size. */
  maximumPayloadBytes: 128 * 1024,
  /** Topic / topic filter size in bytes (UTF-8). */
  maximumTopicBytes: 256,
  /** Subscriptions per SUBSCRIBE packet. */
  subscriptionsPerSubscribe: 8,
  /** Subscriptions per connection. */
  subscriptionsPerConnection: 50,
  /** Keep-alive: 0 and values over 1,200 s become 1,200 s, values under 30 s become 30 s. */
  keepAliveDefault: 1200,
  keepAliveMinimum: 30,
  /** Persistent session expiry: one hour (the account default). */
  sessionExpirySeconds: 3600,
  /** Client id length in bytes (checked by the connect rules, local/mqtt/connect-rules.ts). */
  clientIdBytes: 128,
} as const;

/** The CONNACK properties IoT Core announces to an MQTT 5 client. */
export function connackProperties(): Record<string, unknown> {
  return {
    receiveMaximum: LIMITS.receiveMaximum,
    maximumQoS: 1,
    retainAvailable: true,
    maximumPacketSize: LIMITS.maximumPacketSize,
    topicAliasMaximum: LIMITS.topicAliasMaximum,
    wildcardSubscriptionAvailable: true,
    subscriptionIdentifiersAvailable: false,
    sharedSubscriptionAvailable: true,
  };
}

/** The keep-alive IoT Core applies to a requested one. */
export function effectiveKeepAlive(requested: number): number {
  if (requested === 0 || requested > LIMITS.keepAliveDefault) return LIMITS.keepAliveDefault;
  return Math.max(requested, LIMITS.keepAliveMinimum);
}

/** True when `topic` may be published to: 1..256 bytes, no wildcard, no NUL. */
export function validTopicName(topic: string): boolean {
  return (
    topic.length > 0 &&
    Buffer.byteLength(topic) <= LIMITS.maximumTopicBytes &&
    !topic.includes('+') &&
    !topic.includes('#') &&
    !topic.includes('\u0000')
  );
}

/** True when `filter` is a valid topic filter: `+` alone in a level, `#` alone and last. */
export function validTopicFilter(filter: string): boolean {
  if (
    filter.length === 0 ||
    Buffer.byteLength(filter) > LIMITS.maximumTopicBytes ||
    filter.includes('\u0000')
  )
    return false;
  const levels = filter.split('/');
  return levels.every((level, index) => {
    if (level.includes('#')) return level === '#' && index === levels.length - 1;
    if (level.includes('+')) return level === '+';
    return true;
  });
}

/** A parsed `$share/<ShareName>/<TopicFilter>` subscription. */
export interface SharedFilter {
  shareName: string;
  filter: string;
}

/**
 * Splits a shared subscription (`$share/<ShareName>/<TopicFilter>`); undefined for a plain filter,
 * null for a malformed shared one (empty or wildcard share name, missing filter).
 */
export function parseSharedFilter(filter: string): SharedFilter | undefined | null {
  if (!filter.startsWith('$share/')) return undefined;
  const rest = filter.slice('$share/'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return null;
  const shareName = rest.slice(0, slash);
  const inner = rest.slice(slash + 1);
  if (shareName.includes('+') || shareName.includes('#') || !validTopicFilter(inner)) return null;
  return { shareName, filter: inner };
}
