/**
 * Rules on the CONNECT packet itself, checked before the certificate and the policies: the place for
 * protocol-level refusals (protocol versions, client id limits, authentication methods). The broker
 * (local/mqtt/broker.ts) calls {@link connectRefusal} for every CONNECT, whatever the protocol version.
 */
import type { IConnectPacket } from 'mqtt-packet';
import { MAX_CLIENT_ID_BYTES } from '../../shared/domain/client-ids';
import { ReasonCode } from './protocol';

/** Why a CONNECT is refused, and how the refusal is said on the wire. */
export interface ConnectRuleRefusal {
  /** Recorded in the broker's refusals. */
  reason: string;
  /**
   * MQTT 3.1.1 CONNACK return code, or undefined to close the connection without a CONNACK (what IoT
   * Core does for 3.1.1 clients).
   */
  returnCode?: number;
  /** MQTT 5 CONNACK reason code, or undefined to close without a CONNACK. */
  reasonCode?: number;
}

/**
 * The refusal a CONNECT earns by its own content, or undefined.
 * - MQTT 3.1 (protocol level 3): IoT Core speaks MQTT 3.1.1 and 5 only → CONNACK 0x01 unacceptable
 *   protocol version ([MQTT-3.1.2-2]).
 * - A client id over 128 UTF-8 bytes (IoT Core's message broker limit) → CONNACK 0x02 identifier
 *   rejected ([MQTT-3.1.3-9]) / MQTT 5 0x85 Client Identifier not valid.
 *   @see https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits
 *   @see https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html
 * - MQTT 5 enhanced authentication (an Authentication Method): IoT Core authenticates by certificate
 *   (or custom authorizer), not through AUTH exchanges → CONNACK 0x8C Bad authentication method.
 */
export function connectRefusal(packet: IConnectPacket): ConnectRuleRefusal | undefined {
  const level = packet.protocolVersion ?? 4;
  if (level !== 4 && level !== 5) {
    return {
      reason: `UNSUPPORTED_PROTOCOL_VERSION: protocol level ${level} (MQTT 3.1.1 is level 4, MQTT 5 level 5)`,
      returnCode: 1,
    };
  }
  const idBytes = Buffer.byteLength(packet.clientId ?? '', 'utf8');
  if (idBytes > MAX_CLIENT_ID_BYTES) {
    return {
      reason: `CLIENT_ID_TOO_LONG: ${idBytes} bytes (at most ${MAX_CLIENT_ID_BYTES})`,
      returnCode: 2,
      reasonCode: ReasonCode.ClientIdentifierNotValid,
    };
  }
  if (packet.protocolVersion === 5 && packet.properties?.authenticationMethod !== undefined) {
    return { reason: 'BAD_AUTHENTICATION_METHOD', reasonCode: ReasonCode.BadAuthenticationMethod };
  }
  return undefined;
}
