/**
 * Every key of the single provisioning table is built here, and nowhere else.
 *
 * Access patterns (DESIGN.md §3):
 * | pattern                                    | key                                                        |
 * |--------------------------------------------|------------------------------------------------------------|
 * | device record (the allowlist entry)        | PK=DEVICE#<serial>            SK=DEVICE                    |
 * | device history, one Query per device       | PK=DEVICE#<serial>            SK=EVENT#<iso time>#<id>     |
 * | certificate record                         | PK=CERT#<certificateId>       SK=CERT                      |
 * | one public key = one device                | PK=PUBKEY#<sha256(SPKI) hex>  SK=PUBKEY                    |
 * | claim-certificate rate window (TTL)        | PK=CLAIM#<claimId>#<minute>   SK=CLAIM                     |
 * | exactly-once effects (TTL)                 | PK=DEDUP#<event identity>     SK=DEDUP                     |
 * | certificates by expiry (ExpiryIndex)       | GSI1PK=EXPIRY#<yyyy-mm-dd>#<shard>  GSI1SK=<notAfter>#<id> |
 * | devices by state (StateIndex)              | GSI2PK=STATE#<state>#<shard>        GSI2SK=<serial>        |
 *
 * Index partitions are sharded (`SHARDS`) so that a million devices in one state, or a batch of
 * certificates issued on one day, never make a hot partition.
 */

export const SHARDS = 8;
export const EXPIRY_INDEX = 'ExpiryIndex';
export const STATE_INDEX = 'StateIndex';

export type Key = { PK: string; SK: string };

/** FNV-1a 32-bit: a stable, fast spread of ids over shards. */
export function shardOf(value: string, shards = SHARDS): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < value.length; i += 1) {
    hash ^= value.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % shards;
}

export const keys = {
  device: (serial: string): Key => ({ PK: `DEVICE#${serial}`, SK: 'DEVICE' }),
  history: (serial: string, at: string, id: string): Key => ({
    PK: `DEVICE#${serial}`,
    SK: `EVENT#${at}#${id}`,
  }),
  historyPrefix: 'EVENT#',
  certificate: (certificateId: string): Key => ({ PK: `CERT#${certificateId}`, SK: 'CERT' }),
  publicKey: (publicKeyHash: string): Key => ({ PK: `PUBKEY#${publicKeyHash}`, SK: 'PUBKEY' }),
  claimWindow: (claimCertificateId: string, minute: string): Key => ({
    PK: `CLAIM#${claimCertificateId}#${minute}`,
    SK: 'CLAIM',
  }),
  dedup: (identity: string): Key => ({ PK: `DEDUP#${identity}`, SK: 'DEDUP' }),
  expiryIndex: (notAfterIso: string, certificateId: string) => ({
    GSI1PK: expiryPartition(notAfterIso.slice(0, 10), shardOf(certificateId)),
    GSI1SK: `${notAfterIso}#${certificateId}`,
  }),
  stateIndex: (state: string, serial: string) => ({
    GSI2PK: statePartition(state, shardOf(serial)),
    GSI2SK: serial,
  }),
};

export function expiryPartition(day: string, shard: number): string {
  return `EXPIRY#${day}#${shard}`;
}

export function statePartition(state: string, shard: number): string {
  return `STATE#${state}#${shard}`;
}

/** The minute bucket (`2026-11-24T14:05`) a claim counter belongs to. */
export function minuteBucket(isoTime: string): string {
  return isoTime.slice(0, 16);
}

/** Every UTC day (`yyyy-mm-dd`) touched by [fromIso, toIso], in order. */
export function daysBetween(fromIso: string, toIso: string): string[] {
  const days: string[] = [];
  const end = toIso.slice(0, 10);
  let cursor = Date.parse(`${fromIso.slice(0, 10)}T00:00:00.000Z`);
  for (let day = fromIso.slice(0, 10); day <= end; day = new Date(cursor).toISOString().slice(0, 10)) {
    days.push(day);
    cursor += 86_400_000;
  }
  return days;
}
