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

const CertificateId = z
  .string({ error: 'must be a string' })
  .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters')
  .transform((id) => id.toLowerCase());
const EpochMs = z.number({ error: 'must be a number' }).int().nonnegative();

/** `$aws/events/certificates/registered/<caCertificateId>` (JITR; repeats while PENDING_ACTIVATION). */
export const CertificateRegisteredEvent = z.looseObject({
  certificateId: CertificateId,
  caCertificateId: CertificateId,
  timestamp: EpochMs,
  certificateStatus: z.string().min(1),
  awsAccountId: z.string().regex(/^\d{12}$/, 'must be a 12-digit account id'),
  certificateRegistrationTimestamp: z.union([EpochMs, z.string()]).optional(),
});
export type CertificateRegisteredEvent = z.infer<typeof CertificateRegisteredEvent>;

const presence = {
  clientId: z.string().min(1).max(128),
  timestamp: EpochMs,
  sessionIdentifier: z.string().min(1).max(128),
  principalIdentifier: z.string().min(1).max(512),
  versionNumber: z.number().int().nonnegative(),
  ipAddress: z.string().max(64).optional(),
  /** Added by PresenceRule (`topic(4)`). */
  presenceTopicType: z.enum(['connected', 'disconnected']).optional(),
};

/** `$aws/events/presence/connected/<clientId>`. */
export const PresenceConnectedEvent = z.looseObject({ ...presence, eventType: z.literal('connected') });

/** `$aws/events/presence/disconnected/<clientId>`. */
export const PresenceDisconnectedEvent = z.looseObject({
  ...presence,
  eventType: z.literal('disconnected'),
  clientInitiatedDisconnect: z.boolean().optional(),
  disconnectReason: z.string().min(1).max(64).optional(),
});

export const PresenceEvent = z.discriminatedUnion('eventType', [
  PresenceConnectedEvent,
  PresenceDisconnectedEvent,
]);
export type PresenceEvent = z.infer<typeof PresenceEvent>;

/** `$aws/events/thing/<thingName>/created|updated|deleted` (registry events, THING enabled). */
export const ThingEvent = z.looseObject({
  eventType: z.literal('THING_EVENT'),
  eventId: z.string().min(1).max(128),
  timestamp: EpochMs,
  operation: z.enum(['CREATED', 'UPDATED', 'DELETED']),
  accountId: z.string().regex(/^\d{12}$/, 'must be a 12-digit account id'),
  thingId: z.string().min(1),
  thingName: z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'must be a thing name'),
  versionNumber: z.number().int().optional(),
  thingTypeName: z.string().nullable().optional(),
  attributes: z.record(z.string(), z.string()).default({}),
});
export type ThingEvent = z.infer<typeof ThingEvent>;

/** Everything LifecycleQueue carries. */
export const LifecycleEvent = z.union([PresenceEvent, ThingEvent]);
export type LifecycleEvent = z.infer<typeof LifecycleEvent>;

/** A CSR on `fleetgate/<thingName>/rotate/request`, as RotationRequestRule delivers it. */
export const RotationRequest = z.object({
  csr: z.string().min(1).max(8192).startsWith('-----BEGIN CERTIFICATE REQUEST-----'),
  principal: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters'),
  clientId: z.string().min(1),
  thingName: z.string().min(1).max(128),
});
export type RotationRequest = z.infer<typeof RotationRequest>;
