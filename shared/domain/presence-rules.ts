/**
 * What presence events mean for a device: verification (the first connect with a pending
 * certificate), clone suspicions, and the order of events that AWS IoT delivers at least once and
 * in any order. Pure: the caller passes what the store knows and the event's own times.
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html
 */
import type { DeviceEvent, DeviceState } from './device-state';

/** Clone suspicions raised from presence events (quarantine reason codes). */
export const CLONE_REASONS = [
  /** One certificate connected from two client ids at overlapping times. */
  'CLONE_CONCURRENT_SESSIONS',
  /** A serial's device connected with a certificate that is neither its current nor its pending one. */
  'CLONE_CERTIFICATE_MISMATCH',
  /** Repeated DUPLICATE_CLIENTID disconnects: two devices fighting over one client id. */
  'CLONE_DUPLICATE_CLIENTID',
] as const;
export type CloneReason = (typeof CLONE_REASONS)[number];

/** The device fields verification reads (a `DeviceRecord` fits). */
export interface PresenceDeviceFacts {
  serial: string;
  state: DeviceState;
  certificateId?: string;
  pendingCertificateId?: string;
}

export type ConnectedDecision =
  /** The device proved it holds its pending certificate: apply `event`. */
  | { kind: 'verify'; event: Extract<DeviceEvent, 'ACTIVATE' | 'COMMIT_ROTATION'> }
  /** The certificate the store expects: nothing to change. */
  | { kind: 'expected' }
  | { kind: 'mismatch'; reason: 'CLONE_CERTIFICATE_MISMATCH'; detail: string }
  | { kind: 'ignore'; detail: string };

/**
 * What a `connected` event with `principalIdentifier` means for `device`. Every flow converges
 * here: the hook's, JITR's and JITP's PROVISIONING devices, and rotations (ROTATING).
 */
export function decideConnected(
  device: PresenceDeviceFacts | undefined,
  principalIdentifier: string,
): ConnectedDecision {
  if (!device) return { kind: 'ignore', detail: 'certificate belongs to no known device' };
  const principal = principalIdentifier.toLowerCase();
  const isCurrent = device.certificateId === principal;
  const isPending = device.pendingCertificateId === principal;
  switch (device.state) {
    case 'PROVISIONING':
      if (isPending) return { kind: 'verify', event: 'ACTIVATE' };
      break;
    case 'ROTATING':
      if (isPending) return { kind: 'verify', event: 'COMMIT_ROTATION' };
      break;
    case 'ACTIVE':
      break;
    case 'ALLOWLISTED':
      return { kind: 'ignore', detail: 'device is not provisioning any certificate' };
    default:
      return { kind: 'ignore', detail: `device is ${device.state}` };
  }
  if (isCurrent) return { kind: 'expected' };
  return {
    kind: 'mismatch',
    reason: 'CLONE_CERTIFICATE_MISMATCH',
    detail: `device ${device.state} connected with a certificate that is neither its current nor its pending one`,
  };
}

/** One presence session of a certificate, as far as its events have arrived. */
export interface SessionFacts {
  sessionIdentifier: string;
  clientId: string;
  /** Epoch ms of the connected event; absent while only the disconnect has arrived. */
  connectedAt?: number;
  /** Epoch ms of the disconnected event; absent while the session is (as far as we know) open. */
  disconnectedAt?: number;
  /** The events' versionNumber: which connection of its client id the session was. */
  versionNumber?: number;
}

/**
 * The first pair of sessions of one certificate, from two different client ids, whose intervals
 * overlap (an open session extends to infinity). Sorted, so every event of the same pair finds
 * the same pair.
 */
export function findConcurrentSessions(
  sessions: readonly SessionFacts[],
): [SessionFacts, SessionFacts] | undefined {
  const known = sessions
    .filter((session) => session.connectedAt !== undefined)
    .sort(
      (a, b) =>
        (a.connectedAt ?? 0) - (b.connectedAt ?? 0) || a.sessionIdentifier.localeCompare(b.sessionIdentifier),
    );
  for (let i = 0; i < known.length; i += 1) {
    for (let j = i + 1; j < known.length; j += 1) {
      const a = known[i];
      const b = known[j];
      if (!a || !b || a.clientId === b.clientId) continue;
      if (overlaps(a, b)) return [a, b];
    }
  }
  return undefined;
}

function overlaps(a: SessionFacts, b: SessionFacts): boolean {
  const aEnd = a.disconnectedAt ?? Number.POSITIVE_INFINITY;
  const bEnd = b.disconnectedAt ?? Number.POSITIVE_INFINITY;
  return (a.connectedAt ?? 0) < bEnd && (b.connectedAt ?? 0) < aEnd;
}

/**
 * Whether the DUPLICATE_CLIENTID disconnects of one client id (times in ms, this event's included)
 * reach `threshold` inside some window of `windowMs` that contains this event at `atMs`. Events
 * after `atMs` count too: presence events arrive in any order and are handled concurrently, so the
 * event handled last — whichever it is — must see the storm.
 */
export function isDuplicateClientIdStorm(
  disconnectsAtMs: readonly number[],
  atMs: number,
  windowMs: number,
  threshold: number,
): boolean {
  const times = [...disconnectsAtMs].sort((a, b) => a - b);
  for (const start of times) {
    if (start < atMs - windowMs || start > atMs) continue;
    const inWindow = times.filter((time) => time >= start && time <= start + windowMs).length;
    if (inWindow >= threshold) return true;
  }
  return false;
}

/** A DUPLICATE_CLIENTID disconnect of one client id, as recorded. */
export interface DuplicateDisconnectFacts {
  sessionIdentifier: string;
  atMs: number;
  principalIdentifier?: string;
  versionNumber?: number;
}

/**
 * The DUPLICATE_CLIENTID disconnects that count toward a device's clone detection: the session that
 * was closed AND the session that took the client id over (the next connection of the client id,
 * `versionNumber + 1`) were both made with one of the device's own certificates (`ownCertificateIds`:
 * its current and its pending one). A connection made with any other principal — a claim
 * certificate, another device's certificate, a certificate fleetgate does not know — is not the
 * device's identity being used twice, so the disconnects it causes never count against the device
 * (they are recorded as suspicious connections instead). Until the taker's `connected` event has
 * arrived a disconnect does not count; whichever of the two events is handled last counts it.
 *
 * AWS IoT numbers the connections of a client id with `versionNumber`, monotonically increasing per
 * connection; a session is closed with DUPLICATE_CLIENTID exactly when the next connection of its
 * client id is accepted, so that connection is the one numbered next. Where numbers would skip, a
 * disconnect is not counted (no device is quarantined on evidence that cannot be attributed).
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html
 */
export function attributableDuplicateDisconnects(
  disconnects: readonly DuplicateDisconnectFacts[],
  ownSessions: readonly SessionFacts[],
  ownCertificateIds: readonly string[],
  clientId: string,
): DuplicateDisconnectFacts[] {
  const own = new Set(ownCertificateIds.map((id) => id.toLowerCase()));
  const takers = new Set(
    ownSessions
      .filter((session) => session.clientId === clientId && session.connectedAt !== undefined)
      .map((session) => session.versionNumber)
      .filter((version): version is number => typeof version === 'number'),
  );
  return disconnects.filter(
    (disconnect) =>
      disconnect.principalIdentifier !== undefined &&
      own.has(disconnect.principalIdentifier.toLowerCase()) &&
      typeof disconnect.versionNumber === 'number' &&
      takers.has(disconnect.versionNumber + 1),
  );
}

/**
 * A sortable rank of a presence event for one client id. AWS gives both events of one session the
 * same `versionNumber`, increasing with every new connection of the client id, so a session's
 * `disconnected` ranks after its `connected`, and anything of a newer session ranks after both:
 * a late `disconnected` never overrides a newer `connected`. The timestamp breaks remaining ties.
 */
export function presenceRank(event: {
  versionNumber: number;
  eventType: 'connected' | 'disconnected';
  timestamp: number;
}): string {
  const version = String(Math.max(0, Math.trunc(event.versionNumber))).padStart(16, '0');
  const kind = event.eventType === 'connected' ? '0' : '1';
  const at = String(Math.max(0, Math.trunc(event.timestamp))).padStart(15, '0');
  return `${version}#${kind}#${at}`;
}

/**
 * The identity of a suspicion: the same suspicion found by any event (or any redelivery) has the
 * same identity, so it produces one quarantine request.
 */
export const suspicionIdentity = {
  concurrentSessions: (certificateId: string) => `CLONE_CONCURRENT_SESSIONS:${certificateId}`,
  certificateMismatch: (serial: string, certificateId: string) =>
    `CLONE_CERTIFICATE_MISMATCH:${serial}:${certificateId}`,
  duplicateClientId: (clientId: string) => `CLONE_DUPLICATE_CLIENTID:${clientId}`,
  registration: (certificateId: string) => `REGISTRATION:${certificateId}`,
  jitp: (thingName: string) => `JITP:${thingName}`,
};
