/**
 * Presence items, all TTL'd: one per (certificate, session) (`PRINCIPAL#<certificateId>` /
 * `SESSION#<sessionId>`), the newest presence of a client id (`CLIENT#<clientId>` / `PRESENCE`), and
 * one per DUPLICATE_CLIENTID disconnect (`CLIENT#<clientId>` / `DUPLICATE#<ms>#<sessionId>`).
 */
import * as z from '../../../schemas/zod';
import type { SessionFacts } from '../../domain/presence-rules';
import type { Item } from '../client';
import { fromItem } from '../item';
import { keys } from '../keys';

export interface ClientPresence {
  connected: boolean;
  sessionIdentifier: string;
  principalIdentifier: string;
}

/** One DUPLICATE_CLIENTID disconnect as recorded (older items lack principal and version). */
export interface DuplicateClientIdDisconnect {
  sessionIdentifier: string;
  atMs: number;
  principalIdentifier?: string;
  versionNumber?: number;
}

const sessionSchema = z.lazy(() =>
  z.looseObject({
    sessionIdentifier: z.string(),
    clientId: z.string(),
    connectedAt: z.optional(z.number()),
    disconnectedAt: z.optional(z.number()),
    versionNumber: z.optional(z.number()),
  }),
);

const presenceSchema = z.lazy(() =>
  z.looseObject({
    connected: z.boolean(),
    sessionIdentifier: z.string(),
    principalIdentifier: z.string(),
  }),
);

const duplicateSchema = z.lazy(() =>
  z.looseObject({
    sessionIdentifier: z.string(),
    atMs: z.number(),
    principalIdentifier: z.optional(z.string()),
    versionNumber: z.optional(z.number()),
  }),
);

export function sessionFromItem(item: Item): SessionFacts {
  const session = fromItem(sessionSchema, 'presence session', item);
  return {
    sessionIdentifier: session.sessionIdentifier,
    clientId: session.clientId,
    ...(session.connectedAt !== undefined ? { connectedAt: session.connectedAt } : {}),
    ...(session.disconnectedAt !== undefined ? { disconnectedAt: session.disconnectedAt } : {}),
    ...(session.versionNumber !== undefined ? { versionNumber: session.versionNumber } : {}),
  };
}

export function clientPresenceFromItem(item: Item): ClientPresence {
  const presence = fromItem(presenceSchema, 'client presence', item);
  return {
    connected: presence.connected,
    sessionIdentifier: presence.sessionIdentifier,
    principalIdentifier: presence.principalIdentifier,
  };
}

/** One DUPLICATE_CLIENTID disconnect of a client id, kept `ttlSeconds` after it happened. */
export function duplicateClientIdItem(input: {
  clientId: string;
  atMs: number;
  sessionIdentifier: string;
  principalIdentifier: string;
  versionNumber: number;
  ttlSeconds: number;
}): Item {
  return {
    ...keys.duplicateClientId(input.clientId, input.atMs, input.sessionIdentifier),
    clientId: input.clientId,
    sessionIdentifier: input.sessionIdentifier,
    principalIdentifier: input.principalIdentifier,
    versionNumber: input.versionNumber,
    atMs: input.atMs,
    ttl: Math.floor(input.atMs / 1000) + input.ttlSeconds,
  };
}

export function duplicateClientIdFromItem(item: Item): DuplicateClientIdDisconnect {
  const duplicate = fromItem(duplicateSchema, 'duplicate client id', item);
  return {
    sessionIdentifier: duplicate.sessionIdentifier,
    atMs: duplicate.atMs,
    ...(duplicate.principalIdentifier !== undefined
      ? { principalIdentifier: duplicate.principalIdentifier }
      : {}),
    ...(duplicate.versionNumber !== undefined ? { versionNumber: duplicate.versionNumber } : {}),
  };
}
