/**
 * The one definition of every IoT event fleetgate consumes, as the topic rules deliver them on
 * RegistrationQueue, LifecycleQueue and RotationQueue (the event plus what the rule's SQL adds).
 * The SQS consumer parses each record's body with these (JSON, then the schema: what Powertools'
 * SQS envelope with its `JSONStringified` helper does); `test/unit/events.test.ts` parses every sample in `events/` with them. Unknown
 * fields are kept: AWS adds fields to these events over time. Certificate ids are accepted in
 * either case and lower-cased (AWS IoT's own form).
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/auto-register-device-cert.html
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/registry-events.html
 */
import * as z from './zod';

// Each exported schema is `z.lazy`, built on its first parse: a function reaches this module for
// one of them (registerCertificate, deviceLifecycle, rotateCertificate), and every zod instance
// costs at cold start (README, "Cold start of the bundles").

const certificateId = () =>
  z.pipe(
    z.string({ error: 'must be a string' }).check(z.regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters')),
    z.transform((id) => id.toLowerCase()),
  );
// A schema-level `error` also words the checks that have no message of their own: each has one.
const epochMs = () =>
  z
    .number({ error: 'must be a number' })
    .check(z.int('must be a whole number'), z.nonnegative('must not be negative'));

/** `$aws/events/certificates/registered/<caCertificateId>` (JITR; repeats while PENDING_ACTIVATION). */
export const CertificateRegisteredEvent = z.lazy(() => {
  const EpochMs = epochMs();
  return z.looseObject({
    certificateId: certificateId(),
    caCertificateId: certificateId(),
    timestamp: EpochMs,
    certificateStatus: z.string().check(z.minLength(1)),
    awsAccountId: z.string().check(z.regex(/^\d{12}$/, 'must be a 12-digit account id')),
    certificateRegistrationTimestamp: z.optional(z.union([EpochMs, z.string()])),
  });
});
export type CertificateRegisteredEvent = z.infer<typeof CertificateRegisteredEvent>;

const presence = () => ({
  clientId: z.string().check(z.minLength(1), z.maxLength(128)),
  timestamp: epochMs(),
  sessionIdentifier: z.string().check(z.minLength(1), z.maxLength(128)),
  principalIdentifier: z.string().check(z.minLength(1), z.maxLength(512)),
  versionNumber: z.number().check(z.int(), z.nonnegative()),
  ipAddress: z.optional(z.string().check(z.maxLength(64))),
  /** Added by PresenceRule (`topic(4)`). */
  presenceTopicType: z.optional(z.enum(['connected', 'disconnected'])),
});

/** `$aws/events/presence/connected/<clientId>`. */
const presenceConnectedEvent = () => z.looseObject({ ...presence(), eventType: z.literal('connected') });
export const PresenceConnectedEvent = z.lazy(presenceConnectedEvent);

/** `$aws/events/presence/disconnected/<clientId>`. */
const presenceDisconnectedEvent = () =>
  z.looseObject({
    ...presence(),
    eventType: z.literal('disconnected'),
    clientInitiatedDisconnect: z.optional(z.boolean()),
    disconnectReason: z.optional(z.string().check(z.minLength(1), z.maxLength(64))),
  });
export const PresenceDisconnectedEvent = z.lazy(presenceDisconnectedEvent);

// The discriminated union is built over the objects themselves (it reads their `eventType` literals).
export const PresenceEvent = z.lazy(() =>
  z.discriminatedUnion('eventType', [presenceConnectedEvent(), presenceDisconnectedEvent()]),
);
export type PresenceEvent = z.infer<typeof PresenceEvent>;

/** `$aws/events/thing/<thingName>/created|updated|deleted` (registry events, THING enabled). */
const thingEvent = () =>
  z.looseObject({
    eventType: z.literal('THING_EVENT'),
    eventId: z.string().check(z.minLength(1), z.maxLength(128)),
    timestamp: epochMs(),
    operation: z.enum(['CREATED', 'UPDATED', 'DELETED']),
    accountId: z.string().check(z.regex(/^\d{12}$/, 'must be a 12-digit account id')),
    thingId: z.string().check(z.minLength(1)),
    thingName: z.string().check(z.regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'must be a thing name')),
    versionNumber: z.optional(z.number().check(z.int())),
    thingTypeName: z.optional(z.nullable(z.string())),
    attributes: z._default(z.record(z.string(), z.string()), {}),
  });
export const ThingEvent = z.lazy(thingEvent);
export type ThingEvent = z.infer<typeof ThingEvent>;

/**
 * Everything LifecycleQueue carries, told apart by `eventType`: a bad field is reported against the
 * event it belongs to (`timestamp: must not be negative`), which a plain union of the two kinds
 * could only report as "Invalid input".
 */
export const LifecycleEvent = z.lazy(() =>
  z.discriminatedUnion('eventType', [presenceConnectedEvent(), presenceDisconnectedEvent(), thingEvent()], {
    error: (issue) =>
      typeof issue.input === 'object' && issue.input !== null
        ? 'must be connected, disconnected or THING_EVENT'
        : 'must be an object',
  }),
);
export type LifecycleEvent = z.infer<typeof LifecycleEvent>;

/** A CSR on `fleetgate/<thingName>/rotate/request`, as RotationRequestRule delivers it. */
export const RotationRequest = z.lazy(() =>
  z.object({
    csr: z
      .string()
      .check(
        z.minLength(1),
        z.maxLength(8192),
        z.startsWith('-----BEGIN CERTIFICATE REQUEST-----', 'must be a PEM certificate signing request'),
      ),
    principal: z.string().check(z.regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters')),
    clientId: z.string().check(z.minLength(1)),
    thingName: z.string().check(z.minLength(1), z.maxLength(128)),
  }),
);
export type RotationRequest = z.infer<typeof RotationRequest>;
