/**
 * The one definition of every IoT event fleetgate consumes, as the topic rules deliver them on
 * RegistrationQueue, LifecycleQueue and RotationQueue (the event plus what the rule's SQL adds).
 * The SQS consumer parses each record's body with these (Powertools' SQS record schema, `json`
 * transformer); `test/unit/events.test.ts` parses every sample in `events/` with them. Unknown
 * fields are kept: AWS adds fields to these events over time. Certificate ids are accepted in
 * either case and lower-cased (AWS IoT's own form).
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/auto-register-device-cert.html
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/registry-events.html
 */
import * as z from 'zod';

// Each exported schema is `z.lazy`, built on its first parse: a function reaches this module for
// one of them (registerCertificate, deviceLifecycle, rotateCertificate), and every zod instance
// costs at cold start (README, "Cold start of the bundles").

const certificateId = () =>
  z
    .string({ error: 'must be a string' })
    .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters')
    .transform((id) => id.toLowerCase());
const epochMs = () => z.number({ error: 'must be a number' }).int().nonnegative();

/** `$aws/events/certificates/registered/<caCertificateId>` (JITR; repeats while PENDING_ACTIVATION). */
export const CertificateRegisteredEvent = z.lazy(() => {
  const EpochMs = epochMs();
  return z.looseObject({
    certificateId: certificateId(),
    caCertificateId: certificateId(),
    timestamp: EpochMs,
    certificateStatus: z.string().min(1),
    awsAccountId: z.string().regex(/^\d{12}$/, 'must be a 12-digit account id'),
    certificateRegistrationTimestamp: z.union([EpochMs, z.string()]).optional(),
  });
});
export type CertificateRegisteredEvent = z.infer<typeof CertificateRegisteredEvent>;

const presence = () => ({
  clientId: z.string().min(1).max(128),
  timestamp: epochMs(),
  sessionIdentifier: z.string().min(1).max(128),
  principalIdentifier: z.string().min(1).max(512),
  versionNumber: z.number().int().nonnegative(),
  ipAddress: z.string().max(64).optional(),
  /** Added by PresenceRule (`topic(4)`). */
  presenceTopicType: z.enum(['connected', 'disconnected']).optional(),
});

/** `$aws/events/presence/connected/<clientId>`. */
const presenceConnectedEvent = () => z.looseObject({ ...presence(), eventType: z.literal('connected') });
export const PresenceConnectedEvent = z.lazy(presenceConnectedEvent);

/** `$aws/events/presence/disconnected/<clientId>`. */
const presenceDisconnectedEvent = () =>
  z.looseObject({
    ...presence(),
    eventType: z.literal('disconnected'),
    clientInitiatedDisconnect: z.boolean().optional(),
    disconnectReason: z.string().min(1).max(64).optional(),
  });
export const PresenceDisconnectedEvent = z.lazy(presenceDisconnectedEvent);

// The discriminated union is built over the objects themselves (it reads their `eventType` literals).
export const PresenceEvent = z.lazy(() =>
  z.discriminatedUnion('eventType', [presenceConnectedEvent(), presenceDisconnectedEvent()]),
);
export type PresenceEvent = z.infer<typeof PresenceEvent>;

/** `$aws/events/thing/<thingName>/created|updated|deleted` (registry events, THING enabled). */
export const ThingEvent = z.lazy(() =>
  z.looseObject({
    eventType: z.literal('THING_EVENT'),
    eventId: z.string().min(1).max(128),
    timestamp: epochMs(),
    operation: z.enum(['CREATED', 'UPDATED', 'DELETED']),
    accountId: z.string().regex(/^\d{12}$/, 'must be a 12-digit account id'),
    thingId: z.string().min(1),
    thingName: z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'must be a thing name'),
    versionNumber: z.number().int().optional(),
    thingTypeName: z.string().nullable().optional(),
    attributes: z.record(z.string(), z.string()).default({}),
  }),
);
export type ThingEvent = z.infer<typeof ThingEvent>;

/** Everything LifecycleQueue carries. */
export const LifecycleEvent = z.lazy(() => z.union([PresenceEvent, ThingEvent]));
export type LifecycleEvent = z.infer<typeof LifecycleEvent>;

/** A CSR on `fleetgate/<thingName>/rotate/request`, as RotationRequestRule delivers it. */
export const RotationRequest = z.lazy(() =>
  z.object({
    csr: z.string().min(1).max(8192).startsWith('-----BEGIN CERTIFICATE REQUEST-----'),
    principal: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters'),
    clientId: z.string().min(1),
    thingName: z.string().min(1).max(128),
  }),
);
export type RotationRequest = z.infer<typeof RotationRequest>;
