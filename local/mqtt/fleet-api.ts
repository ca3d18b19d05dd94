/**
 * The Fleet Provisioning MQTT API's topics and payloads: CreateKeysAndCertificate, CreateCertificateFromCsr
 * and RegisterThing, in JSON or CBOR, answered on `<request topic>/accepted` or `/rejected`.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/fleet-provision-api.html
 */
import { decode as decodeCbor, encode as encodeCbor } from 'cborg';
import type { DeviceGateway, FleetRejection } from '../iot-emulator/device';

export type PayloadFormat = 'json' | 'cbor';

/** A request on one of the API's topics. */
export type FleetRequest =
  | { operation: 'CreateKeysAndCertificate'; format: PayloadFormat; topic: string }
  | { operation: 'CreateCertificateFromCsr'; format: PayloadFormat; topic: string }
  | { operation: 'RegisterThing'; format: PayloadFormat; topic: string; templateName: string };

const CREATE = /^\$aws\/certificates\/create\/(json|cbor)$/;
const CREATE_FROM_CSR = /^\$aws\/certificates\/create-from-csr\/(json|cbor)$/;
const PROVISION = /^\$aws\/provisioning-templates\/([^/]+)\/provision\/(json|cbor)$/;

/** The request a topic names, or undefined for any other topic (replies included). */
export function parseFleetTopic(topic: string): FleetRequest | undefined {
  let match = CREATE.exec(topic);
  if (match) return { operation: 'CreateKeysAndCertificate', format: match[1] as PayloadFormat, topic };
  match = CREATE_FROM_CSR.exec(topic);
  if (match) return { operation: 'CreateCertificateFromCsr', format: match[1] as PayloadFormat, topic };
  match = PROVISION.exec(topic);
  if (match) {
    return {
      operation: 'RegisterThing',
      format: match[2] as PayloadFormat,
      topic,
      templateName: match[1] as string,
    };
  }
  return undefined;
}

/** Encodes a reply in the request's format. */
export function encodePayload(format: PayloadFormat, value: unknown): Buffer {
  return format === 'cbor'
    ? // Through JSON first: the same fields in both formats (undefined dropped, as JSON drops it).
      Buffer.from(encodeCbor(JSON.parse(JSON.stringify(value))))
    : Buffer.from(JSON.stringify(value));
}

/** Decodes a request payload; an empty payload is `{}` (CreateKeysAndCertificate sends one). */
export function decodePayload(format: PayloadFormat, payload: Buffer): Record<string, unknown> {
  if (payload.length === 0) return {};
  const value: unknown = format === 'cbor' ? decodeCbor(payload) : JSON.parse(payload.toString('utf8'));
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error('the payload must be an object');
  }
  return value as Record<string, unknown>;
}

/** Who sent the request: the claim certificate and client id passed to the pre-provisioning hook. */
export interface FleetRequester {
  certificateId: string;
  clientId: string;
}

/** The reply: topic (`/accepted` or `/rejected`) and the response object. */
export interface FleetReply {
  topic: string;
  accepted: boolean;
  response: object;
}

/** Runs one request through the emulator's device gateway. */
export async function handleFleetRequest(
  gateway: DeviceGateway,
  request: FleetRequest,
  payload: Buffer,
  requester: FleetRequester,
): Promise<FleetReply> {
  const reply = (response: object): FleetReply => {
    const accepted = !('errorCode' in response && 'statusCode' in response);
    return { topic: `${request.topic}/${accepted ? 'accepted' : 'rejected'}`, accepted, response };
  };
  let body: Record<string, unknown>;
  try {
    body = decodePayload(request.format, payload);
  } catch {
    return reply(
      rejection(400, 'InvalidPayload', `The payload is not valid ${request.format.toUpperCase()}`),
    );
  }
  switch (request.operation) {
    case 'CreateKeysAndCertificate':
      return reply(await gateway.createKeysAndCertificate());
    case 'CreateCertificateFromCsr': {
      const csr = body.certificateSigningRequest;
      if (typeof csr !== 'string' || csr.length === 0) {
        return reply(rejection(400, 'InvalidPayload', 'certificateSigningRequest is required'));
      }
      return reply(await gateway.createCertificateFromCsr({ csr }));
    }
    case 'RegisterThing': {
      const token = body.certificateOwnershipToken;
      if (typeof token !== 'string' || token.length === 0) {
        return reply(rejection(400, 'InvalidPayload', 'certificateOwnershipToken is required'));
      }
      const parameters: Record<string, string> = {};
      const raw = body.parameters;
      if (raw !== undefined && raw !== null) {
        if (typeof raw !== 'object' || Array.isArray(raw)) {
          return reply(rejection(400, 'InvalidPayload', 'parameters must be a map of strings'));
        }
        for (const [name, value] of Object.entries(raw)) {
          if (typeof value !== 'string') {
            return reply(rejection(400, 'InvalidPayload', `parameters.${name} must be a string`));
          }
          parameters[name] = value;
        }
      }
      return reply(
        await gateway.registerThing({
          templateName: request.templateName,
          certificateOwnershipToken: token,
          parameters,
          claimCertificateId: requester.certificateId,
          clientId: requester.clientId,
        }),
      );
    }
  }
}

function rejection(statusCode: number, errorCode: string, errorMessage: string): FleetRejection {
  return { statusCode, errorCode, errorMessage };
}
