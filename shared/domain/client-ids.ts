/**
 * MQTT client ids a claim certificate may use. The claim policy (`iot/claim-policy.json`) allows
 * `iot:Connect` only on `client/claim.*` and denies every other client id: a thing name is
 * `[a-zA-Z0-9:_-]+` (CreateThing), so no thing — and no device connecting as its thing name, as
 * the device policy requires — can ever have a client id with a `.`. A claim-certificate holder can
 * therefore never take a provisioned device's client id (and so never cause its DUPLICATE_CLIENTID
 * disconnects).
 * @see https://docs.aws.amazon.com/iot/latest/apireference/API_CreateThing.html (thingName pattern)
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/iot-policy-actions.html (iot:Connect on client/<clientId>)
 * @see https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits (client id ≤ 128 bytes)
 */

/** The reserved prefix of claim connections' client ids (the claim policy's `client/claim.*`). */
export const CLAIM_CLIENT_ID_PREFIX = 'claim.';

/** What AWS IoT allows as a thing name (CreateThing's `thingName` pattern). */
export const THING_NAME_PATTERN = /^[a-zA-Z0-9:_-]+$/;

/** IoT Core's client id limit, in UTF-8 bytes. */
export const MAX_CLIENT_ID_BYTES = 128;

/**
 * A client id for a claim connection, `claim.<suffix>`, within IoT Core's 128-byte limit. The
 * suffix is kept readable (a serial, an index); anything outside `[A-Za-z0-9_.:-]` becomes `_`.
 */
export function claimClientId(suffix: string): string {
  const clean = suffix.replace(/[^A-Za-z0-9_.:-]/g, '_');
  return `${CLAIM_CLIENT_ID_PREFIX}${clean}`.slice(0, MAX_CLIENT_ID_BYTES);
}

/** Whether `clientId` is in the claim certificates' reserved range (never a thing name). */
export function isClaimClientId(clientId: string): boolean {
  return clientId.startsWith(CLAIM_CLIENT_ID_PREFIX);
}
