/**
 * A request to quarantine a device (or, for an unknown serial, a certificate). Sent to the
 * quarantine queue by every flow that finds a suspicious or failed device; consumed by
 * `quarantineDevice`. `requestId` is the dedup identity: the same suspicion reported twice must
 * carry the same id (derive it from the triggering event, never from a random value at send time).
 */
import * as z from './zod';

export const QUARANTINE_SOURCES = [
  'preProvisionHook',
  'registerCertificate',
  'deviceLifecycle',
  'rotateCertificate',
  'expirySweep',
  'reconcileInventory',
  'operator',
] as const;

const HEX_64 = /^[0-9a-f]{64}$/;

// Built on its first parse (`z.lazy`): most functions that import it only send on rare evidence.
export const QuarantineRequest = z.lazy(() =>
  z
    .object({
      requestId: z.string().check(z.minLength(1), z.maxLength(256)),
      serial: z.optional(z.string().check(z.minLength(1), z.maxLength(64))),
      certificateId: z.optional(z.string().check(z.regex(HEX_64, 'must be 64 lower-case hex characters'))),
      /** Stable reason code, e.g. SERIAL_NOT_ALLOWLISTED, PUBLIC_KEY_IN_USE, CLONE_CONCURRENT_SESSIONS. */
      reason: z.string().check(z.regex(/^[A-Z][A-Z0-9_]{2,63}$/, 'must be an UPPER_SNAKE reason code')),
      /**
       * `certificate`: deactivate the named certificate only — never resolve it to a device, never
       * quarantine or restrict a device (evidence from a principal that is not a device's own).
       * Absent: the device named (or owning the certificate) is quarantined.
       */
      scope: z.optional(z.enum(['certificate'])),
      evidence: z._default(z.record(z.string(), z.unknown()), {}),
      source: z.enum(QUARANTINE_SOURCES),
      /** Who reported it, when a person did (`source: operator`): written to the history as the actor. */
      actor: z.optional(z.string().check(z.minLength(1), z.maxLength(128))),
      /** When the suspicion was observed (ISO-8601). */
      at: z.iso.datetime(),
    })
    .check(
      z.refine((request) => request.serial !== undefined || request.certificateId !== undefined, {
        message: 'a serial or a certificateId is required',
        path: ['serial'],
      }),
      z.refine((request) => request.scope !== 'certificate' || request.certificateId !== undefined, {
        message: 'a certificate-scoped request needs a certificateId',
        path: ['certificateId'],
      }),
    ),
);

export type QuarantineRequest = z.infer<typeof QuarantineRequest>;
