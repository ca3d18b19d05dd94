/**
 * Rules on the CONNECT packet itself, checked before the certificate and the policies: the place for
 * protocol-level refusals (protocol versions, client id limits, authentication methods). The broker
 * (local/mqtt/broker.ts) calls {@link connectRefusal} for every CONNECT, whatever the protocol version.
 */
import type { IConnectPacket } from 'mqtt-packet';
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
 * - MQTT 5 enhanced authentication (an Authentication Method): IoT Core authenticates by certificate
 *   (or custom authorizer), not through AUTH exchanges → CONNACK 0x8C Bad authentication method.
 */
export function connectRefusal(packet: IConnectPacket): ConnectRuleRefusal | undefined {
  if (packet.protocolVersion === 5 && packet.properties?.authenticationMethod !== undefined) {
    return { reason: 'BAD_AUTHENTICATION_METHOD', reasonCode: ReasonCode.BadAuthenticationMethod };
  }
  return undefined;
}
