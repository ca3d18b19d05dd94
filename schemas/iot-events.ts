/**
 * Schemas of the events AWS IoT publishes on reserved topics and fleetgate's rotation request, as
 * the topic rules deliver them (SQL output: the event plus the fields the rule adds).
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/registry-events.html
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/auto-register-device-cert.html
 */
import * as z from 'zod';

const CertificateId = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters');

/** `$aws/events/certificates/registered/<caCertificateId>` (JITR). */
export const CertificateRegisteredEvent = z.object({
  certificateId: CertificateId,
  caCertificateId: CertificateId,
  timestamp: z.number().int(),
  certificateStatus: z.literal('PENDING_ACTIVATION'),
  awsAccountId: z.string().regex(/^\d{12}$/),
  certificateRegistrationTimestamp: z.union([z.number().int(), z.string()]),
});
export type CertificateRegisteredEvent = z.infer<typeof CertificateRegisteredEvent>;

const presenceBase = {
  clientId: z.string().min(1).max(128),
  timestamp: z.number().int(),
  sessionIdentifier: z.string().min(1),
  principalIdentifier: z.string().min(1),
  versionNumber: z.number().int(),
  /** Added by PresenceRule (`topic(4)`). */
  presenceTopicType: z.enum(['connected', 'disconnected']).optional(),
};

/** `$aws/events/presence/connected/<clientId>`. */
export const PresenceConnectedEvent = z.object({
  ...presenceBase,
  eventType: z.literal('connected'),
  ipAddress: z.string().optional(),
});

/** `$aws/events/presence/disconnected/<clientId>`. */
export const PresenceDisconnectedEvent = z.object({
  ...presenceBase,
  eventType: z.literal('disconnected'),
  clientInitiatedDisconnect: z.boolean(),
  disconnectReason: z.string().min(1),
  ipAddress: z.string().optional(),
});

export const PresenceEvent = z.discriminatedUnion('eventType', [
  PresenceConnectedEvent,
  PresenceDisconnectedEvent,
]);
export type PresenceEvent = z.infer<typeof PresenceEvent>;

/** `$aws/events/thing/<thingName>/created|updated|deleted`. */
export const ThingEvent = z.object({
  eventType: z.literal('THING_EVENT'),
  eventId: z.string().min(1),
  timestamp: z.number().int(),
  operation: z.enum(['CREATED', 'UPDATED', 'DELETED']),
  accountId: z.string().regex(/^\d{12}$/),
  thingId: z.string().min(1),
  thingName: z.string().min(1).max(128),
  versionNumber: z.number().int(),
  thingTypeName: z.string().nullable(),
  attributes: z.record(z.string(), z.string()),
});
export type ThingEvent = z.infer<typeof ThingEvent>;

/** What the lifecycle queue carries: presence and registry events. */
export const LifecycleMessage = z.union([PresenceEvent, ThingEvent]);

/** A CSR on `fleetgate/<thingName>/rotate/request`, as RotationRequestRule delivers it. */
export const RotationRequest = z.object({
  csr: z.string().min(1).max(8192).startsWith('-----BEGIN CERTIFICATE REQUEST-----'),
  principal: CertificateId,
  clientId: z.string().min(1),
  thingName: z.string().min(1).max(128),
});
export type RotationRequest = z.infer<typeof RotationRequest>;

/** A Lambda SQS event (the fields fleetgate reads). */
export const SqsEvent = z.object({
  Records: z
    .array(
      z.object({
        messageId: z.string().min(1),
        receiptHandle: z.string().min(1),
        body: z.string(),
        attributes: z.object({ ApproximateReceiveCount: z.string(), SentTimestamp: z.string() }).loose(),
        messageAttributes: z.record(z.string(), z.unknown()),
        md5OfBody: z.string(),
        eventSource: z.literal('aws:sqs'),
        eventSourceARN: z.string().startsWith('arn:aws:sqs:'),
        awsRegion: z.string(),
      }),
    )
    .min(1),
});
